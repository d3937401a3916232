"""Forget requests: file (`POST /v1/forget`), inspect, and check text against the live guard."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from gateway.errors import error_responses
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
    ShredRequest,
)
from gateway.forget.service import ForgetService
from gateway.http.auth import AccessControl, Requires
from gateway.ledger import states
from gateway.ledger.actors import Actor, Role

router = APIRouter()

# Who may call what (gateway.http.auth): requesters file requests and read their own; auditors read
# everything; operators do both. A requester asking for another key's request gets a 404.
FILERS = Depends(Requires(Role.REQUESTER, Role.OPERATOR))
READERS = Depends(Requires(Role.AUDITOR, Role.OPERATOR))
OWNERS_AND_READERS = Depends(Requires(Role.REQUESTER, Role.AUDITOR, Role.OPERATOR))
OPERATORS = Depends(Requires(Role.OPERATOR))

_ERRORS = error_responses(401, 403, 404, 413, 422, 429, 503)
_BODY_ERRORS = {**_ERRORS, **error_responses(400)}  # a body that is not JSON is a 400


def _forget(request: Request) -> ForgetService:
    forget: ForgetService = request.app.state.forget  # set by create_app
    return forget


def _access(request: Request) -> AccessControl:
    access: AccessControl = request.app.state.access  # set by create_app
    return access


@router.post("/v1/forget", status_code=201, response_model=ForgetAccepted, responses=_BODY_ERRORS)
async def file_forget(body: ForgetRequest, request: Request, actor: Annotated[Actor, FILERS]) -> JSONResponse:
    accepted = await _forget(request).submit(body, actor=actor)
    return JSONResponse(
        accepted.model_dump(), status_code=201, headers={"x-lethe-index-version": str(accepted.index_version)}
    )


@router.get("/v1/forget", response_model=ForgetList, responses=_ERRORS, dependencies=[READERS])
async def list_forgets(
    request: Request,
    status: states.ForgetStatus | None = Query(None, description="only requests with this status"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> ForgetList:
    return await _forget(request).list(status=status, limit=limit, offset=offset)


@router.get("/v1/forget/{forget_id}", response_model=ForgetStatus, responses=_ERRORS)
async def show_forget(forget_id: str, request: Request, actor: Annotated[Actor, OWNERS_AND_READERS]) -> ForgetStatus:
    await _access(request).check_owner(actor, forget_id)
    return await _forget(request).get(forget_id)


@router.post("/v1/forget/{forget_id}/shred", response_model=ForgetStatus, responses=_BODY_ERRORS)
async def shred_forget(
    forget_id: str, request: Request, actor: Annotated[Actor, OPERATORS], body: ShredRequest | None = None
) -> ForgetStatus:
    """Crypto-shred a request's content now (its data key destroyed for good); the guard keeps enforcing
    it from keyed hashes. Shredding twice is a no-op."""
    body = body or ShredRequest(drop_semantic=False)
    return await _forget(request).shred(forget_id, drop_semantic=body.drop_semantic, actor=actor)


@router.post("/v1/forget/check", response_model=CheckResult, responses=_BODY_ERRORS, dependencies=[READERS])
async def check_text(body: CheckRequest, request: Request) -> CheckResult:
    return await _forget(request).check(body.text)


@router.get(
    "/v1/forget/certificates/key", response_model=CertificateKey, responses=_ERRORS, dependencies=[OWNERS_AND_READERS]
)
async def certificate_key(request: Request) -> CertificateKey:
    """The public key that checks this gateway's deletion certificates (Ed25519, PEM)."""
    return await _forget(request).certificate_key()


@router.post(
    "/v1/forget/certificates/verify",
    response_model=CertificateCheck,
    responses=_BODY_ERRORS,
    dependencies=[OWNERS_AND_READERS],
)
async def verify_certificate(certificate: dict[str, Any], request: Request) -> CertificateCheck:
    """Whether a certificate was signed by this gateway and is unaltered (`valid: false` says why not)."""
    return await _forget(request).verify_certificate(certificate)


@router.get("/v1/forget/{forget_id}/certificate", responses=_ERRORS)
async def certificate(forget_id: str, request: Request, actor: Annotated[Actor, OWNERS_AND_READERS]) -> JSONResponse:
    """A signed deletion certificate: enforcement, unlearning, serving weights, probe result, audit trail."""
    await _access(request).check_owner(actor, forget_id)
    return JSONResponse(await _forget(request).certificate(forget_id, actor=actor))


@router.get("/v1/admin/audit", response_model=AuditList, responses=_ERRORS, dependencies=[READERS])
async def audit(
    request: Request,
    kind: str | None = Query(None, max_length=64, description="e.g. forget.added, version.serving, swap_failed"),
    subject_id: str | None = Query(None, max_length=128, description="a forget request, job or version id"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> AuditList:
    """The append-only audit trail, newest first."""
    return await _forget(request).audit(kind=kind, subject_id=subject_id, limit=limit, offset=offset)
