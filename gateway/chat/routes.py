"""The application routes: `POST /v1/chat/completions` (OpenAI chat, streaming and not) and `GET /v1/models`."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway.chat.protocol import ChatCompletion, ChatCompletionRequest, ModelList
from gateway.chat.service import ChatService
from gateway.errors import ErrorBody
from gateway.observability import metrics

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 404, 413, 422, 503)}


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat  # set by create_app
    return service


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_ERRORS)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> StreamingResponse | JSONResponse:
    started = time.perf_counter()
    service = _service(request)
    stream = await service.open(body)
    stream.chunks = metrics.observe_chat(stream.chunks, started, stream=body.stream)
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            service.sse(stream, include_usage=include_usage),
            media_type="text/event-stream",
            headers={**stream.headers, "cache-control": "no-cache"},
        )
    completion = await service.collect(stream)
    return JSONResponse(completion.model_dump(), headers=stream.headers)


@router.get("/v1/models", response_model=ModelList, responses={503: {"model": ErrorBody}})
async def list_models(request: Request) -> ModelList:
    """The served model id and the weight version serving now."""
    return await _service(request).models()
