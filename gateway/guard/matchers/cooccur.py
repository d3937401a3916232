"""Co-occurrence matcher: a window that writes several names, places or numbers of one forgotten fact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.matchers.base import CheckedText, Scope
from gateway.guard.segments import Segment, append_items, compact_items
from gateway.guard.settings import GuardSettings
from gateway.guard.text import names_subject
from gateway.guard.types import GuardMatch

# (forget_id, action, subject terms, facts of one row, the subject's full name), words as keyed hashes
Item = tuple[str, str, frozenset[int], frozenset[int], frozenset[int]]


@dataclass(frozen=True)
class _Terms:
    rows: tuple[Item, ...]
    by_term: dict[int, tuple[int, ...]]  # fact word -> rows that have it
    entry_facts: dict[str, frozenset[int]]  # forget id -> the facts of all its rows


def _build(items: tuple[Item, ...]) -> _Terms:
    by_term: dict[int, list[int]] = {}
    entry_facts: dict[str, set[int]] = {}
    for i, (forget_id, _, _, facts, _) in enumerate(items):
        entry_facts.setdefault(forget_id, set()).update(facts)
        for term in facts:
            by_term.setdefault(term, []).append(i)
    return _Terms(
        items,
        {term: tuple(rows) for term, rows in by_term.items()},
        {fid: frozenset(facts) for fid, facts in entry_facts.items()},
    )


class CooccurMatcher:
    """The facts of a forgotten row survive rewording, translation and dropping the name as long as their
    names, places and numbers are written (`text.identifying_groups`: "Vestfold Zoo" is one, "Skolegata 14"
    two). A window that writes `cooccur_identifying` of one row's facts that way is a hit:
    - when it names the row's subject (a translation: "Ingrid Solvang ble født i Tampere i 1964"; not a
      namesake, text.names_subject);
    - unnamed ("Her address is Skolegata 14, where she keeps an old tortoise") or for a row without a
      subject (a reworded false claim keeps its names and numbers), when it shares at least
      `cooccur_unnamed_facts` of the row's facts in all and writes no name of several words that is not
      one of the entry's (a neighbour born in the same city and year is someone else).
    No embedding: a window costs a few dictionary lookups.
    """

    kind = "cooccur"
    scope: Scope = "output"
    windowed = True

    def __init__(self, settings: GuardSettings, dim: int = 0, segments: tuple[Segment[Item, _Terms], ...] = ()) -> None:
        self.settings = settings
        self.segments = segments

    def with_entries(self, artifacts: Sequence[EntryArtifacts]) -> CooccurMatcher:
        items = [
            (
                a.forget_id,
                a.action,
                frozenset(a.subject_terms),
                frozenset(facts),
                frozenset(a.full_name),
            )
            for a in artifacts
            for facts in a.output_anchors
            if len(facts) >= self.settings.cooccur_identifying
        ]
        return CooccurMatcher(self.settings, 0, append_items(self.segments, items, _build, self.settings.tail_max))

    def compacted(self) -> CooccurMatcher:
        return CooccurMatcher(self.settings, 0, compact_items(self.segments, _build))

    def find(self, text: CheckedText) -> list[GuardMatch]:
        if not self.segments or not text.windows:
            return []
        s = text.settings
        windows = [(w, w.text) for i, w in enumerate(text.windows) if text.anchored[i]]
        windows += [(text.windows[i], derived) for i, derived in text.derived_windows]
        found: dict[tuple[str, int, int], GuardMatch] = {}
        for window, written in windows:
            text.tick()
            groups = text.hashed_groups(written)
            if len(groups) < s.cooccur_identifying:
                continue
            words = frozenset[int]().union(*groups) | text.window_words(window)
            for segment in self.segments:
                terms: _Terms = segment.built
                candidates: dict[int, int] = {}
                for group in groups:
                    for row in {r for term in group for r in terms.by_term.get(term, ())}:
                        candidates[row] = candidates.get(row, 0) + 1
                for row, shared_groups in candidates.items():
                    if shared_groups < s.cooccur_identifying:
                        continue
                    forget_id, action, subject, facts, full_name = terms.rows[row]
                    if subject and names_subject(groups, words, subject, full_name, text.hasher.titles):
                        hit = True
                    else:
                        # Unnamed, or no subject at all (a claim): more of the row, and no one else's name.
                        known = terms.entry_facts[forget_id]
                        others = [g for g in groups if len(g) > 1 and not g & known]
                        hit = len(facts & words) >= s.cooccur_unnamed_facts and not others
                    if hit:
                        start = text.anchor_start(window.start, window.end)  # where the row's facts begin
                        key = (forget_id, start, window.end)
                        found.setdefault(
                            key, GuardMatch(forget_id, "cooccur", float(shared_groups), start, window.end, action)
                        )
        return list(found.values())
