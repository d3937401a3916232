"""Session fixtures for guard tests: the real MiniLM embedder, the probe forget set, one index over it."""

from __future__ import annotations

import pytest

from gateway.guard import CachedEmbedder, ForgetEntry, ForgetIndex, MiniLMEmbedder
from gateway.guard.artifacts import build_many_artifacts
from tests.support.guard_sets import load, load_entries


@pytest.fixture(scope="session")
def embedder() -> CachedEmbedder:
    # One thread: the suite shares two cores with engine tests. A large cache: probes are embedded once.
    return CachedEmbedder(MiniLMEmbedder(threads=1), max_items=50_000)


@pytest.fixture(scope="session")
def entries() -> list[ForgetEntry]:
    return load_entries("forget_set")


@pytest.fixture(scope="session")
def artifacts(entries, embedder):
    return build_many_artifacts(entries, embedder)


@pytest.fixture(scope="session")
def index(artifacts, embedder) -> ForgetIndex:
    return ForgetIndex.empty(embedder).with_entries(artifacts, version=len(artifacts))


@pytest.fixture(scope="session")
def probes():
    """Loader of a probe file by name (leaks_test, cleans_test, prompts_leak_test, ...)."""
    return load


@pytest.fixture(scope="session")
def person(entries) -> ForgetEntry:
    return entries[0]  # Ingrid Solvang
