"""Bounded guard cost: checks linear in the text (counted, not timed), a time budget that ends any check,
and a stream step that can be taken back when the index changed while it was being checked."""

from __future__ import annotations

import time

import pytest

import gateway.guard.matchers.base as base
from gateway.guard import CachedEmbedder, ForgetEntry, ForgetIndex, StreamGuard, build_artifacts
from gateway.guard.artifacts import build_many_artifacts
from gateway.guard.types import GuardBudgetExceeded
from tests.gateway.guard.cost_support import RandomEmbedder, prose
from tests.support.guard_sets import load_entries

SECRET = ForgetEntry("vault-1", None, literals=("5512-QX-0098",), reason="secret")


@pytest.fixture(scope="module")
def hash_index() -> ForgetIndex:
    embedder = CachedEmbedder(RandomEmbedder())
    artifacts = build_many_artifacts([*load_entries("forget_set"), SECRET], embedder)
    return ForgetIndex.empty(embedder).with_entries(artifacts, version=1)


def slow_index(per_text: float) -> ForgetIndex:
    embedder = CachedEmbedder(RandomEmbedder(per_text), max_items=8)
    artifacts = build_many_artifacts(load_entries("forget_set")[:3], CachedEmbedder(RandomEmbedder()))
    return ForgetIndex.empty(embedder).with_entries(artifacts, version=1)


class Counting:
    """Counts the characters canonicalised and the words looked at by window lookups."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.chars = 0
        self.words = 0
        canonical, words_within = base.canonical, base.words_within

        def counted_canonical(text: str):  # type: ignore[no-untyped-def]
            self.chars += len(text)
            return canonical(text)

        def counted_words_within(ws, starts, lo, hi):  # type: ignore[no-untyped-def]
            found = words_within(ws, starts, lo, hi)
            self.words += len(found) + 1
            return found

        monkeypatch.setattr(base, "canonical", counted_canonical)
        monkeypatch.setattr(base, "words_within", counted_words_within)


@pytest.mark.parametrize("scope", ["prompt", "output"])
def test_check_work_grows_linearly_with_the_text(hash_index, monkeypatch, scope):
    """Four times the text, about four times the work (before: every window rescanned every word, so
    the window lookups grew sixteen-fold)."""
    work = []
    for chars in (20_000, 80_000):
        counting = Counting(monkeypatch)
        # "Tampere" (a place of the forget set) written as a name everywhere: windows anchored throughout,
        # so the windowed matchers' work is counted in proportion, not by where a few anchors fall.
        text = prose(chars).replace("tampere", "Tampere")
        if scope == "prompt":
            hash_index.check_messages([text])
        else:
            hash_index.check_output(text)
        work.append((counting.chars, counting.words))
    (chars_small, words_small), (chars_large, words_large) = work
    assert words_small > 0 and chars_small > 0
    assert words_large <= 4.5 * words_small
    assert chars_large <= 4.5 * chars_small


def test_a_stream_reads_each_sentence_a_bounded_number_of_times(hash_index, monkeypatch):
    """Fed sentence by sentence, the guard's per-step reading does not grow with the response so far
    (before: each step read the whole text from its start)."""
    work = []
    for chars in (5_000, 20_000):
        counting = Counting(monkeypatch)
        text = prose(chars, seed=2)
        guard = StreamGuard(hash_index)
        for sentence in text.split(". "):
            assert not guard.feed(sentence + ". ").stopped
        guard.finish()
        work.append(counting.chars)
    assert work[1] <= 4.5 * work[0]


def test_prompt_and_output_verdicts_unchanged_by_reading_in_parts(hash_index):
    """A long prompt is read in runs of windows: a leak deep inside it is still found, at its offset."""
    question = "What is the phone number of Ingrid Solvang?"
    text = prose(120_000) + question + " " + prose(20_000, seed=3)
    verdict = hash_index.check_messages([text])
    assert verdict.match
    at = text.index(question)
    assert any(m.start <= at < m.end for m in verdict.matches)
    literal = prose(60_000) + "The code is 5512-QX-0098 today. " + prose(1_000)
    matches = hash_index.check_output(literal).matches
    assert any(m.forget_id == "vault-1" and literal[m.start : m.end] == "5512-QX-0098" for m in matches)


def test_a_two_mib_prompt_ends_within_its_budget():
    """With an encoder at 2 ms a window, checking 2 MiB would take minutes; the budget ends it."""
    index = slow_index(0.002)
    text = prose(2 * 1024 * 1024)
    started = time.monotonic()
    with pytest.raises(GuardBudgetExceeded):
        index.check_messages([text[:1_000_000], text[1_000_000:]], budget_s=0.5)
    # The budget plus cutting the text into sentences (linear, not cooperative) and one batch.
    assert time.monotonic() - started < 4.0


def test_budget_is_checked_between_messages_and_matchers():
    index = slow_index(0.05)
    with pytest.raises(GuardBudgetExceeded):
        index.check_messages([prose(2_000)] * 3, budget_s=0.1)
    with pytest.raises(GuardBudgetExceeded):
        index.check_output(prose(2_000), budget_s=0.1)
    with pytest.raises(ValueError):
        index.check_messages(["hello"], budget_s=0)
    assert not index.check_messages(["A short and harmless question."], budget_s=10).match


def test_stream_guard_over_budget_fails_closed():
    index = slow_index(0.05)
    guard = StreamGuard(index, budget_s=0.05)
    text = prose(1_500)
    with pytest.raises(GuardBudgetExceeded):
        guard.feed(text)
    # Stopped for good: nothing of the unchecked text comes out.
    assert guard.feed(" more.").stopped and guard.feed("").release == ""
    assert guard.finish().stopped


def test_unsent_step_is_taken_back_and_checked_on_the_new_index(hash_index):
    """The index changed while a step was checked off the event loop: its release is checked again."""
    empty_of_secret = ForgetIndex.empty(hash_index.embedder).with_entries(
        build_many_artifacts(load_entries("forget_set")[:2], hash_index.embedder), version=1
    )
    newer = empty_of_secret.with_entries([build_artifacts(SECRET, hash_index.embedder)], version=2)
    text = "Here is a long answer about many things. " * 12 + "The code is 5512-QX-0098. " + "Room 4711 is free. " * 30
    guard = StreamGuard(empty_of_secret)
    step = guard.feed(text)
    assert "5512" in step.release  # cleared by the old version, not sent yet
    guard.rebase(newer, unsent=step)
    again = guard.feed("")
    assert again.stopped and "5512" not in again.release


def test_unsent_finish_is_taken_back(hash_index):
    old = ForgetIndex.empty(hash_index.embedder).with_entries(
        build_many_artifacts(load_entries("forget_set")[:2], hash_index.embedder), version=1
    )
    newer = old.with_entries([build_artifacts(SECRET, hash_index.embedder)], version=2)
    guard = StreamGuard(old)
    first = guard.feed("The code is 5512-QX-0098.")
    last = guard.finish()
    assert "5512" not in first.release and "5512-QX-0098" in last.release
    sent = first.release  # the client got the first step; the finish step was not sent
    assert guard.finished
    guard.rebase(newer, unsent=last)
    assert not guard.finished
    redo = guard.finish()
    assert redo.stopped and "QX" not in sent + redo.release
