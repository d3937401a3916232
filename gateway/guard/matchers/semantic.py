"""Semantic matcher: MiniLM embeddings of output windows against forgotten sentences and QA pairs in FAISS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.matchers.base import CheckedText, Scope
from gateway.guard.settings import GuardSettings
from gateway.guard.text import names_subject
from gateway.guard.types import GuardMatch
from gateway.guard.vectors import VectorStore


@dataclass(frozen=True)
class _Row:
    forget_id: str
    action: str
    subject: frozenset[int]  # identifying words of the entry's subject, all needed to name it (hashed)
    facts: frozenset[int]  # content words of this row's answer or sentence (hashed)
    full_name: frozenset[int]  # every word of the subject as filed (hashed)


def semantic_hit(
    score: float,
    row_subject: frozenset[int],
    row_facts: frozenset[int],
    window_words: frozenset[int],
    settings: GuardSettings,
    *,
    named: bool | None = None,
    identifying: int | None = None,
) -> bool:
    """The tiered rule (see GuardSettings): the more a window is anchored to the item, the lower the bar.

    `named`: the window names the row's subject (default: its terms are among the window's words; the
    matcher also rules out someone else of the same surname, text.names_subject). `identifying`: how many
    of the window's names, places and numbers are facts of the row; a row without a subject needs
    `cooccur_identifying` of them (a true claim about the same topic shares a place, not its names and numbers).
    """
    if score >= settings.semantic_strong:
        return True
    shared_facts = len(row_facts & window_words)
    if row_subject:
        if not (named if named is not None else row_subject <= window_words):
            return False
        return score >= settings.semantic_subject or (shared_facts > 0 and score >= settings.semantic_subject_fact)
    # No subject (a claim, a project): its own names and numbers identify it; one shared place or name is
    # only the same topic ("the Hardangerfjord"), two or more are the claim.
    if identifying is not None and identifying < settings.cooccur_identifying:
        return False
    return (shared_facts > 0 and score >= settings.semantic_subject) or (
        shared_facts > 1 and score >= settings.semantic_subject_fact
    )


class SemanticMatcher:
    """Each complete window (a unit, or two neighbouring units) of the output is embedded once and searched
    among the forgotten rows; a leak inside a long benign answer is caught by the window that holds it.
    """

    kind = "semantic"
    scope: Scope = "output"
    windowed = True

    def __init__(self, settings: GuardSettings, dim: int, store: VectorStore[_Row] | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else VectorStore(dim, settings)

    def with_entries(self, artifacts: Sequence[EntryArtifacts]) -> SemanticMatcher:
        rows: list[_Row] = []
        matrices = []
        for a in artifacts:
            if not a.output_vectors:  # semantic rows dropped at shredding
                continue
            subject = frozenset(a.subject_terms)
            full_name = frozenset(a.full_name)
            rows += [_Row(a.forget_id, a.action, subject, frozenset(f), full_name) for f in a.output_anchors]
            matrices.append(a.output_matrix())
        if not rows:
            return self
        return SemanticMatcher(self.settings, self.store.dim, self.store.with_rows(np.concatenate(matrices), rows))

    def compacted(self) -> SemanticMatcher:
        return SemanticMatcher(self.settings, self.store.dim, self.store.compacted())

    def find(self, text: CheckedText) -> list[GuardMatch]:
        if not len(self.store) or not text.windows:
            return []
        # The first stage: a window without an anchor (no subject word, no fact term, nothing a reading
        # could turn into one) cannot pass the tiered rule, so it is not embedded (gateway.guard.anchors).
        chosen = [i for i, w in enumerate(text.windows) if text.anchored[i]]
        if not chosen:
            return []
        # Each window as written, then its other readings (leet, decoded runs): a hit on either is the window's.
        spans = [text.windows[i] for i in chosen]
        if len(chosen) == len(text.windows):
            vectors = text.window_vectors
        else:
            vectors = text.embed([w.text for w in spans])
        words = [text.window_words(w) for w in spans]
        written = [w.text for w in spans]
        if text.derived_windows:
            spans += [text.windows[i] for i, _ in text.derived_windows]
            vectors = np.concatenate([vectors, text.derived_vectors])
            words += [text.hashed_words(derived) for _, derived in text.derived_windows]
            written += [derived for _, derived in text.derived_windows]
        results = text.search(self.store, vectors, self.settings.semantic_top_k)
        matches: dict[tuple[str, int, int], GuardMatch] = {}
        for window, window_words, window_text, hits in zip(spans, words, written, results):
            text.tick()
            groups = text.hashed_groups(window_text) if hits else ()
            start = text.anchor_start(window.start, window.end)  # the words before it carry nothing of a row
            for score, row in hits:
                named = names_subject(groups, window_words, row.subject, row.full_name, text.hasher.titles)
                identifying = sum(1 for g in groups if g & row.facts)
                if not semantic_hit(
                    score, row.subject, row.facts, window_words, text.settings, named=named, identifying=identifying
                ):
                    continue
                key = (row.forget_id, start, window.end)
                if key not in matches or matches[key].score < score:
                    matches[key] = GuardMatch(row.forget_id, "semantic", score, start, window.end, row.action)
        return list(matches.values())
