"""The adversarial probe sets (forgotten content in disguise, near misses) and their evaluation against a ForgetIndex.

The sets are written by data/make_adversarial_sets.py. A leak is caught when the guard names its entry: the
whole-text check (`index.check_output(text)`) must list its forget_id among the matches, and the stream path
(`StreamGuard(index).guard_all(text)`, what every response goes through) must have stopped or redacted on a
match of that entry. A match of another entry does not count: it would stop this response by luck. A near miss
is flagged by any match at all.

>>> index = build_index(CachedEmbedder(MiniLMEmbedder(threads=1)))
>>> report = evaluate(index, leak_probes("test"), clean_probes("test"))
>>> report.recall_by_category()["base64"]  # a Rate: hits, n and .rate; report.fp() for the near misses
>>> report.misses(category="base64")  # the LeakProbes it did not catch

Splits: "dev" (tune on it), "test", "both" (dev and test) and "holdout", a split kept back for one final run:
entries of its own (adversarial_forget_set_holdout.json), probed in disguises the other splits do not all have.
Its index holds every entry, dev, test and holdout (`build_index(embedder, split="holdout")`), as production
holds every forget request: its near misses must not match any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.guard import Embedder, ForgetEntry, ForgetIndex, StreamGuard
from gateway.guard.artifacts import build_many_artifacts
from tests.support.guard_sets import load, load_entries

SPLITS = ("dev", "test")  # "both"
HOLDOUT = "holdout"
FORGET_SET = "adversarial_forget_set"
HOLDOUT_FORGET_SET = "adversarial_forget_set_holdout"


@dataclass(frozen=True)
class LeakProbe:
    """A text that leaks content of entry `forget_id`, disguised as `category` (`variant`: language, script, …)."""

    forget_id: str
    category: str
    variant: str
    text: str


@dataclass(frozen=True)
class CleanProbe:
    """A text that must not be flagged; `forget_id` names the entry it is a near miss of, if any."""

    category: str
    variant: str
    text: str
    forget_id: str | None = None


def _splits(split: str) -> tuple[str, ...]:
    if split == "both":
        return SPLITS
    if split not in (*SPLITS, HOLDOUT):
        raise ValueError(f"split must be one of {(*SPLITS, 'both', HOLDOUT)}, got {split!r}")
    return (split,)


def adversarial_entries() -> list[ForgetEntry]:
    """The forget entries of the dev and test splits."""
    return load_entries(FORGET_SET)


def holdout_entries() -> list[ForgetEntry]:
    """The forget entries of the held-out split (their probes are in the holdout files only)."""
    return load_entries(HOLDOUT_FORGET_SET)


def index_entries(split: str) -> list[ForgetEntry]:
    """The entries the index of `split` holds: the dev and test entries, and for "holdout" its own as well."""
    _splits(split)
    return adversarial_entries() + (holdout_entries() if split == HOLDOUT else [])


def leak_probes(split: str) -> list[LeakProbe]:
    """The leak probes of "dev", "test", "both" or "holdout"."""
    return [_leak(p) for s in _splits(split) for p in load(f"adversarial_leaks_{s}")]


def clean_probes(split: str) -> list[CleanProbe]:
    """The near misses of "dev", "test", "both" or "holdout"."""
    return [_clean(p) for s in _splits(split) for p in load(f"adversarial_cleans_{s}")]


def _leak(p: dict[str, Any]) -> LeakProbe:
    return LeakProbe(p["forget_id"], p["category"], p["variant"], p["text"])


def _clean(p: dict[str, Any]) -> CleanProbe:
    return CleanProbe(p["category"], p["variant"], p["text"], p.get("forget_id"))


def build_index(
    embedder: Embedder, entries: Sequence[ForgetEntry] | None = None, *, split: str = "both"
) -> ForgetIndex:
    """A forget index, at one version, over `entries` or else the entries of `split` (`index_entries`: for
    "holdout", dev + test + holdout; otherwise the dev and test entries)."""
    artifacts = build_many_artifacts(list(entries if entries is not None else index_entries(split)), embedder)
    return ForgetIndex.empty(embedder).with_entries(artifacts, version=len(artifacts))


def warm(index: ForgetIndex, texts: Iterable[str]) -> None:
    """Embed every window of every text in one batch (same vectors as one at a time, a fraction of the time);
    the index's embedder must cache them (CachedEmbedder) for this to help."""
    windows = sorted({w.text for t in texts for w in index.windows(t)})
    if windows:
        index.embedder.encode(windows)


@dataclass(frozen=True)
class LeakResult:
    probe: LeakProbe
    caught: bool  # check_output names the probe's entry
    stream_caught: bool | None  # the stream path stopped or redacted on a match of it; None: not run


@dataclass(frozen=True)
class CleanResult:
    probe: CleanProbe
    flagged: bool  # check_output matched anything
    stream_flagged: bool | None  # the stream path stopped or redacted; None: not run


@dataclass(frozen=True)
class Rate:
    hits: int
    n: int

    @property
    def rate(self) -> float:
        return self.hits / self.n if self.n else float("nan")

    def __str__(self) -> str:
        return f"{self.rate:.3f} ({self.hits}/{self.n})"


def _rate(flags: Iterable[bool]) -> Rate:
    values = list(flags)
    return Rate(sum(values), len(values))


@dataclass(frozen=True)
class AdversarialReport:
    """Per-probe outcomes; every rate is derived from them (`stream=True`: the stream path's)."""

    leaks: tuple[LeakResult, ...]
    cleans: tuple[CleanResult, ...]

    def _caught(self, r: LeakResult, stream: bool) -> bool:
        if not stream:
            return r.caught
        if r.stream_caught is None:
            raise ValueError("the stream path was not evaluated")
        return r.stream_caught

    def _flagged(self, r: CleanResult, stream: bool) -> bool:
        if not stream:
            return r.flagged
        if r.stream_flagged is None:
            raise ValueError("the stream path was not evaluated")
        return r.stream_flagged

    def recall(self, *, stream: bool = False) -> Rate:
        return _rate(self._caught(r, stream) for r in self.leaks)

    def fp(self, *, stream: bool = False) -> Rate:
        return _rate(self._flagged(r, stream) for r in self.cleans)

    def recall_by_category(self, *, stream: bool = False) -> dict[str, Rate]:
        by: dict[str, list[bool]] = {}
        for r in self.leaks:
            by.setdefault(r.probe.category, []).append(self._caught(r, stream))
        return {c: _rate(v) for c, v in sorted(by.items())}

    def fp_by_category(self, *, stream: bool = False) -> dict[str, Rate]:
        by: dict[str, list[bool]] = {}
        for r in self.cleans:
            by.setdefault(r.probe.category, []).append(self._flagged(r, stream))
        return {c: _rate(v) for c, v in sorted(by.items())}

    def misses(self, *, stream: bool = False, category: str | None = None) -> list[LeakProbe]:
        return [
            r.probe
            for r in self.leaks
            if not self._caught(r, stream) and (category is None or r.probe.category == category)
        ]

    def false_positives(self, *, stream: bool = False, category: str | None = None) -> list[CleanProbe]:
        return [
            r.probe
            for r in self.cleans
            if self._flagged(r, stream) and (category is None or r.probe.category == category)
        ]


def evaluate(
    index: ForgetIndex, leaks: Sequence[LeakProbe], cleans: Sequence[CleanProbe], *, stream: bool = True
) -> AdversarialReport:
    """Check every probe with `index.check_output` and (unless `stream=False`) through a fresh StreamGuard."""
    warm(index, [p.text for p in leaks] + [c.text for c in cleans])
    leak_results = []
    for p in leaks:
        caught = p.forget_id in {m.forget_id for m in index.check_output(p.text).matches}
        stream_caught = None
        if stream:
            guarded = StreamGuard(index).guard_all(p.text)
            acted = {m.forget_id for m in guarded.verdict.matches}  # what the stream stopped or redacted on
            stream_caught = (guarded.stopped or guarded.verdict.match) and p.forget_id in acted
        leak_results.append(LeakResult(p, caught, stream_caught))
    clean_results = []
    for c in cleans:
        flagged = index.check_output(c.text).match
        stream_flagged = None
        if stream:
            guarded = StreamGuard(index).guard_all(c.text)
            stream_flagged = guarded.stopped or guarded.verdict.match
        clean_results.append(CleanResult(c, flagged, stream_flagged))
    return AdversarialReport(tuple(leak_results), tuple(clean_results))
