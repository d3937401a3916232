"""The chat routes' bounds and edges: request size limits (422 naming the field), engine errors as a
generic message with a request id (details only in the log), the request timeout, which headers
chat clients see."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from gateway.chat.engines.base import EngineError
from gateway.chat.protocol import MAX_MESSAGE_CHARS, MAX_MESSAGES, MAX_STOP_CHARS
from gateway.http.auth import AccessSettings
from tests.support.api_fakes import MODEL, EchoLLM, build_gateway

SECRET_DETAIL = "CUDA error at /opt/vllm/worker.py on host gpu-node-17"


class FailingLLM(EchoLLM):
    """Fails before the first token (`after=0`) or after `after` tokens, with internals in the message."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    async def generate(self, messages, sampling, request_id):
        sent = 0
        async for item in super().generate(messages, sampling, request_id):
            if sent > self.after:
                raise EngineError(SECRET_DETAIL)
            sent += 1
            yield item
        raise EngineError(SECRET_DETAIL)


class SlowLLM(EchoLLM):
    async def generate(self, messages, sampling, request_id):
        async for item in super().generate(messages, sampling, request_id):
            await asyncio.sleep(0.2)
            yield item


def chat(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hello?"}], **extra}


async def _client(gw):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://test")


@pytest.fixture
async def http(tmp_path):
    gw = build_gateway(tmp_path / "home", settings=AccessSettings())
    async with await _client(gw) as client:
        yield client


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
        (chat(stop="x" * (MAX_STOP_CHARS + 1)), "stop"),
        (chat(stop=[""]), "stop"),
        (chat(messages=[{"role": "user", "content": "hi"}] * (MAX_MESSAGES + 1)), "messages"),
        (chat(messages=[{"role": "user", "content": "x" * (MAX_MESSAGE_CHARS + 1)}]), "messages.0.content"),
        (
            chat(messages=[{"role": "user", "content": [{"type": "text", "text": "x" * MAX_MESSAGE_CHARS}] * 2}]),
            "messages.0.content",
        ),
        (chat(seed=2**64), "seed"),
    ],
)
async def test_oversized_requests_are_a_422_naming_the_field(tmp_path, body, param):
    gw = build_gateway(tmp_path / "home", settings=AccessSettings(), max_body_bytes=1 << 20)
    async with await _client(gw) as http:
        resp = await http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["param"] == param


async def test_chat_clients_see_only_the_version_headers(http):
    resp = await http.post("/v1/chat/completions", json=chat())
    assert resp.status_code == 200
    lethe = {k for k in resp.headers if k.startswith("x-lethe-")}
    assert lethe == {"x-lethe-model-version", "x-lethe-index-version"}


async def test_diagnostic_headers_are_opt_in(tmp_path):
    gw = build_gateway(tmp_path / "home", settings=AccessSettings(), diagnostic_headers=True)
    async with await _client(gw) as http:
        resp = await http.post("/v1/chat/completions", json=chat(stream=True))
    assert resp.headers["x-lethe-replica"] == "llm-0" and "x-lethe-ingress" in resp.headers


@pytest.mark.parametrize("stream", [False, True])
async def test_engine_errors_reach_clients_as_a_generic_message_with_a_request_id(tmp_path, caplog, stream):
    gw = build_gateway(tmp_path / "home", settings=AccessSettings())
    gw.app.state.chat._client = FailingLLM(after=0 if not stream else 2)
    caplog.set_level(logging.ERROR, logger="gateway.chat.service")
    async with await _client(gw) as http:
        resp = await http.post("/v1/chat/completions", json=chat(stream=stream))
    if stream:
        assert resp.status_code == 200
        events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
        error = json.loads(events[-2])["error"]
        request_id = json.loads(events[0])["id"]
    else:
        assert resp.status_code == 503
        error = resp.json()["error"]
        request_id = error["message"].split("request id ")[1].split(")")[0]
    assert error["code"] == "engine_error" and SECRET_DETAIL not in json.dumps(error)
    assert request_id.startswith("chatcmpl-") and request_id in error["message"]
    logged = [r.getMessage() for r in caplog.records]
    assert any(SECRET_DETAIL in m and request_id in m for m in logged), logged


@pytest.mark.parametrize("stream", [False, True])
async def test_a_chat_ends_at_the_request_timeout(tmp_path, stream):
    gw = build_gateway(tmp_path / "home", settings=AccessSettings(), request_timeout_s=0.5)
    gw.app.state.chat._client = SlowLLM()
    async with await _client(gw) as http:
        resp = await http.post("/v1/chat/completions", json=chat(stream=stream, max_tokens=20))
    if stream:
        events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and json.loads(events[-2])["error"]["code"] == "request_timeout"
    else:
        assert resp.status_code == 504 and resp.json()["error"]["code"] == "request_timeout"
    assert gw.app.state.access.streams_in_flight() == 0
