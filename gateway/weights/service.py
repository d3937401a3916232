"""The weight-versions API on the ingress: forwards to the one SwapController and maps its errors."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from gateway.errors import APIError, ErrorMap, NotFoundError, UnprocessableError, call_remote
from gateway.ledger.actors import Actor
from gateway.weights.controller import SwapConflictError, SwapFailedError, VersionNotFoundError
from gateway.weights.protocol import ImportRequest, PromoteRequest, SwapReport, VersionList, WeightVersion
from gateway.weights.store import VersionInvalidError

T = TypeVar("T")


class ConflictError(APIError):
    status = 409
    code = "swap_conflict"


# The controller's domain errors as API errors (by their original type, through Ray's wrapping).
_ERRORS: ErrorMap = [
    (VersionNotFoundError, lambda e: NotFoundError(f"no weight version {e.args[0]!r}", param="version")),
    (VersionInvalidError, lambda e: UnprocessableError(f"version refused: {e}", code="version_invalid")),
    (SwapConflictError, lambda e: ConflictError(str(e))),
    (SwapFailedError, lambda e: ConflictError(str(e), code="swap_failed")),
]


class VersionsAPI(Protocol):
    """The version controller's calls the ingress makes (a Serve handle in production)."""

    async def list(self) -> dict[str, Any]: ...

    async def history(self, limit: int) -> builtins.list[dict[str, Any]]: ...

    async def promote(self, version_id: str, actor: str) -> dict[str, Any]: ...

    async def rollback(self, actor: str) -> dict[str, Any]: ...

    async def import_version(self, path: str, actor: str, note: str | None) -> dict[str, Any]: ...

    async def leakage(self) -> dict[str, Any] | None: ...

    async def run_probe(self) -> dict[str, Any]: ...


def _label(actor: Actor | None) -> str:
    """The audit actor of a swap or import: the acting key (`operator` when called without one)."""
    return actor.label if actor is not None else "operator"


class VersionsService:
    """>>> report = await VersionsService(controller).promote(PromoteRequest(version="v2026…"))"""

    def __init__(self, versions: VersionsAPI, *, timeout_s: float = 900.0) -> None:
        self._versions = versions
        self._timeout_s = timeout_s  # a rolling swap drains every replica in turn

    async def _call(self, coro: Awaitable[T]) -> T:
        return await call_remote(
            coro, timeout_s=self._timeout_s, service="version controller", code="versions_unavailable", errors=_ERRORS
        )

    async def list(self) -> VersionList:
        return VersionList(**await self._call(self._versions.list()))

    async def history(self, limit: int) -> builtins.list[dict[str, Any]]:
        return await self._call(self._versions.history(limit))

    async def promote(self, body: PromoteRequest, *, actor: Actor | None = None) -> SwapReport:
        return SwapReport(**await self._call(self._versions.promote(body.version, _label(actor))))

    async def rollback(self, *, actor: Actor | None = None) -> SwapReport:
        return SwapReport(**await self._call(self._versions.rollback(_label(actor))))

    async def import_version(self, body: ImportRequest, *, actor: Actor | None = None) -> WeightVersion:
        version = await self._call(self._versions.import_version(body.path, _label(actor), body.note))
        return WeightVersion(**version)

    async def leakage(self) -> dict[str, Any]:
        report = await self._call(self._versions.leakage())
        if report is None:
            raise NotFoundError("no leakage probe has run yet; POST /v1/admin/leakage/run starts one")
        return report

    async def run_probe(self) -> dict[str, Any]:
        return await self._call(self._versions.run_probe())
