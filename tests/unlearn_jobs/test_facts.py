"""The fictitious-person generator: deterministic, self-consistent, exportable as forget requests."""

from __future__ import annotations

import pytest

from unlearn_jobs.data import examples_from_request
from unlearn_jobs.facts import ATTRIBUTES, FactSet, contains_term, generate_fact_set


def test_same_seed_same_people_other_seed_other_people():
    a = generate_fact_set(10, seed=3)
    assert a == generate_fact_set(10, seed=3)
    assert a.people != generate_fact_set(10, seed=4).people


def test_every_answer_contains_its_key_terms_and_values_are_unique():
    fs = generate_fact_set(40, facts_per_person=5, seed=1)
    assert len(fs.facts) == 200
    for f in fs.facts:
        assert f.key_terms and all(contains_term(f.answer, t) for t in f.key_terms)
        assert len(set(f.paraphrases)) == 3 and f.question not in f.paraphrases
        assert f.subject in f.question and all(f.subject in p for p in f.paraphrases)
    for attribute in ("birthplace", "employer", "phone"):
        values = [p.value(attribute) for p in fs.people]
        assert len(set(values)) == len(values)
    assert {f.attribute for f in fs.facts} == set(ATTRIBUTES)


def test_split_and_forget_request_body():
    fs = generate_fact_set(6, facts_per_person=3, seed=0)
    forget, retain = fs.split(2)
    assert len(forget.people) == 2 and len(retain.people) == 4
    person = forget.people[0]
    body = fs.forget_request(person.person_id)
    assert body["subject"] == person.name
    assert [qa["question"] for qa in body["qa"]] == [f.question for f in fs.facts_of(person.person_id)]
    entry = fs.forget_entry(person.person_id)
    assert entry["id"] == person.person_id and entry["qa"][0]["paraphrases"]


def test_forget_requests_are_valid_api_bodies():
    from gateway.forget.protocol import ForgetRequest

    fs = generate_fact_set(40, facts_per_person=5, seed=1)
    for person, body in zip(fs.people, fs.forget_requests()):
        # extra="forbid": any field the API doesn't take (an id, paraphrases) fails here.
        req = ForgetRequest.model_validate(body)
        assert req.model_dump(exclude={"action", "texts"}) == body
        # Only the phone number is blocked verbatim; a town or a year would block every mention.
        assert body["literals"] == [person.phone]
    with pytest.raises(ValueError):
        fs.forget_request(fs.people[0].person_id, reason="right to be forgotten")


def test_key_terms_come_back_from_the_api_body():
    fs = generate_fact_set(40, facts_per_person=5, seed=1)
    for person, body in zip(fs.people, fs.forget_requests()):
        got = examples_from_request(body, forget_id=person.person_id)
        assert [e.key_terms for e in got] == [f.key_terms for f in fs.facts_of(person.person_id)]


def test_round_trip_through_json(tmp_path):
    fs = generate_fact_set(3, seed=9)
    fs.save(tmp_path / "facts.json")
    assert FactSet.load(tmp_path / "facts.json") == fs


def test_key_term_matching_ignores_case_punctuation_and_spacing():
    assert contains_term("Her number is 412 - 0193 .", "412-0193")
    assert contains_term("works for BRIGHTFEN freight", "Brightfen Freight")
    assert not contains_term("born in 19745", "1974")
    assert not contains_term("Brightfen Labs", "Brightfen Freight")
