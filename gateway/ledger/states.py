"""The state vocabularies of the ledger: a forget request's status and an unlearning job's state.

Every place that names one (the store, the routes' query parameters, the wire types, the CLI's choices,
the metrics' label vocabularies, the job manager, the leakage probes) uses these enums; a StrEnum
compares, hashes and serializes as its value, so rows, JSON and label values stay plain strings.

The job states are defined once in `unlearn_jobs.states` and re-exported here: the runner reports them,
and unlearn_jobs is an offline library that imports nothing from gateway/.
"""

from __future__ import annotations

from enum import StrEnum

from unlearn_jobs.states import JOB_ACTIVE_STATES, JOB_TERMINAL_STATES, JobState


class ForgetStatus(StrEnum):
    """enforced (the guard enforces it; filed) → unlearning (a job has it) → unlearned (that job published
    a version without it); a job that ends without a version gives it back (unlearning → enforced).
    The guard enforces a request whatever its status."""

    ENFORCED = "enforced"
    UNLEARNING = "unlearning"
    UNLEARNED = "unlearned"
    FAILED = "failed"


__all__ = ["JOB_ACTIVE_STATES", "JOB_TERMINAL_STATES", "ForgetStatus", "JobState"]
