"""Text views the matchers work on: folded text with offsets back to the original, digit runs, words, check units."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Letters that NFKD does not decompose but people write without the diacritic ("Tromsø" / "Tromso").
_TRANSLITERATION = {"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "ð": "d", "ı": "i", "ß": "ss"}

# Whitespace runs longer than this do not fold into one space, so that a literal's span in the original
# text stays bounded (the stream guard must know how far back a literal can reach).
MAX_FOLDED_WHITESPACE = 3

# Characters that may sit between two digits of one number ("+47 912-33.457", "(0)912/33").
DIGIT_SEPARATORS = frozenset(" -./()+")
# At most this many separator characters between two digits of one number.
MAX_DIGIT_GAP = 2

# Longest original span one folded character of a literal can stand for: a digit plus its separators.
SPAN_PER_FOLDED_CHAR = MAX_DIGIT_GAP + 1

_WORD = re.compile(r"\w+")
_BREAK = "\x00"  # never part of a pattern: marks a whitespace run too long to fold, or a gap between numbers


@lru_cache(maxsize=4096)
def _fold_char(c: str) -> str:
    if unicodedata.category(c) == "Pd":
        return "-"
    if c in "\u2018\u2019\u201b\u2032":
        return "'"
    decomposed = unicodedata.normalize("NFKD", c)
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = unicodedata.normalize("NFKC", base).casefold()
    return "".join(_TRANSLITERATION.get(ch, ch) for ch in folded)


def fold(text: str) -> str:
    """The folded form alone (case, accents, compatibility forms, whitespace), for patterns."""
    return FoldedText.of(text).text


@dataclass(frozen=True)
class FoldedText:
    """Folded text plus, for every folded character, the original [start, end) it came from."""

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    @classmethod
    def of(cls, original: str) -> FoldedText:
        out: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        i, n = 0, len(original)
        while i < n:
            c = original[i]
            if c.isspace():
                j = i
                while j < n and original[j].isspace():
                    j += 1
                out.append(" " if j - i <= MAX_FOLDED_WHITESPACE else _BREAK)
                starts.append(i)
                ends.append(j)
                i = j
                continue
            for ch in _fold_char(c):
                out.append(ch)
                starts.append(i)
                ends.append(i + 1)
            i += 1
        return cls(original, "".join(out), tuple(starts), tuple(ends))

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original-text span of the folded span [start, end)."""
        if start >= end:
            raise ValueError("empty folded span")
        return self.starts[start], self.ends[end - 1]


@dataclass(frozen=True)
class DigitView:
    """Digits of every number in a folded text, separators dropped, numbers divided by a break mark."""

    text: str
    positions: tuple[int, ...]  # folded-text index of each character (breaks point at the previous digit)

    @classmethod
    def of(cls, folded: str) -> DigitView:
        out: list[str] = []
        pos: list[int] = []
        i, n = 0, len(folded)
        while i < n:
            if not folded[i].isdigit():
                i += 1
                continue
            if out:
                out.append(_BREAK)
                pos.append(pos[-1])
            out.append(folded[i])
            pos.append(i)
            i += 1
            while i < n:
                j = i
                while j < n and j - i < MAX_DIGIT_GAP and folded[j] in DIGIT_SEPARATORS:
                    j += 1
                if j < n and folded[j].isdigit():
                    out.append(folded[j])
                    pos.append(j)
                    i = j + 1
                else:
                    break
        return cls("".join(out), tuple(pos))

    def is_run_start(self, index: int) -> bool:
        return index == 0 or self.text[index - 1] == _BREAK

    def is_run_end(self, index: int) -> bool:
        return index == len(self.text) or self.text[index] == _BREAK


def digits_only(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


@dataclass(frozen=True)
class Word:
    text: str  # folded
    start: int  # original offsets
    end: int


def words(folded: FoldedText) -> tuple[Word, ...]:
    result = []
    for m in _WORD.finditer(folded.text):
        start, end = folded.span(m.start(), m.end())
        result.append(Word(m.group(), start, end))
    return tuple(result)


def word_set(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(fold(text)))


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
