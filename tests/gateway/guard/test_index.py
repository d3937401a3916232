"""Index snapshots: versions, copy-on-add, segment policy, exact vs HNSW, rebuild from the ledger."""

import dataclasses

import pytest

from gateway.guard import ForgetEntry, ForgetIndex, GuardSettings, build_artifacts
from gateway.ledger import Ledger

PROBE = "Ingrid Solvang was born in Tampere, you know."


def test_version_never_goes_back(index):
    with pytest.raises(ValueError):
        index.with_entries([], version=index.version - 1)


def test_snapshots_are_immutable(embedder, artifacts):
    empty = ForgetIndex.empty(embedder)
    full = empty.with_entries(artifacts[:1], version=1)
    assert full.check_output(PROBE).match and not empty.check_output(PROBE).match
    assert len(empty) == 0 and len(full) == 1


def test_artifacts_from_another_model_are_refused(index, artifacts):
    other = dataclasses.replace(artifacts[0], model_name="other-model")
    with pytest.raises(ValueError):
        index.with_entries([other], version=index.version + 1)


def test_segments_seal_and_compact_without_changing_answers(embedder, artifacts, probes):
    # Tiny thresholds force many sealed segments, then HNSW on compaction.
    settings = GuardSettings(tail_max=20, flat_max=60)
    grown = ForgetIndex.empty(embedder, settings)
    for i, a in enumerate(artifacts):
        grown = grown.with_entries([a], version=i + 1)
    semantic = next(m for m in grown.matchers if m.kind == "semantic")
    assert len(semantic.store.segments) > 3
    compact = grown.compacted()
    semantic_c = next(m for m in compact.matchers if m.kind == "semantic")
    assert [s.kind for s in semantic_c.store.segments] == ["hnsw"]
    reference = ForgetIndex.empty(embedder).with_entries(artifacts, version=30)
    for p in probes("leaks_test")[:40] + probes("cleans_test")[:40]:
        expect = {(m.forget_id, m.kind) for m in reference.check_output(p["text"]).matches}
        assert {(m.forget_id, m.kind) for m in grown.check_output(p["text"]).matches} == expect, p["text"]
        assert {(m.forget_id, m.kind) for m in compact.check_output(p["text"]).matches} == expect, p["text"]


def test_restart_rebuilds_the_same_index_from_the_ledger(tmp_path, embedder, entries, artifacts, index):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.open(url)
    for entry, a in zip(entries, artifacts):
        ledger.add_forget(entry, a)
    ledger.close()
    snapshot = Ledger.open(url).snapshot()
    assert snapshot.version == 30 and list(snapshot.artifacts) == artifacts
    rebuilt = ForgetIndex.from_artifacts(embedder, snapshot.artifacts, snapshot.version)
    assert rebuilt.version == index.version and len(rebuilt) == len(index)
    for text in (PROBE, "Call 948 52 209", "Tampere is lovely in June."):
        assert rebuilt.check_output(text).matches == index.check_output(text).matches


def test_entry_added_to_a_live_index_is_enforced(embedder, index):
    entry = ForgetEntry(
        "new-1",
        "Kari Mjelde",
        qa=(("Where does Kari Mjelde work?", "At the Oslo Opera."),),
        literals=("kari@mjelde.example",),
        reason="gdpr",
    )
    text = "Kari Mjelde works at the Oslo Opera; write to kari@mjelde.example."
    assert not index.check_output(text).match
    newer = index.with_entries([build_artifacts(entry, embedder)], version=index.version + 1)
    verdict = newer.check_output(text)
    assert {m.kind for m in verdict.matches} >= {"literal", "semantic"} and verdict.index_version == 31
