"""Acceptance of issue 3: on the held-out test split, recall >= 0.95 and false positives <= 5%."""

import pytest


def _warm(index, texts):
    # Embed every window of every probe in one batch: same vectors, a fraction of the time.
    windows = sorted({w.text for t in texts for w in index.windows(t)})
    index.embedder.encode(windows)


@pytest.fixture(scope="module")
def results(index, probes):
    leaks, cleans = probes("leaks_test"), probes("cleans_test")
    _warm(index, [p["text"] for p in leaks + cleans])
    caught = [(p, p["forget_id"] in {m.forget_id for m in index.check_output(p["text"]).matches}) for p in leaks]
    flagged = [(p, index.check_output(p["text"]).match) for p in cleans]
    return caught, flagged


def test_leak_recall_on_test_split(results):
    caught, _ = results
    recall = sum(ok for _, ok in caught) / len(caught)
    missed = [p["text"] for p, ok in caught if not ok]
    assert len(caught) >= 150
    assert recall >= 0.95, f"recall {recall:.3f}; missed: {missed}"


def test_false_positives_on_test_split(results):
    _, flagged = results
    rate = sum(f for _, f in flagged) / len(flagged)
    false = [p["text"] for p, f in flagged if f]
    assert len(flagged) >= 140
    assert rate <= 0.05, f"false positive rate {rate:.3f}: {false}"


def test_every_leak_category_is_caught(results):
    caught, _ = results
    by_category = {}
    for p, ok in caught:
        by_category.setdefault(p["category"], []).append(ok)
    assert set(by_category) == {"paraphrase", "split", "embedded", "literal", "verbatim"}
    for category, oks in by_category.items():
        assert sum(oks) / len(oks) >= 0.9, category


def test_prompt_probes_on_test_split(index, probes):
    leaks, cleans = probes("prompts_leak_test"), probes("prompts_clean_test")
    _warm(index, [p["text"] for p in leaks + cleans])
    recall = sum(p["forget_id"] in {m.forget_id for m in index.check_prompt(p["text"]).matches} for p in leaks) / len(
        leaks
    )
    fp = sum(index.check_prompt(p["text"]).match for p in cleans) / len(cleans)
    assert recall >= 0.95 and fp <= 0.05, (recall, fp)
