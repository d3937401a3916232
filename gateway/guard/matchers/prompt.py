"""Prompt matcher: a prompt close to a forgotten question, or naming a forgotten subject with one of its attributes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.matchers.base import CheckedText, Scope
from gateway.guard.segments import Segment, append_items, compact_items
from gateway.guard.settings import GuardSettings
from gateway.guard.types import GuardMatch
from gateway.guard.vectors import VectorStore

# Prompt matches always ask for a refusal; in mode "strict" the caller answers but guards the output with
# GuardSettings.with_strict_output() instead.
PROMPT_ACTION = "block"

# (a subject term, forget_id, attributes, all subject terms), words as keyed hashes
Item = tuple[int, str, frozenset[int], frozenset[int]]
# subject term -> (forget_id, attributes, all subject terms) of every entry keyed by it
TermTable = dict[int, tuple[tuple[str, frozenset[int], frozenset[int]], ...]]


@dataclass(frozen=True)
class _Question:
    forget_id: str
    subject: frozenset[int]


def _build_terms(items: tuple[Item, ...]) -> TermTable:
    table: dict[int, list[tuple[str, frozenset[int], frozenset[int]]]] = {}
    for term, forget_id, attributes, subject in items:
        table.setdefault(term, []).append((forget_id, attributes, subject))
    return {k: tuple(v) for k, v in table.items()}


class PromptMatcher:
    kind = "prompt"
    scope: Scope = "prompt"
    windowed = True

    def __init__(
        self,
        settings: GuardSettings,
        dim: int,
        store: VectorStore[_Question] | None = None,
        terms: tuple[Segment[Item, TermTable], ...] = (),
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else VectorStore(dim, settings)
        self.terms = terms

    def with_entries(self, artifacts: Sequence[EntryArtifacts]) -> PromptMatcher:
        rows: list[_Question] = []
        matrices: list[np.ndarray] = []
        items: list[Item] = []
        for a in artifacts:
            subject = frozenset(a.subject_terms)
            q = a.question_matrix()
            rows += [_Question(a.forget_id, subject)] * len(q)
            matrices.append(q)
            attributes = frozenset(a.attribute_terms)
            # Keyed by the first subject term only: a prompt must contain all of them anyway.
            items += [(term, a.forget_id, attributes, subject) for term in a.subject_terms[:1]]
        store = self.store.with_rows(np.concatenate(matrices), rows) if rows else self.store
        terms = append_items(self.terms, items, _build_terms, self.settings.tail_max)
        return PromptMatcher(self.settings, self.store.dim, store, terms)

    def compacted(self) -> PromptMatcher:
        return PromptMatcher(
            self.settings, self.store.dim, self.store.compacted(), compact_items(self.terms, _build_terms)
        )

    def find(self, text: CheckedText) -> list[GuardMatch]:
        if not text.windows:
            return []
        s = text.settings
        best: dict[str, GuardMatch] = {}

        def keep(m: GuardMatch) -> None:
            if m.forget_id not in best or best[m.forget_id].score < m.score:
                best[m.forget_id] = m

        window_words = [text.window_words(w) for w in text.windows]
        for window, ws in zip(text.windows, window_words):
            text.tick()
            for segment in self.terms:
                for term in ws:
                    for forget_id, attributes, subject in segment.built.get(term, ()):
                        if subject <= ws and attributes & ws:
                            keep(GuardMatch(forget_id, "prompt", 1.0, window.start, window.end, PROMPT_ACTION))
        if len(self.store):
            results = text.search(self.store, text.window_vectors, s.semantic_top_k)
            for window, ws, hits in zip(text.windows, window_words, results):
                for score, q in hits:
                    if score >= s.prompt_question_strong or (
                        score >= s.prompt_question_subject and q.subject and q.subject <= ws
                    ):
                        keep(GuardMatch(q.forget_id, "prompt", score, window.start, window.end, PROMPT_ACTION))
        return list(best.values())
