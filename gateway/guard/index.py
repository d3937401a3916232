"""The forget index: an immutable snapshot of every matcher at one index version, and the checks it answers."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from gateway.guard.anchors import AnchorTerms, trailing_token_start
from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.embedder import CachedEmbedder, Embedder
from gateway.guard.keyed import PROCESS_HASHER, TermHasher
from gateway.guard.matchers import MATCHERS, CheckedText, Matcher
from gateway.guard.observer import NULL_OBSERVER, GuardObserver
from gateway.guard.settings import GuardSettings
from gateway.guard.text import Window, reading_span, split_units, windows_of
from gateway.guard.types import GuardMatch, GuardVerdict

# Windows of a long prompt read together (see ForgetIndex._prompt_matches).
PROMPT_BATCH_WINDOWS = 256


def _deadline(budget_s: float | None) -> float | None:
    if budget_s is None:
        return None
    if budget_s <= 0:
        raise ValueError("budget_s must be positive")
    return time.monotonic() + budget_s


class ForgetIndex:
    """What one guard replica enforces. Snapshots never change: `with_entries` returns a new one that
    shares all sealed data with this one, so a replica swaps versions with one reference assignment and
    checks in flight finish against the version they started with. Its `observer` (kept by every version
    built from it) hears of each prompt check and of each step of the stream guards that enforce it. Its
    `hasher` is the deployment's term key: artifacts hashed with another key are refused.

    >>> index = ForgetIndex.empty(MiniLMEmbedder())
    >>> index = index.with_entries([build_artifacts(entry, index.embedder)], version=1)
    >>> index.check_output("Call me on 4791233457").action
    'block'
    """

    def __init__(
        self,
        embedder: Embedder,
        settings: GuardSettings,
        version: int,
        size: int,
        matchers: tuple[Matcher, ...],
        observer: GuardObserver = NULL_OBSERVER,
        hasher: TermHasher = PROCESS_HASHER,
        anchors: AnchorTerms | None = None,
    ) -> None:
        self.embedder = embedder
        self.settings = settings
        self.version = version
        self._size = size
        self.matchers = matchers
        self.observer = observer
        self.hasher = hasher
        self.anchors = anchors if anchors is not None else AnchorTerms()

    @classmethod
    def empty(
        cls,
        embedder: Embedder,
        settings: GuardSettings | None = None,
        matchers: Iterable[str] | None = None,
        *,
        observer: GuardObserver = NULL_OBSERVER,
        hasher: TermHasher = PROCESS_HASHER,
    ) -> ForgetIndex:
        settings = settings or GuardSettings()
        if not isinstance(embedder, CachedEmbedder):
            embedder = CachedEmbedder(embedder)
        names = list(matchers) if matchers is not None else list(MATCHERS)
        unknown = [n for n in names if n not in MATCHERS]
        if unknown:
            raise ValueError(f"unknown matchers {unknown}; known: {sorted(MATCHERS)}")
        matchers_ = tuple(MATCHERS[n](settings, embedder.dim) for n in names)
        return cls(embedder, settings, 0, 0, matchers_, observer, hasher)

    @classmethod
    def from_artifacts(
        cls,
        embedder: Embedder,
        artifacts: Sequence[EntryArtifacts],
        version: int,
        settings: GuardSettings | None = None,
        *,
        observer: GuardObserver = NULL_OBSERVER,
        hasher: TermHasher = PROCESS_HASHER,
    ) -> ForgetIndex:
        """Rebuild at startup from the ledger, in one batch (so large sets land in one HNSW segment)."""
        return cls.empty(embedder, settings, observer=observer, hasher=hasher).with_entries(list(artifacts), version)

    def __len__(self) -> int:
        return self._size

    def with_entries(self, artifacts: Sequence[EntryArtifacts], version: int) -> ForgetIndex:
        if version < self.version:
            raise ValueError(f"index version must not go back: {version} < {self.version}")
        for a in artifacts:
            if a.model_name != self.embedder.name or a.dim != self.embedder.dim:
                raise ValueError(
                    f"artifacts of {a.forget_id} were embedded by {a.model_name}/{a.dim}, "
                    f"the index uses {self.embedder.name}/{self.embedder.dim}: rebuild them"
                )
            if a.key_id != self.hasher.key_id:
                raise ValueError(
                    f"artifacts of {a.forget_id} were hashed with key {a.key_id}, the index uses "
                    f"{self.hasher.key_id}: the deployment's guard key changed"
                )
        matchers = tuple(m.with_entries(artifacts) for m in self.matchers)
        size = self._size + len(artifacts)
        # A subject entry's fact terms anchor only where written as names or numbers (gateway.guard.anchors);
        # an entry without a subject is recognised by its fact terms alone, so they anchor wherever written.
        anchors = self.anchors.with_terms(
            (
                t
                for a in artifacts
                for t in (
                    *a.subject_terms,
                    *a.full_name,
                    *(() if a.subject_terms else (f for row in a.output_anchors for f in row)),
                )
            ),
            facts=(f for a in artifacts if a.subject_terms for row in a.output_anchors for f in row),
        )
        return ForgetIndex(self.embedder, self.settings, version, size, matchers, self.observer, self.hasher, anchors)

    def compacted(self) -> ForgetIndex:
        """Same content and version, every matcher merged into one segment. Costly at scale (HNSW build):
        run it off the request path and swap the result in if the version did not move meanwhile."""
        return ForgetIndex(
            self.embedder,
            self.settings,
            self.version,
            self._size,
            tuple(m.compacted() for m in self.matchers),
            self.observer,
            self.hasher,
            self.anchors,
        )

    @property
    def literal_reach(self) -> int:
        """Longest original-text span a whole-text match can cover (literals; verbatim runs are bounded
        by words, see StreamGuard)."""
        return max([getattr(m, "reach", 0) for m in self.matchers], default=0)

    def literal_hold_from(self, checked: CheckedText) -> int:
        """The first offset of `checked.text`, the end of a stream, from which a literal match may still end
        in text not written yet (see LiteralMatcher.hold_from); its length when nothing can."""
        holds = [m.hold_from(checked) for m in self.matchers if hasattr(m, "hold_from")]
        return min(holds, default=len(checked.text))

    def verbatim_hold_from(self, checked: CheckedText) -> int:
        """The first offset of `checked.text`, the end of a stream, that a verbatim run may still cover
        (see NgramMatcher.verbatim_hold_from); its length when nothing can."""
        holds = [m.verbatim_hold_from(checked) for m in self.matchers if hasattr(m, "verbatim_hold_from")]
        return min(holds, default=len(checked.text))

    def verbatim_context_needed(self, checked: CheckedText) -> bool:
        """Whether a verbatim run could be in `checked` (one of its shingles is in the index): the verbatim
        matcher then needs `lookback` characters before the text it checks (a run's subject is looked for
        there), not only `literal_reach`."""
        return any(m.knows_any(checked) for m in self.matchers if hasattr(m, "knows_any"))

    def anchor_hold_from(self, text: str, start: int) -> int:
        """The first offset of `text` (the end of a stream, its windows checked up to `start`) where a
        windowed hit could still begin: the first anchor after `start` (gateway.guard.anchors), or the
        token still being written. Its length when neither."""
        tail = self.prepare(text[start:])
        hold = start + tail.anchor_start(0, len(tail.text))
        return min(hold, start + trailing_token_start(tail.text))

    @property
    def lookback(self) -> int:
        """How much text before a whole-text match its matcher looks at (a literal's span, or the window in
        which a verbatim run's subject must be named)."""
        return max(self.literal_reach, self.settings.unit_max_chars)

    # --- checks --------------------------------------------------------------------------------

    def windows(self, text: str) -> list[Window]:
        return windows_of(text, split_units(text, 0, self.settings.unit_max_chars, final=True))

    def find(
        self,
        text: str,
        windows: Sequence[Window],
        *,
        scope: str = "output",
        windowed: bool | None = None,
        strict: bool = False,
        deadline: float | None = None,
    ) -> list[GuardMatch]:
        """Matches of the matchers of `scope` (only windowed or only whole-text ones if asked)."""
        checked = self.prepare(text, windows, strict=strict, deadline=deadline)
        return self.find_in(checked, scope=scope, windowed=windowed)

    def prepare(
        self, text: str, windows: Sequence[Window] = (), *, strict: bool = False, deadline: float | None = None
    ) -> CheckedText:
        """A text under check: its views are computed on first use and shared by everything that reads it.
        `deadline` (`time.monotonic()`): past it the check raises GuardBudgetExceeded."""
        settings = self.settings.with_strict_output() if strict else self.settings
        return CheckedText(text, windows, self.embedder.encode, settings, self.hasher, deadline, self.anchors)

    def find_in(self, checked: CheckedText, *, scope: str = "output", windowed: bool | None = None) -> list[GuardMatch]:
        matches: list[GuardMatch] = []
        for matcher in self.matchers:
            if matcher.scope != scope or (windowed is not None and matcher.windowed != windowed):
                continue
            checked.tick()
            matches += matcher.find(checked)
        return matches

    def check_output(self, text: str, *, strict: bool = False, budget_s: float | None = None) -> GuardVerdict:
        """Literal, verbatim and semantic matches anywhere in a model output. With `budget_s`, a check that
        runs longer raises GuardBudgetExceeded (the text is unchecked: do not serve it)."""
        deadline = _deadline(budget_s)
        return self._verdict(self.find(text, self.windows(text), strict=strict, deadline=deadline))

    def check_prompt(self, text: str, *, budget_s: float | None = None) -> GuardVerdict:
        """Matches of a prompt that asks for forgotten content (action is always "block": refuse, or in
        prompt_mode "strict" guard the answer with `strict=True`)."""
        return self.check_messages([text], budget_s=budget_s)

    def check_messages(self, texts: Sequence[str], *, budget_s: float | None = None) -> GuardVerdict:
        """`check_prompt` over every message of a conversation (system, earlier user and assistant turns,
        the last user message), each on its own: a request is not cleaner for moving the question into the
        system prompt. Match spans are offsets into their own message. Time linear in the total length;
        with `budget_s`, all messages together get that long before GuardBudgetExceeded."""
        started = time.perf_counter()
        deadline = _deadline(budget_s)
        try:
            matches: list[GuardMatch] = []
            for text in texts:
                if text.strip():
                    matches += self._prompt_matches(text, deadline)
            return self._verdict(matches)
        finally:
            self.observer.checked("prompt", time.perf_counter() - started)

    def _prompt_matches(self, text: str, deadline: float | None) -> list[GuardMatch]:
        """The prompt matchers read windows only: a long text is read in runs of PROMPT_BATCH_WINDOWS
        windows, each from its own part of the text (`reading_span`), so the check's cost is linear in the
        text and its deadline is checked between runs, views included. One match per entry, the best."""
        windows = self.windows(text)
        best: dict[str, GuardMatch] = {}
        for i in range(0, len(windows), PROMPT_BATCH_WINDOWS):
            batch = windows[i : i + PROMPT_BATCH_WINDOWS]
            lo, hi = reading_span(text, batch) if len(windows) > PROMPT_BATCH_WINDOWS else (0, len(text))
            local = [w.shifted(-lo) for w in batch]
            for m in self.find(text[lo:hi], local, scope="prompt", deadline=deadline):
                if m.forget_id not in best or best[m.forget_id].score < m.score:
                    best[m.forget_id] = m.shifted(lo)
        return list(best.values())

    def _verdict(self, matches: list[GuardMatch]) -> GuardVerdict:
        ordered = sorted(matches, key=lambda m: (m.start, m.end, m.kind, m.forget_id))
        return GuardVerdict(tuple(ordered), self.version)
