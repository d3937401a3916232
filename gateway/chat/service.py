"""The chat pipeline on the ingress: validate, open the engine stream, shape OpenAI responses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from gateway.chat.engines.base import (
    EngineError,
    EngineInfo,
    GenerationChunk,
    ReplicaSwappingError,
    SamplingRequest,
    StreamStart,
)
from gateway.chat.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    DeltaMessage,
    ModelCard,
    ModelList,
    ResponseMessage,
    Usage,
)
from gateway.errors import (
    APIError,
    BadRequestError,
    ModelNotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    unwrap_remote_error,
)
from gateway.guard.index import ForgetIndex
from gateway.guard.stream import StreamGuard, StreamStep
from gateway.guard.types import REFUSAL_TEXT, GuardBudgetExceeded, GuardVerdict
from gateway.observability import metrics

log = logging.getLogger(__name__)

# How long one guard check (a prompt, or one step of a stream) may take before the request is refused.
DEFAULT_CHECK_BUDGET_S = 5.0
# How long a passed readiness check stands before a request refreshes it (in the background).
READY_FOR_S = 2.0
# Prompts longer than this (all messages, in characters) are checked on a thread of their own, so a few
# huge prompts queue behind each other instead of in front of everyone's small ones.
LARGE_PROMPT_CHARS = 64 * 1024
# The most prompt text (all messages, in characters) the guard checks: a longer prompt is refused at once
# (413), before any work, so it costs the replica nothing. No context window served here holds as much.
DEFAULT_MAX_CHECK_CHARS = 256 * 1024


class LLMClient(Protocol):
    """How the ingress reaches the LLM deployment (a Serve handle in production)."""

    def generate(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, request_id: str
    ) -> AsyncIterator[StreamStart | GenerationChunk]: ...

    async def health(self) -> bool: ...

    async def info(self) -> EngineInfo: ...


@dataclass
class ChatStream:
    """An opened generation: the first item was read, so the response can commit to 200."""

    completion_id: str
    model: str
    created: int
    start: StreamStart
    index_version: int
    chunks: AsyncIterator[GenerationChunk]
    ingress: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {
            "x-lethe-model-version": self.start.model_version,
            "x-lethe-index-version": str(self.index_version),
            "x-lethe-replica": self.start.replica,
            "x-lethe-ingress": self.ingress,
        }


class GuardSource(Protocol):
    """Where the ingress gets the forget index it enforces (an `IndexFollower` in production)."""

    index: ForgetIndex

    def out_of_service_reason(self) -> str | None: ...


class ChatService:
    """Chat completions against one served model, guarded by the forget index.

    >>> service = ChatService(client, served_model="smollm2-135m-instruct", guard=follower)
    >>> stream = await service.open(request)          # raises APIError before anything is sent
    >>> completion = await service.collect(stream)    # or: async for line in service.sse(stream)
    """

    def __init__(
        self,
        client: LLMClient,
        served_model: str,
        *,
        guard: GuardSource | None = None,
        prompt_mode: str = "refuse",
        ready_timeout_s: float = 5.0,
        ingress_id: str = "",
        swap_retry_s: float = 300.0,
        check_budget_s: float = DEFAULT_CHECK_BUDGET_S,
        max_check_chars: int = DEFAULT_MAX_CHECK_CHARS,
    ) -> None:
        if prompt_mode not in ("refuse", "strict"):
            raise ValueError(f"prompt_mode must be 'refuse' or 'strict', got {prompt_mode!r}")
        self._checks = GuardChecks(check_budget_s, max_chars=max_check_chars)
        self._client = client
        self.ingress_id = ingress_id
        self.served_model = served_model
        self._guard = guard
        self._prompt_mode = prompt_mode
        self._ready_timeout_s = ready_timeout_s
        self._swap_retry_s = swap_retry_s
        # Readiness (the engine answers `health` and `info`) is known for READY_FOR_S after a check. While
        # the last check passed, a request finding it stale refreshes it in the background instead of
        # waiting two round trips to a replica (the generation itself reports a failing replica, 503);
        # after a failed check (or before the first), requests wait for a fresh one and get its 503.
        self._ready_until = 0.0  # monotonic deadline of the last check, which passed; 0: it failed, or none yet
        self._refresh: asyncio.Task[None] | None = None
        self._model_version = ""  # last version the engine reported; used for refusals

    def index_version(self) -> int:
        return self._guard.index.version if self._guard is not None else 0

    def _index(self) -> ForgetIndex | None:
        if self._guard is None:
            return None
        reason = self._guard.out_of_service_reason()
        if reason is not None:
            raise ServiceUnavailableError(reason, code="index_unavailable")
        return self._guard.index

    async def ready(self) -> EngineInfo:
        """Engine info when the engine answers within the timeout; 503 otherwise."""
        try:
            info = await self._check_ready()
        except APIError:
            self._ready_until = 0.0  # requests wait for a fresh check (and answer its 503) until one passes
            raise
        self._ready_until = time.monotonic() + READY_FOR_S
        self._model_version = info.model_version
        return info

    async def _check_ready(self) -> EngineInfo:
        try:
            healthy = await asyncio.wait_for(self._client.health(), self._ready_timeout_s)
            info = await asyncio.wait_for(self._client.info(), self._ready_timeout_s)
        except TimeoutError:
            raise ServiceUnavailableError(f"the engine did not answer within {self._ready_timeout_s:g} s") from None
        except Exception as exc:  # a dead or missing replica is "not ready", never a 500
            # The cause goes to the log, not to the client (it can name hosts, paths, internals).
            log.warning("engine readiness check failed: %r", unwrap_remote_error(exc))
            raise ServiceUnavailableError("the engine is not available") from None
        if not healthy:
            raise ServiceUnavailableError("the engine reports unhealthy")
        return info

    async def _ensure_ready(self) -> None:
        """Before a request: nothing while readiness is fresh; a background refresh when it is stale but
        the last check passed; otherwise a check the request waits for (its 503 is the answer)."""
        if time.monotonic() <= self._ready_until:
            return
        if not self._ready_until:
            await self.ready()
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self._refresh_ready())

    async def _refresh_ready(self) -> None:
        with contextlib.suppress(APIError):  # recorded in _ready_until; the next request waits and answers 503
            await self.ready()

    async def models(self) -> ModelList:
        info = await self.ready()
        card = ModelCard(
            id=self.served_model,
            created=int(time.time()),
            weight_version=info.model_version,
            max_model_len=info.max_model_len,
        )
        return ModelList(data=[card])

    async def open(self, request: ChatCompletionRequest) -> ChatStream:
        if request.model != self.served_model:
            raise ModelNotFoundError(
                f"the model {request.model!r} does not exist; this gateway serves {self.served_model!r}",
                param="model",
            )
        index = self._index()  # one snapshot for the whole response: its version goes in the header
        await self._ensure_ready()
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        strict = False
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        sampling = SamplingRequest(
            max_tokens=request.requested_max_tokens(),
            temperature=request.temperature,
            top_p=request.top_p,
            stop=request.stop_list(),
            seed=request.seed,
        )
        if index is not None and len(index):
            # The prompt is checked while the engine reads it (prefill): nothing of the answer is sent before
            # the verdict, and a refused prompt's generation is cancelled. The time to the first token then
            # pays for the longer of the two, not their sum.
            texts = [m.text() for m in request.messages]
            self._checks.admit(texts)  # too long to check: refused before the engine is asked
            check = asyncio.ensure_future(self._checks.prompt(self._guard, index, texts))
            try:
                iterator, first = await self._start_generation(messages, sampling, completion_id)
            except BaseException:
                check.cancel()
                with contextlib.suppress(BaseException):
                    await check
                raise
            try:
                index, verdict = await check
            except BaseException:
                _cancel_generation(iterator)
                raise
            if verdict.match:
                metrics.record_guard_hits("prompt", verdict.matches, action=self._prompt_mode)
                if self._prompt_mode == "refuse":
                    _cancel_generation(iterator)
                    return self._refusal(completion_id, index.version, verdict)
                strict = True
        else:
            iterator, first = await self._start_generation(messages, sampling, completion_id)
        if not isinstance(first, StreamStart):
            _cancel_generation(iterator)
            raise ServiceUnavailableError("the engine answered out of protocol")
        self._model_version = first.model_version
        chunks = self._chunks(iterator, completion_id)
        if self._guard is not None and index is not None:
            # An empty index can match nothing: no hold-back, no added time to first token, until the
            # replica applies its first entry mid-stream (then _guarded starts a guard).
            guard = StreamGuard(index, strict=strict, budget_s=self._checks.budget_s) if len(index) else None
            chunks = self._guarded(chunks, self._guard, guard, strict, self._checks)
        return ChatStream(
            completion_id=completion_id,
            model=self.served_model,
            created=int(time.time()),
            start=first,
            index_version=index.version if index is not None else 0,
            chunks=chunks,
            ingress=self.ingress_id,
        )

    async def _start_generation(
        self, messages: list[dict[str, str]], sampling: SamplingRequest, completion_id: str
    ) -> tuple[AsyncIterator[Any], Any]:
        """Open the engine stream and read its first item. A replica that is swapping weights
        refuses new requests: ask again (the router picks a replica), for up to `swap_retry_s`."""
        deadline = time.monotonic() + self._swap_retry_s
        delay = 0.02
        while True:
            iterator = self._client.generate(messages, sampling, completion_id).__aiter__()
            try:
                return iterator, await iterator.__anext__()
            except StopAsyncIteration:
                raise ServiceUnavailableError("the engine closed the stream before answering") from None
            except Exception as exc:
                error = self._to_api_error(exc, completion_id)
                if error.code != ReplicaSwappingError.code or time.monotonic() + delay > deadline:
                    raise error from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _refusal(self, completion_id: str, index_version: int, verdict: GuardVerdict) -> ChatStream:
        """Answer a prompt that asks for forgotten content (the guard's answer; no engine output in it)."""

        async def chunks() -> AsyncIterator[GenerationChunk]:
            yield GenerationChunk(REFUSAL_TEXT, 0, 0, "content_filter")

        start = StreamStart(self._model_version, "guard", 0, 0)
        return ChatStream(
            completion_id, self.served_model, int(time.time()), start, index_version, chunks(), self.ingress_id
        )

    @staticmethod
    async def _guarded(
        chunks: AsyncGenerator[GenerationChunk, None],
        source: GuardSource,
        guard: StreamGuard | None,
        strict: bool,
        checks: GuardChecks,
    ) -> AsyncGenerator[GenerationChunk, None]:
        """Release text only once the guard checked every window covering it (see StreamGuard), against the
        index this replica serves *now*, not the one the stream started with: once `POST /v1/forget` is
        acknowledged (the follower swapped its index before acking), nothing this stream sends after
        that contains the forgotten content (guarantee 1). Text sent before the acknowledgement cannot
        be recalled. Per chunk, while nothing changes: one version comparison and the fence check.

        `guard` is None when the stream started on an empty index: chunks pass through unheld until the
        index gets its first entry, then a guard takes over with the text already sent as context, so a
        leak that began before the switch is stopped at its first unsent character.

        Each step is checked off the event loop (`GuardChecks.step`), which re-checks it if the index
        changed meanwhile, so what it releases was checked against the version served when it is sent."""
        last = GenerationChunk("", 0, 0)
        sent = False
        sent_tail = ""  # while unguarded: the end of the text sent so far, context for a later guard
        keep = StreamGuard.prime_chars(source.index.settings)
        try:
            async for chunk in chunks:
                last = chunk
                # The follower runs on this event loop and swaps `index` before it acks, so this check and
                # the feed below see either the old version (the ack is not out yet) or the new one.
                reason = source.out_of_service_reason()
                if reason is not None:  # fenced or evicted mid-stream: its index may be stale
                    raise ServiceUnavailableError(reason, code="index_unavailable")
                index = source.index
                if guard is None:
                    if not len(index):
                        sent_tail = (sent_tail + chunk.text)[-keep:]
                        sent = sent or bool(chunk.text)
                        yield chunk
                        continue
                    guard = StreamGuard(index, strict=strict, released=sent_tail, budget_s=checks.budget_s)
                elif index.version != guard.index.version:
                    guard.rebase(index)
                step = await checks.step(source, guard, chunk.text)
                if step.stopped:
                    yield _blocked(step.release, sent, chunk)
                    return
                if step.release:
                    sent = True
                    yield GenerationChunk(step.release, chunk.prompt_tokens, chunk.completion_tokens, None)
            if guard is None:
                return  # everything went out unheld, the engine's last chunk included
            index = source.index
            if index.version != guard.index.version:
                guard.rebase(index)
            step = await checks.step(source, guard, None)
            if step.stopped:
                yield _blocked(step.release, sent, last)
                return
            yield GenerationChunk(
                step.release, last.prompt_tokens, last.completion_tokens, last.finish_reason or "stop"
            )
        finally:
            await chunks.aclose()  # a blocked response stops generating; so does a client that left

    async def _chunks(self, iterator: AsyncIterator[Any], request_id: str) -> AsyncGenerator[GenerationChunk, None]:
        done = False
        try:
            async for item in iterator:
                yield item
            done = True
        except Exception as exc:
            raise self._to_api_error(exc, request_id) from None
        finally:
            if not done:
                _cancel_generation(iterator)

    @staticmethod
    def _to_api_error(exc: BaseException, request_id: str) -> APIError:
        original = unwrap_remote_error(exc)
        if isinstance(original, APIError):
            return original
        if isinstance(original, EngineError):
            return from_engine_error(original, request_id)
        log.error("engine failure on request %s: %s: %s", request_id, type(original).__name__, original)
        return ServiceUnavailableError(_generic_engine_message(request_id))

    async def collect(self, stream: ChatStream) -> ChatCompletion:
        """The whole response: the same guarded chunks a stream would send, joined."""
        parts: list[str] = []
        finish: str | None = None
        completion_tokens = 0
        async for chunk in stream.chunks:
            parts.append(chunk.text)
            completion_tokens = chunk.completion_tokens
            finish = chunk.finish_reason or finish
        prompt_tokens = stream.start.prompt_tokens
        return ChatCompletion(
            id=stream.completion_id,
            created=stream.created,
            model=stream.model,
            choices=[Choice(message=ResponseMessage(content="".join(parts)), finish_reason=finish or "stop")],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    async def sse(self, stream: ChatStream, include_usage: bool = False) -> AsyncIterator[str]:
        """Server-sent events in the OpenAI streaming format, ending with `data: [DONE]`."""

        def event(choices: list[ChunkChoice], usage: Usage | None = None) -> str:
            chunk = ChatCompletionChunk(
                id=stream.completion_id,
                created=stream.created,
                model=stream.model,
                choices=choices,
                usage=usage,
            )
            return f"data: {chunk.model_dump_json(exclude_none=False)}\n\n"

        yield event([ChunkChoice(delta=DeltaMessage(role="assistant", content=""))])
        completion_tokens = 0
        finish: str | None = None
        try:
            async for chunk in stream.chunks:
                completion_tokens = chunk.completion_tokens
                finish = chunk.finish_reason or finish
                if chunk.text:
                    yield event([ChunkChoice(delta=DeltaMessage(content=chunk.text))])
        except APIError as exc:
            # Headers are gone; tell the client in-band, in the error shape the SDK understands.
            body = {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}
            yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"
            return
        yield event([ChunkChoice(delta=DeltaMessage(), finish_reason=finish or "stop")])
        if include_usage:
            prompt_tokens = stream.start.prompt_tokens
            usage = Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            )
            yield event([], usage)
        yield "data: [DONE]\n\n"


def _cancel_generation(iterator: AsyncIterator[Any]) -> None:
    """Stop an engine stream that will not be read to its end (a Serve response generator: the replica's
    generation stops too)."""
    cancel = getattr(iterator, "cancel", None)
    if cancel is not None:
        cancel()


class GuardChecks:
    """Runs guard checks off the event loop, within a time budget.

    The event loop answers health checks and acknowledges index updates (the follower); a check never runs
    on it. Nor on the default executor, where the follower builds index snapshots: checks have threads of
    their own, and large prompts one more, apart. A check over its budget gives up (GuardBudgetExceeded):
    a prompt is refused with 413 `prompt_too_large_to_check`, a stream ends with `output_check_over_budget`;
    neither is ever served unchecked. A check that finishes after the index changed is done again on the
    new version, so no verdict is older than the index served when it is acted on.

    >>> checks = GuardChecks(budget_s=5.0)
    >>> index, verdict = await checks.prompt(source, index, ["hello"])
    """

    def __init__(self, budget_s: float, workers: int = 4, *, max_chars: int = DEFAULT_MAX_CHECK_CHARS) -> None:
        if budget_s <= 0:
            raise ValueError("check_budget_s must be positive")
        if max_chars <= 0:
            raise ValueError("max_check_chars must be positive")
        self.budget_s = budget_s
        self.max_chars = max_chars
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lethe-guard")
        self._large = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lethe-guard-large")

    def admit(self, texts: list[str]) -> int:
        """The prompt's length in characters; PayloadTooLargeError (413) past `max_chars`, before any work:
        it costs the replica nothing."""
        total = sum(len(t) for t in texts)
        if total > self.max_chars:
            raise PayloadTooLargeError(
                f"the prompt has {total} characters; the guard checks at most {self.max_chars} "
                "(guard.max_check_chars): send a shorter prompt",
                param="messages",
                code="prompt_too_large_to_check",
            )
        return total

    async def prompt(
        self, source: GuardSource | None, index: ForgetIndex, texts: list[str]
    ) -> tuple[ForgetIndex, GuardVerdict]:
        """The prompt's verdict and the index it was checked against (the one served once it returns)."""
        deadline = time.monotonic() + self.budget_s  # queueing counts: the client waits either way
        total = self.admit(texts)
        pool = self._large if total > LARGE_PROMPT_CHARS else self._pool
        loop = asyncio.get_running_loop()
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise GuardBudgetExceeded(sum(len(t) for t in texts))
                verdict = await loop.run_in_executor(pool, partial(index.check_messages, texts, budget_s=left))
            except GuardBudgetExceeded:
                raise PayloadTooLargeError(
                    f"the prompt could not be checked within the guard's time budget ({self.budget_s:g} s); "
                    "send a shorter prompt",
                    param="messages",
                    code="prompt_too_large_to_check",
                ) from None
            if source is None or source.index is index:
                return index, verdict
            index = source.index  # acknowledged meanwhile: check against the version served now

    async def step(self, source: GuardSource, guard: StreamGuard, delta: str | None) -> StreamStep:
        """`guard.feed(delta)`, or `guard.finish()` when `delta` is None, on a guard thread."""
        if delta is not None and not guard.will_check(delta):
            return guard.take(delta)  # only taken in (StreamGuard.will_check): no thread hop for it
        loop = asyncio.get_running_loop()
        try:
            call = guard.finish if delta is None else partial(guard.feed, delta)
            step = await loop.run_in_executor(self._pool, call)
            # The follower may have acked a new version while the step ran: check its release again.
            while not step.stopped and source.index.version != guard.index.version:
                reason = source.out_of_service_reason()
                if reason is not None:
                    raise ServiceUnavailableError(reason, code="index_unavailable")
                final = guard.finished
                guard.rebase(source.index, unsent=step)
                step = await loop.run_in_executor(self._pool, guard.finish if final else partial(guard.feed, ""))
        except GuardBudgetExceeded:
            raise ServiceUnavailableError(
                f"the response could not be checked within the guard's time budget ({self.budget_s:g} s)",
                code="output_check_over_budget",
            ) from None
        return step


def _blocked(release: str, sent_before: bool, chunk: GenerationChunk) -> GenerationChunk:
    """The final chunk of a blocked response: the safe prefix, then the fixed refusal sentence."""
    text = release
    sep = "" if not (sent_before or text) or text.endswith((" ", "\n")) else " "
    return GenerationChunk(text + sep + REFUSAL_TEXT, chunk.prompt_tokens, chunk.completion_tokens, "content_filter")


def _generic_engine_message(request_id: str) -> str:
    return f"the engine could not complete the request (request id {request_id}); the gateway's log has the details"


def from_engine_error(exc: EngineError, request_id: str = "") -> APIError:
    """Engine failures keep their status and code: a too-long prompt is the client's (400, with our own
    message about its length), the rest 503 with a generic message and the request id; the engine's
    own text (paths, hosts, internals) goes only to the log."""
    if exc.status == 400:
        return BadRequestError(str(exc), param="messages", code=exc.code)
    log.error("engine error on request %s: %s: %s", request_id, exc.code, exc)
    return ServiceUnavailableError(_generic_engine_message(request_id), code=exc.code)
