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
# Original characters allowed between two characters of a squeezed key ("s k - l i v e", "ab\n  cd").
MAX_SQUEEZED_GAP = 3
# An e-mail word (" [at] ", " (dot) ") stands for at most this many original characters.
SPAN_PER_EMAIL_WORD = 9
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


@lru_cache(maxsize=8192)
def fold_char(c: str) -> str:
    """The canonical form of one character: "" for a format character, else folded (may be longer)."""
    category = unicodedata.category(c)
    if category == "Cf":
        return ""
    if category == "Pd":
        return "-"
    if c in "\u2018\u2019\u201b\u2032":
        return "'"
    if category == "Nd":
        return str(unicodedata.decimal(c))
    decomposed = unicodedata.normalize("NFKD", c)
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = unicodedata.normalize("NFKC", base).casefold()
    confusables = _confusable_letters()
    out = []
    for ch in folded:
        if ch.isspace() or unicodedata.category(ch) == "Cf":
            continue  # a spacing mark ("¨" is space + diaeresis): nothing is left of it
        ch = _TRANSLITERATION.get(ch, ch)
        if not ch.isascii():
            ch = confusables.get(ch, ch)
            if unicodedata.category(ch[0]) == "Nd":
                ch = str(unicodedata.decimal(ch[0]))
        out.append(ch)
    return "".join(out)


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
        text = "".join(c for c, _, _ in chars)
        starts = tuple(self.starts[s] for _, s, _ in chars)
        ends = tuple(self.ends[e - 1] for _, _, e in chars)
        return View(self.original, text, starts, ends)


def canonical(original: str) -> View:
    """Format characters dropped, every character folded (see `fold_char`), whitespace runs to one space.

    A run of ignorable characters (format characters, whitespace beyond the first) longer than
    MAX_ABSORBED becomes a BREAK, so no view character stands for more than SPAN_PER_VIEW_CHAR originals.
    """
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


# --- digits ------------------------------------------------------------------------------------------

_NUMBER_LANGUAGES = ("en", "fr", "es", "de", "it", "pt", "nl", "da")
# Norwegian and Swedish digit words (text2num has Danish, whose digits differ in places), folded.
_NORDIC_DIGITS = {
    "null": 0, "noll": 0, "ein": 1, "ett": 1, "en": 1, "to": 2, "tva": 2, "tre": 3, "fire": 4, "fyra": 4,
    "fem": 5, "seks": 6, "sex": 6, "sju": 7, "syv": 7, "atte": 8, "atta": 8, "ni": 9, "nio": 9,
}  # fmt: skip
_ZERO_WORDS = {"oh": 0}  # "nine oh one"
_REPEAT_WORDS = {
    "double": 2, "doble": 2, "doppio": 2, "doppia": 2, "duplo": 2, "dubbel": 2, "doppel": 2, "dobbel": 2,
    "triple": 3, "triplo": 3, "tripla": 3, "trippel": 3, "tripel": 3,
}  # fmt: skip
_NUMBER_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


@lru_cache(maxsize=65536)
def spoken_number(token: str, accented: str = "") -> str | None:
    """The digits a number word stands for ("nine" -> "9", "ninety-one" -> "91", "quatre-vingt-onze" ->
    "91", "zweiundvierzig" -> "42"), only for 0-99; None for any other word. `accented` is the same token
    before folding (text2num needs "tweeënveertig" with its diaeresis)."""
    if token in _NORDIC_DIGITS:
        return str(_NORDIC_DIGITS[token])
    if token in _ZERO_WORDS:
        return str(_ZERO_WORDS[token])
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
        text = view.text
        out: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        last = -1  # view index just past the previous digit, -1 when no number is open
        repeat, repeat_at = 1, -1
        i, n = 0, len(text)
        while i < n:
            c = text[i]
            begin = i
            if c.isdigit():
                digits, end = c, i + 1
            elif c.isalpha():
                m = _NUMBER_TOKEN.match(text, i)
                end = m.end() if m else i + 1
                word = text[i:end]
                glued = (end < n and text[end].isdigit()) or (i > 0 and text[i - 1].isalnum())
                if not glued and word in _REPEAT_WORDS:
                    repeat, repeat_at = _REPEAT_WORDS[word], i
                    i = end
                    continue
                digits = None
                if not glued and end - i <= 2 * SPAN_PER_KEY_CHAR:
                    s, e = view.span(i, end)
                    digits = spoken_number(word, unicodedata.normalize("NFC", view.original[s:e].casefold()))
                if digits is None:
                    last, repeat = -1, 1  # a word that is no number ends the number
                    i = end
                    continue
                if repeat > 1:
                    digits, begin = digits * repeat, repeat_at
                    repeat = 1
            else:
                i += 1
                continue
            assert digits is not None  # for mypy: every branch above that reaches here set it
            o_start, o_end = view.starts[begin], view.ends[end - 1]
            joined = last >= 0 and _separators(text, last, begin)
            if joined:
                gap = o_start - view.ends[last - 1]
                joined = gap <= MAX_DIGIT_GAP and o_end - view.ends[last - 1] <= SPAN_PER_KEY_CHAR * len(digits)
            if out and not joined:
                out.append(BREAK)
                starts.append(o_start)
                ends.append(o_start)
            for ch in digits:
                out.append(ch)
                starts.append(o_start)
                ends.append(o_end)
            last = end
            i = end
        return cls("".join(out), tuple(starts), tuple(ends))

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[end - 1]

    def is_run_start(self, index: int) -> bool:
        return index == 0 or self.text[index - 1] == BREAK

    def is_run_end(self, index: int) -> bool:
        return index == len(self.text) or self.text[index] == BREAK


def _separators(text: str, start: int, end: int) -> bool:
    return all(not ch.isalnum() and ch != BREAK for ch in text[start:end])


def digits_only(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


# --- e-mail, squeezed, leet --------------------------------------------------------------------------

_EMAIL_WORDS = re.compile(
    r"\s*[\[(<{]\s*(at|dot)\s*[\])>}]\s*"  # [at] (dot) <at> {dot}, spaced or not
    r"|(?<=[a-z0-9])\s+(at|dot)\s+(?=[a-z0-9])"  # x at y dot z
)


def email_view(view: View) -> View | None:
    """`x dot y at z dot example`, `x[at]y(dot)z` -> `x.y@z.example`; None when nothing changes."""
    text = view.text
    if "at" not in text and "dot" not in text:
        return None
    chars: list[tuple[str, int, int]] = []
    at = 0
    for m in _EMAIL_WORDS.finditer(text):
        word = m.group(1) or m.group(2)
        chars += [(text[k], k, k + 1) for k in range(at, m.start())]
        if view.ends[m.end() - 1] - view.starts[m.start()] > SPAN_PER_EMAIL_WORD:
            chars.append((BREAK, m.start(), m.end()))
        else:
            chars.append(("@" if word == "at" else ".", m.start(), m.end()))
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


def squeeze(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "8": "b", "9": "g"}
_LEET_ONE = ("i", "l")  # "1" reads as either
_LEET_WORD = re.compile(r"[\w@$]+")


def _is_leet_word(word: str) -> bool:
    return any(c.isalpha() for c in word) and any(c in _LEET or c == "1" for c in word)


def leet_views(view: View) -> list[View]:
    """Readings of the words that mix letters with leet characters (`1ngr1d` -> `ingrid`), one per reading
    of `1`; an empty list when no word does (the common case costs one regex scan)."""
    text = view.text
    words = [m for m in _LEET_WORD.finditer(text) if _is_leet_word(m.group())]
    if not words:
        return []
    result = []
    for one in _LEET_ONE:
        table = str.maketrans({**_LEET, "1": one})
        chars = list(text)
        for m in words:
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
_PERCENT_RUN = re.compile(r"(?:[^\s%]*%[0-9A-Fa-f]{2}){3,}[^\s%]*")


@dataclass(frozen=True)
class DecodedRun:
    """Text decoded from an encoded run of the original, which spans [start, end)."""

    start: int
    end: int
    text: str
    encoding: str


def _printable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or sum(ch.isprintable() or ch in "\n\t" for ch in text) < 0.9 * len(text):
        return None
    if sum(ch.isalnum() for ch in text) < 0.5 * len(text.replace(" ", "")):
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
    for m in _HEX_RUN.finditer(text):
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
