"""Ledger test fixtures: a fresh SQLite ledger per test, and artifacts that need no embedding model."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.types import ForgetEntry
from gateway.ledger import Ledger


def make_pair(i: int, dim: int = 8) -> tuple[ForgetEntry, EntryArtifacts]:
    fid = f"forget-{i:04d}"
    entry = ForgetEntry(fid, f"Person Number{i}", qa=((f"Where does Number{i} live?", "Bergen"),),
                        literals=(f"+47 900 00 {i:03d}",), reason="gdpr")
    rng = np.random.default_rng(i)
    vec = rng.standard_normal((1, dim)).astype(np.float32)
    vec /= np.linalg.norm(vec)
    artifacts = EntryArtifacts(
        forget_id=fid, action="block", subject=entry.subject, model_name="test-model", dim=dim, ngram_n=5,
        literal_keys=(("digits", f"4790000{i:03d}"),), ngram_hashes=np.array([i, i + 1], dtype="<u8").tobytes(),
        output_vectors=vec.tobytes(), output_anchors=(("bergen",),), question_vectors=vec.tobytes(),
        subject_terms=(f"number{i}",), attribute_terms=("live",),
    )
    return entry, artifacts


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'home' / 'ledger.db'}"


@pytest.fixture
def ledger(url):
    ledger = Ledger.open(url)
    yield ledger
    ledger.close()
