"""gateway.ledger.states: one vocabulary per state machine, shared with the offline job runner."""

from __future__ import annotations

import json

from gateway.ledger.states import JOB_ACTIVE_STATES, JOB_TERMINAL_STATES, ForgetStatus, JobState
from unlearn_jobs import states as offline


def test_job_states_are_the_runners_own():
    assert JobState is offline.JobState
    assert [s.value for s in JobState] == [
        "queued",
        "running",
        "evaluating",
        "published",
        "rejected",
        "failed",
        "cancelled",
    ]


def test_every_job_state_is_either_active_or_terminal():
    assert set(JobState) == JOB_ACTIVE_STATES | JOB_TERMINAL_STATES
    assert not JOB_ACTIVE_STATES & JOB_TERMINAL_STATES
    assert all(state.terminal == (state in JOB_TERMINAL_STATES) for state in JobState)


def test_states_are_their_values_in_rows_json_and_text():
    assert [s.value for s in ForgetStatus] == ["enforced", "unlearning", "unlearned", "failed"]
    assert (
        json.dumps({"status": ForgetStatus.ENFORCED, "state": JobState.QUEUED})
        == '{"status": "enforced", "state": "queued"}'
    )
    assert f"{JobState.RUNNING}" == "running" and ForgetStatus("unlearned") is ForgetStatus.UNLEARNED
    assert "evaluating" in JOB_ACTIVE_STATES  # a row's plain string finds its state
