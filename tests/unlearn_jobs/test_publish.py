"""Weight versions: atomic publish, manifest checksums, tamper detection."""

from __future__ import annotations

import json

import pytest

from unlearn_jobs.model import load_model
from unlearn_jobs.publish import (
    VersionError,
    list_versions,
    publish_version,
    read_manifest,
    remove_stale_temp,
    verify_version,
)


@pytest.fixture(scope="module")
def loaded(subject):
    return load_model(subject.model_dir)


def _publish(loaded, root, **kw):
    model, tokenizer = loaded
    return publish_version(
        model,
        tokenizer,
        root,
        parent_version="base",
        method="npo",
        hyperparameters={"lr": 1e-5},
        forget_ids=["f1", "f2"],
        metrics_before={"forget_leakage": 1.0},
        metrics_after={"forget_leakage": 0.0},
        **kw,
    )


def test_published_version_has_a_manifest_that_verifies(loaded, tmp_path):
    v = _publish(loaded, tmp_path)
    verify_version(v.path)
    m = read_manifest(v.path)
    assert m["version_id"] == v.version_id == v.path.name
    assert m["parent_version"] == "base" and m["forget_ids"] == ["f1", "f2"] and m["method"] == "npo"
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(m["files"])
    assert all(len(h) == 64 for h in m["files"].values()) and m["created_at"]
    assert [x["version_id"] for x in list_versions(tmp_path)] == [v.version_id]
    # The published directory loads as a model again.
    model, _ = load_model(v.path)
    assert model is not None


def test_tampering_is_detected(loaded, tmp_path):
    v = _publish(loaded, tmp_path)
    weights = v.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(VersionError, match=r"checksum mismatch for model\.safetensors"):
        verify_version(v.path)


def test_without_weights_only_the_other_files_are_hashed(loaded, tmp_path):
    """`weights=False` (the swap controller's check: the replicas hash the weights they load): the weight
    files must still be there and listed, every other file still matches its sha256."""
    v = _publish(loaded, tmp_path)
    weights = v.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert (
        verify_version(v.path, weights=False)["files"]["model.safetensors"]
        == read_manifest(v.path)["files"]["model.safetensors"]
    )
    config = v.path / "config.json"
    original = config.read_text()
    config.write_text(original.replace("{", '{"x": 1, ', 1))
    with pytest.raises(VersionError, match=r"checksum mismatch for config\.json"):
        verify_version(v.path, weights=False)
    config.write_text(original)
    weights.unlink()
    with pytest.raises(VersionError, match=r"missing file model\.safetensors"):
        verify_version(v.path, weights=False)


def test_missing_and_extra_files_are_detected(loaded, tmp_path):
    v = _publish(loaded, tmp_path)
    (v.path / "config.json").unlink()
    with pytest.raises(VersionError, match=r"missing file config\.json"):
        verify_version(v.path)
    w = _publish(loaded, tmp_path)
    (w.path / "evil.py").write_text("print('hi')")
    with pytest.raises(VersionError, match="not in the manifest"):
        verify_version(w.path)
    (w.path / "manifest.json").write_text("{not json")
    with pytest.raises(VersionError, match="not valid JSON"):
        verify_version(w.path)
    with pytest.raises(VersionError, match="no such version"):
        verify_version(tmp_path / "nope")


def test_exception_mid_publish_leaves_nothing(loaded, tmp_path):
    model, _tokenizer = loaded

    class BrokenTokenizer:
        def save_pretrained(self, path):
            (path / "half-written.json").write_text("{")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        publish_version(
            model,
            BrokenTokenizer(),
            tmp_path,
            parent_version=None,
            method="npo",
            hyperparameters={},
            forget_ids=[],
            metrics_before=None,
            metrics_after=None,
        )
    assert list(tmp_path.iterdir()) == []


def test_existing_version_id_is_refused_and_stale_temp_removed(loaded, tmp_path):
    v = _publish(loaded, tmp_path, version_id="v1")
    with pytest.raises(VersionError, match="already exists"):
        _publish(loaded, tmp_path, version_id="v1")
    stale = tmp_path / ".tmp-v2-dead"
    stale.mkdir()
    assert list_versions(tmp_path)[0]["version_id"] == v.version_id
    assert remove_stale_temp(tmp_path, older_than_s=-1) == [stale]
    assert json.loads((v.path / "manifest.json").read_text())["version_id"] == "v1"


def test_a_version_is_private_whatever_the_umask_and_its_rename_is_fsynced(loaded, tmp_path, monkeypatch):
    import os
    import stat

    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    old = os.umask(0o000)
    try:
        v = _publish(loaded, tmp_path / "versions")
    finally:
        os.umask(old)
    paths = [v.path.parent, v.path, *v.path.rglob("*")]
    assert {str(p): stat.S_IMODE(p.stat().st_mode) for p in paths} == {
        str(p): 0o700 if p.is_dir() else 0o600 for p in paths
    }
    # The versions directory is flushed after the rename that publishes the version (its last dir fsync).
    assert synced[-1] == str(v.path.parent)
