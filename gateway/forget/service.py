"""The forget API on the ingress: file requests with the authority, read them, check text locally."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from gateway.chat.service import GuardSource
from gateway.errors import (
    ErrorMap,
    NotFoundError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    UnprocessableError,
    call_remote,
)
from gateway.forget.certificates import CertificateError, verify_certificate
from gateway.forget.protocol import (
    AuditEventOut,
    AuditList,
    CertificateCheck,
    CertificateKey,
    CheckMatch,
    CheckResult,
    ForgetAccepted,
    ForgetList,
    ForgetRequest,
    ForgetStatus,
)
from gateway.guard.types import GuardBudgetExceeded
from gateway.ledger import states
from gateway.ledger.actors import Actor
from gateway.ledger.calls import LedgerUnavailableError

T = TypeVar("T")

_ERRORS: ErrorMap = [
    # The authority refused the content itself.
    (ValueError, lambda e: UnprocessableError(str(e))),
    # The authority is up, its database is not (stalled, locked, unreachable): its message says whether
    # the request was recorded. Chat is unaffected: it serves from the index replicas already hold.
    (LedgerUnavailableError, lambda e: ServiceUnavailableError(str(e), code="ledger_unavailable")),
]


class ForgetAuthorityAPI(Protocol):
    """The authority's calls the ingress makes (a Serve handle in production)."""

    async def add(self, payload: dict[str, Any], actor: Actor | None = None) -> dict[str, Any]: ...

    async def get(self, forget_id: str) -> dict[str, Any] | None: ...

    async def list(
        self, status: states.ForgetStatus | None, limit: int, offset: int
    ) -> builtins.list[dict[str, Any]]: ...

    async def certificate(self, forget_id: str, actor: Actor | None = None) -> dict[str, Any] | None: ...

    async def shred(self, forget_id: str, drop_semantic: bool, actor: Actor | None = None) -> dict[str, Any] | None: ...

    async def certificate_key(self) -> dict[str, str]: ...

    async def audit(
        self, kind: str | None, subject_id: str | None, limit: int, offset: int
    ) -> builtins.list[dict[str, Any]]: ...


class ForgetService:
    """Operator-facing forget calls; `check` runs exactly the guard the chat path runs.

    >>> service = ForgetService(authority, guard=follower)
    >>> accepted = await service.submit(ForgetRequest(subject="Ingrid", literals=["+47 912 33 457"]))
    """

    def __init__(
        self,
        authority: ForgetAuthorityAPI,
        guard: GuardSource,
        *,
        timeout_s: float = 60.0,
        check_budget_s: float | None = 5.0,
    ) -> None:
        self._authority = authority
        self._guard = guard
        self._timeout_s = timeout_s
        self._check_budget_s = check_budget_s

    async def _call(self, coro: Awaitable[T]) -> T:
        return await call_remote(
            coro,
            timeout_s=self._timeout_s,
            service="forget authority",
            code="authority_unavailable",
            errors=_ERRORS,
            timeout_hint="; the request may still be enforced: check GET /v1/forget",
        )

    async def submit(self, request: ForgetRequest, *, actor: Actor | None = None) -> ForgetAccepted:
        """File `request` on behalf of `actor` (its key owns the request and is the audit actor)."""
        if request.is_empty():
            raise UnprocessableError("a forget request needs at least one of texts, qa or literals", param="texts")
        result = await self._call(self._authority.add(request.model_dump(), actor))
        return ForgetAccepted(
            id=result["id"],
            status=result["status"],
            index_version=result["index_version"],
            enforced_at=result["enforced_at"],
            content_digest_salt=result["content_digest_salt"],
        )

    async def shred(self, forget_id: str, *, drop_semantic: bool, actor: Actor | None = None) -> ForgetStatus:
        row = await self._call(self._authority.shred(forget_id, drop_semantic, actor))
        if row is None:
            raise NotFoundError(f"no forget request with id {forget_id!r}", param="forget_id")
        return ForgetStatus(**row)

    async def get(self, forget_id: str) -> ForgetStatus:
        row = await self._call(self._authority.get(forget_id))
        if row is None:
            raise NotFoundError(f"no forget request with id {forget_id!r}", param="forget_id")
        return ForgetStatus(**row)

    async def list(self, *, status: states.ForgetStatus | None, limit: int, offset: int) -> ForgetList:
        rows = await self._call(self._authority.list(status, limit, offset))
        return ForgetList(data=[ForgetStatus(**row) for row in rows])

    async def certificate(self, forget_id: str, *, actor: Actor | None = None) -> dict[str, Any]:
        cert = await self._call(self._authority.certificate(forget_id, actor))
        if cert is None:
            raise NotFoundError(f"no forget request with id {forget_id!r}", param="forget_id")
        return cert

    async def certificate_key(self) -> CertificateKey:
        return CertificateKey(**await self._call(self._authority.certificate_key()))

    async def verify_certificate(self, certificate: dict[str, Any]) -> CertificateCheck:
        """Whether this gateway's key signed `certificate` and nothing in it changed since."""
        key = await self.certificate_key()
        request = certificate.get("forget_request")
        forget_id = request.get("id") if isinstance(request, dict) else None
        try:
            verify_certificate(certificate, key.public_key_pem)
        except CertificateError as exc:
            return CertificateCheck(
                valid=False,
                reason=str(exc),
                key_id=key.key_id,
                forget_id=forget_id if isinstance(forget_id, str) else None,
            )
        return CertificateCheck(valid=True, key_id=key.key_id, forget_id=forget_id)

    async def audit(self, *, kind: str | None, subject_id: str | None, limit: int, offset: int) -> AuditList:
        rows = await self._call(self._authority.audit(kind, subject_id, limit, offset))
        return AuditList(data=[AuditEventOut(**row) for row in rows])

    async def check(self, text: str) -> CheckResult:
        reason = self._guard.out_of_service_reason()
        if reason is not None:
            raise ServiceUnavailableError(reason, code="index_unavailable")
        index = self._guard.index
        # Exactly what the output guard of a chat response would decide for this text; off the event loop
        # (polls, acks and health checks never wait on it) and within the guard's time budget.
        try:
            verdict = await asyncio.to_thread(index.check_output, text, budget_s=self._check_budget_s)
        except GuardBudgetExceeded:
            raise PayloadTooLargeError(
                "the text is too long to check within the guard's time budget; check it in parts",
                param="text",
                code="text_too_large_to_check",
            ) from None
        best: dict[tuple[str, str], float] = {}
        for match in verdict.matches:
            key = (match.forget_id, match.kind)
            best[key] = max(best.get(key, 0.0), float(match.score))
        matches = [CheckMatch(forget_id=f, kind=k, score=round(s, 4)) for (f, k), s in sorted(best.items())]
        return CheckResult(
            match=bool(matches),
            matches=matches,
            index_version=index.version,
            ingress=getattr(self._guard, "follower_id", ""),
        )
