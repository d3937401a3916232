"""The chat pipeline against an index that changes while a response streams (scripted engine, real guard).

The test plays the index follower: it swaps `StaticGuard.index` between two chunks it received, which
is what an acknowledged `POST /v1/forget` does to a live replica. Nothing received after the swap may
contain the forgotten content, whether the stream started guarded or on an empty index (no hold-back).
"""

from __future__ import annotations

import pytest

from gateway.chat.protocol import ChatCompletionRequest
from gateway.chat.replica import LLMReplica
from gateway.chat.service import ChatService
from gateway.config import load_config
from gateway.errors import ServiceUnavailableError
from gateway.guard import REFUSAL_TEXT, ForgetEntry, ForgetIndex, build_artifacts
from tests.support.fakes import LocalLLMClient, ScriptedEngine, StaticGuard

MODEL = "scripted"
LATE = "The vault code of the Harbour Street branch is 5512-QX-0098."
REPLY = ("Here is a long answer about many things. " * 6) + LATE + " That is all I know about it."
OTHER = ForgetEntry("other-1", None, literals=("Bluebird-77",), reason="secret")
VAULT = ForgetEntry("vault-1", None, literals=("5512-QX-0098",), reason="secret")
VAULT_REDACT = ForgetEntry("vault-2", None, literals=("5512-QX-0098",), reason="secret", action="redact")
VAULT_TEXT = ForgetEntry("vault-3", None, texts=(LATE,), reason="secret")


@pytest.fixture(scope="module")
def empty(embedder) -> ForgetIndex:
    return ForgetIndex.empty(embedder)


@pytest.fixture(scope="module")
def with_other(empty, embedder) -> ForgetIndex:
    return empty.with_entries([build_artifacts(OTHER, embedder)], version=1)


def later(index: ForgetIndex, entry: ForgetEntry) -> ForgetIndex:
    return index.with_entries([build_artifacts(entry, index.embedder)], version=index.version + 1)


@pytest.fixture
async def make_service(tiny_model_dir):
    async def build(index: ForgetIndex, *, split_chars: bool = False):
        engine = ScriptedEngine(REPLY)
        engine.split_chars = split_chars
        config = load_config(env={"LETHE_MODEL": str(tiny_model_dir), "LETHE_MAX_MODEL_LEN": "2048"})
        replica = LLMReplica(config, replica_id="llm-0", engine=engine)
        await replica.start()
        source = StaticGuard(index)
        return ChatService(LocalLLMClient(replica), MODEL, ready_timeout_s=1, guard=source), source

    return build


def request() -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": MODEL, "messages": [{"role": "user", "content": "Tell me things."}], "max_tokens": 1000}
    )


async def stream_with_swap(service: ChatService, source: StaticGuard, new_index: ForgetIndex, after: int):
    """Receive the response; swap the index once `after` chunks arrived. Returns (before, after, finish)."""
    stream = await service.open(request())
    before, post, finish, n = "", "", None, 0
    if after == 0:
        source.index = new_index  # acked between the start of the stream and its first chunk
    async for chunk in stream.chunks:
        n += 1
        if n <= after:
            before += chunk.text
        else:
            post += chunk.text
        finish = chunk.finish_reason or finish
        if n == after:
            source.index = new_index  # the follower applied the new version and acked it
    return before, post, finish


# `after`: chunks received before the swap. The guard releases unrelated text at once (about every 16
# characters), so 12 chunks still come before the late sentence; 20 reached past it.
@pytest.mark.parametrize("after", [0, 1, 5, 12])
@pytest.mark.parametrize("start", ["empty", "guarded"])
async def test_forget_acknowledged_mid_stream_stops_the_content(make_service, empty, with_other, start, after):
    index = empty if start == "empty" else with_other
    service, source = await make_service(index)
    before, post, finish = await stream_with_swap(service, source, later(index, VAULT), after)
    assert "5512" not in before  # the swap came before the model got there (test set-up)
    assert "5512" not in post and "QX-0098" not in post
    assert finish == "content_filter" and post.endswith(REFUSAL_TEXT)


async def test_leak_spanning_the_swap_is_cut_at_the_first_unsent_character(make_service, empty):
    """Unguarded start, one character per delta: the first entry arrives while the model is in the middle
    of the forgotten literal. The part already sent stays sent; not one more character of it follows.
    (A guarded start releases in steps of the hold-back: tests/gateway/guard/test_stream.py covers it.)"""
    service, source = await make_service(empty, split_chars=True)
    cut = REPLY.index("5512-QX") + len("5512-Q")
    stream = await service.open(request())
    before, post, finish = "", "", None
    async for chunk in stream.chunks:
        if source.index is empty:
            before += chunk.text
            if len(before) == cut:  # acked before the client asks for the next chunk
                source.index = later(empty, VAULT)
        else:
            post += chunk.text
        finish = chunk.finish_reason or finish
    assert before.endswith("5512-Q")
    assert finish == "content_filter" and post == " " + REFUSAL_TEXT


async def test_verbatim_text_forgotten_mid_stream(make_service, empty):
    service, source = await make_service(empty)
    _, post, finish = await stream_with_swap(service, source, later(empty, VAULT_TEXT), 3)
    assert finish == "content_filter" and "Harbour Street branch" not in post


async def test_redact_mid_stream_keeps_the_rest(make_service, with_other):
    service, source = await make_service(with_other)
    before, post, finish = await stream_with_swap(service, source, later(with_other, VAULT_REDACT), 2)
    assert finish == "stop"
    assert "5512" not in post and "[redacted]" in post and post.endswith("That is all I know about it.")
    assert before + post == REPLY.replace("5512-QX-0098", "[redacted]")


async def test_unchanged_empty_index_streams_without_hold_back(make_service, empty):
    service, _ = await make_service(empty)
    stream = await service.open(request())
    texts = [chunk.text async for chunk in stream.chunks]
    assert texts[0] == "Here" and "".join(texts) == REPLY  # one chunk per engine delta, nothing held


async def test_replica_fenced_mid_stream_stops_the_stream(make_service, with_other):
    service, source = await make_service(with_other)
    stream = await service.open(request())
    with pytest.raises(ServiceUnavailableError):
        n = 0
        async for _ in stream.chunks:
            n += 1
            if n == 2:
                source.reason = "this replica has not reached the forget-index authority for 16 s"
