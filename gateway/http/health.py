"""`/healthz` (the process answers) and `/readyz` (the engine answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.errors import ErrorBody

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(request: Request) -> dict[str, str]:
    info = await request.app.state.chat.ready()
    return {
        "status": "ready",
        "model_version": info.model_version,
        "index_version": str(request.app.state.chat.index_version()),
    }
