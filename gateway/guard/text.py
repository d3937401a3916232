"""Words of a view, stable hashes, and check units: the sentences and windows the matchers look at."""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TypeVar

from gateway.guard.lexicon import STOPWORDS
from gateway.guard.views import View, fold

_WORD = re.compile(r"\w+")
T = TypeVar("T", str, int)  # words, or their keyed hashes (gateway.guard.keyed)


@dataclass(frozen=True)
class Word:
    text: str  # as in its view (canonical: folded)
    start: int  # original offsets
    end: int


def words(view: View) -> tuple[Word, ...]:
    """The words (`\\w+`) of a view, with their original spans."""
    result = []
    for m in _WORD.finditer(view.text):
        start, end = view.span(m.start(), m.end())
        result.append(Word(m.group(), start, end))
    return tuple(result)


def word_starts(ws: Sequence[Word]) -> list[int] | None:
    """The words' original starts when they are in order (every view maps its characters in order; a
    reading that did not would be scanned whole by `words_within`)."""
    starts = [w.start for w in ws]
    return starts if all(a <= b for a, b in pairwise(starts)) else None


def words_within(ws: Sequence[Word], starts: list[int] | None, lo: int, hi: int) -> list[int]:
    """Indices of the words of `ws` lying inside [lo, hi): a bisection to the first, then only the span's
    own words, so looking up every window of a text is linear in its length, not windows x words."""
    if starts is None:
        return [i for i, w in enumerate(ws) if w.start >= lo and w.end <= hi]
    i = bisect_left(starts, lo)
    found = []
    while i < len(ws) and ws[i].start < hi:
        if ws[i].end <= hi:
            found.append(i)
        i += 1
    return found


def word_set(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(fold(text)))


# Lowercase words that may sit inside a name ("Municipal Library of Voss", "Ludwig van Beethoven").
_NAME_JOINERS = frozenset(
    {"of", "the", "de", "del", "der", "den", "des", "di", "da", "das", "do", "dos", "du", "la", "le", "les"}
    | {"van", "von", "y", "i", "e", "af", "av", "og", "und", "and", "&"}
)
# A number identifies only from this many digits on ("7" or "3" turns up everywhere, "1987" does not).
_IDENTIFYING_DIGITS = 2


def identifying_groups(text: str) -> tuple[frozenset[str], ...]:
    """The names, places and numbers a text writes, one folded word set each: runs of capitalised words
    (with joiners such as "of" or "das" inside) and numbers of at least two digits ("1,200" is one). They
    identify a fact whatever the words around them or their language; "Vestfold Zoo" is one group,
    "Skolegata 14" two."""
    groups: list[frozenset[str]] = []
    current: list[str] = []
    pending: list[str] = []  # joiners seen since the last capitalised word
    last_end = 0
    for m in re.finditer(r"\d+(?:[.,]\d+)*|\w+|&", text):
        word = m.group()
        if current and text[last_end : m.start()].strip(" -'\u2019"):
            groups.append(frozenset(current))  # a comma, a line break, a bracket: the next name is another
            current, pending = [], []
        last_end = m.end()
        if word[0].isdigit() or any(c.isdigit() for c in word):
            if current:
                groups.append(frozenset(current))
                current, pending = [], []
            if sum(c.isdigit() for c in word) >= _IDENTIFYING_DIGITS:
                groups.append(frozenset(_WORD.findall(fold(word))))
        elif word[0].isupper() and len(word) > 1 and word.casefold() not in STOPWORDS:
            current += pending + _WORD.findall(fold(word))
            pending = []
        elif current and word.casefold() in _NAME_JOINERS and len(pending) < 2:
            pending.append(word.casefold())
        elif current:
            groups.append(frozenset(current))
            current, pending = [], []
    if current:
        groups.append(frozenset(current))
    return tuple(groups)


# Titles that may stand before a name without making it someone else's ("Dr. Aukrust").
TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "dr", "prof", "professor", "sir", "herr", "frau", "m", "mme", "sr", "sra"}
)


def names_subject(
    groups: tuple[frozenset[T], ...],
    words: frozenset[T],
    terms: frozenset[T],
    full_name: frozenset[T],
    titles: frozenset[T],
) -> bool:
    """Whether a text names the subject whose identifying `terms` (the surname) are among its `words`,
    rather than someone else of the same surname: a name written beside the surname ("Luca Kjærgaard")
    must be one of the subject's own (`full_name`) or a title (`titles`: TITLES, or their keyed hashes when
    the other sets are hashed, see gateway.guard.keyed)."""
    if not terms or not terms <= words:
        return False
    return not any(group & terms and group - full_name - titles for group in groups)


def hash64(text: str) -> int:
    """Stable 64-bit hash (Python's hash() is salted per process; these are stored in the ledger)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


# --- check units --------------------------------------------------------------------------------

# A unit ends after sentence punctuation (and closing quotes/brackets) followed by whitespace, or at a
# newline; the whitespace that follows belongs to it, so units tile the text with no gaps.
_SENTENCE_END = re.compile(r"(?:[.!?\u2026][\"'\u201d\u2019)\]]*\s|\n)\s*")


@dataclass(frozen=True)
class Unit:
    """A sentence (with its trailing whitespace), or a piece of a long one: what the semantic matcher embeds."""

    start: int
    end: int


def next_unit_end(text: str, start: int, max_chars: int, final: bool) -> int | None:
    """End of the unit starting at `start`, or None while the text seen so far cannot decide it.

    Decided only by characters already present, so a stream cut anywhere yields the same units as the
    full text: this is what lets the stream guard cache checks and release text safely.
    """
    if start >= len(text):
        return None
    limit = start + max_chars
    stop = min(len(text), limit)
    m = _SENTENCE_END.search(text, start, stop)
    if m is not None and (m.end() < len(text) or final):
        return m.end()
    if len(text) > limit:
        # Cut a long sentence at its last space (kept with the first piece), else hard at the limit.
        cut = text.rfind(" ", start + 1, limit)
        return cut + 1 if cut > start else limit
    return len(text) if final else None


def split_units(text: str, start: int, max_chars: int, final: bool) -> list[Unit]:
    """Complete units tiling text[start:]; the undecided tail is left out unless `final`."""
    units: list[Unit] = []
    pos = start
    while True:
        end = next_unit_end(text, pos, max_chars, final)
        if end is None:
            return units
        units.append(Unit(pos, end))
        pos = end


@dataclass(frozen=True)
class Window:
    """A span the semantic matchers embed: one unit, or two neighbouring units. Offsets exclude outer space."""

    start: int
    end: int
    text: str

    def shifted(self, offset: int) -> Window:
        return Window(self.start + offset, self.end + offset, self.text)


def _stripped(text: str, start: int, end: int) -> Window | None:
    piece = text[start:end]
    lead = len(piece) - len(piece.lstrip())
    body = piece.strip()
    if not _WORD.search(body):
        return None
    return Window(start + lead, start + lead + len(body), body)


def unit_window(text: str, unit: Unit) -> Window | None:
    return _stripped(text, unit.start, unit.end)


def pair_window(text: str, first: Unit, second: Unit) -> Window | None:
    """Both units together, so a fact split over two sentences ("X is a scientist. She was born in Y.")
    is seen whole; no pair when either side has no words."""
    if unit_window(text, first) is None or unit_window(text, second) is None:
        return None
    return _stripped(text, first.start, second.end)


def windows_of(text: str, units: list[Unit]) -> list[Window]:
    result = []
    for i, unit in enumerate(units):
        w = unit_window(text, unit)
        if w is not None:
            result.append(w)
        if i:
            p = pair_window(text, units[i - 1], unit)
            if p is not None:
                result.append(p)
    return result


# How far past its windows the text they are read from may reach, to begin and end at whole words.
WORD_EDGE_CHARS = 256


def reading_span(text: str, windows: Sequence[Window]) -> tuple[int, int]:
    """The part of `text` to read `windows` from on their own: from the whitespace before the first to the
    whitespace after the last, so the words inside every window are the ones the whole text has (a unit
    cut inside a long word has that word's start outside it either way). The windows' words, readings and
    groups then cost what the windows hold, not what the whole text does."""
    lo = min(w.start for w in windows)
    hi = max(w.end for w in windows)
    cut = max(0, lo - WORD_EDGE_CHARS)
    before = max(text.rfind(c, cut, lo) for c in " \n\t")
    lo = before + 1 if before >= 0 else cut
    limit = min(len(text), hi + WORD_EDGE_CHARS)
    after = [i for i in (text.find(c, hi, limit) for c in " \n\t") if i >= 0]
    return lo, min(after) if after else limit
