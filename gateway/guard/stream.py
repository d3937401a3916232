"""The streaming guard: holds back a bounded tail of a response and releases text only once it is checked."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from gateway.guard.index import ForgetIndex
from gateway.guard.matchers import CheckedText
from gateway.guard.settings import GuardSettings
from gateway.guard.text import Unit, pair_window, reading_span, split_units, unit_window
from gateway.guard.types import REDACTION_TEXT, GuardBudgetExceeded, GuardMatch, GuardVerdict

# Redactions change the text, which is then checked again; a text that keeps matching after this many
# rounds is blocked rather than looped on.
_MAX_REDACT_ROUNDS = 8
# A step checks once this many characters arrived since the last check (and at the end): every check reads
# the held text and its lookback in every view, so checking each 4-character token would do that work four
# times over. What is not checked is not released: this changes when text goes out, never what (any
# chunking of a response is guarded alike), and it delays a release by at most this many characters.
CHECK_EVERY_CHARS = 16
# ... or once the last check is this long ago (a slow stream: with a token every 36 ms, a delta would
# otherwise wait four tokens for its check, and a client would see the stream in bursts; now each token is
# checked as it comes). A check costs about half a millisecond on unrelated text; with more than
# TIMED_STREAMS streams open in the process the wait grows in proportion, so checks made for time cost at
# most about TIMED_STREAMS * 40 a second (a fifth of a core) however many streams there are. Fast streams
# are checked every CHECK_EVERY_CHARS characters.
CHECK_AFTER_S = 0.025
TIMED_STREAMS = 8
_OPEN: weakref.WeakSet[StreamGuard] = weakref.WeakSet()  # guards not finished (a dropped one is collected)
# Until the first release, every delta is checked, up to this many characters: the first words go out as
# soon as the token after them shows they are whole (the time to the first token is what users notice).
EAGER_FIRST_CHARS = 32
# Matches of these kinds cover a whole window (a unit or a pair of units), not an exact span.
_WINDOW_KINDS = frozenset({"semantic", "cooccur"})


def _exact_first(matches: list[GuardMatch]) -> list[GuardMatch]:
    """The redactions to make now. A literal or verbatim match is an exact span; a semantic match is a whole
    window (a unit or a pair). A window that overlaps an exact span waits: the exact span is redacted first
    and the window, re-cut, is checked again, so the rest of it stays unless it still matches on its own."""
    exact = [m for m in matches if m.kind not in _WINDOW_KINDS]
    return exact + [
        m for m in matches if m.kind in _WINDOW_KINDS and not any(m.start < x.end and x.start < m.end for x in exact)
    ]


def _check_bounds(index: ForgetIndex, hold_chars: int | None) -> None:
    bound = index.settings.hold_chars
    if hold_chars is not None and hold_chars < bound:
        raise ValueError(f"hold_chars {hold_chars} is below what the index's windows need ({bound})")
    if index.literal_reach > bound:
        raise ValueError("the index's literal reach exceeds its hold-back bound")


@dataclass(frozen=True)
class StreamStep:
    release: str  # text the caller may send now
    stopped: bool  # a block match ended the response: send REFUSAL_TEXT, finish_reason "content_filter"
    verdict: GuardVerdict | None  # the matches acted on in this step, if any


@dataclass(frozen=True)
class GuardedText:
    """A whole response after the guard: what may be sent, and why it differs from the model's text."""

    text: str
    stopped: bool
    verdict: GuardVerdict


class _Redactions:
    """Redacted spans of the model's text (sorted, disjoint, never touching) and the map between that text
    and what the client gets: each span shows as one REDACTION_TEXT. Spans only grow or join, and never
    start before the released point, so the released part of the output never changes."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []

    def add(self, start: int, end: int) -> None:
        merged: list[tuple[int, int]] = []
        for s, e in sorted([*self.spans, (start, end)]):
            if merged and s <= merged[-1][1]:  # overlapping or touching: one span, one marker
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self.spans = merged

    def covers(self, start: int, end: int) -> bool:
        return any(s <= start and end <= e for s, e in self.spans)

    def apply(self, raw: str) -> str:
        parts, at = [], 0
        for s, e in self.spans:
            parts += [raw[at:s], REDACTION_TEXT]
            at = e
        parts.append(raw[at:])
        return "".join(parts)

    def to_output(self, pos: int) -> int:
        """Output position of a raw position; inside a span means the start of its marker."""
        shift = 0
        for s, e in self.spans:
            if pos >= e:
                shift += len(REDACTION_TEXT) - (e - s)
            elif pos > s:
                return s + shift
            else:
                break
        return pos + shift

    def to_raw(self, pos: int) -> int:
        """Raw position of an output position; inside a marker means the start of its span."""
        shift = 0
        for s, e in self.spans:
            marker = s + shift
            if pos >= marker + len(REDACTION_TEXT):
                shift += len(REDACTION_TEXT) - (e - s)
            elif pos > marker:
                return s
            else:
                break
        return pos - shift

    def snap(self, pos: int) -> int:
        """An output position moved back to the start of the marker it falls inside, if any."""
        return self.to_output(self.to_raw(pos))


class StreamGuard:
    """One per response. Feed the model's deltas, send what comes back; `finish()` at the end.

    A character is released only when no match that is still possible can cover it. Only what could be
    forgotten content is held:
    - windowed (semantic, co-occurrence): windows are units (sentences, cut at `unit_max_chars`) and pairs of
      neighbouring units; a windowed hit begins at its window's first anchor (gateway.guard.anchors: a word
      of a subject's name, a fact term of any row, a number or leet token, an encoded run). So from the
      last complete unit on (its pair with the next one is still to come), text before the first anchor
      and before the token still being written goes at once; a unit without anchors does not wait for its
      successor (their pair can only stop the successor), one with an anchor waits from that anchor on;
    - a literal spans at most `index.literal_reach` characters; of those, what could still begin a match is
      held (in every view: the last longest-key characters, a word, a number or an encoded run still being
      written; a number that has ended, at a whole word that is not a number, is decided; digit keys hold
      only the token being written and a number not yet ended: LiteralMatcher.hold_from);
    - verbatim: the run of index shingles still open at the end and the last words that can still begin a
      shingle (NgramMatcher.verbatim_hold_from), within the last `hold_chars` characters.
    The hold-back therefore never exceeds `hold_chars` = max(2 * `unit_max_chars`, literal reach bound):
    768 characters by default; unrelated prose holds back about one literal key (with digit keys only: the
    token being written) and a word or two where they begin a forgotten sentence.
    Nothing of a match reaches the client under any chunking, in `block` and `redact`: each rule holds
    from the first character a match not yet decided could cover (tests/gateway/guard/test_stream*.py).

    Redactions (`redact` entries): the literal and verbatim matchers always read the model's own text, so a
    passage the model goes on reciting after a redaction is still one verbatim run and its continuation is
    redacted too; the client gets that text with each redacted span (joined with any touching one) shown
    once as REDACTION_TEXT. Semantic windows read the redacted text, so a window is not hit again for a
    leak already taken out of it.

    Each step's check (its duration) and the matches it acts on go to `index.observer`.

    >>> guard = StreamGuard(index)
    >>> for delta in model_deltas:
    ...     step = guard.feed(delta); send(step.release)
    ...     if step.stopped: send(REFUSAL_TEXT); break
    ... else: send(guard.finish().release)
    """

    def __init__(
        self,
        index: ForgetIndex,
        hold_chars: int | None = None,
        *,
        strict: bool = False,
        released: str = "",
        budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`released`: text the client already has from before this guard existed (a stream that began while
        the index was empty). It is context only: windows reaching past it are checked, so a leak that
        started in it is stopped at its first unreleased character; nothing in it can be taken back.
        `budget_s`: a step whose check runs longer raises GuardBudgetExceeded and stops the guard (it
        releases nothing more: text that was not checked is never released).
        `clock`: seconds, for CHECK_AFTER_S."""
        _check_bounds(index, hold_chars)
        if budget_s is not None and budget_s <= 0:
            raise ValueError("budget_s must be positive")
        self.index = index
        self.hold_chars = hold_chars if hold_chars is not None else index.settings.hold_chars
        self.strict = strict
        self.budget_s = budget_s
        self._deadline: float | None = None  # of the step being checked
        self._raw = released  # the model's text
        self._redactions = _Redactions()  # spans of _raw that the client gets as REDACTION_TEXT
        self._text = released  # what the client gets: _raw with the redactions applied
        self._released = len(released)  # in _text
        self._units: list[Unit] = []  # complete units tiling text[:scan]
        self._checked = 0  # units whose single and pair windows are checked
        self._stopped = False
        self._finished = False
        self._unchecked = 0  # characters fed since the last check; -1: check at the next step whatever
        self._last_check = clock()  # when the last step checked (for CHECK_AFTER_S)
        self._clock = clock
        self._primed = len(released)  # released text given at creation: not released by this guard
        _OPEN.add(self)
        self._acted: list[GuardMatch] = []
        self._tail: tuple[int, int, CheckedText] = (0, -1, index.prepare(""))  # see _matches
        if released:
            # Complete units of released text all end inside it: their windows could only yield matches
            # the guard must drop. The undecided tail unit runs on into new text and is checked with it.
            self._units = split_units(released, 0, index.settings.unit_max_chars, False)
            self._checked = len(self._units)

    @staticmethod
    def prime_chars(settings: GuardSettings) -> int:
        """How much already-released text `released=` needs: a window that reaches the first unreleased
        character starts at most `hold_chars` before it (a unit pair, or a whole-text matcher's lookback,
        which the index keeps within the hold-back); twice that leaves room for unit and word edges."""
        return 2 * settings.hold_chars

    def rebase(self, index: ForgetIndex, *, unsent: StreamStep | None = None) -> None:
        """Enforce `index` (a newer version of the forget index) from now on: every window that covers text
        not yet released is checked again against it at the next `feed`/`finish`, so nothing released
        after this call escaped the new version. Text released before it is not revisited.

        `unsent`: the last step, if its release was not sent (the index changed while that step was being
        checked off the event loop): its text is taken back and checked again, and after a `finish` step
        the guard is open again (call `finish()` once more)."""
        if unsent is not None and not unsent.stopped:
            self._released -= len(unsent.release)
            self._finished = False
            _OPEN.add(self)
            self._unchecked = -1
        if self._finished or self._stopped or index is self.index:
            return
        _check_bounds(index, None)
        self.index = index
        self.hold_chars = max(self.hold_chars, index.settings.hold_chars)
        self._rewind()
        self._unchecked = -1

    @property
    def text(self) -> str:
        """Everything the guard has accepted so far, redactions applied (released or held)."""
        return self._text

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def held(self) -> int:
        return len(self._text) - self._released

    def will_check(self, delta: str) -> bool:
        """Whether `feed(delta)` would check (and so may release) rather than only take the delta in (see
        `take`): CHECK_EVERY_CHARS characters since the last check, the last check CHECK_AFTER_S ago,
        or nothing released yet within EAGER_FIRST_CHARS."""
        if self._finished or self._stopped:
            return False
        if self._unchecked < 0 or self._unchecked + len(delta) >= CHECK_EVERY_CHARS:
            return True
        if self._released == self._primed and len(self._text) - self._primed + len(delta) <= EAGER_FIRST_CHARS:
            return True
        wait = CHECK_AFTER_S * max(1.0, len(_OPEN) / TIMED_STREAMS)
        return self._clock() - self._last_check >= wait

    def take(self, delta: str) -> StreamStep:
        """Take `delta` in without checking (nothing new is released: the same as a caller joining it to
        the next delta). A caller that runs checks elsewhere (a thread) takes the deltas `will_check`
        declines where it is: they cost nothing."""
        if self._finished:
            raise ValueError("feed() after finish()")
        if self._stopped:
            return StreamStep("", True, None)
        self._raw += delta
        self._text += delta  # redacted spans all lie in text already seen
        if self._unchecked >= 0:  # -1 (check at the next step whatever) stays
            self._unchecked += len(delta)
        return StreamStep("", False, None)

    def feed(self, delta: str) -> StreamStep:
        if self._finished:
            raise ValueError("feed() after finish()")
        if self._stopped:
            return StreamStep("", True, None)
        if not self.will_check(delta):
            return self.take(delta)
        self._raw += delta
        self._text += delta  # redacted spans all lie in text already seen
        self._unchecked = 0
        self._last_check = self._clock()
        return self._advance(final=False)

    def finish(self) -> StreamStep:
        """Check the tail as final (the last unit is complete now) and release it."""
        if self._finished:
            raise ValueError("finish() called twice")
        if self._stopped:
            self._finished = True
            return StreamStep("", True, None)
        step = self._advance(final=True)
        self._finished = True
        _OPEN.discard(self)
        return step

    def guard_all(self, text: str) -> GuardedText:
        """A whole (non-streamed) response through exactly the streaming path."""
        first = self.feed(text)
        last = first if first.stopped else self.finish()
        released = first.release + last.release
        verdict = GuardVerdict(tuple(self._acted), self.index.version)
        return GuardedText(released, last.stopped, verdict)

    # --- internals ----------------------------------------------------------------------------

    def _advance(self, final: bool) -> StreamStep:
        acted: list[GuardMatch] = []
        for _ in range(_MAX_REDACT_ROUNDS):
            matches = self._check(final)
            if not matches:
                break
            if not any(m.action == "block" for m in matches):
                matches = _exact_first(matches)
            self.index.observer.hit("output", matches)
            acted += matches
            if any(m.action == "block" for m in matches):
                return self._stop(acted)
            self._redact(matches)
        else:
            return self._stop(acted)
        self._acted += acted
        end = len(self._text) if final else self._redactions.snap(self._release_point())
        release = self._text[self._released : end] if end > self._released else ""
        self._released = max(self._released, end)
        verdict = GuardVerdict(tuple(acted), self.index.version) if acted else None
        return StreamStep(release, False, verdict)

    def _stop(self, acted: list[GuardMatch]) -> StreamStep:
        self._stopped = True
        _OPEN.discard(self)
        self._acted += acted
        return StreamStep("", True, GuardVerdict(tuple(acted), self.index.version))

    def _check(self, final: bool) -> list[GuardMatch]:
        """The matches of one step, timed as one output check for the index's observer. Over its budget
        the guard stops for good (fail closed: windows of this step may be marked checked already)."""
        started = time.perf_counter()
        self._deadline = None if self.budget_s is None else time.monotonic() + self.budget_s
        try:
            return self._matches(final)
        except GuardBudgetExceeded:
            self._stopped = True
            _OPEN.discard(self)
            raise
        finally:
            self.index.observer.checked("output", time.perf_counter() - started)

    def _matches(self, final: bool) -> list[GuardMatch]:
        text = self._text
        scan = self._units[-1].end if self._units else 0
        self._units += split_units(text, scan, self.index.settings.unit_max_chars, final)
        windows = []
        for i in range(self._checked, len(self._units)):
            w = unit_window(text, self._units[i])
            if w is not None:
                windows.append(w)
            if i:
                p = pair_window(text, self._units[i - 1], self._units[i])
                if p is not None:
                    windows.append(p)
        self._checked = len(self._units)
        redactions, released = self._redactions, self._redactions.to_raw(self._released)
        # Every match in the model's text's coordinates, clipped to what is not released yet.
        matches = []
        if windows:
            # Only the new windows' part of the text is read, so a step costs what they hold, not the whole
            # response so far.
            lo, hi = reading_span(text, windows)
            local = [w.shifted(-lo) for w in windows]
            found = self.index.find(text[lo:hi], local, windowed=True, strict=self.strict, deadline=self._deadline)
            for m in (m.shifted(lo) for m in found):
                if m.end > self._released:
                    matches.append(m.clipped(max(redactions.to_raw(m.start), released), redactions.to_raw(m.end)))
        # Whole-text matchers read the model's text: the held part plus their lookback before it, starting at
        # a space so that word boundaries at the left edge are real ones. The literal matcher needs
        # `literal_reach` of it. The verbatim matcher needs the whole `lookback` only where a run can be: a
        # run that reaches unreleased text has a shingle there whose words all lie within the last ngram_n
        # words before the released point (the short tail has them), and a run already redacted goes on
        # being one. Everywhere else the short tail decides the same as the long one, at less cost.
        raw = self._raw
        lo = self._tail_start(released, self.index.literal_reach, self.index.settings.ngram_n)
        tail = self.index.prepare(raw[lo:], strict=self.strict, deadline=self._deadline)
        if lo and (redactions.spans or self.index.verbatim_context_needed(tail)):
            lo = self._tail_start(released, self.index.lookback, self.index.settings.ngram_n)
            tail = self.index.prepare(raw[lo:], strict=self.strict, deadline=self._deadline)
        self._tail = (lo, len(raw), tail)  # its views also tell _release_point what may still begin a literal
        for m in self.index.find_in(tail, windowed=False):
            m = m.shifted(lo)
            if m.end > released:
                m = m.clipped(max(m.start, released), m.end)
                if not redactions.covers(m.start, m.end):  # already redacted (a run seen again)
                    matches.append(m)
        return [m for m in matches if m.end > m.start]

    def _tail_start(self, released: int, reach: int, words: int) -> int:
        """Where the whole-text matchers' tail starts: `reach` characters before `released` (model-text
        coordinates) or earlier, so that at least `words` whitespace-separated tokens lie before it, moved
        back to just after a space."""
        raw = self._raw
        lo = max(0, released - reach)
        at = released
        for _ in range(words + 1):  # the token `released` may cut, then `words` whole ones
            if at <= 0:
                break
            at = raw.rfind(" ", 0, at - 1) + 1
        lo = min(lo, at)
        if lo:
            space = raw.rfind(" ", max(0, lo - 64), lo)
            lo = space + 1 if space >= 0 else lo
        return lo

    def _redact(self, matches: list[GuardMatch]) -> None:
        """Redact the matches' spans (model-text coordinates, none before the released point)."""
        for m in matches:
            self._redactions.add(m.start, m.end)
        self._text = self._redactions.apply(self._raw)
        # The output is unchanged before the marker of the span holding the earliest change (a span it
        # joined may start earlier, but its marker text is the same).
        first = self._redactions.to_output(min(m.start for m in matches))
        # Units at or after the first change are re-cut and re-checked.
        self._units = [u for u in self._units if u.end < first]
        self._checked = min(self._checked, len(self._units))

    def _rewind(self) -> None:
        """Mark unchecked every unit that reaches past the released text, so its unit window and its pair
        with the unit before are checked again; windows wholly inside released text are not (their
        matches could only be dropped). Whole-text matchers look at all unreleased text on every check."""
        keep = len(self._units)
        while keep and self._units[keep - 1].end > self._released:
            keep -= 1
        self._checked = min(self._checked, keep)

    def _release_point(self) -> int:
        """How far the output may go now (output coordinates; the caller snaps it out of a marker)."""
        redactions = self._redactions
        # Windowed (semantic, co-occurrence): the windows still to come are the last complete unit's pair
        # with the next one, and those of the unit being written. A hit on any of them begins at its
        # first anchor (gateway.guard.anchors), so everything before the first anchor from the last
        # complete unit on, or before the token still being written, can go.
        start = self._units[-1].start if self._units else 0
        r = self.index.anchor_hold_from(self._text, start)
        # Literal and verbatim read the model's text. A literal not yet complete starts within its last
        # literal_reach characters (exactly: LiteralMatcher.hold_from); a verbatim run that may still become
        # a hit is the run of index shingles still open at the end, within the last hold_chars characters.
        raw = self._raw
        lo, seen, checked = self._tail
        if seen != len(raw):  # not checked since the last feed (cannot happen: every step checks first)
            lo, checked = 0, self.index.prepare(raw, strict=self.strict)
        r = min(r, redactions.to_output(lo + self.index.literal_hold_from(checked)))
        verbatim = max(lo + self.index.verbatim_hold_from(checked), len(raw) - self.hold_chars)
        r = min(r, redactions.to_output(verbatim))
        return max(r, self._released)
