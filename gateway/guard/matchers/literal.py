"""Literal matcher: keyed hashes of every candidate span in every view of the text (see gateway.guard.views),
compared with the hashed keys of the index, spans mapped back.

The index holds no literal, only `LiteralKey`s (gateway.guard.artifacts): a key's hash and the hash of its
first PREFIX_CHARS characters. A view is scanned at the positions where a key may start (a word start, or
a symbol); the prefix hashes found there pick the few whole spans worth hashing. Cost is linear in the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gateway.guard.artifacts import ALNUM_END, ALNUM_START, PREFIX_CHARS, EntryArtifacts, LiteralKey
from gateway.guard.keyed import TermHasher
from gateway.guard.matchers.base import CheckedText, Scope
from gateway.guard.segments import Segment, append_items, compact_items
from gateway.guard.settings import GuardSettings
from gateway.guard.types import GuardMatch
from gateway.guard.views import (
    _NUMBER_TOKEN,
    _REPEAT_WORDS,
    _TENS_JOINERS,
    BREAK,
    SPAN_PER_KEY_CHAR,
    DigitView,
    View,
    _number_pieces,
    fold_char,
)

Item = tuple[LiteralKey, str, str]  # (key, forget_id, action)
Owners = tuple[tuple[str, str], ...]  # (forget_id, action) of every entry with one key
# prefix hash -> (length, digest, edges, owners) of every key of one kind that starts so
PrefixTable = dict[int, tuple[tuple[int, int, int, Owners], ...]]


@dataclass(frozen=True)
class _Kind:
    """The keys of one kind ("text", "email", "squeezed") in one segment."""

    table: PrefixTable
    prefix_lengths: tuple[int, ...]  # PREFIX_CHARS, and the length of any shorter key
    symbol_start: bool  # some key begins with a symbol (not a letter or digit)
    longest: int  # the longest key (from LONG_KEY_CHARS on, keys match inside words too)


@dataclass(frozen=True)
class _Tables:
    kinds: dict[str, _Kind]
    digits: dict[int, dict[int, Owners]]  # length -> digest -> owners


def _owners(items: Sequence[Item]) -> dict[LiteralKey, Owners]:
    who: dict[LiteralKey, list[tuple[str, str]]] = {}
    for key, forget_id, action in items:
        who.setdefault(key, []).append((forget_id, action))
    return {k: tuple(v) for k, v in who.items()}


def _build(items: tuple[Item, ...]) -> _Tables:
    kinds: dict[str, _Kind] = {}
    digits: dict[int, dict[int, Owners]] = {}
    owners = _owners(items)
    for kind in ("text", "email", "squeezed"):
        keys = [k for k in owners if k.kind == kind]
        if not keys:
            continue
        table: dict[int, list[tuple[int, int, int, Owners]]] = {}
        for k in keys:
            table.setdefault(k.prefix, []).append((k.length, k.digest, k.edges, owners[k]))
        kinds[kind] = _Kind(
            {p: tuple(v) for p, v in table.items()},
            tuple(sorted({min(PREFIX_CHARS, k.length) for k in keys})),
            any(not k.edges & ALNUM_START for k in keys),
            max(k.length for k in keys),
        )
    for k, who in owners.items():
        if k.kind == "digits":
            digits.setdefault(k.length, {})[k.digest] = who
    return _Tables(kinds, digits)


Longest = tuple[int, int, int, int]  # longest key matched as text, as an e-mail, squeezed, as digits


def _longest(items: Sequence[Item], old: Longest) -> Longest:
    def most(kind: str, before: int) -> int:
        return max([before, *(k.length for k, _, _ in items if k.kind == kind)])

    return (most("text", old[0]), most("email", old[1]), most("squeezed", old[2]), most("digits", old[3]))


# A run of base64/hex/%-escape characters at the end of a stream may be an encoded run still being written.
# A number whose last digit lies this far before the end of a text can no longer grow: the next digit
# would have to start within MAX_DIGIT_GAP of it, and a number word written there ("seventeen", "cuarenta y
# siete") is complete well within this many characters.
_NUMBER_CLOSED_CHARS = 64
_TRAILING_ENCODED = re.compile(r"(?:[A-Za-z0-9+/=_%\\-]|\\x){8,}$")
# Hex written with a space or colon between its bytes ("68 65 6c 6c"), and escaped hex ("\x68, \x65"),
# still being written: runs that cross words, so the token being written does not cover them.
_TRAILING_SPACED_HEX = re.compile(r"[0-9A-Fa-f]+(?:[ :][0-9A-Fa-f]+)*[ :]?$")
_TRAILING_ESCAPED_HEX = re.compile(r"(?:(?:\\x|0x)[0-9A-Fa-f]{0,2}[\s,]*)+(?:\\|0)?$")


def writing_from(text: str) -> int:
    """Start of what is still being written at the end of `text`: its last run of non-whitespace characters
    with any characters that fold to nothing after it ("four" + "\u200b" may still become "fourteen"); when
    whitespace follows that run, the run is a whole word and only the trailing run of whitespace (and of
    characters that fold to nothing) is still open (it may yet grow into a break)."""
    i = len(text)
    spaced = False
    while i and (text[i - 1].isspace() or not fold_char(text[i - 1])):
        spaced = spaced or text[i - 1].isspace()
        i -= 1
    if spaced:
        return i
    while i and not text[i - 1].isspace():
        i -= 1
    return i


def _number_hold(digits: DigitView, folded: View, longest: int, n: int) -> int:
    """The first offset of the original text (of length n) that a digit key may still cover when more text
    comes, for the digit view of the canonical view. What more text can change in it:
    - the token being written (`writing_from`): it may become a number word or stop being one ("fou" ->
      "four", "ten" -> "tent"), or be digits still being written; with it, a "double"/"triple" right
      before it (only tens joiners between), which makes digits that start at the repeat word;
    - digit characters of that token (their original span ends inside it) may change or go;
    - the number that is open before it may grow or end, or its last tens be amended ("cuarenta y" +
      "siete"): a key ending there covers at most its last `longest` digits. A number is closed (decided)
      once a whole word that is not a number follows it (`_number_pieces` ends the number there whatever
      comes next), or, as before, when its last digit lies _NUMBER_CLOSED_CHARS before the end.
    Everything else of the view is fixed: canonical folding is per character, only a trailing whitespace
    run may still become a BREAK, and that is part of the token being written."""
    tail = writing_from(folded.original)
    text = folded.text
    tokens = list(_NUMBER_TOKEN.finditer(text))
    for m in reversed(tokens):  # a repeat word waiting for the token being written (joiners between)
        start = folded.starts[m.start()]
        if start >= tail or m.group() in _TENS_JOINERS:
            continue  # the tens a joiner waits on are digits of the open number: held below
        if m.group() not in _REPEAT_WORDS:
            break
        tail = start
    hold = tail
    count = len(digits.text)
    first_changing = next((k for k in range(count) if digits.ends[k] > tail), count)
    for k in range(first_changing, count):
        hold = min(hold, digits.starts[k])
    if first_changing and digits.ends[first_changing - 1] >= n - _NUMBER_CLOSED_CHARS:
        closed = False  # whether a whole non-number word follows the last stable digit
        for piece, _o_start, o_end, _gap, _amends in _number_pieces(folded):
            if o_end <= tail:
                closed = piece is None
        if not closed:
            # The smallest start, not the first: a "double" makes digits that start before the one before them.
            hold = min(hold, *digits.starts[max(0, first_changing - longest - 1) : first_changing])
    return hold


Hit = tuple[int, int, Owners]  # (start, end) in the view, and who owns the key
# From this many characters on a key (in its view) is specific enough to match inside a longer word.
LONG_KEY_CHARS = 10
# Where a key may begin: a letter or digit that follows none (a word start), or a symbol.
_WORD_START = re.compile(r"(?<![^\W_])[^\W_]")
_SYMBOL = re.compile(r"[^\w\s]|_")


def _scan(
    hash_of: Callable[[str], int],
    text: str,
    keys: _Kind,
    starts: Iterable[int],
    fits: Callable[[int, int, int, int], bool],
) -> list[Hit]:
    """Spans of `text` whose keyed hash is a key of `keys`: at each position where a key may start (its first
    prefix characters' hash is known), each candidate length is hashed whole."""
    hits: list[Hit] = []
    n = len(text)
    table = keys.table
    for i in starts:
        for p in keys.prefix_lengths:
            if i + p > n:
                break
            found = table.get(hash_of(text[i : i + p]))
            if found is None:
                continue
            for length, digest, edges, owners in found:
                end = i + length
                if end > n or not fits(i, end, length, edges):
                    continue
                if length == p or hash_of(text[i:end]) == digest:
                    hits.append((i, end, owners))
    return hits


def _word_scan(hasher: TermHasher, kind: str, text: str, keys: _Kind) -> list[Hit]:
    """A short key that begins (ends) with a letter or digit must begin (end) on a word boundary of the
    view: "ann" does not match "annual". A key of LONG_KEY_CHARS or more matches anywhere: glued to other
    letters or digits ("ZQ-4F2A1B-001ZQ-4F2A1B-001", a code with an "x" typed after it) it is still the
    key, and so specific that no ordinary word holds it."""
    n = len(text)
    if keys.longest >= LONG_KEY_CHARS:
        starts: list[int] = [i for i, c in enumerate(text) if not c.isspace()]
    else:
        starts = [m.start() for m in _WORD_START.finditer(text)]
        if keys.symbol_start:
            starts = sorted(starts + [m.start() for m in _SYMBOL.finditer(text)])

    def fits(i: int, end: int, length: int, edges: int) -> bool:
        if length >= LONG_KEY_CHARS:
            return True
        if edges & ALNUM_START and i > 0 and text[i - 1].isalnum():
            return False
        return not (edges & ALNUM_END and end < n and text[end].isalnum())

    return _scan(hasher.prefixed(f"{kind}:"), text, keys, starts, fits)


def _digit_hits(
    hasher: TermHasher, digits: DigitView, tables: dict[int, dict[int, Owners]], shortest: int
) -> list[Hit]:
    """Digit keys end where their number ends; one of at least `shortest` digits may follow a prefix (a
    country code, a trunk zero), a shorter one must be the whole number."""
    hits: list[Hit] = []
    text = digits.text
    hash_of = hasher.prefixed("digits:")
    run_start = 0
    for run_end in [*(i for i, c in enumerate(text) if c == BREAK), len(text)]:
        size = run_end - run_start
        for length, keys in tables.items():
            if length > size or (length < shortest and length != size):
                continue
            owners = keys.get(hash_of(text[run_end - length : run_end]))
            if owners is not None:
                hits.append((run_end - length, run_end, owners))
        run_start = run_end + 1
    return hits


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
        segments: tuple[Segment[Item, _Tables], ...] = (),
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
        items: list[Item] = [(k, a.forget_id, a.action) for a in artifacts for k in a.literal_keys]
        reach = max([self._reach] + [k.reach for k, _, _ in items])
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
        reach. Digit keys (phone numbers) are held exactly (`_number_hold`): the token being written, the
        digits it may still change, and the last longest-key digits of a number not yet ended; an index of
        digit keys alone holds back about the token being written. The views are the ones `find` read
        (CheckedText computes each once)."""
        text = checked.text
        n = len(text)
        if not self.segments or not n:
            return n
        longest_text, longest_email, longest_squeezed, longest_digits = self._longest
        hold = n
        if longest_text or longest_email or longest_squeezed:
            # Anything in the last few characters may still change its reading ("fou" -> "four", " " -> a
            # gap, "x at" -> "x@" once the next word begins, '"sk-a", "' -> one joined string).
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
            # The canonical view's digits: exactly what may still change (see _number_hold), including a
            # number whose digits are all still to come.
            hold = min(hold, _number_hold(checked.digits[0], checked.folded, longest_digits, n))
            for digits in checked.digits[1:]:  # decoded runs' (each run is also held whole below)
                if digits.ends and n - digits.ends[-1] > _NUMBER_CLOSED_CHARS:
                    continue  # its last number has ended (a digit key must end where its number does): decided
                hold = min(hold, last(digits.starts, longest_digits))
        encoded = _TRAILING_ENCODED.search(text)
        if encoded is not None:
            hold = min(hold, encoded.start())
        for trailing in (_TRAILING_SPACED_HEX, _TRAILING_ESCAPED_HEX):
            hex_run = trailing.search(text)
            if hex_run is not None:
                hold = min(hold, hex_run.start())
        for run in checked.decoded:
            hold = min(hold, run.start)
        return hold

    def find(self, text: CheckedText) -> list[GuardMatch]:
        if not self.segments:
            return []
        found: dict[tuple[str, int, int], GuardMatch] = {}
        hasher = text.hasher

        def hit(span: tuple[int, int], owners: Owners) -> None:
            s, e = span
            for fid, act in owners:
                found.setdefault((fid, s, e), GuardMatch(fid, "literal", 1.0, s, e, act))

        original = text.text

        def word_starts(view: View) -> list[int]:
            return [i for i, o in enumerate(view.starts) if o == 0 or not original[o - 1].isalnum()]

        def word_end(view: View) -> Callable[[int, int, int, int], bool]:
            ends = view.ends
            return lambda _i, end, _n, _e: ends[end - 1] == len(original) or not original[ends[end - 1]].isalnum()

        for segment in self.segments:
            tables: _Tables = segment.built
            keys = tables.kinds.get("text")
            if keys is not None:
                for view in text.readings:
                    for start, end, owners in _word_scan(hasher, "text", view.text, keys):
                        hit(view.span(start, end), owners)
            keys = tables.kinds.get("email")
            if keys is not None:
                for view in text.emails:
                    for start, end, owners in _word_scan(hasher, "email", view.text, keys):
                        hit(view.span(start, end), owners)
            keys = tables.kinds.get("squeezed")
            if keys is not None:
                for view in text.squeezed:
                    # A squeezed key must begin and end where a word of the original does.
                    spans = _scan(hasher.prefixed("squeezed:"), view.text, keys, word_starts(view), word_end(view))
                    for start, end, owners in spans:
                        hit(view.span(start, end), owners)
            for digits in text.digits if tables.digits else ():
                for start, end, owners in _digit_hits(hasher, digits, tables.digits, self.settings.digit_substring_min):
                    hit(digits.span(start, end), owners)
        return list(found.values())
