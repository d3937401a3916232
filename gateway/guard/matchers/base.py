"""The matcher seam: a text prepared once for every matcher, and the protocol each matcher implements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Literal, Protocol

import numpy as np

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.settings import GuardSettings
from gateway.guard.text import DigitView, FoldedText, Window, Word, words
from gateway.guard.types import GuardMatch

Scope = Literal["output", "prompt"]


class CheckedText:
    """One text under check. Views are computed on first use and shared by all matchers of one check."""

    def __init__(
        self,
        text: str,
        windows: Sequence[Window],
        embed: Callable[[list[str]], np.ndarray],
        settings: GuardSettings,
    ) -> None:
        self.text = text
        self.windows = tuple(windows)
        self.settings = settings  # thresholds of this check (strict mode lowers them per response)
        self._embed = embed

    @cached_property
    def folded(self) -> FoldedText:
        return FoldedText.of(self.text)

    @cached_property
    def digits(self) -> DigitView:
        return DigitView.of(self.folded.text)

    @cached_property
    def words(self) -> tuple[Word, ...]:
        return words(self.folded)

    @cached_property
    def window_vectors(self) -> np.ndarray:
        return self._embed([w.text for w in self.windows])

    def window_words(self, window: Window) -> frozenset[str]:
        return frozenset(w.text for w in self.words if w.start >= window.start and w.end <= window.end)


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
