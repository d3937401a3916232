"""What the stream guard may release early (issue 16, item 1): text before the first anchor, sentences checked
alone whose pair can only stop their successor, numbers that have ended; and that nothing of a hit reaches the
client under any chunking, on the probe sets streamed (block), with the real embedder and forget set."""

from __future__ import annotations

import random

import numpy as np
import pytest

from gateway.guard import CachedEmbedder, ForgetEntry, ForgetIndex, GuardSettings, StreamGuard, build_artifacts
from gateway.guard.artifacts import build_many_artifacts
from gateway.guard.types import GuardMatch
from tests.gateway.guard.cost_support import RandomEmbedder
from tests.gateway.guard.test_stream import chunkings, run
from tests.support.guard_sets import load, load_entries

UNRELATED = (
    "Photosynthesis converts light energy into chemical energy in plants. Regular exercise improves both mood "
    "and sleep. Tea originated in China thousands of years ago."
)


def first_release_at(guard: StreamGuard, text: str) -> int:
    """How many characters the model had written (one a delta) when the client got its first one."""
    for i, ch in enumerate(text):
        if guard.feed(ch).release:
            return i + 1
    return len(text)


def test_unrelated_text_goes_out_before_its_first_sentence_ends(index):
    first_sentence = UNRELATED.index(".") + 1
    at = first_release_at(StreamGuard(index), UNRELATED)
    assert at < first_sentence  # before: the first sentence waited for the second one to end (117 here)


def test_a_sentence_without_anchors_does_not_wait_for_its_successor(index):
    guard = StreamGuard(index)
    text = "Photosynthesis converts light energy into chemical energy in plants. Regular exercise improves both mood "
    text += "and sleep in most of the people who keep it up for"  # past the literal hold, sentence not ended
    released = "".join(guard.feed(ch).release for ch in text)
    assert released.startswith("Photosynthesis converts light energy into chemical energy in plants. ")


def test_text_from_a_subjects_name_on_is_held_until_checked(index):
    guard = StreamGuard(index)
    text = "People often ask me about Ingrid Solvang and her life in the north of the country"
    released = "".join(guard.feed(ch).release for ch in text)
    assert released == "People often ask me about "  # everything before the name, nothing from it on


def test_a_number_that_ended_is_not_held(index):
    text = "Room 4711 is free today. " + "Rivers in spring are often high and cold. " * 6
    guard = StreamGuard(index)
    released = "".join(guard.feed(ch).release for ch in text)
    assert guard.held < 80 and text.startswith(released)


def test_a_number_still_being_written_is_held_across_words():
    """Spelled-out digits: the phone literal, written in words after a pause, is caught whole."""
    embedder = CachedEmbedder(RandomEmbedder())
    entry = ForgetEntry("p-1", None, literals=("+47 948 52 209",), reason="gdpr")
    index = ForgetIndex.empty(embedder).with_entries([build_artifacts(entry, embedder)], 1)
    text = "Call nine four eight, five two, two zero nine today."
    for chunks in chunkings(text, 3):
        released, step, _ = run(StreamGuard(index), text, chunks)
        assert step.stopped and "nine" not in released


class CountingEmbedder(RandomEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return super().encode(texts)


def test_only_anchored_windows_are_embedded_and_spans_start_at_the_anchor():
    """The first stage: a window is embedded only with an anchor."""
    counting = CountingEmbedder()
    embedder = CachedEmbedder(counting)
    artifacts = build_many_artifacts(load_entries("forget_set")[:2], CachedEmbedder(RandomEmbedder()))
    index = ForgetIndex.empty(embedder).with_entries(artifacts, 1)
    text = "Rivers are high in spring. People ask about Tampere often."
    checked = index.prepare(text, index.windows(text))
    assert checked.anchored == (False, True, True)  # "Tampere" is a fact term of a row
    assert checked.anchor_start(0, len(text)) == text.index("Tampere")
    index.check_output(text)
    assert counting.texts and all("Tampere" in t for t in counting.texts)
    full = ForgetIndex.empty(CachedEmbedder(CountingEmbedder()), GuardSettings(semantic_anchored_only=False))
    full_checked = full.with_entries(artifacts, 1).prepare(text, index.windows(text))
    assert full_checked.anchored == (True, True, True) and full_checked.anchor_start(0, len(text)) == 0


def leak_texts() -> list[tuple[str, str]]:
    probes = load("leaks_test")
    rng = random.Random(16)
    return [(p["forget_id"], p["text"]) for p in rng.sample(probes, 24)]


@pytest.mark.parametrize("seed", [0, 1])
def test_streamed_probes_release_nothing_of_a_hit_under_any_chunking(index, seed):
    """Every chunking (one character at a time, the whole text, random pieces): the client gets a prefix of
    the text that ends before the first character of every match the stream acted on, and before every
    match the whole-text path finds for the same entry."""
    for forget_id, text in leak_texts():
        whole = StreamGuard(index).guard_all(text)
        assert whole.stopped, text
        for chunks in list(chunkings(text, seed))[: 3 if seed else 5]:
            released, step, _ = run(StreamGuard(index), text, chunks)
            assert step.stopped and step.verdict is not None, (text, chunks[:5])
            assert text.startswith(released)
            acted: list[GuardMatch] = [*step.verdict.matches, *whole.verdict.matches]
            assert len(released) <= min(m.start for m in acted), (text, released)
        assert any(m.forget_id == forget_id for m in whole.verdict.matches)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_slow_stream_is_checked_delta_by_delta(index):
    """Deltas that come slowly are checked once the last check is CHECK_AFTER_S ago, not only every
    CHECK_EVERY_CHARS characters: a slow token rate does not stretch the gaps the client sees."""
    from gateway.guard.stream import CHECK_AFTER_S, CHECK_EVERY_CHARS, EAGER_FIRST_CHARS

    words = UNRELATED.split(" ")
    deltas = [words[0]] + [" " + w for w in words[1:]]
    fast, slow = FakeClock(), FakeClock()
    guards = {"fast": (StreamGuard(index, clock=fast), fast), "slow": (StreamGuard(index, clock=slow), slow)}
    checked: dict[str, list[int]] = {"fast": [], "slow": []}
    written = 0
    for delta in deltas:
        written += len(delta)
        for name, (guard, clock) in guards.items():
            clock.now += 0.005 if name == "fast" else 1.1 * CHECK_AFTER_S
            if written > EAGER_FIRST_CHARS and guard.will_check(delta):
                checked[name].append(written)
            guard.feed(delta)
    # Fast deltas wait for CHECK_EVERY_CHARS characters; slow ones are checked as they come.
    assert all(b - a >= CHECK_EVERY_CHARS for a, b in zip(checked["fast"], checked["fast"][1:]))
    ends = [len("".join(deltas[: i + 1])) for i in range(len(deltas))]
    assert checked["slow"] == [e for e in ends if e > EAGER_FIRST_CHARS]
    assert len(checked["slow"]) > len(checked["fast"])
    for name, (guard, _) in guards.items():
        assert guard.text == UNRELATED, name


def test_the_time_rule_waits_longer_when_many_streams_are_open(index):
    """With more than TIMED_STREAMS guards open, a delta waits proportionally longer for a check made for
    time: checks made for time cost the process a bounded amount however many streams there are."""
    from gateway.guard.stream import CHECK_AFTER_S, EAGER_FIRST_CHARS, TIMED_STREAMS

    clock = FakeClock()
    guard = StreamGuard(index, clock=clock)
    guard.feed(UNRELATED[: EAGER_FIRST_CHARS + 1])  # past the eager start
    clock.now += 1.1 * CHECK_AFTER_S
    assert guard.will_check(" a")
    others = [StreamGuard(index) for _ in range(4 * TIMED_STREAMS)]
    assert not guard.will_check(" a")  # 33 open: the wait is about four times as long
    clock.now += 4 * CHECK_AFTER_S
    assert guard.will_check(" a")
    for other in others:
        other.finish()
    clock.now = 0.0
    guard.feed(" b")
    clock.now += 1.1 * CHECK_AFTER_S
    assert guard.will_check(" a")  # the others finished: back to CHECK_AFTER_S
