"""The guard score's plain data: entries from request bodies or example sets, and the pooled guard rate.

The scorer itself is the gateway's: tests/gateway/jobs/test_guard_scorer.py."""

from __future__ import annotations

import pytest

from unlearn_jobs.data import examples_from_facts
from unlearn_jobs.evaluate import ProbeScores, SetScores
from unlearn_jobs.facts import generate_fact_set
from unlearn_jobs.guard_score import GuardEntrySpec, entries_from_examples, infer_subject

FACTS = generate_fact_set(12, facts_per_person=5, seed=3)
FORGET, _ = FACTS.split(2)


def test_entries_rebuilt_from_examples_infer_the_subject():
    entries = entries_from_examples(examples_from_facts(FORGET.facts))
    assert [e.forget_id for e in entries] == [p.person_id for p in FORGET.people]
    first = entries[0]
    assert first.subject == FORGET.people[0].name
    assert first.literals == (FORGET.people[0].phone,)
    assert len(first.qa) == 5
    assert infer_subject(["Where was Ana Lorn born?", "Who employs Ana Lorn?"]) == "Ana Lorn"
    assert infer_subject(["Where is it?"]) is None


def test_entry_spec_from_an_api_body():
    body = FACTS.forget_request(FORGET.people[1].person_id)
    spec = GuardEntrySpec.from_body("f-1", body)
    assert spec.subject == body["subject"] and spec.literals == tuple(body["literals"])
    assert spec.qa[0] == (body["qa"][0]["question"], body["qa"][0]["answer"])


def test_pooled_guard_rate_weights_questions_and_paraphrases():
    s = SetScores(ProbeScores(2, 0.5, 0.5, 1.0), ProbeScores(6, 0.5, 0.5, 0.0))
    assert s.pooled_guard == pytest.approx(0.25)
    assert SetScores(ProbeScores(2, 0.5, 0.5)).pooled_guard is None
