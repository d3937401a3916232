"""Literal matcher: Aho-Corasick over folded text and over digit runs, spans mapped back to the original."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ahocorasick

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.matchers.base import CheckedText, Scope
from gateway.guard.segments import Segment, append_items, compact_items
from gateway.guard.settings import GuardSettings
from gateway.guard.text import SPAN_PER_FOLDED_CHAR
from gateway.guard.types import GuardMatch

Item = tuple[str, str, str, str]  # (view, key, forget_id, action)


@dataclass(frozen=True)
class _Automata:
    text: ahocorasick.Automaton | None
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
        digits=_automaton([i for i in items if i[0] == "digits"]),
    )


class LiteralMatcher:
    """Exact strings (phone numbers, e-mails, keys) whatever their case, accents, spacing or digit separators.

    A folded key must sit on word boundaries ("ann" does not match "annual"). A digit key must end where
    its number ends; one of at least settings.digit_substring_min digits may follow a prefix ("4791233457"
    in "004791233457"), a shorter one must be the whole number.
    """

    kind = "literal"
    scope: Scope = "output"
    windowed = False

    def __init__(
        self,
        settings: GuardSettings,
        dim: int = 0,
        segments: tuple[Segment[Item, _Automata], ...] = (),
        longest: int = 0,
    ) -> None:
        self.settings = settings
        self.segments = segments
        self.longest = longest  # longest key: bounds how far back the stream guard must hold text

    @property
    def reach(self) -> int:
        """Longest original-text span a match can cover (each folded key character stands for at most
        SPAN_PER_FOLDED_CHAR original ones: a digit with its separators, or a folded whitespace run)."""
        return self.longest * SPAN_PER_FOLDED_CHAR

    def with_entries(self, artifacts: Sequence[EntryArtifacts]) -> LiteralMatcher:
        items = [(view, key, a.forget_id, a.action) for a in artifacts for view, key in a.literal_keys]
        longest = max([self.longest] + [len(i[1]) for i in items])
        segments = append_items(self.segments, items, _build, self.settings.tail_max)
        return LiteralMatcher(self.settings, 0, segments, longest)

    def compacted(self) -> LiteralMatcher:
        return LiteralMatcher(self.settings, 0, compact_items(self.segments, _build), self.longest)

    def find(self, text: CheckedText) -> list[GuardMatch]:
        if not self.segments:
            return []
        matches: list[GuardMatch] = []
        folded = text.folded
        for segment in self.segments:
            automata: _Automata = segment.built
            if automata.text is not None:
                ft = folded.text
                for last, (key, owners) in automata.text.iter(ft):
                    start, end = last - len(key) + 1, last + 1
                    if key[0].isalnum() and start > 0 and ft[start - 1].isalnum():
                        continue
                    if key[-1].isalnum() and end < len(ft) and ft[end].isalnum():
                        continue
                    s, e = folded.span(start, end)
                    matches += [GuardMatch(fid, "literal", 1.0, s, e, act) for fid, act in owners]
            if automata.digits is not None:
                digits = text.digits
                for last, (key, owners) in automata.digits.iter(digits.text):
                    start, end = last - len(key) + 1, last + 1
                    # A number may carry a prefix (country code, trunk zero) but must end where the key ends.
                    if not digits.is_run_end(end):
                        continue
                    if len(key) < self.settings.digit_substring_min and not digits.is_run_start(start):
                        continue
                    s, e = folded.span(digits.positions[start], digits.positions[last] + 1)
                    matches += [GuardMatch(fid, "literal", 1.0, s, e, act) for fid, act in owners]
        return matches
