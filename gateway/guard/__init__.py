"""The inference-time guard: forget index, matchers, streaming hold-back. Heavy imports stay in submodules."""

from gateway.guard.artifacts import ARTIFACTS_FORMAT, EntryArtifacts, build_artifacts, build_many_artifacts
from gateway.guard.embedder import CachedEmbedder, Embedder, MiniLMEmbedder
from gateway.guard.index import ForgetIndex
from gateway.guard.observer import NULL_OBSERVER, GuardObserver, GuardStage, NullGuardObserver
from gateway.guard.settings import GuardSettings
from gateway.guard.stream import GuardedText, StreamGuard, StreamStep
from gateway.guard.types import REDACTION_TEXT, REFUSAL_TEXT, ForgetEntry, GuardMatch, GuardVerdict

__all__ = [
    "ARTIFACTS_FORMAT",
    "NULL_OBSERVER",
    "REDACTION_TEXT",
    "REFUSAL_TEXT",
    "CachedEmbedder",
    "Embedder",
    "EntryArtifacts",
    "ForgetEntry",
    "ForgetIndex",
    "GuardMatch",
    "GuardObserver",
    "GuardSettings",
    "GuardStage",
    "GuardVerdict",
    "GuardedText",
    "MiniLMEmbedder",
    "NullGuardObserver",
    "StreamGuard",
    "StreamStep",
    "build_artifacts",
    "build_many_artifacts",
]
