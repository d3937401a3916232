"""The matcher seam: a text prepared once for every matcher, and the protocol each matcher implements."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, Protocol, TypeVar, overload

import numpy as np

from gateway.guard.anchors import AnchorTerms, anchor_positions
from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.keyed import PROCESS_HASHER, TermHasher
from gateway.guard.settings import GuardSettings
from gateway.guard.text import Window, Word, identifying_groups, word_set, word_starts, words, words_within
from gateway.guard.types import GuardBudgetExceeded, GuardMatch
from gateway.guard.vectors import VectorStore
from gateway.guard.views import (
    DecodedRun,
    DigitView,
    View,
    canonical,
    decoded_runs,
    email_view,
    has_confusables,
    joined_strings,
    leet_views,
    squeezed_view,
)

Scope = Literal["output", "prompt"]
M = TypeVar("M")
V = TypeVar("V")


class _computed_once(Generic[V]):
    """functools.cached_property without its lock: in Python 3.11 that lock is one per class, so two
    checks on two threads (a huge prompt, a small chat) would wait for each other's views. A CheckedText
    belongs to one check on one thread, so nothing needs the lock."""

    def __init__(self, compute: Callable[[Any], V]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _computed_once[V]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> V: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> V | _computed_once[V]:
        if obj is None:
            return self
        value = self.compute(obj)
        obj.__dict__[self.name] = value  # found before this (non-data) descriptor from now on
        return value


# Windows embedded per call when a check is large: the budget is checked between batches.
EMBED_BATCH = 32
# Queries per FAISS search of a large check (one call has a fixed cost of its own: threads, allocation).
SEARCH_BATCH = 256


class CheckedText:
    """One text under check. Views are computed on first use and shared by all matchers of one check.

    The index stores no words, only their keyed hashes: `window_words`, `hashed_words` and `hashed_groups`
    give the text's words hashed with the index's `hasher`, ready to compare with artifacts."""

    def __init__(
        self,
        text: str,
        windows: Sequence[Window],
        embed: Callable[[list[str]], np.ndarray],
        settings: GuardSettings,
        hasher: TermHasher = PROCESS_HASHER,
        deadline: float | None = None,
        anchors: AnchorTerms | None = None,
    ) -> None:
        self.text = text
        self.windows = tuple(windows)
        self.settings = settings  # thresholds of this check (strict mode lowers them per response)
        self._embed = embed
        self.hasher = hasher
        self.deadline = deadline  # time.monotonic() past which the check gives up (GuardBudgetExceeded)
        self.anchors = anchors  # the index's identifying terms; None: every window anchored at its start
        self._window_words: dict[tuple[int, int], frozenset[int]] = {}

    def tick(self) -> None:
        """Give up if the check is over its time budget. Matchers call it between windows and batches, so a
        check of any size ends within about one window's work of its deadline."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise GuardBudgetExceeded(len(self.text))

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embeddings of `texts`, in batches with a budget check between them."""
        if len(texts) <= EMBED_BATCH:
            self.tick()
            return self._embed(texts)
        parts = []
        for i in range(0, len(texts), EMBED_BATCH):
            self.tick()
            parts.append(self._embed(texts[i : i + EMBED_BATCH]))
        return np.concatenate(parts)

    def search(self, store: VectorStore[M], vectors: np.ndarray, k: int) -> list[list[tuple[float, M]]]:
        """`store.search` in batches, with a budget check between them (a large index costs ~1 ms a query)."""
        if len(vectors) <= SEARCH_BATCH:
            self.tick()
            return store.search(vectors, k)
        results: list[list[tuple[float, M]]] = []
        for i in range(0, len(vectors), SEARCH_BATCH):
            self.tick()
            results += store.search(vectors[i : i + SEARCH_BATCH], k)
        return results

    @_computed_once
    def folded(self) -> View:
        """The canonical view (see gateway.guard.views)."""
        return canonical(self.text)

    @_computed_once
    def decoded(self) -> tuple[DecodedRun, ...]:
        return tuple(decoded_runs(self.text))

    @_computed_once
    def leet(self) -> tuple[View, ...]:
        """Leet readings of the text (none unless a word mixes letters with leet characters)."""
        return tuple(leet_views(self.folded))

    @_computed_once
    def decoded_views(self) -> tuple[View, ...]:
        """The canonical text of each encoded run, every character mapped to the run's whole span."""
        views = []
        for run in self.decoded:
            inner = canonical(run.text)
            n = len(inner.text)
            views.append(View(self.text, inner.text, (run.start,) * n, (run.end,) * n))
        return tuple(views)

    @_computed_once
    def joined(self) -> tuple[View, ...]:
        """The text with quoted pieces of one string joined again (a key cut into chunks in code), if any."""
        view = joined_strings(self.folded)
        return (view,) if view is not None else ()

    @_computed_once
    def readings(self) -> tuple[View, ...]:
        """Every reading of the text in canonical form: the text itself, its leet readings, its quoted pieces
        joined, and the text of each encoded run. Whole-text matchers look at each; no match crosses from
        one to another."""
        return (self.folded, *self.leet, *self.joined, *self.decoded_views)

    @_computed_once
    def digits(self) -> tuple[DigitView, ...]:
        """The digit view of the text and of each decoded run (leet readings turn digits into letters)."""
        return tuple(DigitView.of(v) for v in (self.folded, *self.decoded_views))

    @_computed_once
    def emails(self) -> tuple[View, ...]:
        """E-mail views of the text and of each decoded run (a leet reading changes no "at" or "dot")."""
        return tuple(v for v in (email_view(r) for r in (self.folded, *self.decoded_views)) if v is not None)

    @_computed_once
    def squeezed(self) -> tuple[View, ...]:
        """Squeezed views of the text and of each decoded run (a key keeps its digits: not of leet readings)."""
        return tuple(squeezed_view(r) for r in (self.folded, *self.joined, *self.decoded_views))

    @_computed_once
    def words(self) -> tuple[Word, ...]:
        return words(self.folded)

    @_computed_once
    def reading_words(self) -> tuple[tuple[Word, ...], ...]:
        """`words` of every reading (the first is `words`)."""
        return (self.words, *(words(v) for v in self.readings[1:]))

    @_computed_once
    def window_vectors(self) -> np.ndarray:
        return self.embed([w.text for w in self.windows])

    @_computed_once
    def derived_windows(self) -> tuple[tuple[int, str], ...]:
        """(index into `windows`, text) for each window with another reading: its canonical text when it has
        look-alike letters, its leet readings and the text its encoded runs decode to. Empty for ordinary text, so the common case embeds nothing more."""
        derived: list[tuple[int, str]] = []
        for i, window in enumerate(self.windows):
            if not self.anchored[i]:
                continue  # no reading of it can be a windowed hit: see `anchored`
            self.tick()
            folded = canonical(window.text)
            if has_confusables(window.text):  # the encoder reads "Іnês Carvаlhаl" as noise, "ines carvalhal" not
                derived.append((i, folded.text))
            for view in leet_views(folded):
                derived.append((i, view.text))
            for run in decoded_runs(window.text):
                derived.append((i, run.text))
        return tuple(derived)

    @_computed_once
    def derived_vectors(self) -> np.ndarray:
        return self.embed([text for _, text in self.derived_windows])

    @_computed_once
    def word_hashes(self) -> tuple[int, ...]:
        """The keyed hash of each of `words`."""
        return tuple(self.hasher(w.text) for w in self.words)

    @_computed_once
    def _word_starts(self) -> list[int] | None:
        return word_starts(self.words)

    def window_words(self, window: Window) -> frozenset[int]:
        """Hashed words of the text inside `window`, computed once per window whichever matchers ask."""
        key = (window.start, window.end)
        cached = self._window_words.get(key)
        if cached is None:
            self.tick()
            hashes = self.word_hashes
            inside = words_within(self.words, self._word_starts, window.start, window.end)
            cached = self._window_words[key] = frozenset(hashes[i] for i in inside)
        return cached

    @_computed_once
    def anchor_positions(self) -> list[int]:
        """Where a windowed hit could begin (gateway.guard.anchors), sorted."""
        if self.anchors is None:
            return []
        return anchor_positions(self.text, self.words, self.word_hashes, self.anchors, self.decoded)

    @_computed_once
    def anchored(self) -> tuple[bool, ...]:
        """For each window, whether it has an anchor: only those can be windowed hits, so only those are
        embedded and read in other readings (the cheap first stage). Every window when the settings ask
        for the full check (`semantic_anchored_only` off). A pair with one bare unit is still embedded:
        skipping it lost a probe of the held-out set (a project named in one sentence, its figures two
        sentences later), benchmarks/bench_guard_stages.py."""
        return tuple(self.anchor_start(w.start, w.end) < w.end for w in self.windows)

    def anchor_start(self, start: int, end: int) -> int:
        """The first anchor in [start, end) — where a windowed hit on that span begins — or `end` when the
        span has none (it cannot be a windowed hit). `start` itself when the index gave no terms."""
        if self.anchors is None or not self.settings.semantic_anchored_only:
            return start
        positions = self.anchor_positions
        i = bisect_left(positions, start)
        return positions[i] if i < len(positions) and positions[i] < end else end

    def hashed_words(self, text: str) -> frozenset[int]:
        """Hashed words of another reading of this text (a derived window)."""
        return self.hasher.words(word_set(text))

    def hashed_groups(self, text: str) -> tuple[frozenset[int], ...]:
        """`text.identifying_groups` of `text`, hashed."""
        return self.hasher.groups(identifying_groups(text))


class Matcher(Protocol):
    """One way of recognising forgotten content. Immutable: adding entries returns a new matcher."""

    kind: str
    scope: Scope
    windowed: bool  # True: looks only at CheckedText.windows (complete units); False: at the whole text

    def with_entries(self, artifacts: Sequence[EntryArtifacts]) -> Matcher: ...

    def compacted(self) -> Matcher: ...

    def find(self, text: CheckedText) -> list[GuardMatch]: ...


class MatcherFactory(Protocol):
    def __call__(self, settings: GuardSettings, dim: int) -> Matcher: ...
