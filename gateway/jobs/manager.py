"""Unlearning jobs on the live system: launch (a Ray task), track in the ledger, cancel, survive restarts."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.home import private_dir
from gateway.jobs.guard_scorer import build_guard_scorer
from gateway.ledger import ForgetRecord, JobRecord, Ledger
from gateway.ledger.states import JOB_ACTIVE_STATES, ForgetStatus, JobState
from gateway.observability.metrics import RELEASED, record_forget_state, record_job, record_job_views
from gateway.weights.store import ensure_base_version, serving_record
from unlearn_jobs.data import examples_from_request
from unlearn_jobs.evaluate import Gates, redact_metrics
from unlearn_jobs.guard_score import GuardEntrySpec
from unlearn_jobs.publish import read_manifest
from unlearn_jobs.runner import JobProgress, JobResult, JobSpec

log = logging.getLogger(__name__)


class JobRequestError(ValueError):
    """A job request the client can fix (unknown method, forget ids, overrides)."""


class JobNotFoundError(KeyError):
    pass


@dataclass(frozen=True)
class JobSettings:
    """Where jobs read and write, and what Ray resources each one asks for."""

    ledger_url: str
    home: str
    base_model_dir: str
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    threads: int = 1

    @property
    def versions_dir(self) -> Path:
        return Path(self.home) / "versions"

    def cancel_marker(self, job_id: str) -> Path:
        return Path(self.home) / "jobs" / f"{job_id}.cancel"


class LedgerProgress:
    """Progress callback that runs inside the Ray task: writes state, progress and loss to the ledger.

    Picklable (the ledger is opened lazily in the task's process)."""

    def __init__(self, ledger_url: str, job_id: str) -> None:
        self.ledger_url = ledger_url
        self.job_id = job_id
        self._ledger: Ledger | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"ledger_url": self.ledger_url, "job_id": self.job_id, "_ledger": None}

    def __call__(self, progress: JobProgress) -> None:
        if self._ledger is None:
            self._ledger = Ledger.open(self.ledger_url)
        fields: dict[str, Any] = {"progress": float(progress.progress), "step": int(progress.step)}
        state = JobState(progress.state)
        if state in (JobState.RUNNING, JobState.EVALUATING):
            fields["state"] = state  # terminal states are written by the manager with the result
        if progress.loss is not None:
            fields["loss"] = float(progress.loss)
        try:
            self._ledger.update_job(self.job_id, **fields)
        except Exception:  # progress is best effort; the result is what must land
            log.warning("could not record progress of job %s", self.job_id, exc_info=True)


class CancelMarker:
    """`should_cancel` for the Ray task: a marker file the manager creates (shared LETHE_HOME)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self) -> bool:
        return Path(self.path).exists()


def _job_fields(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "object": "unlearn.job",
        "method": job.method,
        "forget_ids": list(job.forget_ids),
        "params": job.params,
        "resources": job.resources,
        "state": job.state,
        "progress": job.progress,
        "step": job.step,
        "loss": job.loss,
        "metrics": redact_metrics(job.metrics) or {},
        "version_id": job.version_id,
        "error": job.error,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


class JobLauncher(Protocol):
    """Starts one job where it runs (a Ray task in production: `gateway.serve.jobs.RayJobLauncher`) and
    returns its result to await; `progress` and `cancel` travel with the job, so they must pickle."""

    def __call__(self, spec: JobSpec, progress: LedgerProgress, cancel: CancelMarker) -> Awaitable[JobResult]: ...


class JobManager:
    """Owns the unlearning jobs of one gateway: one Ray task per job, the ledger as the record.

    >>> manager = JobManager(ledger, settings, launch=RayJobLauncher(num_cpus=1, num_gpus=0))  # gateway.serve.jobs
    >>> job = await manager.submit("npo", forget_ids=None, params={"steps": 20})   # None: all enforced
    >>> await manager.cancel(job["id"])
    """

    def __init__(
        self,
        ledger: Ledger,
        settings: JobSettings,
        *,
        launch: JobLauncher,
        on_published: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._ledger = ledger
        self._settings = settings
        self._launch = launch
        # async (version_id, job_id) -> None: auto-promotion of a version whose gates passed.
        self._on_published = on_published
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._refs: dict[str, Any] = {}
        self._register_base_version()
        # A job that was running when the gateway stopped cannot be resumed: say so, free its forgets.
        for job_id in ledger.fail_interrupted_jobs("interrupted: the gateway stopped while the job ran; resubmit it"):
            job = ledger.get_job(job_id)
            if job is not None:
                record_job(job.method, JobState.FAILED)
                self._release_forgets(job.forget_ids)

    def _register_base_version(self) -> None:
        """The served base model is the root of the version tree: published versions name it as parent."""
        ensure_base_version(self._ledger, self._settings.base_model_dir)

    # --- API -------------------------------------------------------------------------------

    async def submit(
        self, method: str, forget_ids: list[str] | None, params: dict[str, Any], gates: dict[str, Any]
    ) -> dict[str, Any]:
        # The methods import torch: the UnlearnJobs deployment loads them when it starts (a process that
        # only reads jobs, such as a test or the CLI, never does).
        from unlearn_jobs.methods import available_methods, get_method

        if method not in available_methods():
            raise JobRequestError(f"unknown method {method!r}; available: {', '.join(available_methods())}")
        try:
            get_method(method).config_cls.from_overrides(params)
            Gates.from_overrides(gates)
        except (ValueError, TypeError) as exc:
            raise JobRequestError(str(exc)) from None
        records = self._forget_records(forget_ids)
        ids = [r.id for r in records]
        busy = {
            fid
            for job in self._ledger.list_jobs(limit=1000)
            if job.state in JOB_ACTIVE_STATES
            for fid in job.forget_ids
        }
        clash = sorted(set(ids) & busy)
        if clash:
            raise JobRequestError(f"forget requests already in an active job: {', '.join(clash)}")
        resources = {"num_cpus": self._settings.num_cpus, "num_gpus": self._settings.num_gpus}
        job = self._ledger.create_job(method, ids, params={**params, "gates": gates}, resources=resources)
        self._ledger.set_forget_status(ids, ForgetStatus.UNLEARNING, actor=f"job:{job.id}")
        record_job(method, JobState.QUEUED)
        record_forget_state(ForgetStatus.UNLEARNING, len(ids))
        self._tasks[job.id] = asyncio.get_running_loop().create_task(self._run(job.id, method, records, params, gates))
        return _job_fields(job)

    def get(self, job_id: str) -> dict[str, Any]:
        job = self._ledger.get_job(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return _job_fields(job)

    def list(self, state: JobState | None, limit: int, offset: int) -> list[dict[str, Any]]:
        return [_job_fields(j) for j in self._ledger.list_jobs(state=state, limit=limit, offset=offset)]

    async def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._ledger.get_job(job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        if job.state in JOB_ACTIVE_STATES:
            marker = self._settings.cancel_marker(job_id)
            private_dir(marker.parent)
            marker.touch()
        return _job_fields(job)

    # --- internals ---------------------------------------------------------------------------

    def _forget_records(self, forget_ids: builtins.list[str] | None) -> builtins.list[ForgetRecord]:
        if forget_ids is None:
            records = [r for r in self._ledger.list_forgets(status=ForgetStatus.ENFORCED, limit=1000)]
            if not records:
                raise JobRequestError("no forget request is waiting to be unlearned (status 'enforced')")
        else:
            if not forget_ids:
                raise JobRequestError("forget_ids is empty; omit it to take all enforced requests")
            records = []
            for fid in dict.fromkeys(forget_ids):
                record = self._ledger.get_forget(fid)
                if record is None:
                    raise JobRequestError(f"unknown forget request {fid!r}")
                records.append(record)
        if forget_ids is None:  # all enforced requests: those shredded (retention) have nothing to learn from
            records = [r for r in records if r.shredded_at is None]
            if not records:
                raise JobRequestError("every enforced forget request was shredded: nothing to unlearn from")
        shredded = [r.id for r in records if r.shredded_at is not None]
        if shredded:
            raise JobRequestError(
                f"forget requests whose content was shredded cannot be unlearned (the guard keeps enforcing "
                f"them): {', '.join(shredded)}"
            )
        unusable = [r.id for r in records if not (r.payload or {}).get("qa") and not (r.payload or {}).get("texts")]
        if unusable:
            raise JobRequestError(
                f"forget requests with only literals have nothing to unlearn from (the guard enforces them): "
                f"{', '.join(unusable)}"
            )
        return records

    def _spec(
        self,
        job_id: str,
        method: str,
        records: builtins.list[ForgetRecord],
        params: dict[str, Any],
        gates: dict[str, Any],
    ) -> JobSpec:
        forget = examples_from_request(records[0].body(), records[0].id)
        for record in records[1:]:
            forget = forget.concat(examples_from_request(record.body(), record.id))
        # Unlearn from what serves now, so versions chain: a second job keeps the first one's forgetting.
        parent = serving_record(self._ledger, self._settings.base_model_dir)
        return JobSpec(
            base_model_dir=parent.path,
            method=method,
            forget=forget,
            versions_dir=str(self._settings.versions_dir),
            overrides=params,
            gates=Gates.from_overrides(gates),
            parent_version=parent.id,
            job_id=job_id,
            forget_ids=tuple(r.id for r in records),
            num_threads=self._settings.threads,
            # The evaluation's guard score indexes the requests as the gateway does (subjects, literals).
            forget_entries=tuple(GuardEntrySpec.from_body(r.id, r.body()) for r in records),
            guard_scorer_factory=build_guard_scorer,
        )

    async def _run(
        self,
        job_id: str,
        method: str,
        records: builtins.list[ForgetRecord],
        params: dict[str, Any],
        gates: dict[str, Any],
    ) -> None:
        ids = [r.id for r in records]
        try:
            spec = self._spec(job_id, method, records, params, gates)
            ref = self._launch(
                spec,
                LedgerProgress(self._settings.ledger_url, job_id),
                CancelMarker(str(self._settings.cancel_marker(job_id))),
            )
            self._refs[job_id] = ref
            result: JobResult = await ref
        except Exception as exc:  # the task itself crashed (worker died, bad spec): record why
            log.exception("job %s failed", job_id)
            self._ledger.update_job(job_id, state=JobState.FAILED, error=f"{type(exc).__name__}: {exc}")
            record_job(method, JobState.FAILED)
            self._release_forgets(ids)
            return
        finally:
            self._refs.pop(job_id, None)
            self._settings.cancel_marker(job_id).unlink(missing_ok=True)
        try:
            self._record_result(job_id, result, ids)
        except Exception as exc:  # never leave a job looking active when its task has ended
            log.exception("could not record the result of job %s", job_id)
            self._ledger.update_job(job_id, state=JobState.FAILED, error=f"recording the result failed: {exc}")
            record_job(method, JobState.FAILED)
            self._release_forgets(ids)
            return
        version_id = result.version_id
        if self._on_published is not None and version_id and self._ledger.get_version(version_id) is not None:
            try:
                await self._on_published(version_id, job_id)
            except Exception as exc:  # the version stays published; the swap recorded why it failed
                log.error("auto-promotion of %s (job %s) failed: %s", version_id, job_id, exc)

    def _record_result(self, job_id: str, result: JobResult, ids: builtins.list[str]) -> None:
        state = result.state
        metrics = {
            "before": result.metrics_before.to_dict() if result.metrics_before else None,
            "after": result.metrics_after.to_dict() if result.metrics_after else None,
            "gate_reasons": list(result.gate_reasons),
            "steps": result.steps,
            "stopped_early": result.stopped_early,
            "wall_s": round(result.wall_s, 2),
        }
        error = result.reason or ("; ".join(result.gate_reasons) if result.gate_reasons else None)
        if result.metrics_after is not None:
            # Published or rejected: what each leakage view found on the candidate (rates only).
            record_job_views(result.method, {v.view: v.rate for v in result.metrics_after.views if v.n})
        if state is JobState.PUBLISHED and result.version_id and result.version_dir:
            manifest = read_manifest(result.version_dir)
            self._ledger.add_version(
                result.version_id,
                result.version_dir,
                manifest,
                parent_id=manifest.get("parent_version"),
                method=result.method,
            )
            self._ledger.update_job(
                job_id, state=JobState.PUBLISHED, progress=100.0, metrics=metrics, version_id=result.version_id
            )
            self._ledger.set_forget_status(ids, ForgetStatus.UNLEARNED, actor=f"job:{job_id}")
            record_job(result.method, JobState.PUBLISHED, result.wall_s)
            record_forget_state(ForgetStatus.UNLEARNED, len(ids))
            return
        self._ledger.update_job(job_id, state=state, metrics=metrics, error=error)
        record_job(result.method, state, result.wall_s)
        self._release_forgets(ids)

    def _release_forgets(self, ids: Iterable[str]) -> None:
        """Back to `enforced`: the guard keeps enforcing them; a new job may take them."""
        existing = [fid for fid in ids if self._ledger.get_forget(fid) is not None]
        if existing:
            self._ledger.set_forget_status(existing, ForgetStatus.ENFORCED, actor="jobs")
            record_forget_state(RELEASED, len(existing))
