"""Weight versions and swaps (`/v1/admin/models/...`): list, import, promote, roll back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.errors import error_responses
from gateway.http.auth import Requires
from gateway.ledger.actors import Actor, Role
from gateway.weights.protocol import ImportRequest, PromoteRequest, SwapReport, VersionList, WeightVersion
from gateway.weights.service import VersionsService

# Auditors read versions, swaps and leakage; only operators change what serves (gateway.http.auth).
READERS = Depends(Requires(Role.AUDITOR, Role.OPERATOR))
OPERATOR = Depends(Requires(Role.OPERATOR))
router = APIRouter()

_ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429, 503)
_BODY_ERRORS = {**_ERRORS, **error_responses(400)}


def _versions(request: Request) -> VersionsService:
    versions: VersionsService = request.app.state.versions  # set by create_app
    return versions


@router.get("/v1/admin/models/versions", response_model=VersionList, responses=_ERRORS, dependencies=[READERS])
async def list_versions(request: Request) -> VersionList:
    return await _versions(request).list()


@router.post("/v1/admin/models/versions", status_code=201, response_model=WeightVersion, responses=_BODY_ERRORS)
async def import_version(body: ImportRequest, request: Request, actor: Annotated[Actor, OPERATOR]) -> JSONResponse:
    version = await _versions(request).import_version(body, actor=actor)
    return JSONResponse(version.model_dump(), status_code=201)


@router.post("/v1/admin/models/promote", response_model=SwapReport, responses=_BODY_ERRORS)
async def promote(body: PromoteRequest, request: Request, actor: Annotated[Actor, OPERATOR]) -> SwapReport:
    return await _versions(request).promote(body, actor=actor)


@router.post("/v1/admin/models/rollback", response_model=SwapReport, responses=_ERRORS)
async def rollback(request: Request, actor: Annotated[Actor, OPERATOR]) -> SwapReport:
    return await _versions(request).rollback(actor=actor)


@router.get("/v1/admin/models/swaps", responses=_ERRORS, dependencies=[READERS])
async def swap_history(request: Request, limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
    """Promotions, rollbacks, refused and failed swaps (with their reasons), newest first."""
    return {"object": "list", "data": await _versions(request).history(limit)}


@router.get("/v1/admin/leakage", responses=_ERRORS, dependencies=[READERS])
async def leakage(request: Request) -> dict[str, Any]:
    """The latest leakage probe report: per weight version, how much of the forget set the raw
    model still says (guard matchers or all key terms), and its retain score."""
    return await _versions(request).leakage()


@router.post("/v1/admin/leakage/run", responses=_ERRORS, dependencies=[OPERATOR])
async def run_leakage_probe(request: Request) -> dict[str, Any]:
    """Run a probe now and return its report (409 while another run is in progress)."""
    return await _versions(request).run_probe()
