"""The application routes: `POST /v1/chat/completions` (OpenAI chat, streaming and not) and `GET /v1/models`.

Both are open when `server.chat_auth` is `none` and need a chat (or operator) key when it is `keys`.
Each chat counts against its key's concurrent-request cap until its last chunk, and ends after
`server.request_timeout_s` at the latest (a 504, in-band once a stream has started)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.chat.protocol import ChatCompletion, ChatCompletionRequest, ModelList
from gateway.chat.service import ChatService
from gateway.errors import RequestTimeoutError, error_responses
from gateway.http.auth import AccessControl, Requires
from gateway.ledger.actors import Actor, Role
from gateway.observability import metrics

T = TypeVar("T")

CHAT = Depends(Requires(Role.CHAT, Role.OPERATOR, chat=True))
router = APIRouter()

# The headers every chat client sees; the others name the replica and ingress that answered, which
# is topology (and `guard` marks a refused prompt): sent only with `server.diagnostic_headers`.
PUBLIC_HEADERS = ("x-lethe-model-version", "x-lethe-index-version")

_ERRORS = error_responses(400, 401, 403, 404, 413, 422, 429, 503, 504)
# `stream: true` answers server-sent events: each one's data is a `chat.completion.chunk` (JSON), an
# error object once a stream has started, or the final `[DONE]`.
_SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}
_CHAT_RESPONSES = {
    **_ERRORS,
    200: {"description": "the completion", "content": {"text/event-stream": {"schema": _SSE_EVENT}}},
}


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat  # set by create_app
    return service


def _access(request: Request) -> AccessControl:
    access: AccessControl = request.app.state.access  # set by create_app
    return access


def client_headers(headers: dict[str, str], diagnostics: bool) -> dict[str, str]:
    return dict(headers) if diagnostics else {k: v for k, v in headers.items() if k in PUBLIC_HEADERS}


def _timeout(timeout_s: float | None) -> RequestTimeoutError:
    return RequestTimeoutError(f"the request ran longer than the gateway's limit of {timeout_s:g} s")


async def _before(deadline: float | None, awaitable: Awaitable[T], timeout_s: float | None) -> T:
    if deadline is None:
        return await awaitable
    # asyncio.timeout, not wait_for: on Python 3.11 wait_for runs the awaitable as a task of its own, and
    # this wraps every chunk of every stream (a task and a loop turn more per token).
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            return await awaitable
    except TimeoutError:
        raise _timeout(timeout_s) from None


async def _bounded(
    chunks: AsyncIterator[T], deadline: float | None, timeout_s: float | None, release: Callable[[], None]
) -> AsyncGenerator[T, None]:
    """`chunks` until the deadline (then a 504); the request's stream slot is freed however it ends."""
    try:
        while True:
            try:
                chunk = await _before(deadline, anext(chunks), timeout_s)
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        release()
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()  # a timed-out or abandoned chat stops generating


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_CHAT_RESPONSES)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, actor: Annotated[Actor | None, CHAT]
) -> StreamingResponse | JSONResponse:
    started = time.perf_counter()
    service = _service(request)
    timeout_s: float | None = request.app.state.request_timeout_s
    deadline = time.monotonic() + timeout_s if timeout_s else None
    release = _access(request).open_stream(request, actor)
    try:
        stream = await _before(deadline, service.open(body), timeout_s)
    except BaseException:
        release()
        raise
    stream.chunks = _bounded(stream.chunks, deadline, timeout_s, release)
    stream.chunks = metrics.observe_chat(stream.chunks, started, stream=body.stream)
    headers = client_headers(stream.headers, request.app.state.diagnostic_headers)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            service.sse(stream, include_usage=include_usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )
    completion = await service.collect(stream)
    return JSONResponse(completion.model_dump(), headers=headers)


@router.get("/v1/models", response_model=ModelList, responses=error_responses(401, 403, 429, 503), dependencies=[CHAT])
async def list_models(request: Request) -> ModelList:
    """The served model id and the weight version serving now."""
    return await _service(request).models()
