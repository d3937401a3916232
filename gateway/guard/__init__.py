"""The inference-time guard: forget index, matchers, streaming hold-back. Heavy imports stay in submodules."""

from gateway.guard.artifacts import ARTIFACTS_FORMAT, EntryArtifacts, build_artifacts, build_many_artifacts
from gateway.guard.embedder import CachedEmbedder, Embedder, MiniLMEmbedder
from gateway.guard.index import ForgetIndex
from gateway.guard.settings import GuardSettings
from gateway.guard.stream import GuardedText, StreamGuard, StreamStep
from gateway.guard.types import REDACTION_TEXT, REFUSAL_TEXT, ForgetEntry, GuardMatch, GuardVerdict

__all__ = [
    "ARTIFACTS_FORMAT", "CachedEmbedder", "Embedder", "EntryArtifacts", "ForgetEntry", "ForgetIndex",
    "GuardMatch", "GuardSettings", "GuardVerdict", "GuardedText", "MiniLMEmbedder", "REDACTION_TEXT",
    "REFUSAL_TEXT", "StreamGuard", "StreamStep", "build_artifacts", "build_many_artifacts",
]
