"""The guard's observer: each prompt check and each stream-guard step is reported to the index's observer."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.guard import NULL_OBSERVER, ForgetEntry, ForgetIndex, GuardMatch, StreamGuard
from gateway.guard.artifacts import build_artifacts

SECRET = ForgetEntry("f-secret", "Ingrid Solvang", literals=("+47 912 33 457",), reason="gdpr")


class Recorder:
    def __init__(self) -> None:
        self.checks: list[str] = []
        self.hits: list[tuple[str, tuple[str, ...]]] = []

    def checked(self, stage: str, seconds: float) -> None:
        assert seconds >= 0
        self.checks.append(stage)

    def hit(self, stage: str, matches: Sequence[GuardMatch]) -> None:
        self.hits.append((stage, tuple(m.kind for m in matches)))


def test_every_version_built_from_an_index_reports_to_its_observer(embedder):
    recorder = Recorder()
    index = ForgetIndex.empty(embedder, observer=recorder).with_entries([build_artifacts(SECRET, embedder)], 1)
    assert index.compacted().observer is recorder
    assert ForgetIndex.from_artifacts(embedder, [], 0, observer=recorder).observer is recorder

    index.check_prompt("What is the weather like in Bergen?")
    assert recorder.checks == ["prompt"] and recorder.hits == []

    guarded = StreamGuard(index).guard_all("You can call her on +47 912 33 457 in the morning.")
    assert guarded.stopped
    assert recorder.checks[0] == "prompt" and set(recorder.checks[1:]) == {"output"}
    assert [(stage, set(kinds)) for stage, kinds in recorder.hits] == [("output", {"literal"})]  # one step acted


def test_an_index_without_an_observer_reports_to_nobody(embedder):
    index = ForgetIndex.empty(embedder).with_entries([build_artifacts(SECRET, embedder)], 1)
    assert index.observer is NULL_OBSERVER
    assert StreamGuard(index).guard_all("Call +47 912 33 457.").stopped
