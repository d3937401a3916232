"""`POST /v1/chat/completions`: the OpenAI chat route, streaming and not."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway import metrics
from gateway.protocol import ChatCompletion, ChatCompletionRequest, ErrorBody

router = APIRouter()

_ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 413, 422, 503)}


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=_ERRORS)
async def chat_completions(body: ChatCompletionRequest, request: Request):
    started = time.perf_counter()
    service = request.app.state.chat
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
