"""The FastAPI app and chat pipeline with a scripted engine: shapes, headers, every error path."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from gateway.chat.replica import LLMReplica
from gateway.chat.service import ChatService
from gateway.config import load_config
from gateway.guard.artifacts import build_artifacts
from gateway.guard.index import ForgetIndex
from gateway.guard.types import REFUSAL_TEXT, ForgetEntry
from gateway.http.app import BodyLimitMiddleware, create_app
from tests.support.fakes import LocalLLMClient, ScriptedEngine, StaticGuard

MODEL = "scripted"
SECRET = ForgetEntry(
    "f-secret",
    "Ingrid Solvang",
    literals=("+47 912 33 457",),
    qa=(("What is Ingrid Solvang's phone number?", "Her number is +47 912 33 457."),),
    reason="gdpr",
)
NICKNAME = ForgetEntry("f-nick", None, literals=("Bluebird-77",), action="redact", reason="secret")


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture(scope="module")
def guarded_index(embedder) -> ForgetIndex:
    """Version 7 of an index holding a blocked phone number and a redacted code name."""
    index = ForgetIndex.empty(embedder)
    return index.with_entries([build_artifacts(SECRET, embedder), build_artifacts(NICKNAME, embedder)], 7)


@pytest.fixture
def guard(guarded_index) -> StaticGuard:
    return StaticGuard(guarded_index)


@pytest.fixture
async def http(engine, guard, tiny_model_dir):
    config = load_config(env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_MAX_MODEL_LEN": "256"})
    replica = LLMReplica(config, replica_id="llm-0", engine=engine)
    await replica.start()
    service = ChatService(LocalLLMClient(replica), MODEL, ready_timeout_s=1, guard=guard)
    app = create_app(service, max_body_bytes=4096)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def chat(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello?"}], **extra}


async def test_non_streaming_shape_and_headers(http, engine):
    resp = await http.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": engine.reply}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": body["usage"]["prompt_tokens"],
        "completion_tokens": 5,
        "total_tokens": body["usage"]["prompt_tokens"] + 5,
    }
    assert resp.headers["x-lethe-model-version"] == "scripted-v1"
    assert resp.headers["x-lethe-index-version"] == "7"
    # The model's own chat template was applied before the engine saw the prompt.
    assert "<|im_start|>user\nHello?<|im_end|>" in engine.prompts[0]


async def test_streaming_events(http, engine):
    resp = await http.post("/v1/chat/completions", json=chat(stream=True, stream_options={"include_usage": True}))
    assert resp.status_code == 200
    assert resp.headers["x-lethe-index-version"] == "7"
    events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in chunks if c["choices"])
    assert text == engine.reply
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


async def test_max_tokens_truncates_with_length(http):
    body = (await http.post("/v1/chat/completions", json=chat(max_tokens=2))).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


async def test_engine_failure_mid_stream_is_reported_in_band(http, engine):
    engine.fail_after = 2
    resp = await http.post("/v1/chat/completions", json=chat(stream=True))
    events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "engine_error"


async def test_engine_failure_without_stream_is_503(http, engine):
    engine.fail_after = 0
    resp = await http.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "engine_error"


async def test_unhealthy_engine_is_not_ready(http, engine):
    engine.healthy = False
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["type"] == "service_unavailable"
    assert (await http.get("/v1/models")).status_code == 503
    assert (await http.get("/healthz")).status_code == 200  # alive, just not ready
    resp = await http.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "engine_not_ready"


async def test_body_limit(http):
    resp = await http.post("/v1/chat/completions", json=chat(user="x" * 5000))
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"


async def test_context_overflow_is_400(http):
    resp = await http.post("/v1/chat/completions", json=chat(max_tokens=10_000))
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "context_length_exceeded"


async def test_no_client_input_produces_500(http):
    """Random mutations of a valid body: every answer is 200 or a 4xx in the OpenAI error shape."""
    rng = random.Random(1234)
    junk = [None, True, -1, 0, 3.5, 1e309, "", "x", [], {}, [1, "a"], {"k": "v"}, "\u0000", "🙂" * 3]
    fields = [
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "n",
        "stream",
        "stream_options",
        "max_completion_tokens",
    ]
    for _ in range(150):
        body = chat(max_tokens=3)
        for field in rng.sample(fields, rng.randint(1, 3)):
            body[field] = rng.choice(junk)
        if rng.random() < 0.3:
            body["messages"] = [{"role": rng.choice(["user", "assistant", "x", None]), "content": rng.choice(junk)}]
        resp = await http.post(
            "/v1/chat/completions", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert resp.status_code < 500, (body, resp.text)
        if resp.status_code >= 400:
            assert set(resp.json()["error"]) == {"message", "type", "param", "code"}


def sse_text(resp: httpx.Response) -> tuple[str, list[str | None]]:
    events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    return text, [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]


@pytest.mark.parametrize("stream", [False, True])
async def test_block_ends_with_refusal_and_content_filter(http, engine, stream):
    engine.reply = "Sure. You can reach her at 4791233457 most days. She likes calls in the morning."
    resp = await http.post("/v1/chat/completions", json=chat(stream=stream))
    assert resp.status_code == 200
    if stream:
        text, finishes = sse_text(resp)
        assert finishes == ["content_filter"]
    else:
        text = resp.json()["choices"][0]["message"]["content"]
        assert resp.json()["choices"][0]["finish_reason"] == "content_filter", resp.json()["choices"]
    assert "4791233457" not in text and "morning" not in text
    assert text.endswith(REFUSAL_TEXT)


@pytest.mark.parametrize("stream", [False, True])
async def test_redact_replaces_the_span_and_keeps_the_rest(http, engine, stream):
    engine.reply = "The project was called Bluebird-77 internally. It shipped in spring."
    resp = await http.post("/v1/chat/completions", json=chat(stream=stream))
    text = sse_text(resp)[0] if stream else resp.json()["choices"][0]["message"]["content"]
    assert "Bluebird" not in text
    assert "[redacted]" in text and text.endswith("It shipped in spring.")


async def test_leak_split_into_one_character_deltas_is_caught(http, engine):
    engine.reply = "You can reach her at +47 912 33 457 any time."
    engine.split_chars = True
    text, finishes = sse_text(await http.post("/v1/chat/completions", json=chat(stream=True)))
    assert finishes == ["content_filter"]
    assert "912" not in text and "457" not in text


async def test_prompt_about_forgotten_subject_is_refused_without_the_engine(http, engine):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "What is Ingrid Solvang's phone number?"}]}
    resp = await http.post("/v1/chat/completions", json=body)
    assert resp.json()["choices"][0]["message"]["content"] == REFUSAL_TEXT
    assert resp.json()["choices"][0]["finish_reason"] == "content_filter"
    assert resp.headers["x-lethe-index-version"] == "7"
    assert engine.prompts == []


@pytest.mark.parametrize("where", ["system", "earlier user turn", "earlier assistant turn"])
async def test_forgotten_question_anywhere_in_the_conversation_is_refused(http, engine, where):
    question = "What is Ingrid Solvang's phone number?"
    messages = {
        "system": [{"role": "system", "content": question}, {"role": "user", "content": "Answer it, please."}],
        "earlier user turn": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": "Let me think."},
            {"role": "user", "content": "Go on."},
        ],
        "earlier assistant turn": [
            {"role": "user", "content": "Ask me something."},
            {"role": "assistant", "content": question},
            {"role": "user", "content": "You tell me."},
        ],
    }[where]
    resp = await http.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
    assert resp.json()["choices"][0]["message"]["content"] == REFUSAL_TEXT
    assert resp.json()["choices"][0]["finish_reason"] == "content_filter"
    assert engine.prompts == []


async def test_stale_replica_refuses_chats(http, guard):
    guard.reason = "this replica has not reached the forget-index authority for 30 s"
    resp = await http.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "index_unavailable"


async def test_chat_body_limit_refuses_a_declared_length_before_reading_the_body():
    """A chat body over `max_chat_body_bytes` is refused from its Content-Length alone: the body is never
    received (behind Ray Serve's proxy it never travels to the replica); other routes keep the wider limit."""
    reached, sent = [], []

    async def inner(scope, receive, send):
        reached.append(scope["path"])
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def never_receive():
        raise AssertionError("the body was read")

    async def one_chunk():
        return {"type": "http.request", "body": b"x" * 5000, "more_body": False}

    async def collect(message):
        sent.append(message)

    mw = BodyLimitMiddleware(inner, max_bytes=1 << 20, path_limits={"/v1/chat/completions": 4096})

    def scope(path, length):
        return {"type": "http", "path": path, "headers": [(b"content-length", str(length).encode())]}

    await mw(scope("/v1/chat/completions", 5000), never_receive, collect)
    assert sent[0]["status"] == 413 and not reached
    assert b"4096 bytes" in sent[1]["body"] and b"request_too_large" in sent[1]["body"]
    sent.clear()
    await mw(scope("/v1/forget", 5000), one_chunk, collect)
    assert sent[0]["status"] == 204 and reached == ["/v1/forget"]
    # A path limit never widens the general one.
    assert BodyLimitMiddleware(inner, max_bytes=1024, path_limits={"/v1/chat/completions": 4096}).path_limits == {
        "/v1/chat/completions": 1024
    }
