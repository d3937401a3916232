"""What the guard needs of one forget entry, computed once (embeddings included) and stored in the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.guard.embedder import Embedder
from gateway.guard.lexicon import content_words, expand_attributes, subject_terms
from gateway.guard.settings import GuardSettings
from gateway.guard.text import hash64, split_units, word_set, words
from gateway.guard.types import REDACTION_TEXT, ForgetEntry
from gateway.guard.views import canonical, digits_only, fold, key_reach

# Bump when the meaning of any field changes: the ledger then knows stored artifacts need a rebuild.
ARTIFACTS_FORMAT = 1

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
    subject: str | None
    model_name: str
    dim: int
    ngram_n: int
    literal_keys: tuple[tuple[str, str], ...]  # (view, key): view "text" (folded) or "digits"
    ngram_hashes: bytes  # sorted unique uint64 shingle hashes
    output_vectors: bytes  # one row per text unit and per "question answer" pair
    output_anchors: tuple[tuple[str, ...], ...]  # fact terms of each output row
    question_vectors: bytes  # one row per forgotten question
    subject_terms: tuple[str, ...]
    attribute_terms: tuple[str, ...]
    format: int = ARTIFACTS_FORMAT

    def __post_init__(self) -> None:
        if self.format != ARTIFACTS_FORMAT:
            raise ValueError(f"artifacts format {self.format} is not {ARTIFACTS_FORMAT}: rebuild them")
        if self.dim <= 0:
            raise ValueError("dim must be positive")
        row = 4 * self.dim
        if len(self.output_vectors) % row or len(self.question_vectors) % row:
            raise ValueError("vector bytes are not a whole number of float32 rows of dim")
        if len(self.output_vectors) // row != len(self.output_anchors):
            raise ValueError("output_anchors needs exactly one entry per output vector")
        if len(self.ngram_hashes) % 8:
            raise ValueError("ngram_hashes must be uint64 bytes")

    def output_matrix(self) -> np.ndarray:
        return np.frombuffer(self.output_vectors, dtype=np.float32).reshape(-1, self.dim)

    def question_matrix(self) -> np.ndarray:
        return np.frombuffer(self.question_vectors, dtype=np.float32).reshape(-1, self.dim)

    def ngram_array(self) -> np.ndarray:
        return np.frombuffer(self.ngram_hashes, dtype="<u8")

    def terms_json(self) -> dict[str, Any]:
        """The non-binary fields, JSON-ready (the ledger stores vectors and hashes as blobs beside this)."""
        return {
            "format": self.format,
            "ngram_n": self.ngram_n,
            "literal_keys": [list(k) for k in self.literal_keys],
            "output_anchors": [list(a) for a in self.output_anchors],
            "subject_terms": list(self.subject_terms),
            "attribute_terms": list(self.attribute_terms),
        }

    @classmethod
    def from_stored(
        cls,
        *,
        forget_id: str,
        action: str,
        subject: str | None,
        model_name: str,
        dim: int,
        terms: dict[str, Any],
        ngram_hashes: bytes,
        output_vectors: bytes,
        question_vectors: bytes,
    ) -> EntryArtifacts:
        return cls(
            forget_id=forget_id,
            action=action,
            subject=subject,
            model_name=model_name,
            dim=dim,
            ngram_n=int(terms["ngram_n"]),
            literal_keys=tuple((str(v), str(k)) for v, k in terms["literal_keys"]),
            ngram_hashes=bytes(ngram_hashes),
            output_vectors=bytes(output_vectors),
            output_anchors=tuple(tuple(a) for a in terms["output_anchors"]),
            question_vectors=bytes(question_vectors),
            subject_terms=tuple(terms["subject_terms"]),
            attribute_terms=tuple(terms["attribute_terms"]),
            format=int(terms["format"]),
        )


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


def _shingles(tokens: list[str], n: int) -> list[int]:
    return [hash64(" ".join(tokens[i : i + n])) for i in range(len(tokens) - n + 1)]


def build_artifacts(entry: ForgetEntry, embedder: Embedder, settings: GuardSettings | None = None) -> EntryArtifacts:
    """Everything the index needs of `entry` (a ForgetEntry); embeds its texts, answers and questions once."""
    return build_many_artifacts([entry], embedder, settings)[0]


def build_many_artifacts(
    entries: Iterable[ForgetEntry], embedder: Embedder, settings: GuardSettings | None = None
) -> list[EntryArtifacts]:
    """build_artifacts for many entries with one batched embedding call (startup, imports, benchmarks)."""
    settings = settings or GuardSettings()
    prepared = [_prepare(e, settings) for e in entries]
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


def _prepare(entry: ForgetEntry, settings: GuardSettings) -> tuple[dict[str, Any], list[str], list[str]]:
    """Every field but the vectors, and the texts to embed for them."""
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
    output_texts: list[str] = []
    anchors: list[tuple[str, ...]] = []
    for text in entry.texts:
        tokens = [w.text for w in words(canonical(text))]
        hashes.update(_shingles(tokens, settings.ngram_n))
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
        hashes.update(_shingles(a_tokens, settings.ngram_n))
        facts = content_words(a_tokens, exclude=subj_words) or content_words(sorted(q_words), exclude=subj_words)
        output_texts.append(f"{question.strip()} {answer.strip()}")
        anchors.append(facts)
        questions.append(question.strip())
        attributes.update(content_words(sorted(q_words), exclude=subj_words))

    fields = dict(
        forget_id=entry.forget_id,
        action=entry.action,
        subject=entry.subject,
        ngram_n=settings.ngram_n,
        literal_keys=tuple(dict.fromkeys(keys)),
        ngram_hashes=np.array(sorted(hashes), dtype="<u8").tobytes(),
        output_anchors=tuple(anchors),
        subject_terms=subj_terms,
        attribute_terms=tuple(sorted(expand_attributes(attributes))),
    )
    return fields, output_texts, questions
