"""gateway.serve.jobs: each unlearning job is a Ray task that records metrics through Ray's agent."""

from __future__ import annotations

import ray

from gateway.observability import metrics
from gateway.serve import jobs
from gateway.serve.metrics import RayBackend


def test_the_launcher_builds_the_ray_task_without_starting_ray():
    launcher = jobs.RayJobLauncher(num_cpus=1, num_gpus=0)
    assert hasattr(launcher.remote_function, "remote") and hasattr(launcher.remote_function, "options")
    # One job per worker process: the lowered priority and the job's memory leave with it.
    assert launcher.remote_function._default_options["max_calls"] == 1
    assert not ray.is_initialized()


def test_the_task_configures_ray_metrics_before_it_runs_the_job(monkeypatch):
    monkeypatch.setattr(metrics, "_registry", metrics._registry)
    monkeypatch.delenv("LETHE_METRICS_ENABLED", raising=False)
    seen = []

    def fake_run_job(spec, *, progress, should_cancel):
        seen.append((spec, metrics.registry().backend, should_cancel()))
        return "result"

    niced = []
    monkeypatch.setattr(jobs.os, "nice", niced.append)  # never renice the test process itself
    monkeypatch.setattr(jobs, "run_job", fake_run_job)
    assert jobs.run_job_task("spec", lambda p: None, lambda: False) == "result"
    ((spec, backend, cancelled),) = seen
    assert spec == "spec" and isinstance(backend, RayBackend) and not cancelled
    assert niced == [jobs.JOB_NICENESS]  # training yields the CPU to the serving replicas
