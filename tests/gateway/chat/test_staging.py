"""gateway.chat.engines.staging: weights read and hashed ahead of a swap, and the check that they loaded."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from gateway.chat.engines.staging import (
    StagedWeights,
    StagingError,
    check_loaded,
    manifest_digests,
    tensors_from_buffer,
)

TENSORS = {
    "model.embed_tokens.weight": torch.arange(48, dtype=torch.float32).reshape(12, 4).to(torch.bfloat16),
    "model.norm.weight": torch.ones(4, dtype=torch.float32),
    "model.layers.0.mlp.up_proj.weight": torch.randn(8, 4, generator=torch.Generator().manual_seed(0)),
    "empty": torch.empty(0, 4),
}


def write_version(folder, tensors=TENSORS, digest: str | None = None):
    folder.mkdir()
    save_file(tensors, str(folder / "model.safetensors"))
    real = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    manifest = {"version_id": "v1", "files": {"model.safetensors": digest or real, "config.json": "00"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_staged_tensors_are_the_files_tensors_and_the_manifest_digest_is_checked(tmp_path):
    version = write_version(tmp_path / "v1")
    digests = manifest_digests(version)
    assert list(digests) == ["model.safetensors"]  # only weight files
    staged = StagedWeights.start(str(version), digests)
    tensors = dict(staged.result(timeout=10))
    assert staged.state() == "ready"
    assert tensors.keys() == TENSORS.keys()
    for name, tensor in TENSORS.items():
        assert tensors[name].dtype == tensor.dtype and torch.equal(tensors[name], tensor)


def test_a_file_that_is_not_the_manifests_fails_staging(tmp_path):
    version = write_version(tmp_path / "v1", digest="0" * 64)
    staged = StagedWeights.start(str(version), manifest_digests(version))
    with pytest.raises(StagingError, match=r"checksum mismatch: model\.safetensors"):
        staged.result(timeout=10)
    assert staged.state().startswith("failed: checksum mismatch")
    # A base model (no manifest) is read without digests: the replicas started from it.
    assert manifest_digests(tmp_path) == {}


def test_a_truncated_file_is_refused():
    with pytest.raises(StagingError, match="not a safetensors file"):
        tensors_from_buffer(bytearray(b"\x10\x00\x00\x00\x00\x00\x00\x00{}"), "x.safetensors")
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    buffer = bytearray(len(header).to_bytes(8, "little") + header + b"\x00" * 8)  # 8 of the 16 bytes
    with pytest.raises(StagingError, match="does not fit"):
        tensors_from_buffer(buffer, "x.safetensors")


def test_check_loaded_compares_kept_parameters_in_the_engines_dtype():
    staged = list(TENSORS.items())
    engine = {
        # A vocabulary padded to more rows, in the engine's dtype (float32 here).
        "model.embed_tokens.weight": torch.cat([TENSORS["model.embed_tokens.weight"].float(), torch.zeros(4, 4)]),
        "model.norm.weight": torch.ones(4),
    }
    assert check_loaded(engine, staged) == 2
    engine["model.norm.weight"] = torch.full((4,), 2.0)  # the old weights are still there
    with pytest.raises(StagingError, match=r"model\.norm\.weight is not the staged tensor"):
        check_loaded(engine, staged)


async def test_an_engine_that_cannot_stage_still_checks_the_files_against_the_digests(tmp_path):
    """The controller leaves the weights' sha256 to the replicas; an engine without staging (the base
    `Engine.stage_weights`) checks the files on disk against the digests it is given."""
    from gateway.chat.engines.base import EngineError
    from tests.support.fakes import ScriptedEngine

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    engine = ScriptedEngine("Paris.")
    await engine.stage_weights(str(tmp_path), "v1", {"model.safetensors": hashlib.sha256(b"weights").hexdigest()})
    with pytest.raises(EngineError, match=r"checksum mismatch: model\.safetensors"):
        await engine.stage_weights(str(tmp_path), "v1", {"model.safetensors": "0" * 64})
    with pytest.raises(EngineError, match=r"absent\.safetensors"):
        await engine.stage_weights(str(tmp_path), "v1", {"absent.safetensors": "0" * 64})
