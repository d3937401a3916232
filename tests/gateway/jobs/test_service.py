"""UnlearnService, the ingress facade of the job manager: wire types, domain errors as 404/422, failures as 503."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import NotFoundError, ServiceUnavailableError, UnprocessableError
from gateway.jobs.manager import JobNotFoundError, JobRequestError
from gateway.jobs.protocol import JobSubmit
from gateway.jobs.service import UnlearnService
from tests.support.remote import DeadReplicaError, RemoteTaskError, ScriptedRemote


def job_row(job_id: str, state: str = "queued") -> dict[str, Any]:
    return {
        "id": job_id,
        "object": "unlearn.job",
        "method": "npo",
        "forget_ids": ["f-1"],
        "params": {"lr": 1e-5},
        "resources": {"num_cpus": 1.0, "num_gpus": 0.0},
        "state": state,
        "progress": 0.0,
        "step": 0,
        "loss": None,
        "metrics": {},
        "version_id": None,
        "error": None,
        "created_at": "2026-11-27T12:00:00+00:00",
        "started_at": None,
        "finished_at": None,
    }


class FakeJobs(ScriptedRemote):
    """The manager's calls (JobsAPI): raises JobNotFoundError for unknown ids, as JobManager does."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs = {"j-1": job_row("j-1", "running"), "j-2": job_row("j-2", "published")}

    async def submit(
        self,
        method: str,
        forget_ids: list[str] | None,
        params: dict[str, Any],
        gates: dict[str, Any],
        actor: Any = None,
    ) -> dict[str, Any]:
        return await self.answer("submit", (method, forget_ids, params, gates), job_row("j-3"))

    async def get(self, job_id: str) -> dict[str, Any]:
        job = await self.answer("get", (job_id,), self.jobs.get(job_id))
        if job is None:
            raise RemoteTaskError(JobNotFoundError(job_id))  # JobManager.get raises it; the remote call wraps it
        return job

    async def list(self, state: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        rows = [j for j in self.jobs.values() if state is None or j["state"] == state]
        return await self.answer("list", (state, limit, offset), rows)

    async def cancel(self, job_id: str, actor: Any = None) -> dict[str, Any]:
        return await self.answer("cancel", (job_id,), self.jobs[job_id])


@pytest.fixture
def jobs() -> FakeJobs:
    return FakeJobs()


@pytest.fixture
def service(jobs) -> UnlearnService:
    return UnlearnService(jobs, timeout_s=0.2)


async def test_submit_forwards_the_body_and_returns_the_job(service, jobs):
    job = await service.submit(
        JobSubmit(method="npo", forget_ids=["f-1"], params={"lr": 1e-5}, gates={"forget_hit_rate_max": 0.1})
    )
    assert job.id == "j-3" and job.state == "queued" and job.forget_ids == ["f-1"]
    assert jobs.calls == [("submit", ("npo", ["f-1"], {"lr": 1e-5}, {"forget_hit_rate_max": 0.1}))]


async def test_get_list_and_cancel_return_wire_types(service, jobs):
    assert (await service.get("j-1")).state == "running"
    listed = await service.list(state="published", limit=10, offset=0)
    assert listed.object == "list" and [j.id for j in listed.data] == ["j-2"]
    assert (await service.cancel("j-1")).id == "j-1"
    assert jobs.calls[-2:] == [("list", ("published", 10, 0)), ("cancel", ("j-1",))]


async def test_an_unknown_job_is_a_404(service):
    with pytest.raises(NotFoundError) as err:
        await service.get("j-9")
    assert err.value.status == 404 and err.value.param == "job_id"
    assert err.value.message == "no unlearning job with id 'j-9'"


@pytest.mark.parametrize(
    "failure",
    [
        JobRequestError("unknown method 'sgd'; available: edit, grad_diff, npo"),
        RemoteTaskError(JobRequestError("unknown method 'sgd'; available: edit, grad_diff, npo")),
    ],
)
async def test_a_request_the_manager_refuses_is_a_422_with_its_reason(service, jobs, failure):
    jobs.failure = failure
    with pytest.raises(UnprocessableError) as err:
        await service.submit(JobSubmit(method="sgd"))
    assert err.value.status == 422 and err.value.message.startswith("unknown method 'sgd'")


async def test_a_manager_that_does_not_answer_is_a_503(service, jobs):
    jobs.hang = True
    with pytest.raises(ServiceUnavailableError) as err:
        await service.list(state=None, limit=10, offset=0)
    assert err.value.status == 503 and err.value.code == "jobs_unavailable"
    assert "job manager did not answer within 0.2 s" in err.value.message


async def test_a_dead_manager_is_a_503_naming_the_failure(service, jobs):
    jobs.failure = DeadReplicaError("the actor died")
    with pytest.raises(ServiceUnavailableError) as err:
        await service.cancel("j-1")
    assert err.value.status == 503 and err.value.code == "jobs_unavailable"
    assert "job manager is unavailable: DeadReplicaError" in err.value.message


def test_a_job_without_a_method_runs_rmu_the_method_that_met_the_leakage_and_cost_targets():
    from unlearn_jobs.methods import available_methods

    assert JobSubmit().method == "rmu" and "rmu" in available_methods()
    assert JobSubmit(method="npo").method == "npo"
