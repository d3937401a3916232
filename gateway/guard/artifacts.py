"""What the guard needs of one forget entry, computed once (embeddings included) and stored in the ledger.

Artifacts hold no text of the entry: literal keys, shingles and words are keyed hashes
(`gateway.guard.keyed`), the sentences are embeddings. They outlive the request's plaintext, which is
shredded once the weights no longer know it, and keep enforcing it (docs/data.md).
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.guard.embedder import Embedder
from gateway.guard.keyed import PROCESS_HASHER, TermHasher
from gateway.guard.lexicon import content_words, expand_attributes, subject_terms
from gateway.guard.settings import GuardSettings
from gateway.guard.text import split_units, word_set, words
from gateway.guard.types import REDACTION_TEXT, ForgetEntry
from gateway.guard.views import canonical, digits_only, fold, key_reach, squeeze

# Bump when the meaning of any field changes: the ledger then knows stored artifacts need a rebuild.
# 2: every term a keyed hash (no plaintext), literal keys expanded per view at build time.
ARTIFACTS_FORMAT = 2

# A literal key's first PREFIX_CHARS characters are hashed on their own: the literal matcher hashes that
# many characters at each candidate start and only hashes whole spans where a prefix is known.
PREFIX_CHARS = 4
# A key squeezed to its letters and digits is matched in the squeezed view only from this many on:
# shorter ones ("anna") turn up inside ordinary words run together.
SQUEEZED_KEY_MIN = 8
# LiteralKey.edges: the key begins / ends with a letter or digit (it must then sit on a word boundary).
ALNUM_START, ALNUM_END = 1, 2


@dataclass(frozen=True)
class LiteralKey:
    """One literal key in one view, hashed: `kind` "text" (canonical readings), "email" (e-mail views),
    "squeezed" or "digits"; its length in that view, its hash and its first PREFIX_CHARS characters' hash,
    the longest original span a match can cover (`views.key_reach`), and its ALNUM_* edges."""

    kind: str
    length: int
    digest: int
    prefix: int
    reach: int
    edges: int

    def to_json(self) -> list[Any]:
        return [self.kind, self.length, self.digest, self.prefix, self.reach, self.edges]

    @classmethod
    def from_json(cls, raw: list[Any]) -> LiteralKey:
        kind, length, digest, prefix, reach, edges = raw
        return cls(str(kind), int(length), int(digest), int(prefix), int(reach), int(edges))


# Words a literal of each shape answers, for the prompt check ("what is X's phone number?").
_PHONE_TERMS = ("phone", "number")
_EMAIL_TERMS = ("email", "mail")

_DIGIT_KEY_MIN = 4  # fewer digits than this is not a number worth folding separators out of
# What may sit between the digits of a literal that is a number ("+47 (0)912-33.457").
_NUMBER_SEPARATORS = frozenset(" -./()+")
# A number without its country code must still be this long to be specific (Iceland's are 7 digits).
_VARIANT_MIN_DIGITS = 7


@dataclass(frozen=True)
class EntryArtifacts:
    """Precomputed guard data of one forget entry. Vectors are float32 bytes, row-major, `dim` wide."""

    forget_id: str
    action: str
    model_name: str
    dim: int
    ngram_n: int
    key_id: str  # the TermHasher every hash below was made with
    literal_keys: tuple[LiteralKey, ...]
    ngram_hashes: bytes  # sorted unique uint64 keyed shingle hashes
    output_vectors: bytes  # one row per text unit and per "question answer" pair
    output_anchors: tuple[tuple[int, ...], ...]  # hashed fact terms of each output row
    question_vectors: bytes  # one row per forgotten question
    subject_terms: tuple[int, ...]  # hashed words that identify the subject (all needed to name it)
    full_name: tuple[int, ...]  # hashed words of the subject as filed
    attribute_terms: tuple[int, ...]  # hashed words a prompt asks for it with ("phone", "diagnosis")
    format: int = ARTIFACTS_FORMAT
    # Sorted unique uint64 keyed hashes of the first 1 .. ngram_n - 1 words of every shingle: a stream holds
    # back only trailing words that can still begin one. None in artifacts stored before they existed (a
    # shredded request's cannot be rebuilt): the index then holds the last ngram_n - 1 words of every text.
    ngram_prefixes: bytes | None = None

    def __post_init__(self) -> None:
        if self.format != ARTIFACTS_FORMAT:
            raise ValueError(f"artifacts format {self.format} is not {ARTIFACTS_FORMAT}: rebuild them")
        if self.dim <= 0:
            raise ValueError("dim must be positive")
        row = 4 * self.dim
        if len(self.output_vectors) % row or len(self.question_vectors) % row:
            raise ValueError("vector bytes are not a whole number of float32 rows of dim")
        # No vectors at all: the operator dropped the entry's semantic rows (its anchors still serve cooccur).
        if self.output_vectors and len(self.output_vectors) // row != len(self.output_anchors):
            raise ValueError("output_anchors needs exactly one entry per output vector")
        if len(self.ngram_hashes) % 8 or (self.ngram_prefixes is not None and len(self.ngram_prefixes) % 8):
            raise ValueError("ngram_hashes and ngram_prefixes must be uint64 bytes")

    def output_matrix(self) -> np.ndarray:
        return np.frombuffer(self.output_vectors, dtype=np.float32).reshape(-1, self.dim)

    def question_matrix(self) -> np.ndarray:
        return np.frombuffer(self.question_vectors, dtype=np.float32).reshape(-1, self.dim)

    def ngram_array(self) -> np.ndarray:
        return np.frombuffer(self.ngram_hashes, dtype="<u8")

    def prefix_array(self) -> np.ndarray | None:
        return None if self.ngram_prefixes is None else np.frombuffer(self.ngram_prefixes, dtype="<u8")

    def terms_json(self) -> dict[str, Any]:
        """The non-binary fields, JSON-ready (the ledger stores vectors and shingle hashes as blobs beside
        this; the shingle prefixes, added later, travel here base64-encoded)."""
        prefixes = {} if self.ngram_prefixes is None else {"ngram_prefixes": b64encode(self.ngram_prefixes).decode()}
        return {
            **prefixes,
            "format": self.format,
            "ngram_n": self.ngram_n,
            "key_id": self.key_id,
            "literal_keys": [k.to_json() for k in self.literal_keys],
            "output_anchors": [list(a) for a in self.output_anchors],
            "subject_terms": list(self.subject_terms),
            "full_name": list(self.full_name),
            "attribute_terms": list(self.attribute_terms),
        }

    @classmethod
    def from_stored(
        cls,
        *,
        forget_id: str,
        action: str,
        model_name: str,
        dim: int,
        terms: dict[str, Any],
        ngram_hashes: bytes,
        output_vectors: bytes,
        question_vectors: bytes,
    ) -> EntryArtifacts:
        if int(terms.get("format", 1)) != ARTIFACTS_FORMAT:
            raise ValueError(f"artifacts format {terms.get('format', 1)} is not {ARTIFACTS_FORMAT}: rebuild them")
        return cls(
            forget_id=forget_id,
            action=action,
            model_name=model_name,
            dim=dim,
            ngram_n=int(terms["ngram_n"]),
            key_id=str(terms["key_id"]),
            literal_keys=tuple(LiteralKey.from_json(k) for k in terms["literal_keys"]),
            ngram_hashes=bytes(ngram_hashes),
            output_vectors=bytes(output_vectors),
            output_anchors=tuple(_ints(a) for a in terms["output_anchors"]),
            question_vectors=bytes(question_vectors),
            subject_terms=_ints(terms["subject_terms"]),
            full_name=_ints(terms["full_name"]),
            attribute_terms=_ints(terms["attribute_terms"]),
            format=int(terms["format"]),
            ngram_prefixes=b64decode(terms["ngram_prefixes"]) if "ngram_prefixes" in terms else None,
        )


def _ints(values: Iterable[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def literal_keys(literal: str, settings: GuardSettings) -> tuple[tuple[str, str], ...]:
    """Match keys of one literal: its folded text, or for a number its digits (and without a country code)."""
    raw = " ".join(literal.split())
    folded = fold(raw).strip()
    if not folded:
        raise ValueError(f"literal {literal!r} is empty after normalisation")
    if len(folded) > settings.literal_max_chars:
        raise ValueError(
            f"literal of {len(folded)} characters exceeds {settings.literal_max_chars}; put long content in texts"
        )
    if folded in fold(REDACTION_TEXT):
        raise ValueError(f"literal {literal!r} would match the redaction marker {REDACTION_TEXT!r}")
    if key_reach("text", folded) > settings.hold_chars:
        raise ValueError("literal has too many '@' and '.' for the stream hold-back; put it in texts")
    digits = digits_only(folded)
    if len(digits) >= _DIGIT_KEY_MIN and all(c.isdigit() or c in _NUMBER_SEPARATORS for c in folded):
        keys = [("digits", digits)]
        international = folded.startswith("+") or (folded.startswith("00") and len(digits) > 10)
        if international:
            rest = digits[2:] if folded.startswith("00") else digits
            # Country codes are 1-3 digits; the number is also written nationally, bare or with a trunk 0.
            for cc in (1, 2, 3):
                local = rest[cc:]
                if len(local) >= _VARIANT_MIN_DIGITS:
                    keys += [("digits", local), ("digits", "0" + local)]
        return tuple(dict.fromkeys(keys))
    return (("text", folded),)


def shingles(tokens: list[str], n: int, hasher: TermHasher) -> list[int]:
    """Keyed hashes of every run of n tokens (the verbatim matcher's unit)."""
    return [hasher(" ".join(tokens[i : i + n])) for i in range(len(tokens) - n + 1)]


def shingle_prefixes(tokens: list[str], n: int, hasher: TermHasher) -> set[int]:
    """Keyed hashes of the first 1 .. n - 1 tokens of every shingle of `tokens` (hashed as `shingles` hashes
    a run, so the matcher hashes a text's trailing words the same way)."""
    return {hasher(" ".join(tokens[i : i + k])) for i in range(len(tokens) - n + 1) for k in range(1, n)}


def hashed_keys(keys: Iterable[tuple[str, str]], hasher: TermHasher) -> tuple[LiteralKey, ...]:
    """`literal_keys` in every view the literal matcher reads, hashed: a text key is matched in the
    canonical readings, in the e-mail views when it has an "@", and squeezed when long enough."""
    out: list[LiteralKey] = []

    def add(kind: str, key: str, reach_view: str) -> None:
        edges = (ALNUM_START if key[0].isalnum() else 0) | (ALNUM_END if key[-1].isalnum() else 0)
        prefix = hasher(f"{kind}:{key[:PREFIX_CHARS]}")
        out.append(LiteralKey(kind, len(key), hasher(f"{kind}:{key}"), prefix, key_reach(reach_view, key), edges))

    for view, key in keys:
        if view == "digits":
            add("digits", key, "digits")
            continue
        key = fold(key)
        add("text", key, "text")
        if "@" in key:
            add("email", key, "text")
        squeezed = squeeze(key)
        if len(squeezed) >= SQUEEZED_KEY_MIN:
            add("squeezed", squeezed, "squeezed")
    return tuple(dict.fromkeys(out))


def build_artifacts(
    entry: ForgetEntry,
    embedder: Embedder,
    settings: GuardSettings | None = None,
    hasher: TermHasher = PROCESS_HASHER,
) -> EntryArtifacts:
    """Everything the index needs of `entry` (a ForgetEntry); embeds its texts, answers and questions once."""
    return build_many_artifacts([entry], embedder, settings, hasher)[0]


def build_many_artifacts(
    entries: Iterable[ForgetEntry],
    embedder: Embedder,
    settings: GuardSettings | None = None,
    hasher: TermHasher = PROCESS_HASHER,
) -> list[EntryArtifacts]:
    """build_artifacts for many entries with one batched embedding call (startup, imports, benchmarks)."""
    settings = settings or GuardSettings()
    prepared = [_prepare(e, settings, hasher) for e in entries]
    texts = [t for p in prepared for t in p[1]]
    questions = [q for p in prepared for q in p[2]]
    out = embedder.encode(texts) if texts else np.zeros((0, embedder.dim), np.float32)
    qv = embedder.encode(questions) if questions else np.zeros((0, embedder.dim), np.float32)
    result, i, j = [], 0, 0
    for fields, texts_of, questions_of in prepared:
        o = np.ascontiguousarray(out[i : i + len(texts_of)], dtype=np.float32)
        q = np.ascontiguousarray(qv[j : j + len(questions_of)], dtype=np.float32)
        i, j = i + len(texts_of), j + len(questions_of)
        result.append(
            EntryArtifacts(
                model_name=embedder.name,
                dim=embedder.dim,
                output_vectors=o.tobytes(),
                question_vectors=q.tobytes(),
                **fields,
            )
        )
    return result


def _prepare(
    entry: ForgetEntry, settings: GuardSettings, hasher: TermHasher
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Every field but the vectors (terms hashed), and the texts to embed for them."""
    subj_words = tuple(w.text for w in words(canonical(entry.subject))) if entry.subject else ()
    subj_terms = subject_terms(subj_words)

    keys: list[tuple[str, str]] = []
    attributes: set[str] = set()
    for lit in entry.literals:
        keys.extend(literal_keys(lit, settings))
        if "@" in lit:
            attributes.update(_EMAIL_TERMS)
        elif any(view == "digits" for view, _ in literal_keys(lit, settings)):
            attributes.update(_PHONE_TERMS)

    hashes: set[int] = set()
    prefixes: set[int] = set()
    output_texts: list[str] = []
    anchors: list[tuple[str, ...]] = []
    for text in entry.texts:
        tokens = [w.text for w in words(canonical(text))]
        hashes.update(shingles(tokens, settings.ngram_n, hasher))
        prefixes.update(shingle_prefixes(tokens, settings.ngram_n, hasher))
        for unit in split_units(text, 0, settings.unit_max_chars, final=True):
            piece = text[unit.start : unit.end].strip()
            facts = content_words([w.text for w in words(canonical(piece))], exclude=subj_words)
            if facts or subj_terms:
                output_texts.append(piece)
                anchors.append(facts)
    questions: list[str] = []
    for question, answer in entry.qa:
        q_words = word_set(question)
        a_tokens = [w.text for w in words(canonical(answer))]
        hashes.update(shingles(a_tokens, settings.ngram_n, hasher))
        prefixes.update(shingle_prefixes(a_tokens, settings.ngram_n, hasher))
        facts = content_words(a_tokens, exclude=subj_words) or content_words(sorted(q_words), exclude=subj_words)
        output_texts.append(f"{question.strip()} {answer.strip()}")
        anchors.append(facts)
        questions.append(question.strip())
        attributes.update(content_words(sorted(q_words), exclude=subj_words))

    def hashed(terms: Iterable[str]) -> tuple[int, ...]:
        return tuple(hasher(t) for t in terms)

    fields = dict(
        forget_id=entry.forget_id,
        action=entry.action,
        ngram_n=settings.ngram_n,
        key_id=hasher.key_id,
        literal_keys=hashed_keys(dict.fromkeys(keys), hasher),
        ngram_hashes=np.array(sorted(hashes), dtype="<u8").tobytes(),
        ngram_prefixes=np.array(sorted(prefixes), dtype="<u8").tobytes(),
        output_anchors=tuple(hashed(a) for a in anchors),
        subject_terms=hashed(subj_terms),
        full_name=tuple(sorted(hasher.words(word_set(entry.subject)))) if entry.subject else (),
        attribute_terms=tuple(sorted(hasher.words(expand_attributes(attributes)))),
    )
    return fields, output_texts, questions
