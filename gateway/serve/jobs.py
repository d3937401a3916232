"""Unlearning jobs as Ray tasks: the launcher the UnlearnJobs deployment gives its JobManager."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import ray

from gateway.jobs.manager import CancelMarker, LedgerProgress
from gateway.serve.metrics import configure_ray_metrics
from unlearn_jobs.runner import JobProgress, JobResult, JobSpec, run_job

# Training is background work: on a node it shares with serving replicas it yields the CPU to them.
# Added to the worker's own niceness (0 under `lethe serve`, Ray's 15 elsewhere; capped at 19).
JOB_NICENESS = 5


def run_job_task(
    spec: JobSpec, progress: Callable[[JobProgress], None], should_cancel: Callable[[], bool]
) -> JobResult:
    """The body of one job's Ray task. The task is a process of its own: it chooses its metrics
    backend before anything records. It lowers its own priority (JOB_NICENESS): the worker runs this one
    task and exits (`max_calls=1`), so nothing else ever runs at that priority, and the job's memory
    (model, optimiser state) goes back to the node when it ends."""
    os.nice(JOB_NICENESS)
    configure_ray_metrics()
    return run_job(spec, progress=progress, should_cancel=should_cancel)


class RayJobLauncher:
    """`JobLauncher` that runs each job as a Ray task with the `unlearn` section's resources.

    >>> manager = JobManager(ledger, settings, launch=RayJobLauncher(num_cpus=1, num_gpus=0))
    """

    def __init__(self, num_cpus: float, num_gpus: float) -> None:
        # No retries: a task whose worker died is recorded failed and its forget requests released;
        # a silent rerun would train again behind the ledger's back.
        self.remote_function = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0, max_calls=1)(
            run_job_task
        )

    def __call__(self, spec: JobSpec, progress: LedgerProgress, cancel: CancelMarker) -> Awaitable[JobResult]:
        return self.remote_function.remote(spec, progress, cancel)
