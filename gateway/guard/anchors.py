"""Identifying terms of a forget index, and where in a text a windowed hit could begin.

A semantic or co-occurrence hit needs an anchor in its window (docs/guard.md, the tiered rule): for an
entry with a subject, the subject named (its surname, or any word of the name as filed), or, for a hit that
names no one, the row's names, places and numbers written as such (the co-occurrence matcher counts only
those: `text.identifying_groups`); for an entry without a subject (a claim, a project), any fact term of the
row. A window without any such word cannot be a hit below `semantic_strong`, so the encoder is not run on it
(the first stage), and a hit's span begins at the window's first anchor: the words before it carry nothing
that identifies the forgotten row, and a stream may release them at once.

A subject entry's fact terms are everyday words too ("works", "born", "number", "piano"): with many entries
filed, anchoring on each of them would hold back nearly every sentence of every answer. They anchor only
where the text writes them as a name or a number (capitalised, or with digits), which is the only way the
co-occurrence matcher can use them without the subject.

What counts as an anchor position in a text (conservative wherever a reading could hide a term):
- a word of the canonical view whose keyed hash is a name term of the index (subject words; every fact term
  of an entry without a subject);
- a word whose keyed hash is a fact term of a subject entry and that the original text writes capitalised;
- a number that is one of those terms (written with digits, it is "written as a number");
- a token that mixes letters with digits, `@` or `$`, or has `@` or `$` in it: a word a leet reading could
  turn into a term ("s0lvang", "$olvang"); where the text has two or more of those, a leet reading turns
  the numbers between them into words too ("w0rk5 45 4 ch3f"), so every token with a digit anchors.
  Other numbers ("1.", "40-60%", "16th", a year no entry has) are not anchors: neither co-occurrence nor the
  tiered rule counts a number that is not a term of a row, and literals are the literal matcher's;
- the start of an encoded run (base64, hex, %-encoding) that decodes to text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from gateway.guard.text import Word
from gateway.guard.views import DecodedRun, fold, is_leet_word

# Terms per set before a new one is started: an addition copies only the last, small set.
_SEGMENT_TERMS = 16_384
# Tokens (runs between spaces and punctuation); one with a digit (of any script) or a leet symbol in it is
# one a reading could turn into something else.
_TOKEN = re.compile(r"[^\s\[\]()\"'.,;:!?]+")
_HAZARD_CHAR = re.compile(r"[\d@$]")
_LEET_SYMBOL = re.compile(r"[@$]")


class _TermSets:
    """Keyed hashes in a few sets so an addition does not copy them all."""

    def __init__(self, sets: tuple[frozenset[int], ...] = ()) -> None:
        self._sets = sets

    def with_terms(self, terms: Iterable[int]) -> _TermSets:
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
        return _TermSets(tuple(sets))

    def __contains__(self, term: object) -> bool:
        return any(term in s for s in self._sets)

    def __len__(self) -> int:
        return sum(len(s) for s in self._sets)


class AnchorTerms:
    """The index's identifying terms (keyed hashes): `names` anchor wherever they are written, `facts` (a
    subject entry's fact terms) only where the text writes them capitalised (see the module's docstring).

    >>> terms = AnchorTerms().with_terms([11, 12], facts=[21])
    >>> 11 in terms, 21 in terms, terms.is_fact(21), 13 in terms
    (True, False, True, False)
    """

    def __init__(self, names: _TermSets | None = None, facts: _TermSets | None = None) -> None:
        self._names = names if names is not None else _TermSets()
        self._facts = facts if facts is not None else _TermSets()

    def with_terms(self, names: Iterable[int], facts: Iterable[int] = ()) -> AnchorTerms:
        """New terms added; this one is unchanged."""
        return AnchorTerms(self._names.with_terms(names), self._facts.with_terms(facts))

    def __contains__(self, term: object) -> bool:
        """A name term: an anchor however it is written."""
        return term in self._names

    def is_fact(self, term: object) -> bool:
        """A subject entry's fact term: an anchor where it is written as a name or a number."""
        return term in self._facts

    def __len__(self) -> int:
        return len(self._names) + len(self._facts)


def _written_as_name(original: str, word: Word) -> bool:
    """The original text writes this word capitalised (or with a digit): a name, a place, a number."""
    first = original[word.start : word.end][:1]
    return first.isupper() or first.isdigit()


def anchor_positions(
    original: str, words: Sequence[Word], hashes: Sequence[int], terms: AnchorTerms, runs: Sequence[DecodedRun]
) -> list[int]:
    """Sorted original offsets where a windowed hit could begin (see the module's docstring)."""
    found = {
        w.start for w, h in zip(words, hashes) if h in terms or (terms.is_fact(h) and _written_as_name(original, w))
    }
    hazards = [m for m in _TOKEN.finditer(original) if _HAZARD_CHAR.search(m.group())]
    leet = [m.start() for m in hazards if _LEET_SYMBOL.search(m.group()) or is_leet_word(fold(m.group()))]
    found.update(leet if len(leet) < 2 else (m.start() for m in hazards))
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
