"""Verbatim matcher: hashed word n-gram shingles of forgotten texts and answers, hit on a run of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.guard.artifacts import EntryArtifacts, shingles
from gateway.guard.keyed import TermHasher
from gateway.guard.matchers.base import CheckedText, Scope
from gateway.guard.segments import Segment, append_items, compact_items
from gateway.guard.settings import GuardSettings
from gateway.guard.text import Word, word_starts, words_within
from gateway.guard.types import GuardMatch

# (forget_id, action, hashed subject terms, sorted shingle hashes, sorted shingle-prefix hashes or None)
Item = tuple[str, str, frozenset[int], np.ndarray, np.ndarray | None]


@dataclass(frozen=True)
class _Table:
    hashes: np.ndarray  # sorted uint64
    owners: np.ndarray  # int32 index into `entries`, aligned with hashes
    entries: tuple[tuple[str, str, frozenset[int]], ...]
    prefixes: np.ndarray | None  # sorted unique uint64; None when an entry's artifacts predate them


def _build(items: tuple[Item, ...], max_owners: int) -> _Table:
    arrays = [i[3] for i in items]
    hashes = np.concatenate(arrays) if arrays else np.zeros(0, dtype="<u8")
    owners = np.repeat(np.arange(len(items), dtype=np.int32), [len(a) for a in arrays])
    order = np.argsort(hashes, kind="stable")
    hashes, owners = hashes[order], owners[order]
    _, _first, counts = np.unique(hashes, return_index=True, return_counts=True)
    keep = np.repeat(counts <= max_owners, counts)
    known = [i[4] for i in items]
    prefixes = None
    if all(p is not None for p in known):
        prefixes = np.unique(np.concatenate([p for p in known if p is not None] or [np.zeros(0, dtype="<u8")]))
    return _Table(hashes[keep], owners[keep], tuple((i[0], i[1], i[2]) for i in items), prefixes)


def _contains(sorted_hashes: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each query hash, whether it is in `sorted_hashes`."""
    if not len(sorted_hashes):
        return np.zeros(len(query), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_hashes, query, side="left"), len(sorted_hashes) - 1)
    return np.asarray(sorted_hashes[at] == query)


class NgramMatcher:
    """Hashed n-word shingles (words folded, punctuation ignored); a hit is settings.ngram_min_run
    consecutive shingles of one entry, i.e. ngram_n + ngram_min_run - 1 words verbatim (8 by default),
    long enough that stock phrases ("was born in the city of") shared with benign text do not fire. For an
    entry with a subject, a run under ngram_unnamed_words (12) words also needs the subject named within
    unit_max_chars before the run's end.
    Score is the number of words in the run.
    """

    kind = "ngram"
    scope: Scope = "output"
    windowed = False

    def __init__(self, settings: GuardSettings, dim: int = 0, segments: tuple[Segment[Item, _Table], ...] = ()) -> None:
        self.settings = settings
        self.segments = segments

    def with_entries(self, artifacts: Sequence[EntryArtifacts]) -> NgramMatcher:
        for a in artifacts:
            if a.ngram_n != self.settings.ngram_n:
                raise ValueError(f"artifacts of {a.forget_id} use {a.ngram_n}-grams, the index {self.settings.ngram_n}")
        items = [
            (a.forget_id, a.action, frozenset(a.subject_terms), a.ngram_array(), a.prefix_array())
            for a in artifacts
            if a.ngram_hashes
        ]
        return NgramMatcher(self.settings, 0, append_items(self.segments, items, self._build, self.settings.tail_max))

    def _build(self, items: tuple[Item, ...]) -> _Table:
        return _build(items, self.settings.ngram_max_owners)

    def compacted(self) -> NgramMatcher:
        return NgramMatcher(self.settings, 0, compact_items(self.segments, self._build))

    def _shingles(self, checked: CheckedText, words: tuple[Word, ...]) -> np.ndarray:
        """Keyed hashes of the shingles of one reading of `checked`, computed once per check (the stream
        guard's find, open-run and context tests all read them)."""
        cache: dict[int, np.ndarray] = checked.__dict__.setdefault("_ngram_shingles", {})
        query = cache.get(id(words))
        if query is None:
            tokens = [w.text for w in words]
            query = np.array(shingles(tokens, self.settings.ngram_n, checked.hasher), dtype="<u8")
            cache[id(words)] = query
        return query

    def knows_any(self, checked: CheckedText) -> bool:
        """Whether any shingle of `checked`, in any reading, is one of the index's. A stream's check reads a
        short tail when none is: no verbatim run can then reach its unreleased text (StreamGuard)."""
        n = self.settings.ngram_n
        for words in checked.reading_words:
            if len(words) < n or not self.segments:
                continue
            query = self._shingles(checked, words)
            if any(_contains(segment.built.hashes, query).any() for segment in self.segments):
                return True
        return False

    def _can_begin_shingle(self, words: Sequence[Word], checked: CheckedText) -> int:
        """How many of the last words (fewer than ngram_n, all whole) can still begin a shingle of the index:
        the longest such tail whose words are the first words of one. ngram_n - 1 when some entry's
        artifacts predate shingle prefixes (then any words might)."""
        n = self.settings.ngram_n
        tables: list[_Table] = [segment.built for segment in self.segments]
        if any(t.prefixes is None for t in tables):
            return min(n - 1, len(words))
        for k in range(min(n - 1, len(words)), 0, -1):
            query = np.array([checked.hasher(" ".join(w.text for w in words[len(words) - k :]))], dtype="<u8")
            if any(_contains(t.prefixes, query)[0] for t in tables if t.prefixes is not None):
                return k
        return 0

    def verbatim_hold_from(self, checked: CheckedText) -> int:
        """The first offset of `checked.text` (the end of a stream) that a verbatim hit may still cover when
        more text comes, in every reading: a hit is a run of consecutive shingles of the index, so only the
        run still open at the end (its first word), the last words that may still begin a shingle (the
        first 1 .. ngram_n - 1 words of one: keyed prefix hashes) and the word being written can grow into
        one. Text before that is either part of a run already checked or of none. Ordinary prose holds back
        the word being written, and a word or two where they begin a forgotten sentence."""
        n = self.settings.ngram_n
        hold = len(checked.text)
        if not self.segments:
            return hold
        for words in checked.reading_words:
            if not words:
                continue
            # A word that reaches the end may still grow ("Velm" -> "Velmora"): it is not a word yet.
            ws = words[:-1] if words[-1].end >= len(checked.text) else words
            hold = min(hold, words[-1].start)
            if not ws:
                continue
            first = len(ws) - self._can_begin_shingle(ws, checked)  # words a shingle may still begin with
            if len(ws) >= n:
                query = self._shingles(checked, words)[: len(ws) - n + 1]
                known = np.zeros(len(query), dtype=bool)
                for segment in self.segments:
                    table: _Table = segment.built
                    lo = np.searchsorted(table.hashes, query, side="left")
                    hi = np.searchsorted(table.hashes, query, side="right")
                    known |= hi > lo
                pos = len(query)
                while pos > 0 and known[pos - 1]:  # the open run: shingles of the index up to the end
                    pos -= 1
                if pos < len(query):
                    first = min(first, pos)
            if first < len(ws):
                hold = min(hold, ws[first].start)
        return hold

    def find(self, text: CheckedText) -> list[GuardMatch]:
        if not self.segments:
            return []
        found: dict[tuple[str, int, int], GuardMatch] = {}
        for ws in text.reading_words:  # the text itself, its leet readings, decoded runs: each on its own
            for match in self._find_in(ws, self._shingles(text, ws), text.settings, text.hasher):
                found.setdefault((match.forget_id, match.start, match.end), match)
        return list(found.values())

    def _find_in(
        self, ws: tuple[Word, ...], query: np.ndarray, s: GuardSettings, hasher: TermHasher
    ) -> list[GuardMatch]:
        n = self.settings.ngram_n
        if len(ws) < n:
            return []
        starts = word_starts(ws)
        # positions[entry] = shingle positions of the text that belong to that entry
        positions: dict[tuple[str, str, frozenset[int]], list[int]] = {}
        for segment in self.segments:
            table: _Table = segment.built
            lo = np.searchsorted(table.hashes, query, side="left")
            hi = np.searchsorted(table.hashes, query, side="right")
            for pos in np.nonzero(hi > lo)[0]:
                for owner in set(table.owners[lo[pos] : hi[pos]].tolist()):
                    positions.setdefault(table.entries[owner], []).append(int(pos))
        matches = []
        for (forget_id, action, subject), found in positions.items():
            found = sorted(set(found))
            run_start = prev = found[0]
            for pos in [*found[1:], None]:
                if pos is not None and pos == prev + 1:
                    prev = pos
                    continue
                if prev - run_start + 1 >= s.ngram_min_run:
                    first, last = ws[run_start], ws[prev + n - 1]
                    n_words = prev - run_start + n
                    if (
                        n_words >= s.ngram_unnamed_words
                        or not subject
                        or subject
                        <= hasher.words(
                            ws[i].text for i in words_within(ws, starts, last.end - s.unit_max_chars, last.end)
                        )
                    ):
                        matches.append(GuardMatch(forget_id, "ngram", float(n_words), first.start, last.end, action))
                if pos is not None:
                    run_start = prev = pos
        return matches
