"""The unlearning-jobs API on the ingress: forwards to the one JobManager and maps its errors."""

from __future__ import annotations

from typing import Any, Protocol

from gateway.errors import NotFoundError, UnprocessableError
from gateway.jobs.protocol import JobList, JobStatus, JobSubmit
from gateway.errors import call_remote


class JobsAPI(Protocol):
    async def submit(self, method: str, forget_ids: list[str] | None, params: dict[str, Any],
                     gates: dict[str, Any]) -> dict[str, Any]: ...

    async def get(self, job_id: str) -> dict[str, Any]: ...

    async def list(self, state: str | None, limit: int, offset: int) -> list[dict[str, Any]]: ...

    async def cancel(self, job_id: str) -> dict[str, Any]: ...


class UnlearnService:
    """>>> job = await UnlearnService(manager).submit(JobSubmit(method="npo"))"""

    def __init__(self, jobs: JobsAPI, *, timeout_s: float = 60.0) -> None:
        self._jobs = jobs
        self._timeout_s = timeout_s

    async def _call(self, coro: Any) -> Any:
        from gateway.jobs.manager import JobNotFoundError, JobRequestError

        errors = [
            (JobNotFoundError, lambda e: NotFoundError(f"no unlearning job with id {e.args[0]!r}", param="job_id")),
            (JobRequestError, lambda e: UnprocessableError(str(e))),
        ]
        return await call_remote(coro, timeout_s=self._timeout_s, service="job manager", code="jobs_unavailable",
                                 errors=errors)

    async def submit(self, body: JobSubmit) -> JobStatus:
        job = await self._call(self._jobs.submit(body.method, body.forget_ids, body.params, body.gates))
        return JobStatus(**job)

    async def get(self, job_id: str) -> JobStatus:
        return JobStatus(**await self._call(self._jobs.get(job_id)))

    async def list(self, *, state: str | None, limit: int, offset: int) -> JobList:
        return JobList(data=[JobStatus(**j) for j in await self._call(self._jobs.list(state, limit, offset))])

    async def cancel(self, job_id: str) -> JobStatus:
        return JobStatus(**await self._call(self._jobs.cancel(job_id)))
