"""The normaliser: every view of a text the matchers read, each mapping its characters back to the original.

A forgotten phone number, e-mail, key or sentence can come out of a model in disguise: with zero-width
characters or soft hyphens inside, look-alike letters from another script, digits of another script or
spelled out as words, spaces inserted into a key, `[at]`/`dot` e-mail forms, leetspeak, or encoded as
base64, hex or %-escapes. Each view undoes one family of disguises. Every character of every view keeps
the `[start, end)` of the original characters it stands for, so a hit in any view blocks or redacts the
span the client would have seen, and the stream guard can bound how far back a hit can reach.

| view | what it undoes | original characters per view character |
|---|---|---|
| `canonical` | format characters (Unicode Cf: zero-width, soft hyphen, bidi controls), case, accents, compatibility forms (NFKC), look-alike letters (UTS #39 confusables), decimal digits of any script, whitespace runs of up to `MAX_ABSORBED + 1` characters | <= `SPAN_PER_VIEW_CHAR` |
| `digits` | separators between the digits of one number (any punctuation or whitespace, up to `MAX_DIGIT_GAP`), digits spelled as words (English, French, Spanish, German, Italian, Portuguese, Dutch, Danish, Norwegian, Swedish; "double three") | <= `SPAN_PER_KEY_CHAR` per digit |
| `email` | `at` / `dot` written as words, bracketed or parenthesised (`[at]`, `(dot)`, ` AT `) | <= `SPAN_PER_EMAIL_WORD` for `@` and `.` |
| `squeezed` | anything but letters and digits inserted into a key (spaces, dashes, dots, line breaks), up to `MAX_SQUEEZED_GAP` between two key characters | <= `SPAN_PER_VIEW_CHAR + MAX_SQUEEZED_GAP` |
| `leet` | leetspeak in words that mix letters with `0 1 3 4 5 7 @ $` (two readings of `1`: `i` and `l`) | as `canonical` |
| decoded runs | base64 (any alignment), hex and %-encoding of printable UTF-8 text, up to `MAX_DECODE_DEPTH` layers | one run: the whole encoded span |

Views are plain data: building one never raises, whatever the input (property-tested), and a view of a
view's text is that text again (canonical, email, squeezed and leet are idempotent).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from text_to_num import text2num

# --- bounds: how far back a hit can reach in the original text ---------------------------------------

# One view character may absorb this many ignorable original characters before it (format characters,
# the extra characters of a whitespace run). Longer runs are a break: nothing matches across them.
MAX_ABSORBED = 5
SPAN_PER_VIEW_CHAR = MAX_ABSORBED + 1
# Separator characters (whitespace, punctuation, symbols) allowed between two digits of one number.
MAX_DIGIT_GAP = MAX_ABSORBED
# Original characters allowed between two characters of a squeezed key ("s k - l i v e", "t, o, -, k",
# '"sk-live-a", "YVoG"', 'live" + "_a'): with a character's own span, at most SPAN_PER_KEY_CHAR.
MAX_SQUEEZED_GAP = 6
# An e-mail word (" [at] ", " (dot) ") stands for at most this many original characters.
SPAN_PER_EMAIL_WORD = 16
# The bound every view keeps: a key of k characters found in any view covers at most
# k * SPAN_PER_KEY_CHAR original characters (a digit spelled as a word with the separators before it,
# "quatre, ", is the longest). The stream guard holds back that much behind the longest key.
SPAN_PER_KEY_CHAR = 12

BREAK = "\x00"  # never part of a key: marks a place nothing may match across

# --- canonical ---------------------------------------------------------------------------------------

# Letters that NFKD does not decompose but people write without the diacritic ("Tromsø" / "Tromso").
_TRANSLITERATION = {"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "þ": "th", "ð": "d", "ı": "i", "ß": "ss"}


@cache
def _confusable_letters() -> dict[str, str]:
    """Non-ASCII letters that look like one ASCII letter (Unicode's confusables data, via the
    confusable-homoglyphs package), mapped to that letter: Cyrillic `а` -> `a`, Greek `ο` -> `o`."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    mapping: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char.isascii() or not unicodedata.category(char).startswith("L"):
            continue
        latin = sorted(h["c"] for h in homoglyphs if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha())
        if latin:
            mapping[char] = latin[0].casefold()
    return mapping


def has_confusables(text: str) -> bool:
    """Whether the text has a letter of another script that looks like an ASCII one."""
    if text.isascii():
        return False
    confusables = _confusable_letters()
    return any(c in confusables for c in text)


_QUOTES = "\u2018\u2019\u201b\u2032"


def _settle(ch: str) -> str:
    """One character after decomposition: dashes, quotes, digits of any script, the transliteration table
    and look-alike letters mapped; "" for what leaves nothing (format characters, spacing marks)."""
    category = unicodedata.category(ch)
    if category == "Cf" or ch.isspace():
        return ""
    if category == "Pd":
        return "-"
    if ch in _QUOTES:
        return "'"
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    ch = _TRANSLITERATION.get(ch, ch)
    if not ch.isascii():
        return _confusable_letters().get(ch, ch)
    return ch


def _fold_once(c: str) -> str:
    confusables = _confusable_letters()
    if c in confusables:  # before case folding: Cyrillic "Н" looks like "H", its lowercase "н" like no letter
        return confusables[c]
    settled = _settle(c)
    if settled != c or not settled:
        return settled
    decomposed = unicodedata.normalize("NFKD", c)
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(_settle(ch) for ch in unicodedata.normalize("NFKC", base).casefold())


@lru_cache(maxsize=8192)
def fold_char(c: str) -> str:
    """The canonical form of one character: "" for a format character, else folded (may be longer).
    Folding the result again changes nothing (property-tested): NFKC or case folding can produce
    characters that fold further ("‴" is three primes, each a quote), so folding repeats until it settles."""
    out = _fold_once(c)
    for _ in range(3):
        again = "".join(_fold_once(ch) for ch in out)
        if again == out:
            break
        out = again
    return out


@dataclass(frozen=True)
class View:
    """A view's text plus, for each of its characters, the original [start, end) it stands for."""

    original: str
    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original-text span of the view span [start, end)."""
        if start >= end:
            raise ValueError("empty view span")
        return self.starts[start], self.ends[end - 1]

    def derive(self, chars: list[tuple[str, int, int]]) -> View:
        """A view of this view: (character, start, end) in this view's coordinates, mapped to the original."""
        starts, ends = self.starts, self.ends
        text = "".join([c for c, _, _ in chars])
        return View(
            self.original, text, tuple([starts[s] for _, s, _ in chars]), tuple([ends[e - 1] for _, _, e in chars])
        )


# Runs of whitespace and runs of anything else, for the ASCII path of `canonical`.
_ASCII_RUNS = re.compile(r"\s+|\S+")


def _canonical_ascii(original: str) -> View:
    """`canonical` of an ASCII text, a run at a time: in ASCII, `fold_char` lowercases every character but
    whitespace, and the only ignorable characters are whitespace (tests/gateway/guard/test_views.py checks
    both paths agree). Streaming checks fold the held text on every step, so this is the common path."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for run in _ASCII_RUNS.finditer(original):
        s, e = run.span()
        if original[s].isspace():
            out.append(" " if e - s <= SPAN_PER_VIEW_CHAR else BREAK)
            starts.append(s)
            ends.append(e)
        else:
            out.append(run.group().lower())
            starts.extend(range(s, e))
            ends.extend(range(s + 1, e + 1))
    return View(original, "".join(out), tuple(starts), tuple(ends))


def canonical(original: str) -> View:
    """Format characters dropped, every character folded (see `fold_char`), whitespace runs to one space.

    A run of ignorable characters (format characters, whitespace beyond the first) longer than
    MAX_ABSORBED becomes a BREAK, so no view character stands for more than SPAN_PER_VIEW_CHAR originals.
    """
    if original.isascii():
        return _canonical_ascii(original)
    return _canonical_any(original)


def _canonical_any(original: str) -> View:
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(original)
    pending = -1  # start of ignorable characters not yet given to a view character
    while i < n:
        c = original[i]
        if c.isspace():
            j = i
            while j < n and (original[j].isspace() or not fold_char(original[j])):
                j += 1
            begin = i if pending < 0 else pending
            out.append(" " if j - begin <= SPAN_PER_VIEW_CHAR else BREAK)
            starts.append(begin)
            ends.append(j)
            pending = -1
            i = j
            continue
        folded = fold_char(c)
        if not folded:
            if pending < 0:
                pending = i
            i += 1
            continue
        begin = i if pending < 0 else pending
        if i - begin > MAX_ABSORBED:
            out.append(BREAK)
            starts.append(begin)
            ends.append(i)
            begin = i
        pending = -1
        for k, ch in enumerate(folded):
            out.append(ch)
            starts.append(begin if k == 0 else i)
            ends.append(i + 1)
        i += 1
    return View(original, "".join(out), tuple(starts), tuple(ends))


def fold(text: str) -> str:
    """The canonical text alone, for keys and terms."""
    return canonical(text).text


def key_reach(view: str, key: str) -> int:
    """Longest original span a match of `key` in `view` can cover (the bounds of gateway.guard.views)."""
    if view == "digits":
        return len(key) * SPAN_PER_KEY_CHAR
    if view == "squeezed":
        return len(key) * (SPAN_PER_VIEW_CHAR + MAX_SQUEEZED_GAP)
    specials = key.count("@") + key.count(".")  # e-mail words
    return len(key) * SPAN_PER_VIEW_CHAR + specials * (SPAN_PER_EMAIL_WORD - SPAN_PER_VIEW_CHAR)


# --- digits ------------------------------------------------------------------------------------------

_NUMBER_LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "nl", "da")
# Norwegian and Swedish digit words (text2num has Danish, whose digits differ in places), folded.
_NORDIC_DIGITS = {
    "null": 0, "noll": 0, "ein": 1, "ett": 1, "en": 1, "to": 2, "tva": 2, "tre": 3, "fire": 4, "fyra": 4,
    "fem": 5, "seks": 6, "sex": 6, "sju": 7, "syv": 7, "atte": 8, "atta": 8, "ni": 9, "nio": 9,
}  # fmt: skip
_NORDIC_NUMBERS = {
    "ti": 10, "tio": 10, "elleve": 11, "elva": 11, "tolv": 12, "tretten": 13, "tretton": 13, "fjorten": 14,
    "fjorton": 14, "femten": 15, "femton": 15, "seksten": 16, "sexton": 16, "sytten": 17, "sjutton": 17,
    "atten": 18, "arton": 18, "nitten": 19, "nitton": 19,
}  # fmt: skip
_NORDIC_TENS = {
    "tjue": 20, "tjugo": 20, "tyve": 20, "tretti": 30, "trettio": 30, "forti": 40, "forty": 40, "fyrtio": 40,
    "femti": 50, "femtio": 50, "seksti": 60, "sextio": 60, "sytti": 70, "sjuttio": 70, "atti": 80, "attio": 80,
    "nitti": 90, "nittio": 90,
}  # fmt: skip
_ZERO_WORDS = {"oh": 0, "meia": 6}  # "nine oh one"; Brazilian "meia" (half a dozen) for six
_REPEAT_WORDS = {
    "double": 2, "doble": 2, "doppio": 2, "doppia": 2, "duplo": 2, "dubbel": 2, "doppel": 2, "dobbel": 2,
    "triple": 3, "triplo": 3, "tripla": 3, "trippel": 3, "tripel": 3,
}  # fmt: skip
_NUMBER_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")
# Words between the tens and the unit of one number: "cuarenta y siete", "quarenta e sete", "vingt et un".
_TENS_JOINERS = frozenset({"y", "e", "et", "und", "og", "and"})


@lru_cache(maxsize=65536)
def spoken_number(token: str, accented: str = "") -> str | None:
    """The digits a number word stands for ("nine" -> "9", "ninety-one" -> "91", "quatre-vingt-onze" ->
    "91", "zweiundvierzig" -> "42"), only for 0-99; None for any other word. `accented` is the same token
    before folding (text2num needs "tweeënveertig" with its diaeresis)."""
    if token in _NORDIC_DIGITS:
        return str(_NORDIC_DIGITS[token])
    if token in _ZERO_WORDS:
        return str(_ZERO_WORDS[token])
    if token in _NORDIC_NUMBERS:
        return str(_NORDIC_NUMBERS[token])
    for tens, value in _NORDIC_TENS.items():  # Norwegian/Swedish compounds: "trettiatte" 38, "sjuttioett" 71
        if token.startswith(tens) and (token == tens or token[len(tens) :] in _NORDIC_DIGITS):
            unit = _NORDIC_DIGITS.get(token[len(tens) :], 0)
            if unit == 0 and token != tens:
                break
            return str(value + unit)
    if len(token) > SPAN_PER_KEY_CHAR * 2:
        return None
    for candidate in dict.fromkeys((token, accented) if accented else (token,)):
        for language in _NUMBER_LANGUAGES:
            try:
                value = text2num(candidate, language)
            except Exception:
                continue
            if isinstance(value, int) and 0 <= value <= 99:
                digits = str(value)
                # A number word may stand for at most SPAN_PER_KEY_CHAR characters per digit.
                if len(token) <= SPAN_PER_KEY_CHAR * len(digits):
                    return digits
            return None
    return None


@dataclass(frozen=True)
class DigitView:
    """Digits of every number of a view, separators dropped, numbers divided by BREAK.

    A number is digits (any script: the canonical view maps them) and digits spelled as words ("double
    three" is two), with at most MAX_DIGIT_GAP original separator characters (whitespace, punctuation,
    symbols) between two of them. No digit's original span, with the gap before it, exceeds
    SPAN_PER_KEY_CHAR per digit: a longer one starts a new number.
    """

    text: str
    starts: tuple[int, ...]  # original span of each character (a BREAK spans its gap)
    ends: tuple[int, ...]

    @classmethod
    def of(cls, view: View) -> DigitView:
        out: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        last_end = -1  # original end of the previous digit; -1 when no number is open
        for digits, o_start, o_end, gap_ok, amends in _number_pieces(view):
            if digits is None:
                last_end = -1
                continue
            if amends and out and out[-1] == "0":
                # "cuarenta y siete": the unit completes the tens given out as "40" a moment ago.
                out[-1] = digits
                ends[-1] = o_end
                last_end = o_end
                continue
            joined = last_end >= 0 and gap_ok and o_start - last_end <= MAX_DIGIT_GAP
            joined = joined and o_end - last_end <= SPAN_PER_KEY_CHAR * len(digits)
            if out and not joined:
                out.append(BREAK)
                starts.append(o_start)
                ends.append(o_start)
            for ch in digits:
                out.append(ch)
                starts.append(o_start)
                ends.append(o_end)
            last_end = o_end
        return cls("".join(out), tuple(starts), tuple(ends))

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[end - 1]

    def is_run_start(self, index: int) -> bool:
        return index == 0 or self.text[index - 1] == BREAK

    def is_run_end(self, index: int) -> bool:
        return index == len(self.text) or self.text[index] == BREAK


def _number_pieces(view: View) -> Iterator[tuple[str | None, int, int, bool, bool]]:
    """(digits, original start, original end, only separators since the previous piece, amends) for every
    digit and number word of a view, in order: digits None for a word that ends the number it interrupts;
    amends True for the unit of "cuarenta y siete", which replaces the last digit of the tens before it."""
    text = view.text
    n = len(text)
    repeat, repeat_at = 1, -1
    tens: tuple[int, int, int] | None = None  # a tens word waiting for "y siete": (value, begin, end)
    prev_end = 0
    i = 0
    while i < n:
        c = text[i]
        if c.isdigit():
            yield c, view.starts[i], view.ends[i], _separators(text, prev_end, i), False
            prev_end = i = i + 1
            tens = None
            continue
        if not c.isalpha():
            i += 1
            continue
        m = _NUMBER_TOKEN.match(text, i)
        end = m.end() if m else i + 1
        word = text[i:end]
        glued = (end < n and text[end].isdigit()) or (i > 0 and text[i - 1].isalnum())
        if not glued and word in _REPEAT_WORDS:
            repeat, repeat_at = _REPEAT_WORDS[word], i
            i = end
            continue
        if not glued and tens is not None and word in _TENS_JOINERS:
            i = end
            continue
        digits = None
        if not glued and end - i <= 2 * SPAN_PER_KEY_CHAR:
            s, e = view.span(i, end)
            digits = spoken_number(word, unicodedata.normalize("NFC", view.original[s:e].casefold()))
        if digits is None:
            yield None, view.starts[i], view.ends[end - 1], False, False
            repeat, tens = 1, None
            prev_end = i = end
            continue
        begin = i
        if tens is not None and len(digits) == 1 and digits != "0" and _separators_or_joiners(text, tens[2], i):
            yield digits, view.starts[tens[1]], view.ends[end - 1], True, True
            tens = None
            prev_end = i = end
            continue
        if repeat > 1:
            digits, begin = digits * repeat, repeat_at
            repeat = 1
        tens = (int(digits), begin, end) if len(digits) == 2 and digits.endswith("0") and digits != "10" else None
        yield digits, view.starts[begin], view.ends[end - 1], _separators(text, prev_end, begin), False
        prev_end = i = end


def _separators_or_joiners(text: str, start: int, end: int) -> bool:
    return all(w in _TENS_JOINERS for w in re.findall(r"\w+", text[start:end])) and BREAK not in text[start:end]


def _separators(text: str, start: int, end: int) -> bool:
    return all(not ch.isalnum() and ch != BREAK for ch in text[start:end])


def digits_only(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# --- e-mail, squeezed, leet --------------------------------------------------------------------------

# "at" and "dot" as people write them out: English, Spanish/Portuguese, French, Italian, German, Dutch,
# Norwegian/Danish, Swedish (folded: "krøllalfa" is "krollalfa").
_AT_WORDS = ("at", "arroba", "arobase", "chiocciola", "klammeraffe", "apenstaartje", "krollalfa", "snabel-a")
_DOT_WORDS = ("dot", "punto", "point", "ponto", "punkt", "punktum", "punt")
_EMAIL_WORDS = re.compile(
    rf"\s*[\[(<{{]\s*({'|'.join(_AT_WORDS + _DOT_WORDS)})\s*[\])>}}]\s*"  # [at] (dot) <arroba> {{punkt}}
    rf"|(?<=[a-z0-9])\s+({'|'.join(_AT_WORDS + _DOT_WORDS)})\s+(?=[a-z0-9])"  # x at y dot z, x arroba y punto z
)


def email_view(view: View) -> View | None:
    """`x dot y at z dot example`, `x[at]y(dot)z`, `x punto y arroba z` -> `x.y@z.example`; None when
    nothing changes."""
    text = view.text
    chars: list[tuple[str, int, int]] = []
    at = 0
    for m in _EMAIL_WORDS.finditer(text):
        word = m.group(1) or m.group(2)
        chars += [(text[k], k, k + 1) for k in range(at, m.start())]
        if view.ends[m.end() - 1] - view.starts[m.start()] > SPAN_PER_EMAIL_WORD:
            chars.append((BREAK, m.start(), m.end()))
        else:
            chars.append(("@" if word in _AT_WORDS else ".", m.start(), m.end()))
        at = m.end()
    if not chars:
        return None
    chars += [(text[k], k, k + 1) for k in range(at, len(text))]
    return view.derive(chars)


def squeezed_view(view: View) -> View:
    """Letters and digits only: `s k-l i v e` -> `sklive`. More than MAX_SQUEEZED_GAP original characters
    between two of them is a BREAK."""
    text = view.text
    chars: list[tuple[str, int, int]] = []
    last = -1
    for k, ch in enumerate(text):
        if not ch.isalnum():
            continue
        if (
            last >= 0
            and k > last + 1
            and (view.starts[k] - view.ends[last] > MAX_SQUEEZED_GAP or BREAK in text[last:k])
        ):
            chars.append((BREAK, last + 1, k))
        chars.append((ch, k, k + 1))
        last = k
    return view.derive(chars)


# Quoted pieces of one string written apart in code or data: '"sk-live-a", "YVoG"', "'x' + 'y'", a YAML list.
MIN_STRING_CHUNK = 4  # shorter pieces are words in a list, not a key cut apart
MAX_CHUNK_JOIN = 18  # closing quote, separators, line break, indentation, opening quote
_CHUNK_JOIN = re.compile(
    rf"""(?<=[^\s'"]{{{MIN_STRING_CHUNK}}})['"][\s,+\-:|&\\]*['"](?=[^\s'"]{{{MIN_STRING_CHUNK}}})"""
)


def joined_strings(view: View) -> View | None:
    """The text with quoted pieces written apart joined again ('"sk-live-a", "YVoG"' -> 'sk-live-aYVoG'),
    so a key split into string chunks is one key; None when there is nothing to join. Each join removes at
    most MAX_CHUNK_JOIN characters between pieces of at least MIN_STRING_CHUNK, within SPAN_PER_KEY_CHAR."""
    text = view.text
    joins = [m for m in _CHUNK_JOIN.finditer(text) if view.ends[m.end() - 1] - view.starts[m.start()] <= MAX_CHUNK_JOIN]
    if not joins:
        return None
    chars: list[tuple[str, int, int]] = []
    at = 0
    for m in joins:
        chars += [(text[k], k, k + 1) for k in range(at, m.start())]
        at = m.end()
    chars += [(text[k], k, k + 1) for k in range(at, len(text))]
    return view.derive(chars)


def squeeze(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "8": "b", "9": "g"}
_LEET_ONE = ("i", "l")  # "1" reads as either
_LEET_WORD = re.compile(r"[\w@$]+")


# A letter next to a leet character, or one between two letters: without one, no word can be leet.
_LEET_HINT = re.compile(r"[^\W\d_][013-9@$]|[013-9@$][^\W\d_]")
# Ordinary words with digits: "4th", "1990s", "10km", "5pm", "3d".
_NUMBER_WITH_UNIT = re.compile(r"\d+(?:st|nd|rd|th|s|am|pm|[kcm]?m|[km]?g|h|k|x|d|ms|[kmgt]b|px|hz)?")


def is_leet_word(word: str) -> bool:
    """A word that mixes letters with leet characters ("b0rn", "5olv4ng"), not a number with a unit."""
    return (
        any(c.isalpha() for c in word)
        and any(c in _LEET or c == "1" for c in word)
        and not _NUMBER_WITH_UNIT.fullmatch(word)
    )


def leet_views(view: View) -> list[View]:
    """Readings of the words that mix letters with leet characters (`1ngr1d` -> `ingrid`), one per reading
    of `1`; when several words do, the text is leet throughout and a third reading also turns the numbers
    between them into letters ("w0rk5 45 4 ch3f" -> "works as a chef"). An empty list when no word mixes
    (the common case costs one regex scan)."""
    text = view.text
    if not _LEET_HINT.search(text):
        return []
    words = [m for m in _LEET_WORD.finditer(text) if is_leet_word(m.group())]
    if not words:
        return []
    readings: list[tuple[str, list[re.Match[str]]]] = [(one, words) for one in _LEET_ONE]
    if len(words) >= 2:
        readings.append(("i", [m for m in _LEET_WORD.finditer(text) if any(c in _LEET or c == "1" for c in m.group())]))
    result = []
    for one, chosen in readings:
        table = str.maketrans({**_LEET, "1": one})
        chars = list(text)
        for m in chosen:
            chars[m.start() : m.end()] = m.group().translate(table)
        result.append(view.derive([(c, k, k + 1) for k, c in enumerate(chars)]))
    return result


def leet_fold(text: str, one: str = "i") -> str:
    """A key's leet reading, the same way `leet_views` reads a text (for word keys)."""
    return "".join(_LEET.get(c, one if c == "1" else c) for c in text)


# --- encoded runs ------------------------------------------------------------------------------------

MIN_ENCODED_RUN = 16  # shorter runs of base64 or hex characters are ordinary words and numbers
MAX_ENCODED_RUN = 8192  # longer runs are decoded in pieces of this size
MAX_DECODE_DEPTH = 2  # base64 of base64: decoded again, no deeper

_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/_-]{{{MIN_ENCODED_RUN},}}={{0,2}}")
_HEX_RUN = re.compile(rf"(?:[0-9A-Fa-f]{{2}}(?:[ :]?)){{{MIN_ENCODED_RUN // 2},}}")
_ESCAPED_HEX_RUN = re.compile(r"(?:(?:\\x|0x)[0-9A-Fa-f]{2}[\s,]*){4,}")  # \x2b\x33 or 0x72 0x61, ...
_PERCENT_RUN = re.compile(r"(?:[^\s%()\[\]<>\"']*%[0-9A-Fa-f]{2})+[^\s%()\[\]<>\"']*")


@dataclass(frozen=True)
class DecodedRun:
    """Text decoded from an encoded run of the original, which spans [start, end)."""

    start: int
    end: int
    text: str
    encoding: str


# A decoded stretch shorter than this is noise (random bytes decode to short printable pieces).
MIN_DECODED_TEXT = 12
_UNPRINTABLE = re.compile(r"[^\S \n\t]|\ufffd|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(data: bytes) -> str | None:
    """The longest stretch of readable text in decoded bytes, or None. A model copying an encoded run
    garbles a few characters now and then; the text around them still decodes and still leaks."""
    decoded = data.decode("utf-8", errors="replace")
    best = max(_UNPRINTABLE.split(decoded), key=len, default="")
    text = best.strip()
    if len(text) < MIN_DECODED_TEXT or not all(ch.isprintable() or ch in "\n\t" for ch in text):
        return None
    if sum(ch.isalnum() for ch in text) < 0.75 * len(text.replace(" ", "")):
        return None
    return text


def _base64_candidates(run: str) -> list[str]:
    body = run.rstrip("=")
    urlsafe = "-" in body or "_" in body
    found = []
    for offset in range(4):  # a run cut out of a longer one starts at any alignment
        piece = body[offset:]
        piece = piece[: len(piece) - len(piece) % 4] if len(piece) % 4 == 1 else piece
        padded = piece + "=" * (-len(piece) % 4)
        try:
            data = base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Drop the last bytes of a run cut in the middle of a character.
        for trim in range(4):
            text = _printable(data[: len(data) - trim] if trim else data)
            if text is not None:
                found.append(text)
                break
        if found:
            break
    return found


def _decode_once(text: str) -> list[tuple[int, int, str, str]]:
    runs: list[tuple[int, int, str, str]] = []
    for m in _ESCAPED_HEX_RUN.finditer(text):
        data = bytes.fromhex(re.sub(r"\\x|0x|[\s,]", "", m.group()))
        decoded = _printable(data)
        if decoded is not None:
            runs.append((m.start(), m.end(), decoded, "hex"))
    for m in _HEX_RUN.finditer(text):
        if any(s <= m.start() < e for s, e, _, _ in runs):
            continue
        compact = re.sub(r"[ :]", "", m.group())
        for offset in (0, 1):
            piece = compact[offset : len(compact) - (len(compact) - offset) % 2]
            decoded = _printable(bytes.fromhex(piece)) if piece else None
            if decoded is not None:
                runs.append((m.start(), m.end(), decoded, "hex"))
                break
    for m in _BASE64_RUN.finditer(text):
        run = m.group()
        if run.isdigit() or (run.isalpha() and run.islower()) or any(s <= m.start() < e for s, e, _, _ in runs):
            continue  # a number, a plain long word, or hex already decoded
        for at in range(0, len(run), MAX_ENCODED_RUN):
            for decoded in _base64_candidates(run[at : at + MAX_ENCODED_RUN]):
                runs.append((m.start() + at, min(m.end(), m.start() + at + MAX_ENCODED_RUN), decoded, "base64"))
    for m in _PERCENT_RUN.finditer(text):
        try:
            decoded = urllib.parse.unquote(m.group(), errors="strict")
        except UnicodeDecodeError:
            continue
        if decoded != m.group():
            runs.append((m.start(), m.end(), decoded, "percent"))
    return runs


def decoded_runs(original: str) -> list[DecodedRun]:
    """Every encoded run of `original` that decodes to printable text, and what it decodes to (decoded
    again, up to MAX_DECODE_DEPTH layers, mapped to the outermost run)."""
    if len(original) < MIN_ENCODED_RUN // 2:
        return []
    result: list[DecodedRun] = []
    layer = [(0, len(original), original)]
    for _ in range(MAX_DECODE_DEPTH):
        found: list[tuple[int, int, str]] = []
        for start, end, text in layer:
            for s, e, decoded, encoding in _decode_once(text):
                # Inner layers map to the whole span of the run they came from.
                span = (start + s, start + e) if text is original else (start, end)
                result.append(DecodedRun(span[0], span[1], decoded, encoding))
                found.append((span[0], span[1], decoded))
        if not found:
            break
        layer = found
    return result
