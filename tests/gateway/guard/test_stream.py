"""The streaming guard: nothing forgotten is released, whatever the chunking; clean text passes unchanged."""

import random

import pytest

from gateway.guard import REDACTION_TEXT, ForgetEntry, ForgetIndex, StreamGuard, build_artifacts

LEAK = (
    "Sure, here is a short summary of what I know. Ingrid Solvang can be reached on 948 52 209 if you "
    "need her. Let me know if you want anything else."
)
CLEAN = (
    "The Pacific is the largest ocean on Earth. Copper is an excellent conductor of electricity. "
    "Tampere is a city in Finland. Many birds migrate south before the winter begins.\nThat is all."
)


def run(guard: StreamGuard, text: str, chunks: list[int]):
    released, pos, max_held = "", 0, 0
    for size in chunks:
        step = guard.feed(text[pos : pos + size])
        pos += size
        released += step.release
        max_held = max(max_held, guard.held)
        if step.stopped:
            return released, step, max_held
    step = guard.finish()
    return released + step.release, step, max_held


def chunkings(text: str, seed: int):
    rng = random.Random(seed)
    yield [1] * len(text)
    yield [len(text)]
    for _ in range(3):
        sizes, left = [], len(text)
        while left:
            sizes.append(min(left, rng.randint(1, 12)))
            left -= sizes[-1]
        yield sizes


@pytest.mark.parametrize("seed", [0, 1])
def test_block_releases_nothing_of_the_leak_under_any_chunking(index, seed):
    for chunks in chunkings(LEAK, seed):
        released, step, _ = run(StreamGuard(index), LEAK, chunks)
        assert step.stopped and step.verdict is not None and step.verdict.action == "block"
        assert "948" not in released and "Solvang" not in released
        assert LEAK.startswith(released)


def test_clean_text_is_released_unchanged_within_the_hold_back_bound(index):
    for chunks in chunkings(CLEAN, 5):
        guard = StreamGuard(index)
        released, step, max_held = run(guard, CLEAN, chunks)
        assert not step.stopped and released == CLEAN
        assert max_held <= guard.hold_chars + max(chunks)


def test_hold_back_is_bounded_on_long_output(index):
    text = "word " * 400
    guard = StreamGuard(index)
    released, _step, max_held = run(guard, text, [3] * (len(text) // 3 + 1))
    assert released == text
    assert max_held <= guard.hold_chars + 3 and guard.hold_chars == index.settings.hold_chars


def test_semantic_leak_split_over_sentences_and_tokens(index):
    text = (
        "People often ask me about Ingrid Solvang. She was born in Tampere, in Finland, and grew up "
        "there. Anything else?"
    )
    released, step, _ = run(StreamGuard(index), text, [2] * (len(text) // 2 + 1))
    assert step.stopped and "Tampere" not in released


@pytest.fixture(scope="module")
def redact_index(embedder, artifacts):
    entry = ForgetEntry("secret-1", None, literals=("sk-live-7f3a9c2b",), action="redact", reason="secret")
    return ForgetIndex.empty(embedder).with_entries([*artifacts, build_artifacts(entry, embedder)], version=31)


def test_redact_replaces_the_span_and_keeps_the_rest(redact_index):
    text = "Use the key sk-live-7f3a9c2b for the staging API. Rotate it monthly. The docs are online."
    for chunks in ([1] * len(text), [len(text)], [5] * 20):
        guard = StreamGuard(redact_index)
        released, step, _ = run(guard, text, chunks)
        assert not step.stopped
        assert released == text.replace("sk-live-7f3a9c2b", REDACTION_TEXT)


def test_non_streamed_response_goes_through_the_same_path(index, redact_index):
    blocked = StreamGuard(index).guard_all(LEAK)
    assert blocked.stopped and blocked.text == "" and blocked.verdict.action == "block"
    redacted = StreamGuard(redact_index).guard_all("key: SK-LIVE-7F3A9C2B.")
    assert redacted.text == f"key: {REDACTION_TEXT}." and redacted.verdict.action == "redact"
    assert StreamGuard(index).guard_all(CLEAN).text == CLEAN


def test_feed_after_finish_is_an_error(index):
    guard = StreamGuard(index)
    guard.feed("hello")
    guard.finish()
    with pytest.raises(ValueError):
        guard.feed("more")


# --- a newer index mid-stream (guarantee 1: enforced from the acknowledgement on) -------------

PHONE_ENTRY = ForgetEntry("late-1", None, literals=("+47 912 33 457",), reason="gdpr")
PHONE_TEXT = "Let me think about it for a moment. You can reach her on +47 912 33 457 most days, mornings only."


@pytest.fixture(scope="module")
def phone_index(embedder):
    return ForgetIndex.empty(embedder).with_entries([build_artifacts(PHONE_ENTRY, embedder)], version=1)


@pytest.fixture(scope="module")
def empty_index(embedder):
    return ForgetIndex.empty(embedder)


def test_rebase_rechecks_text_still_held_back(embedder, phone_index):
    """The old version holds a number still being written (it has a phone number of its own); the new one
    is enforced on everything still held, so the rest of the number never goes out."""
    other = ForgetEntry("other-1", None, literals=("+1 202 555 0143",), reason="gdpr")
    old = ForgetIndex.empty(embedder).with_entries([build_artifacts(other, embedder)], version=1)
    guard = StreamGuard(old)
    cut = PHONE_TEXT.index("33 457") + 2
    first = guard.feed(PHONE_TEXT[:cut])  # nothing matches the old version: only the hold-back keeps text in
    assert not first.stopped and "33" not in first.release
    guard.rebase(phone_index)
    step = guard.feed(PHONE_TEXT[cut:])
    last = step if step.stopped else guard.finish()
    assert last.stopped and last.verdict.index_version == 1
    assert "33 457" not in first.release + step.release + last.release


@pytest.mark.parametrize("at", [10, 40, 60, 70])
def test_rebase_at_any_point_releases_nothing_forgotten_afterwards(empty_index, phone_index, at):
    """Index swapped after `at` characters were fed, one character per delta: everything released from
    then on was checked against the new version, including a literal that began before the swap."""
    guard = StreamGuard(empty_index)
    before = after = ""
    stopped = False
    for i, ch in enumerate(PHONE_TEXT):
        if i == at:
            guard.rebase(phone_index)
        step = guard.feed(ch)
        if i < at:
            before += step.release
        else:
            after += step.release
        if step.stopped:
            stopped = True
            break
    assert stopped
    released = before + after
    assert PHONE_TEXT.startswith(released)
    assert "912 33 457" not in released and "33 457" not in after


def test_primed_guard_catches_a_leak_that_began_in_released_text(phone_index):
    sent = "Let me think. You can reach her on +47 912"  # already with the client, unguarded
    guard = StreamGuard(phone_index, released=sent)
    assert guard.held == 0
    step = guard.feed(" 33 457 most days.")
    assert step.stopped and step.release == ""
    assert step.verdict.matches[0].kind == "literal"


def test_primed_guard_does_not_recheck_what_it_cannot_recall(phone_index):
    sent = "Call +47 912 33 457 now. " + "Benign words follow here. " * 3
    guard = StreamGuard(phone_index, released=sent)
    step = guard.feed("And more benign text.")
    last = guard.finish()
    assert not step.stopped and not last.stopped  # the number went out before the guard existed
    assert step.release + last.release == "And more benign text."


def test_prime_chars_covers_every_window_reaching_past_the_released_text(phone_index):
    assert StreamGuard.prime_chars(phone_index.settings) >= phone_index.settings.hold_chars + phone_index.lookback


def test_rebase_rechecks_semantic_windows_already_checked_against_the_old_version(empty_index, index):
    # The old version forgets nothing, so only the token being written is held ("Tampere"); the sentence
    # naming the subject went out, and its unit and pair windows were checked against the old version.
    guard = StreamGuard(empty_index)
    first = guard.feed("People often ask me about Ingrid Solvang. She was born in Tampere")
    assert "Tampere" not in first.release and "Solvang" in first.release
    guard.rebase(index)
    step = guard.feed(", in Finland, and grew up there. Anything else?")
    last = step if step.stopped else guard.finish()
    assert last.stopped and "Tampere" not in first.release + step.release + last.release


# --- redact: a passage the model keeps reciting after a redaction ------------------------------

PASSAGE = (
    "The harbour charter of Velmora was drafted in the winter of eighteen seventeen by the lamplighter "
    "guild, sealed with green wax, and signed by the night watch before the ice broke on the fjord."
)
PASSAGE_WORDS = PASSAGE.rstrip(".").replace(",", "").split()
BENIGN_TAIL = " Anyway, that is the story as I remember it. Rivers in spring are often high."


@pytest.fixture(scope="module")
def passage_index(embedder):
    entries = [
        ForgetEntry("passage-unnamed", None, texts=(PASSAGE,), action="redact", reason="correction"),
        ForgetEntry(
            "passage-named",
            "Odalys Trevanne",
            texts=(PASSAGE.replace("Velmora", "Brask"),),
            action="redact",
            reason="gdpr",
        ),
    ]
    return ForgetIndex.empty(embedder).with_entries([build_artifacts(e, embedder) for e in entries], version=7)


def recited_runs(released: str, words: list[str], n: int = 2) -> list[str]:
    """Runs of `n` or more consecutive passage words that reached the client."""
    out = [w.strip(".,").lower() for w in released.replace(REDACTION_TEXT, " ").split()]
    have = {" ".join(out[i : i + n]) for i in range(len(out) - n + 1)}
    lower = [w.lower() for w in words]
    return [" ".join(lower[i : i + n]) for i in range(len(lower) - n + 1) if " ".join(lower[i : i + n]) in have]


@pytest.mark.parametrize("cut", [9, 12, 14, 16, 20, len(PASSAGE_WORDS)])
@pytest.mark.parametrize("named", [False, True])
def test_redact_takes_out_the_whole_recited_passage_not_only_its_first_run(passage_index, cut, named):
    """The verbatim matcher reads the model's text, so `[redacted]` does not cut the run: every word the
    model goes on reciting is redacted too, however far it recites, and the text after it is kept."""
    words = PASSAGE_WORDS[:cut]
    if named:
        words = [("Brask" if w == "Velmora" else w) for w in words]
        intro = "Odalys Trevanne once told me this: "
    else:
        intro = "Here is the old text: "
    text = intro + " ".join(words) + "." + BENIGN_TAIL
    expected = intro + REDACTION_TEXT + "." + BENIGN_TAIL
    for chunks in ([3] * (len(text) // 3 + 1), [1] * len(text), [len(text)], *chunkings(text, cut)):
        released, step, _ = run(StreamGuard(passage_index), text, chunks)
        assert not step.stopped and released == expected
        assert recited_runs(released, words) == []


def test_redact_marks_a_run_that_resumes_after_release_once_more(passage_index):
    """A recitation interrupted by enough benign text for the first marker to go out: the resumed part is a
    new run, redacted on its own; nothing of the passage is released either time."""
    first, second = PASSAGE_WORDS[:10], PASSAGE_WORDS[10:]
    filler = " ".join(["Rivers in spring are often high, and the ferries wait."] * 12)
    text = "Here it is: " + " ".join(first) + ". " + filler + " Then: " + " ".join(second) + "." + BENIGN_TAIL
    released, step, _ = run(StreamGuard(passage_index), text, [3] * (len(text) // 3 + 1))
    assert not step.stopped and released.count(REDACTION_TEXT) == 2
    assert recited_runs(released, PASSAGE_WORDS) == []


def test_redaction_map_between_model_text_and_output():
    from gateway.guard.stream import _Redactions

    raw = "aaaa SECRET bbbb MORE cccc"
    r = _Redactions()
    r.add(5, 11)
    r.add(17, 21)
    out = r.apply(raw)
    assert out == f"aaaa {REDACTION_TEXT} bbbb {REDACTION_TEXT} cccc"
    marker = len(REDACTION_TEXT)
    assert r.to_output(5) == 5 and r.to_output(8) == 5 and r.to_output(11) == 5 + marker
    assert r.to_raw(5 + marker) == 11 and r.to_raw(7) == 5 and r.to_raw(out.index("cccc")) == raw.index("cccc")
    assert r.snap(8) == 5 and r.snap(5 + marker) == 5 + marker
    assert r.covers(6, 10) and not r.covers(4, 10)
    r.add(11, 13)  # touching spans join: one marker
    assert r.spans == [(5, 13), (17, 21)] and r.apply(raw).count(REDACTION_TEXT) == 2
