"""What the guard tells about its own work (check durations, hits), to whoever listens: the guard imports
no metrics; the gateway hands it `gateway.observability.metrics.GuardMetrics`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from gateway.guard.types import GuardMatch

# prompt: a prompt check (`ForgetIndex.check_prompt`); output: one step of the streaming output guard.
GuardStage = Literal["prompt", "output"]


class GuardObserver(Protocol):
    """Told about every check the index or a stream guard makes. Both calls sit on the request path:
    an observer keeps them cheap and never raises.

    >>> index = ForgetIndex.empty(embedder, observer=GuardMetrics())   # StreamGuard(index) reports to it too
    """

    def checked(self, stage: GuardStage, seconds: float) -> None:
        """One check of `stage` took `seconds` (whether it matched or not)."""

    def hit(self, stage: GuardStage, matches: Sequence[GuardMatch]) -> None:
        """The guard acted on `matches` (found in one check of `stage`)."""


class NullGuardObserver:
    """The default observer: keeps nothing."""

    def checked(self, stage: GuardStage, seconds: float) -> None:
        pass

    def hit(self, stage: GuardStage, matches: Sequence[GuardMatch]) -> None:
        pass


NULL_OBSERVER: GuardObserver = NullGuardObserver()
