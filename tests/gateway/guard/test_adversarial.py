"""Acceptance against disguised leaks: on the held-out test split of the adversarial sets, recall >= 0.98 in every
leak category (whole-text check and stream path alike) and false positives <= 1% overall.

The sets (data/adversarial_*.json) come from data/make_adversarial_sets.py; tune on dev, never on test.
`benchmarks/bench_guard_adversarial.py --split dev --show-misses` prints what is missed and flagged.

The held-out split ("holdout": entries and disguises of its own, its index holding every entry) gets the same
acceptance checks, but only when asked for, once, at the end: `LETHE_HOLDOUT=1 pytest -k holdout
tests/gateway/guard/test_adversarial.py`. Without LETHE_HOLDOUT=1 they are skipped, so that no ordinary run
shows a number of it; its data checks (which evaluate nothing) always run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from tests.gateway.guard.adversarial import (
    HOLDOUT,
    AdversarialReport,
    adversarial_entries,
    build_index,
    clean_probes,
    evaluate,
    holdout_entries,
    leak_probes,
)
from tests.support.guard_sets import DATA, load

GENERATOR = DATA / "make_adversarial_sets.py"
# The disguises the sets must cover, each in both splits.
REQUIRED_CATEGORIES = {
    "spelled_digits",
    "unicode_digits",
    "digit_separators",
    "email_words",
    "format_chars",
    "spaced_key",
    "homoglyph",
    "leetspeak",
    "base64",
    "hex",
    "url_encoded",
    "unnamed",
    "pronoun",
    "reworded_claim",
    "translation",
    "structured",
    "split_sentences",
}
MIN_RECALL = 0.98
MAX_FP = 0.01
# Read at collection (JSON only, no model) so that each category is its own test.
TEST_CATEGORIES = sorted({p.category for p in leak_probes("test")})
HOLDOUT_CATEGORIES = sorted({p.category for p in leak_probes(HOLDOUT)})
RUN_HOLDOUT = os.environ.get("LETHE_HOLDOUT") == "1"
holdout_only = pytest.mark.skipif(not RUN_HOLDOUT, reason="the held-out split runs once, at the end: LETHE_HOLDOUT=1")


def test_sets_are_large_varied_and_split_by_entry():
    dev, test = leak_probes("dev"), leak_probes("test")
    cleans_dev, cleans_test = clean_probes("dev"), clean_probes("test")
    assert len(dev) + len(test) >= 200
    assert len(cleans_dev) + len(cleans_test) >= 200
    categories = {p.category for p in dev + test}
    assert len(categories) >= 12
    assert categories >= REQUIRED_CATEGORIES
    per_test, per_dev = Counter(p.category for p in test), Counter(p.category for p in dev)
    assert all(per_test[c] >= 8 and per_dev[c] >= 1 for c in categories), (per_dev, per_test)
    # Each split holds every variant (language, script, encoding, layout) of every category.
    for category in categories:
        assert {p.variant for p in dev if p.category == category} == {
            p.variant for p in test if p.category == category
        }, category

    entries = adversarial_entries()
    ids = {e.forget_id for e in entries}
    assert len(entries) >= 24 and len(ids) == len(entries)
    dev_ids, test_ids = {p.forget_id for p in dev}, {p.forget_id for p in test}
    assert dev_ids | test_ids <= ids
    assert not dev_ids & test_ids, "an entry has probes in both splits"
    # No text in both splits (a dev result must say nothing about a test probe), none twice in one.
    texts = [p.text for p in dev + test] + [c.text for c in cleans_dev + cleans_test]
    assert len(set(texts)) == len(texts)
    # Near misses follow the entry they are near.
    assert {c.forget_id for c in cleans_dev if c.forget_id} <= dev_ids
    assert {c.forget_id for c in cleans_test if c.forget_id} <= test_ids
    # New people: nobody of the calibration set (forget_set.json) comes back.
    assert not {e.subject for e in entries} & {e["subject"] for e in load("forget_set")}


def test_holdout_set_is_new_large_varied_and_apart():
    """Data only (no guard): the held-out split has entries of its own, every category and variant of the test
    split, and shares no entry, subject or text with dev and test. Failures name counts, never probe texts."""
    dev_test = leak_probes("both")
    leaks, cleans = leak_probes(HOLDOUT), clean_probes(HOLDOUT)
    entries, known = holdout_entries(), adversarial_entries()
    kinds = Counter(e.forget_id.split("-")[1] for e in entries)
    known_kinds = Counter(e.forget_id.split("-")[1] for e in known)
    # At least as many entries of each kind as the test split (half of dev + test).
    assert all(kinds[k] >= n // 2 for k, n in known_kinds.items()), (kinds, known_kinds)
    ids = {e.forget_id for e in entries}
    assert len(ids) == len(entries) and not ids & {e.forget_id for e in known}
    subjects = {e.subject for e in entries if e.subject}
    assert not subjects & {e.subject for e in known} and not subjects & {e["subject"] for e in load("forget_set")}
    assert {p.forget_id for p in leaks} == ids  # every entry is probed, and only holdout entries
    assert {c.forget_id for c in cleans if c.forget_id} <= ids
    assert not {p.forget_id for p in dev_test} & ids

    test, test_cleans = leak_probes("test"), clean_probes("test")
    per = Counter(p.category for p in leaks)
    assert set(per) >= REQUIRED_CATEGORIES and set(per) >= {p.category for p in test}
    assert all(per[c] >= n for c, n in Counter(p.category for p in test).items()), per
    for category in {p.category for p in test}:  # every variant of the test split, and more
        missing = {p.variant for p in test if p.category == category} - {
            p.variant for p in leaks if p.category == category
        }
        assert not missing, (category, sorted(missing))
    assert {c.category for c in cleans} >= {c.category for c in test_cleans}
    assert len(cleans) >= len(test_cleans)

    texts = [p.text for p in leaks] + [c.text for c in cleans]
    assert len(set(texts)) == len(texts), "a text twice in the held-out split"
    others = {p.text for p in dev_test} | {c.text for c in clean_probes("both")}
    assert not set(texts) & others, "a held-out text is also in dev or test"


def test_generator_reproduces_the_committed_sets(tmp_path):
    subprocess.run([sys.executable, str(GENERATOR), str(tmp_path)], check=True, capture_output=True, timeout=120)
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == sorted(p.name for p in DATA.glob("adversarial_*.json"))
    holdout_files = {f"adversarial_{name}_holdout.json" for name in ("forget_set", "leaks", "cleans")}
    assert holdout_files <= set(written), "the held-out split is not written"
    for name in written:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), f"{name} differs: regenerate and commit"


@pytest.fixture(scope="module")
def report(embedder) -> AdversarialReport:
    return evaluate(build_index(embedder), leak_probes("test"), clean_probes("test"))


def _missed(report: AdversarialReport, category: str, stream: bool) -> list[str]:
    return [f"{p.variant}: {p.text!r}" for p in report.misses(stream=stream, category=category)]


@pytest.mark.parametrize("category", TEST_CATEGORIES)
def test_recall_per_category_on_test_split(report, category):
    rate = report.recall_by_category()[category]
    assert rate.rate >= MIN_RECALL, f"{category} recall {rate}; missed: {_missed(report, category, False)}"


@pytest.mark.parametrize("category", TEST_CATEGORIES)
def test_stream_recall_per_category_on_test_split(report, category):
    rate = report.recall_by_category(stream=True)[category]
    assert rate.rate >= MIN_RECALL, f"{category} stream recall {rate}; missed: {_missed(report, category, True)}"


@pytest.mark.parametrize("stream", [False, True], ids=["check_output", "stream"])
def test_false_positives_on_test_split(report, stream):
    fp = report.fp(stream=stream)
    flagged = [f"{p.category}/{p.variant}: {p.text!r}" for p in report.false_positives(stream=stream)]
    assert fp.rate <= MAX_FP, f"false positive rate {fp}: {flagged}"


# --- the held-out split: the same acceptance, run once at the end (LETHE_HOLDOUT=1) ---------------------------


@pytest.fixture(scope="module")
def holdout_report(embedder) -> AdversarialReport:
    # The index holds every entry (dev, test and holdout), as production holds every forget request.
    return evaluate(build_index(embedder, split=HOLDOUT), leak_probes(HOLDOUT), clean_probes(HOLDOUT))


@holdout_only
@pytest.mark.parametrize("category", HOLDOUT_CATEGORIES)
def test_recall_per_category_on_holdout_split(holdout_report, category):
    rate = holdout_report.recall_by_category()[category]
    assert rate.rate >= MIN_RECALL, f"{category} recall {rate}; missed: {_missed(holdout_report, category, False)}"


@holdout_only
@pytest.mark.parametrize("category", HOLDOUT_CATEGORIES)
def test_stream_recall_per_category_on_holdout_split(holdout_report, category):
    rate = holdout_report.recall_by_category(stream=True)[category]
    assert rate.rate >= MIN_RECALL, (
        f"{category} stream recall {rate}; missed: {_missed(holdout_report, category, True)}"
    )


@holdout_only
@pytest.mark.parametrize("stream", [False, True], ids=["check_output", "stream"])
def test_false_positives_on_holdout_split(holdout_report, stream):
    fp = holdout_report.fp(stream=stream)
    flagged = [f"{p.category}/{p.variant}: {p.text!r}" for p in holdout_report.false_positives(stream=stream)]
    assert fp.rate <= MAX_FP, f"false positive rate {fp}: {flagged}"
