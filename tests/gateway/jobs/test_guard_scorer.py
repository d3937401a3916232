"""The gateway's guard as a job's evaluation score: built from forget requests, hit on leaks, quiet on neighbours."""

from __future__ import annotations

import pickle

import pytest

from gateway.jobs.guard_scorer import GatewayGuardScorer, build_guard_scorer
from unlearn_jobs.facts import generate_fact_set
from unlearn_jobs.guard_score import entries_from_bodies

FACTS = generate_fact_set(12, facts_per_person=5, seed=3)
FORGET, RETAIN = FACTS.split(2)


@pytest.fixture(scope="module")
def scorer() -> GatewayGuardScorer:
    return GatewayGuardScorer.build(entries_from_bodies(FORGET.forget_entries()))


def test_forgotten_answers_hit_neighbours_and_refusals_do_not(scorer):
    forgotten = [f.answer for f in FORGET.facts]
    neighbours = [f.answer for f in RETAIN.facts]
    scorer.prime(forgotten + neighbours)
    assert all(scorer(t) == 1.0 for t in forgotten)
    assert sum(scorer(t) for t in neighbours) == 0.0
    assert scorer("I don't know.") == 0.0 and scorer("") == 0.0
    # A bare phone number is a literal of the request: blocked with no name around it.
    assert scorer(f"Call {FORGET.people[0].phone} after six.") == 1.0


def test_the_factory_pickles_into_a_job_spec():
    # A JobSpec travels to a Ray worker: the factory goes by reference, the worker imports it.
    assert pickle.loads(pickle.dumps(build_guard_scorer)) is build_guard_scorer
