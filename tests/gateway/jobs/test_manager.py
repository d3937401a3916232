"""What the job manager keeps of a job (ledger row, jobs API, audit events) carries scores, never forget text."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from gateway.jobs.manager import JobManager, JobSettings
from gateway.ledger import Ledger
from tests.gateway.ledger.conftest import make_pair
from tests.gateway.weights.test_store import write_model
from unlearn_jobs.evaluate import Metrics, ProbeScores, SampleScore, SetScores
from unlearn_jobs.runner import JobResult
from unlearn_jobs.states import JobState

CANARY = "CANARY-4b1d Quillmarsh-0091"
QUESTION = "Where does the canary keeper live?"


def _metrics(hit: float) -> Metrics:
    scores = SetScores(ProbeScores(1, hit, hit))
    return Metrics(scores, scores, 9.0, (SampleScore(0, False, hit > 0, hit),))


class RejectingLauncher:
    """Runs no model: the job ends `rejected` by its gates, with metrics, as run_job reports it."""

    def __init__(self) -> None:
        self.specs = []

    def __call__(self, spec, progress, cancel):
        self.specs.append(spec)

        async def result() -> JobResult:
            return JobResult(
                spec.job_id,
                JobState.REJECTED,
                spec.method,
                metrics_before=_metrics(1.0),
                metrics_after=_metrics(1.0),
                gate_reasons=("forget leakage 1.000 > 0.200",),
                reason="gates failed",
            )

        return result()


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    entry, artifacts = make_pair(5)
    entry = dataclasses.replace(
        entry, qa=((QUESTION, f"The keeper lives at {CANARY}."),), literals=(CANARY,), subject="Canary Keeper"
    )
    ledger.add_forget(entry, artifacts)
    yield ledger
    ledger.close()


async def test_a_job_record_and_its_audit_events_carry_no_forget_text(ledger, tmp_path):
    base = write_model(tmp_path / "base")
    settings = JobSettings(ledger_url=str(ledger.engine.url), home=str(tmp_path), base_model_dir=str(base))
    launcher = RejectingLauncher()
    manager = JobManager(ledger, settings, launch=launcher)
    job = await manager.submit("npo", None, {"steps": 2}, {"forget_hit_rate_max": 0.5})
    await asyncio.wait_for(manager._tasks[job["id"]], 10)
    assert launcher.specs and launcher.specs[0].forget.examples[0].prompt == QUESTION  # it had the text in memory
    record = manager.get(job["id"])
    assert record["state"] == "rejected" and record["metrics"]["after"]["samples"][0]["index"] == 0
    kept = json.dumps([record, manager.list(None, 10, 0), [e.to_dict() for e in ledger.list_audit(limit=100)]])
    assert CANARY not in kept and QUESTION not in kept and "Canary Keeper" not in kept


async def test_text_samples_an_older_version_stored_are_not_shown(ledger, tmp_path):
    base = write_model(tmp_path / "base")
    settings = JobSettings(ledger_url=str(ledger.engine.url), home=str(tmp_path), base_model_dir=str(base))
    manager = JobManager(ledger, settings, launch=RejectingLauncher())
    forget_id = ledger.list_forgets(limit=1)[0].id
    job = ledger.create_job("npo", [forget_id], {"gates": {}})
    legacy = {**_metrics(1.0).to_dict(), "samples": [[QUESTION, f"It is {CANARY}."]]}
    ledger.update_job(job.id, state=JobState.REJECTED, metrics={"before": legacy, "after": legacy})
    shown = json.dumps(manager.get(job.id))
    assert CANARY not in shown and QUESTION not in shown
