"""The states of an unlearning job: the one vocabulary the runner reports and the gateway's ledger stores.

Defined here rather than in the gateway's ledger because this package imports nothing from gateway/;
`gateway.ledger.states` re-exports it.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    """queued → running → evaluating → published | rejected (the gates said no); failed or cancelled
    from any active state. A StrEnum: it compares, hashes and serializes as its value."""

    QUEUED = "queued"
    RUNNING = "running"
    EVALUATING = "evaluating"
    PUBLISHED = "published"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in JOB_TERMINAL_STATES


# A job in one of these holds its forget requests (no other job may take them) and may still be cancelled.
JOB_ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.EVALUATING})
JOB_TERMINAL_STATES: frozenset[JobState] = frozenset(JobState) - JOB_ACTIVE_STATES
