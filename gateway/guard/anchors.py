"""Identifying terms of a forget index, and where in a text a windowed hit could begin.

A semantic or co-occurrence hit needs an anchor in its window: the subject named (its surname, or any word
of the name as filed), or a fact term of the matched row (docs/guard.md, the tiered rule). A window without
any such word cannot be a hit, so the encoder is not run on it, and a hit's span begins at the window's
first anchor: the words before it carry nothing of the forgotten row, and a stream may release them at once.

What counts as an anchor position in a text (conservative wherever a reading could hide a term):
- a word of the canonical view whose keyed hash is an identifying term of the index;
- a token with a digit, `@` or `$` in it (a number, or a word that a leet reading could turn into a term);
- the start of an encoded run (base64, hex, %-encoding) that decodes to text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gateway.guard.text import Word
from gateway.guard.views import DecodedRun

# Terms per set before a new one is started: an addition copies only the last, small set.
_SEGMENT_TERMS = 16_384
# Tokens (runs between spaces and punctuation); one with a digit (of any script) or a leet symbol in it is
# one a reading could turn into something else.
_TOKEN = re.compile(r"[^\s\[\]()\"'.,;:!?]+")
_HAZARD_CHAR = re.compile(r"[\d@$]")


class AnchorTerms:
    """The index's identifying terms (keyed hashes), in a few sets so an addition does not copy them all.

    >>> terms = AnchorTerms().with_terms([11, 12])
    >>> 11 in terms, 13 in terms
    (True, False)
    """

    def __init__(self, sets: tuple[frozenset[int], ...] = ()) -> None:
        self._sets = sets

    def with_terms(self, terms: Iterable[int]) -> AnchorTerms:
        """A new set of terms; this one is unchanged. Sets merge like a log-structured tree (a set is merged
        into the one before it once that one is at most twice its size), so there are O(log n) of them and
        each term is copied O(log n) times over all additions."""
        new = frozenset(terms)
        if not new:
            return self
        sets = [*self._sets]
        if sets and len(sets[-1]) + len(new) <= _SEGMENT_TERMS:
            sets[-1] = sets[-1] | new
        else:
            sets.append(new)
        while len(sets) >= 2 and len(sets[-2]) <= 2 * len(sets[-1]):
            last = sets.pop()
            sets[-1] = sets[-1] | last
        return AnchorTerms(tuple(sets))

    def __contains__(self, term: object) -> bool:
        return any(term in s for s in self._sets)

    def __len__(self) -> int:
        return sum(len(s) for s in self._sets)


def anchor_positions(
    original: str, words: Sequence[Word], hashes: Sequence[int], terms: AnchorTerms, runs: Sequence[DecodedRun]
) -> list[int]:
    """Sorted original offsets where a windowed hit could begin (see the module's docstring)."""
    found = {w.start for w, h in zip(words, hashes) if h in terms}
    found.update(m.start() for m in _TOKEN.finditer(original) if _HAZARD_CHAR.search(m.group()))
    found.update(run.start for run in runs)
    return sorted(found)


def trailing_token_start(text: str) -> int:
    """Start of the token still being written at the end of `text` (it may grow into a term); its length
    when the text ends in whitespace."""
    end = len(text)
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return start
