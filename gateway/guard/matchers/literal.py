"""Literal matcher: Aho-Corasick over every view of the text (see gateway.guard.views), spans mapped back."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import ahocorasick

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.matchers.base import CheckedText, Scope
from gateway.guard.segments import Segment, append_items, compact_items
from gateway.guard.settings import GuardSettings
from gateway.guard.types import GuardMatch
from gateway.guard.views import (
    SPAN_PER_KEY_CHAR,
    View,
    fold,
    key_reach,
    squeeze,
)

Item = tuple[str, str, str, str]  # (view, key, forget_id, action)

# A key squeezed to its letters and digits is matched in the squeezed view only from this many on:
# shorter ones ("anna") turn up inside ordinary words run together.
SQUEEZED_KEY_MIN = 8


@dataclass(frozen=True)
class _Automata:
    text: ahocorasick.Automaton | None
    email: ahocorasick.Automaton | None
    squeezed: ahocorasick.Automaton | None
    digits: ahocorasick.Automaton | None


def _automaton(items: list[Item]) -> ahocorasick.Automaton | None:
    owners: dict[str, list[tuple[str, str]]] = {}
    for _, key, forget_id, action in items:
        owners.setdefault(key, []).append((forget_id, action))
    if not owners:
        return None
    automaton = ahocorasick.Automaton()
    for key, who in owners.items():
        automaton.add_word(key, (key, tuple(who)))
    automaton.make_automaton()
    return automaton


def _build(items: tuple[Item, ...]) -> _Automata:
    return _Automata(
        text=_automaton([i for i in items if i[0] == "text"]),
        email=_automaton([i for i in items if i[0] == "text" and "@" in i[1]]),
        squeezed=_automaton([i for i in items if i[0] == "squeezed"]),
        digits=_automaton([i for i in items if i[0] == "digits"]),
    )


def _items(artifacts: EntryArtifacts) -> list[Item]:
    """Match keys of one entry in every view. Stored text keys are folded again (the canonical fold may
    have learnt a disguise since they were stored); long ones are also matched squeezed."""
    items: list[Item] = []
    for view, key in artifacts.literal_keys:
        if view != "text":
            items.append((view, key, artifacts.forget_id, artifacts.action))
            continue
        key = fold(key)
        items.append(("text", key, artifacts.forget_id, artifacts.action))
        squeezed = squeeze(key)
        if len(squeezed) >= SQUEEZED_KEY_MIN:
            items.append(("squeezed", squeezed, artifacts.forget_id, artifacts.action))
    return items


Longest = tuple[int, int, int, int]  # longest key matched as text, as an e-mail, squeezed, as digits


def _longest(items: Sequence[Item], old: Longest) -> Longest:
    def most(keys: list[int], before: int) -> int:
        return max([before, *keys])

    return (
        most([len(k) for v, k, _, _ in items if v == "text"], old[0]),
        most([len(k) for v, k, _, _ in items if v == "text" and "@" in k], old[1]),
        most([len(k) for v, k, _, _ in items if v == "squeezed"], old[2]),
        most([len(k) for v, k, _, _ in items if v == "digits"], old[3]),
    )


# A run of base64/hex/%-escape characters at the end of a stream may be an encoded run still being written.
_TRAILING_ENCODED = re.compile(r"(?:[A-Za-z0-9+/=_%\\-]|\\x){8,}$")


def _on_word_boundaries(text: str, start: int, end: int, key: str) -> bool:
    if key[0].isalnum() and start > 0 and text[start - 1].isalnum():
        return False
    return not (key[-1].isalnum() and end < len(text) and text[end].isalnum())


def _hits(
    automaton: ahocorasick.Automaton | None, text: str
) -> Iterator[tuple[int, int, str, tuple[tuple[str, str], ...]]]:
    if automaton is None:
        return
    for last, (key, owners) in automaton.iter(text):
        yield last - len(key) + 1, last + 1, key, owners


class LiteralMatcher:
    """Exact strings (phone numbers, e-mails, keys) in any disguise a view undoes: case, accents, format
    characters, look-alike letters, spacing, digit separators, digits of any script or spelled out,
    `[at]`/`dot` e-mail forms, leetspeak, letters and digits with anything inserted between them, base64 /
    hex / %-encoding.

    A folded key must sit on word boundaries ("ann" does not match "annual"); a squeezed key must begin and
    end where a word of the original does ("password" is not in "compass words"). A digit key must end
    where its number ends; one of at least settings.digit_substring_min digits may follow a prefix
    ("4791233457" in "004791233457"), a shorter one must be the whole number.
    """

    kind = "literal"
    scope: Scope = "output"
    windowed = False

    def __init__(
        self,
        settings: GuardSettings,
        dim: int = 0,
        segments: tuple[Segment[Item, _Automata], ...] = (),
        reach: int = 0,
        longest: Longest = (0, 0, 0, 0),
    ) -> None:
        self.settings = settings
        self.segments = segments
        self._reach = reach
        self._longest = longest  # longest key of each kind: text, e-mail (text keys with @), squeezed, digits

    @property
    def reach(self) -> int:
        """Longest original-text span a match can cover (the longest `key_reach` of any key): how far back
        the stream guard must hold text."""
        return self._reach

    def with_entries(self, artifacts: Sequence[EntryArtifacts]) -> LiteralMatcher:
        items = [item for a in artifacts for item in _items(a)]
        reach = max([self._reach] + [key_reach(view, key) for view, key, _, _ in items])
        longest = _longest(items, self._longest)
        segments = append_items(self.segments, items, _build, self.settings.tail_max)
        return LiteralMatcher(self.settings, 0, segments, reach, longest)

    def compacted(self) -> LiteralMatcher:
        return LiteralMatcher(self.settings, 0, compact_items(self.segments, _build), self._reach, self._longest)

    def hold_from(self, checked: CheckedText) -> int:
        """The first offset of `checked.text` (the end of a stream) that may still become part of a match
        when more text comes: in each view, the start of the last (longest key) characters, and of whatever
        at the very end is still being written (a whitespace run, a number word, an e-mail word, an encoded
        run). Exact in the view, so ordinary prose holds back about one key's length, not its worst-case
        reach. The views are the ones `find` read (CheckedText computes each once)."""
        text = checked.text
        n = len(text)
        if not self.segments or not n:
            return n
        longest_text, longest_email, longest_squeezed, longest_digits = self._longest
        # Anything in the last few characters may still change its reading ("fou" -> "four", " " -> a gap).
        hold = max(0, n - 2 * SPAN_PER_KEY_CHAR)

        def last(view_starts: tuple[int, ...], k: int) -> int:
            """Start of the last k + 1 characters of a view (all of it when shorter; none when empty)."""
            if not view_starts:
                return n
            return view_starts[max(0, len(view_starts) - k - 1)]

        if longest_text:
            for view in (checked.folded, *checked.joined):
                hold = min(hold, last(view.starts, longest_text))
        if longest_email:
            for view in checked.emails:
                hold = min(hold, last(view.starts, longest_email))
        if longest_squeezed:
            for view in checked.squeezed:
                hold = min(hold, last(view.starts, longest_squeezed))
        if longest_digits:
            for digits in checked.digits:
                hold = min(hold, last(digits.starts, longest_digits))
        encoded = _TRAILING_ENCODED.search(text)
        if encoded is not None:
            hold = min(hold, encoded.start())
        for run in checked.decoded:
            hold = min(hold, run.start)
        return hold

    def find(self, text: CheckedText) -> list[GuardMatch]:
        if not self.segments:
            return []
        found: dict[tuple[str, int, int], GuardMatch] = {}

        def hit(view: View, start: int, end: int, owners: tuple[tuple[str, str], ...]) -> None:
            s, e = view.span(start, end)
            for fid, act in owners:
                found.setdefault((fid, s, e), GuardMatch(fid, "literal", 1.0, s, e, act))

        original = text.text
        for segment in self.segments:
            automata: _Automata = segment.built
            for view in text.readings if automata.text is not None else ():
                for start, end, key, owners in _hits(automata.text, view.text):
                    if _on_word_boundaries(view.text, start, end, key):
                        hit(view, start, end, owners)
            for view in text.emails if automata.email is not None else ():
                for start, end, key, owners in _hits(automata.email, view.text):
                    if _on_word_boundaries(view.text, start, end, key):
                        hit(view, start, end, owners)
            for view in text.squeezed if automata.squeezed is not None else ():
                for start, end, _key, owners in _hits(automata.squeezed, view.text):
                    s, e = view.span(start, end)
                    if (s == 0 or not original[s - 1].isalnum()) and (e == len(original) or not original[e].isalnum()):
                        hit(view, start, end, owners)
            for digits in text.digits if automata.digits is not None else ():
                for start, end, key, owners in _hits(automata.digits, digits.text):
                    # A number may carry a prefix (country code, trunk zero) but must end where the key ends.
                    if not digits.is_run_end(end):
                        continue
                    if len(key) < self.settings.digit_substring_min and not digits.is_run_start(start):
                        continue
                    s, e = digits.span(start, end)
                    for fid, act in owners:
                        found.setdefault((fid, s, e), GuardMatch(fid, "literal", 1.0, s, e, act))
        return list(found.values())
