"""Forget requests: file (`POST /v1/forget`), inspect, and check text against the live guard."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.errors import ErrorBody
from gateway.forget.protocol import (
    AuditList,
    CertificateCheck,
    CertificateKey,
    CheckRequest,
    CheckResult,
    ForgetAccepted,
    ForgetList,
    ForgetRequest,
    ForgetStatus,
)
from gateway.forget.service import ForgetService
from gateway.http.auth import require_operator
from gateway.ledger import states

router = APIRouter(dependencies=[Depends(require_operator)])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 413, 422, 503)}


def _forget(request: Request) -> ForgetService:
    forget: ForgetService = request.app.state.forget  # set by create_app
    return forget


@router.post("/v1/forget", status_code=201, response_model=ForgetAccepted, responses=_ERRORS)
async def file_forget(body: ForgetRequest, request: Request) -> JSONResponse:
    accepted = await _forget(request).submit(body)
    return JSONResponse(
        accepted.model_dump(), status_code=201, headers={"x-lethe-index-version": str(accepted.index_version)}
    )


@router.get("/v1/forget", response_model=ForgetList, responses=_ERRORS)
async def list_forgets(
    request: Request,
    status: states.ForgetStatus | None = Query(None, description="only requests with this status"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> ForgetList:
    return await _forget(request).list(status=status, limit=limit, offset=offset)


@router.get("/v1/forget/{forget_id}", response_model=ForgetStatus, responses=_ERRORS)
async def show_forget(forget_id: str, request: Request) -> ForgetStatus:
    return await _forget(request).get(forget_id)


@router.post("/v1/forget/check", response_model=CheckResult, responses=_ERRORS)
async def check_text(body: CheckRequest, request: Request) -> CheckResult:
    return await _forget(request).check(body.text)


@router.get("/v1/forget/certificates/key", response_model=CertificateKey, responses=_ERRORS)
async def certificate_key(request: Request) -> CertificateKey:
    """The public key that checks this gateway's deletion certificates (Ed25519, PEM)."""
    return await _forget(request).certificate_key()


@router.post("/v1/forget/certificates/verify", response_model=CertificateCheck, responses=_ERRORS)
async def verify_certificate(certificate: dict[str, Any], request: Request) -> CertificateCheck:
    """Whether a certificate was signed by this gateway and is unaltered (`valid: false` says why not)."""
    return await _forget(request).verify_certificate(certificate)


@router.get("/v1/forget/{forget_id}/certificate", responses=_ERRORS)
async def certificate(forget_id: str, request: Request) -> JSONResponse:
    """A signed deletion certificate: enforcement, unlearning, serving weights, probe result, audit trail."""
    return JSONResponse(await _forget(request).certificate(forget_id))


@router.get("/v1/admin/audit", response_model=AuditList, responses=_ERRORS)
async def audit(
    request: Request,
    kind: str | None = Query(None, max_length=64, description="e.g. forget.added, version.serving, swap_failed"),
    subject_id: str | None = Query(None, max_length=128, description="a forget request, job or version id"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> AuditList:
    """The append-only audit trail, newest first."""
    return await _forget(request).audit(kind=kind, subject_id=subject_id, limit=limit, offset=offset)
