"""Forget/retain sets from requests and files, and their encoding."""

from __future__ import annotations

import json

import pytest

from unlearn_jobs.data import (
    examples_from_request,
    extract_key_terms,
    load_fluency,
    load_forget_file,
    load_retain_file,
    neutral_questions,
)
from unlearn_jobs.facts import generate_fact_set


def test_forget_entries_round_trip_with_ids_and_key_terms(tmp_path):
    fs = generate_fact_set(3, facts_per_person=2, seed=2)
    bodies = fs.forget_entries()
    (tmp_path / "forget.json").write_text(json.dumps({"requests": bodies[:2]}))
    forget = load_forget_file(tmp_path / "forget.json")
    assert forget.source_ids == (bodies[0]["id"], bodies[1]["id"])
    assert len(forget) == 4
    first = fs.facts_of(bodies[0]["id"])[0]
    assert forget.examples[0].key_terms == first.key_terms


def test_texts_become_continuation_targets():
    ex = examples_from_request(
        {"id": "f1", "texts": ["The vault code for the north office is 7731 and it changes in May."]}
    )
    (e,) = ex.examples
    assert e.style == "text" and e.prompt.startswith("The vault code")
    assert "7731" in e.key_terms
    with pytest.raises(ValueError):
        examples_from_request({"id": "empty"})


def test_key_term_extraction_picks_fresh_names_and_numbers():
    assert extract_key_terms("Who employs Ana Lorn?", "Ana Lorn works for Brightfen Freight.") == ("Brightfen Freight",)
    assert extract_key_terms("When was Ana born?", "Ana was born in 1974.") == ("1974",)


def test_retain_files_txt_and_jsonl(tmp_path):
    (tmp_path / "r.txt").write_text("one two three four five six\n\nseven eight nine ten eleven\n")
    assert [e.style for e in load_retain_file(tmp_path / "r.txt")] == ["text", "text"]
    (tmp_path / "r.jsonl").write_text(
        json.dumps({"question": "Where is Quillmarsh?", "answer": "Quillmarsh is in Glimholt."}) + "\n"
    )
    (e,) = load_retain_file(tmp_path / "r.jsonl").examples
    assert e.key_terms == ("Glimholt",)
    (tmp_path / "bad.json").write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(ValueError):
        load_retain_file(tmp_path / "bad.json")


def test_shipped_sets_are_there():
    assert len(load_fluency()) >= 30
    assert len(neutral_questions()) >= 20
