"""`GET /v1/models`: the served model id and the weight version serving now."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.protocol import ErrorBody, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList, responses={503: {"model": ErrorBody}})
async def list_models(request: Request) -> ModelList:
    return await request.app.state.chat.models()
