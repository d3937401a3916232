"""The chat service runs guard checks off the event loop, within a time budget (issue 14, item 3).

A ticker task on the same loop stands for everything else the ingress does meanwhile (other chats,
health checks, the follower's index acknowledgements): it must keep running while a huge check does."""

from __future__ import annotations

import asyncio
import gc
import time

import httpx
import pytest

from gateway.chat.protocol import MAX_MESSAGE_CHARS, ChatCompletionRequest
from gateway.chat.service import ChatService
from gateway.errors import PayloadTooLargeError
from gateway.guard import REFUSAL_TEXT, CachedEmbedder, ForgetEntry, ForgetIndex, build_artifacts
from gateway.guard.artifacts import build_many_artifacts
from gateway.http.app import create_app
from tests.gateway.guard.cost_support import RandomEmbedder, prose
from tests.support.api_fakes import EchoLLM
from tests.support.fakes import StaticGuard
from tests.support.guard_sets import load_entries

MODEL = "fake-model"
SECRET = ForgetEntry("vault-1", None, literals=("5512-QX-0098",), reason="secret")
TWO_MIB = 2 * 1024 * 1024


def index_with(embedder: RandomEmbedder, entries: int = 8) -> ForgetIndex:
    cached = CachedEmbedder(embedder, max_items=16)
    artifacts = build_many_artifacts(load_entries("forget_set")[:entries], CachedEmbedder(RandomEmbedder()))
    return ForgetIndex.empty(cached).with_entries(artifacts, version=1)


def request(*contents: str, stream: bool = False) -> ChatCompletionRequest:
    messages = [{"role": "user", "content": c} for c in contents]
    return ChatCompletionRequest.model_validate({"model": MODEL, "messages": messages, "stream": stream})


def huge_request() -> ChatCompletionRequest:
    """Just under 2 MiB of prose, in messages of the largest size a request may have."""
    text = prose(TWO_MIB)
    parts = [text[i : i + MAX_MESSAGE_CHARS] for i in range(0, TWO_MIB - MAX_MESSAGE_CHARS, MAX_MESSAGE_CHARS)]
    return request(*parts)


class Ticker:
    """Sleeps 10 ms at a time on the loop and records the gaps between its wake-ups."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def longest(self) -> float:
        return max(self.gaps, default=0.0)

    @property
    def ticks(self) -> int:
        return len(self.gaps)

    def p95(self) -> float:
        ordered = sorted(self.gaps)
        return ordered[int(0.95 * (len(ordered) - 1))] if ordered else 0.0

    def kept_running(self, allowed: float) -> bool:
        """95% of the gaps under `allowed`, none over half a second: a check on the loop (before) held it for
        the whole check, seconds; a busy shared machine alone delays a wake-up now and then."""
        return self.ticks > 20 and self.p95() < allowed and self.longest < 0.5

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.gaps.append(now - last)
            last = now

    def __enter__(self) -> Ticker:
        # What earlier tests left in this process (models, tokenizers: millions of objects in a full run)
        # is moved out of the collector's reach while ticking: a full collection over it can stall any
        # loop for most of a second on a loaded machine, and that is not what the guard does to the loop.
        gc.collect()
        gc.freeze()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        gc.unfreeze()


async def allowed_gap() -> float:
    """100 ms, or more when the machine itself is so loaded (shared CI cores) that a ticker with nothing
    else on its loop already misses its wake-ups: the test is about what the guard does to the loop."""
    with Ticker() as idle:
        await asyncio.sleep(1.0)
    return max(0.1, 2 * idle.p95())


async def test_a_two_mib_prompt_is_refused_within_budget_and_the_loop_keeps_running():
    """2 ms a window: the whole check would take minutes. It is refused (413) within its budget; the loop
    never stalls for 100 ms, and a small chat sent meanwhile is answered without waiting for it."""
    service = ChatService(
        EchoLLM("Hi there."),
        MODEL,
        guard=StaticGuard(index_with(RandomEmbedder(0.002))),
        check_budget_s=2.0,
        max_check_chars=2 * TWO_MIB,  # past the size bound: the time budget is what refuses it
    )
    big = huge_request()
    allowed = await allowed_gap()
    with Ticker() as ticker:
        started = time.monotonic()
        task = asyncio.create_task(service.open(big))
        await asyncio.sleep(0.05)
        small_started = time.monotonic()
        small = await service.collect(await service.open(request("Say hi.")))
        small_took = time.monotonic() - small_started
        with pytest.raises(PayloadTooLargeError) as refused:
            await task
        took = time.monotonic() - started
    assert refused.value.status == 413 and refused.value.code == "prompt_too_large_to_check"
    assert refused.value.param == "messages"
    assert small.choices[0].message.content == "Hi there."
    assert small_took < 1.0  # not queued behind the large prompt's check (that takes the 2 s budget)
    assert took < 5.0  # the budget, plus cutting 2 MiB into sentences (linear, not cooperative)
    assert ticker.kept_running(allowed), (ticker.p95(), ticker.longest, allowed)


async def test_the_refusal_is_a_413_in_the_openai_error_shape():
    service = ChatService(
        EchoLLM(),
        MODEL,
        guard=StaticGuard(index_with(RandomEmbedder(0.002))),
        check_budget_s=0.2,
        max_check_chars=2 * TWO_MIB,
    )
    app = create_app(service, max_body_bytes=4 * 1024 * 1024)
    body = huge_request().model_dump(exclude_none=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 413
    error = resp.json()["error"]
    assert error["code"] == "prompt_too_large_to_check"
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert "time budget" in error["message"]


async def test_a_prompt_over_the_size_bound_is_refused_before_any_work():
    """Over guard.max_check_chars: a 413 at once, without a single window checked (2 s a window here)."""
    service = ChatService(EchoLLM(), MODEL, guard=StaticGuard(index_with(RandomEmbedder(2.0))), max_check_chars=1000)
    started = time.monotonic()
    with pytest.raises(PayloadTooLargeError) as refused:
        await service.open(request("word " * 400))
    assert time.monotonic() - started < 0.5
    assert refused.value.code == "prompt_too_large_to_check" and "at most 1000" in str(refused.value)


async def test_stream_steps_are_checked_off_the_loop():
    """30 ms a window (a slow encoder): the stream is checked step by step on guard threads while the loop
    keeps ticking; the answer comes out whole."""
    # A name of the forget set in every sentence: every window is anchored, so every one is embedded.
    reply = " ".join(f"Sentence number {i} says Solvang likes the weather today." for i in range(12))
    service = ChatService(EchoLLM(reply), MODEL, guard=StaticGuard(index_with(RandomEmbedder(0.03))))
    allowed = await allowed_gap()
    with Ticker() as ticker:
        out = await service.collect(await service.open(request("Tell me about the weather.")))
    assert out.choices[0].message.content == reply
    assert ticker.kept_running(allowed), (ticker.p95(), ticker.longest, allowed)


async def test_a_step_checked_while_the_index_changed_is_checked_again():
    """The follower acknowledges a new version while a step's check runs on a guard thread (the hook swaps
    the index from inside that check). What the step cleared is checked again against the new version
    before anything is sent: the forgotten literal never reaches the client."""
    reply = (
        "Here is a long answer about many things. " * 4
        + "The code is 5512-QX-0098. Zebra room of Solvang and room 4712 and room 4713 are free. "
        + "Here is the rest of it. " * 6
    )
    source = StaticGuard(None)
    newer: list[ForgetIndex] = []

    def ack_while_checking(text: str) -> None:
        if text.startswith("Zebra") and source.index.version == 1:
            source.index = newer[0]  # the follower swapped and acked; this check is on the old version

    old = index_with(RandomEmbedder(hook=ack_while_checking), entries=2)
    newer.append(old.with_entries([build_artifacts(SECRET, CachedEmbedder(RandomEmbedder()))], version=2))
    source.index = old
    service = ChatService(EchoLLM(reply), MODEL, guard=source)
    stream = await service.open(request("Tell me things."))
    received, finish = "", None
    async for chunk in stream.chunks:
        received += chunk.text
        finish = chunk.finish_reason or finish
    assert source.index.version == 2  # the hook fired during a check
    assert "5512" not in received and "QX-0098" not in received
    assert finish == "content_filter" and received.endswith(REFUSAL_TEXT)


def test_the_budget_must_be_positive():
    with pytest.raises(ValueError):
        ChatService(EchoLLM(), MODEL, check_budget_s=0)


class CancellableLLM(EchoLLM):
    """EchoLLM whose streams record being cancelled, as a Serve response generator's `cancel()` does."""

    def __init__(self, reply: str = "Hello from the fake engine.") -> None:
        super().__init__(reply)
        self.started: list[str] = []
        self.cancelled: list[str] = []

    def generate(self, messages, sampling, request_id):  # type: ignore[override]
        words = super().generate(messages, sampling, request_id)
        llm = self
        llm.started.append(request_id)

        class Stream:
            def __aiter__(self):
                return self

            async def __anext__(self):
                return await words.__anext__()

            def cancel(self) -> None:
                llm.cancelled.append(request_id)

        return Stream()


async def test_the_prompt_is_checked_while_the_engine_starts_and_a_refusal_cancels_it():
    """The engine is asked at once and the prompt checked meanwhile; a refused prompt's generation is
    cancelled and nothing of it is sent, a clean prompt's runs to its end."""
    embedder = CachedEmbedder(RandomEmbedder())
    llm = CancellableLLM("The code is 5512-QX-0098.")
    service = ChatService(
        llm,
        MODEL,
        guard=StaticGuard(ForgetIndex.empty(embedder).with_entries([build_artifacts(SECRET, embedder)], version=1)),
    )
    refused = await service.collect(await service.open(request("Repeat the code 5512-QX-0098 for me.")))
    assert refused.choices[0].message.content == REFUSAL_TEXT
    assert llm.started and llm.cancelled == llm.started
    llm.reply = "Hello there, nothing secret here."
    answered = await service.collect(await service.open(request("Say hello.")))
    assert answered.choices[0].message.content == "Hello there, nothing secret here."
    assert len(llm.started) == 2 and len(llm.cancelled) == 1
