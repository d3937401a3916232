"""The matcher seam: a text prepared once for every matcher, and the protocol each matcher implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Literal, Protocol

import numpy as np

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.keyed import PROCESS_HASHER, TermHasher
from gateway.guard.settings import GuardSettings
from gateway.guard.text import Window, Word, identifying_groups, word_set, words
from gateway.guard.types import GuardMatch
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
    ) -> None:
        self.text = text
        self.windows = tuple(windows)
        self.settings = settings  # thresholds of this check (strict mode lowers them per response)
        self._embed = embed
        self.hasher = hasher

    @cached_property
    def folded(self) -> View:
        """The canonical view (see gateway.guard.views)."""
        return canonical(self.text)

    @cached_property
    def decoded(self) -> tuple[DecodedRun, ...]:
        return tuple(decoded_runs(self.text))

    @cached_property
    def leet(self) -> tuple[View, ...]:
        """Leet readings of the text (none unless a word mixes letters with leet characters)."""
        return tuple(leet_views(self.folded))

    @cached_property
    def decoded_views(self) -> tuple[View, ...]:
        """The canonical text of each encoded run, every character mapped to the run's whole span."""
        views = []
        for run in self.decoded:
            inner = canonical(run.text)
            n = len(inner.text)
            views.append(View(self.text, inner.text, (run.start,) * n, (run.end,) * n))
        return tuple(views)

    @cached_property
    def joined(self) -> tuple[View, ...]:
        """The text with quoted pieces of one string joined again (a key cut into chunks in code), if any."""
        view = joined_strings(self.folded)
        return (view,) if view is not None else ()

    @cached_property
    def readings(self) -> tuple[View, ...]:
        """Every reading of the text in canonical form: the text itself, its leet readings, its quoted pieces
        joined, and the text of each encoded run. Whole-text matchers look at each; no match crosses from
        one to another."""
        return (self.folded, *self.leet, *self.joined, *self.decoded_views)

    @cached_property
    def digits(self) -> tuple[DigitView, ...]:
        """The digit view of the text and of each decoded run (leet readings turn digits into letters)."""
        return tuple(DigitView.of(v) for v in (self.folded, *self.decoded_views))

    @cached_property
    def emails(self) -> tuple[View, ...]:
        """E-mail views of the text and of each decoded run (a leet reading changes no "at" or "dot")."""
        return tuple(v for v in (email_view(r) for r in (self.folded, *self.decoded_views)) if v is not None)

    @cached_property
    def squeezed(self) -> tuple[View, ...]:
        """Squeezed views of the text and of each decoded run (a key keeps its digits: not of leet readings)."""
        return tuple(squeezed_view(r) for r in (self.folded, *self.joined, *self.decoded_views))

    @cached_property
    def words(self) -> tuple[Word, ...]:
        return words(self.folded)

    @cached_property
    def reading_words(self) -> tuple[tuple[Word, ...], ...]:
        """`words` of every reading (the first is `words`)."""
        return (self.words, *(words(v) for v in self.readings[1:]))

    @cached_property
    def window_vectors(self) -> np.ndarray:
        return self._embed([w.text for w in self.windows])

    @cached_property
    def derived_windows(self) -> tuple[tuple[int, str], ...]:
        """(index into `windows`, text) for each window with another reading: its canonical text when it has
        look-alike letters, its leet readings and the text its encoded runs decode to. Empty for ordinary text, so the common case embeds nothing more."""
        derived: list[tuple[int, str]] = []
        for i, window in enumerate(self.windows):
            folded = canonical(window.text)
            if has_confusables(window.text):  # the encoder reads "Іnês Carvаlhаl" as noise, "ines carvalhal" not
                derived.append((i, folded.text))
            for view in leet_views(folded):
                derived.append((i, view.text))
            for run in decoded_runs(window.text):
                derived.append((i, run.text))
        return tuple(derived)

    @cached_property
    def derived_vectors(self) -> np.ndarray:
        return self._embed([text for _, text in self.derived_windows])

    @cached_property
    def word_hashes(self) -> tuple[int, ...]:
        """The keyed hash of each of `words`."""
        return tuple(self.hasher(w.text) for w in self.words)

    def window_words(self, window: Window) -> frozenset[int]:
        """Hashed words of the text inside `window`."""
        return frozenset(
            h for w, h in zip(self.words, self.word_hashes) if w.start >= window.start and w.end <= window.end
        )

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
