"""The unlearning-jobs API on the ingress: forwards to the one JobManager and maps its errors."""

from __future__ import annotations

import builtins
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

from gateway.errors import ErrorMap, NotFoundError, UnprocessableError, call_remote
from gateway.jobs.manager import JobNotFoundError, JobRequestError
from gateway.jobs.protocol import JobList, JobStatus, JobSubmit
from gateway.ledger.actors import Actor
from gateway.ledger.states import JobState

T = TypeVar("T")

# The manager's domain errors as API errors (by their original type, through Ray's wrapping).
_ERRORS: ErrorMap = [
    (JobNotFoundError, lambda e: NotFoundError(f"no unlearning job with id {e.args[0]!r}", param="job_id")),
    (JobRequestError, lambda e: UnprocessableError(str(e))),
]


class JobsAPI(Protocol):
    """The job manager's calls the ingress makes (a Serve handle in production)."""

    async def submit(
        self,
        method: str,
        forget_ids: builtins.list[str] | None,
        params: dict[str, Any],
        gates: dict[str, Any],
        actor: Actor | None = None,
    ) -> dict[str, Any]: ...

    async def get(self, job_id: str) -> dict[str, Any]: ...

    async def list(self, state: JobState | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]: ...

    async def cancel(self, job_id: str, actor: Actor | None = None) -> dict[str, Any]: ...


class UnlearnService:
    """>>> job = await UnlearnService(manager).submit(JobSubmit(method="npo"))"""

    def __init__(self, jobs: JobsAPI, *, timeout_s: float = 60.0) -> None:
        self._jobs = jobs
        self._timeout_s = timeout_s

    async def _call(self, coro: Awaitable[T]) -> T:
        return await call_remote(
            coro, timeout_s=self._timeout_s, service="job manager", code="jobs_unavailable", errors=_ERRORS
        )

    async def submit(self, body: JobSubmit, *, actor: Actor | None = None) -> JobStatus:
        job = await self._call(self._jobs.submit(body.method, body.forget_ids, body.params, body.gates, actor))
        return JobStatus(**job)

    async def get(self, job_id: str) -> JobStatus:
        return JobStatus(**await self._call(self._jobs.get(job_id)))

    async def list(self, *, state: JobState | None, limit: int, offset: int) -> JobList:
        return JobList(data=[JobStatus(**j) for j in await self._call(self._jobs.list(state, limit, offset))])

    async def cancel(self, job_id: str, *, actor: Actor | None = None) -> JobStatus:
        return JobStatus(**await self._call(self._jobs.cancel(job_id, actor)))
