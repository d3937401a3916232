"""The guard's tunables in one frozen value: thresholds (calibrated, see docs/guard.md), windows, index sizes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from gateway.guard.views import SPAN_PER_KEY_CHAR

PromptMode = Literal["refuse", "strict"]


@dataclass(frozen=True)
class GuardSettings:
    """Every number the guard decides with.

    >>> GuardSettings().with_strict_output().semantic_subject < GuardSettings().semantic_subject
    True
    """

    # Semantic matcher (cosine of all-MiniLM-L6-v2, L2-normalised). MiniLM scores "Ingrid Halvorsen was
    # born in Tromsø" 0.81 against "Ingrid Solvang was born in Tromsø", so cosine alone cannot tell a
    # neighbour's fact from a leak: a window also has to name the subject (surname or full name) and/or
    # contain a fact term of the matched item. Three tiers, calibrated on the dev split:
    semantic_subject_fact: float = 0.45  # window names the subject and has a fact term of the item
    semantic_subject: float = 0.60  # window names the subject (or, for subject-less items, has a fact term)
    semantic_strong: float = 0.86  # no anchor at all: only a near-verbatim paraphrase
    semantic_top_k: int = 8
    # The cheap first stage: only windows with an anchor (a word of a subject's name, a fact term of any
    # row, or a token a reading could turn into one: gateway.guard.anchors) are embedded and can be hits;
    # a hit's span starts at its window's first anchor. Off: every window embedded, spans whole windows
    # (the full check the first stage is measured against: benchmarks/bench_guard_stages.py).
    semantic_anchored_only: bool = True

    # Co-occurrence matcher: a window that writes at least cooccur_identifying of one row's facts as names,
    # places or numbers ("Skolegata", "14") carries that row's fact without its wording: a hit when it
    # names the row's subject (a translation keeps names and numbers), or, unnamed ("Her address is
    # Skolegata 14 ..."), when it also shares cooccur_unnamed_facts facts in all and names no one else.
    cooccur_identifying: int = 2
    cooccur_unnamed_facts: int = 3

    # Prompt side: the prompt is close to a forgotten question, or names a subject with an attribute.
    prompt_question_subject: float = 0.55  # names the subject and is this close to a forgotten question
    prompt_question_strong: float = 0.85  # this close to a forgotten question, subject or not
    prompt_mode: PromptMode = "refuse"

    # Verbatim matcher: word 5-gram shingles; a hit needs 4 consecutive ones, i.e. 8 words verbatim.
    ngram_n: int = 5
    ngram_min_run: int = 4
    # Verbatim matching is blind to who a sentence is about ("X works as a forest ranger at Trollheim
    # Dental" is 8 words of a forgotten bio for any X). For an entry with a subject, a run shorter than
    # this many words counts only if the subject is named within unit_max_chars before the run's end.
    ngram_unnamed_words: int = 12
    # A shingle shared by more entries than this ("was born in bergen in") identifies none of them and
    # would make every check walk all its owners: it is dropped, like a stopword.
    ngram_max_owners: int = 64

    # Check units: a sentence, cut at this many characters. The stream guard holds back at most two
    # units (a unit is also checked together with its neighbours) or a literal's reach: see hold_chars.
    unit_max_chars: int = 200

    # Literals longer than this (folded) are refused: a literal's reach (this many characters times
    # SPAN_PER_KEY_CHAR) bounds the stream hold-back.
    literal_max_chars: int = 64
    # Digit literals shorter than this must match a whole number, longer ones may follow a prefix.
    digit_substring_min: int = 7

    # Vector index: exact IndexFlatIP for segments below flat_max rows, HNSW above it.
    flat_max: int = 32_768
    # Rows added one request at a time collect in a flat tail segment, sealed into HNSW at this size.
    tail_max: int = 16_384
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128

    def __post_init__(self) -> None:
        for name in (
            "semantic_subject_fact",
            "semantic_subject",
            "semantic_strong",
            "prompt_question_subject",
            "prompt_question_strong",
        ):
            value = getattr(self, name)
            if not -1.0 <= value <= 1.0:
                raise ValueError(f"{name} is a cosine and must lie in [-1, 1], got {value}")
        if self.prompt_mode not in ("refuse", "strict"):
            raise ValueError(f"prompt_mode must be 'refuse' or 'strict', got {self.prompt_mode!r}")
        if self.ngram_n < 2 or self.ngram_min_run < 1:
            raise ValueError("ngram_n must be >= 2 and ngram_min_run >= 1")
        if self.ngram_unnamed_words < self.ngram_n + self.ngram_min_run - 1:
            raise ValueError("ngram_unnamed_words must be at least ngram_n + ngram_min_run - 1")
        if self.unit_max_chars < 40:
            raise ValueError("unit_max_chars must be >= 40")
        if self.tail_max < 1 or self.flat_max < 1:
            raise ValueError("tail_max and flat_max must be positive")

    @property
    def ngram_hold_words(self) -> int:
        """Longest verbatim run that can still turn into a hit: the stream guard holds that many words."""
        return max(self.ngram_n + self.ngram_min_run - 1, self.ngram_unnamed_words)

    @property
    def hold_chars(self) -> int:
        """Upper bound of text a stream guard holds back: two units, or the reach of the longest literal
        allowed (each key character stands for at most SPAN_PER_KEY_CHAR original ones in any view)."""
        return max(2 * self.unit_max_chars, self.literal_max_chars * SPAN_PER_KEY_CHAR)

    def with_strict_output(self) -> GuardSettings:
        """Lower output thresholds for a response whose prompt touched forgotten content (mode strict)."""
        return replace(
            self,
            semantic_subject_fact=self.semantic_subject_fact - 0.15,
            semantic_subject=self.semantic_subject - 0.15,
            semantic_strong=self.semantic_strong - 0.10,
        )
