"""Version checks before a swap: architecture, tensor names and shapes, checksums; atomic import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gateway.weights.store import (
    VersionInvalidError,
    check_compatible,
    import_directory,
    safetensors_header,
    verify_files,
)

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 8,
    "vocab_size": 16,
    "num_hidden_layers": 1,
    "tie_word_embeddings": True,
}


def write_model(folder: Path, *, config: dict | None = None, tensors: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or CONFIG))
    (folder / "tokenizer.json").write_text("{}")
    save_file(
        tensors or {"model.embed_tokens.weight": torch.zeros(16, 8), "model.norm.weight": torch.ones(8)},
        str(folder / "model.safetensors"),
    )
    return folder


def test_header_lists_names_dtypes_and_shapes(tmp_path):
    model = write_model(tmp_path / "m")
    header = safetensors_header(model / "model.safetensors")
    assert header["model.embed_tokens.weight"].shape == (16, 8)
    assert header["model.norm.weight"].dtype == "F32"


def test_garbage_file_is_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 64)
    with pytest.raises(VersionInvalidError, match="not a safetensors file"):
        safetensors_header(bad)


def test_same_architecture_is_compatible_even_in_another_dtype(tmp_path):
    served = write_model(tmp_path / "served")
    candidate = write_model(
        tmp_path / "cand",
        tensors={
            "model.embed_tokens.weight": torch.ones(16, 8, dtype=torch.bfloat16),
            "model.norm.weight": torch.ones(8, dtype=torch.bfloat16),
        },
    )
    check_compatible(served, candidate)


def test_wrong_shape_is_refused_with_the_tensor_named(tmp_path):
    served = write_model(tmp_path / "served")
    candidate = write_model(
        tmp_path / "cand", tensors={"model.embed_tokens.weight": torch.zeros(16, 4), "model.norm.weight": torch.ones(8)}
    )
    with pytest.raises(VersionInvalidError, match=r"model.embed_tokens.weight: served \[16, 8\], candidate \[16, 4\]"):
        check_compatible(served, candidate)


def test_missing_tensor_and_other_config_are_refused(tmp_path):
    served = write_model(tmp_path / "served")
    fewer = write_model(tmp_path / "fewer", tensors={"model.embed_tokens.weight": torch.zeros(16, 8)})
    with pytest.raises(VersionInvalidError, match=r"missing \['model\.norm\.weight'\]"):
        check_compatible(served, fewer)
    other = write_model(tmp_path / "other", config={**CONFIG, "num_hidden_layers": 2})
    with pytest.raises(VersionInvalidError, match="num_hidden_layers: served 1, candidate 2"):
        check_compatible(served, other)


def test_import_writes_a_verified_manifest_atomically(tmp_path):
    served = write_model(tmp_path / "served")
    source = write_model(tmp_path / "elsewhere")
    (source / "notes.bin").write_bytes(b"not copied")
    vid, final, manifest = import_directory(source, tmp_path / "versions", served, parent_version="base-x", note="hi")
    assert final == tmp_path / "versions" / vid and final.is_dir()
    assert manifest["parent_version"] == "base-x" and manifest["method"] == "import"
    assert set(manifest["files"]) == {"config.json", "model.safetensors", "tokenizer.json"}
    verify_files(final)
    assert [p.name for p in (tmp_path / "versions").iterdir()] == [vid]  # no temp dir left behind


def test_import_refuses_an_incompatible_directory_and_leaves_nothing(tmp_path):
    served = write_model(tmp_path / "served")
    other = write_model(tmp_path / "other", config={**CONFIG, "hidden_size": 4})
    with pytest.raises(VersionInvalidError):
        import_directory(other, tmp_path / "versions", served, parent_version=None)
    assert not (tmp_path / "versions").exists() or not any((tmp_path / "versions").iterdir())


def test_a_flipped_byte_fails_verification(tmp_path):
    served = write_model(tmp_path / "served")
    _, final, _ = import_directory(write_model(tmp_path / "src"), tmp_path / "versions", served, parent_version=None)
    data = bytearray((final / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (final / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(VersionInvalidError, match=r"checksum mismatch for model\.safetensors"):
        verify_files(final)


def test_the_swap_check_leaves_the_weights_to_the_loaders_but_not_their_digests(tmp_path):
    """`validate_candidate` with the digests the replicas were given: a weight file is not hashed here (each
    replica hashes what it stages), but a manifest that no longer lists those digests is refused."""
    from gateway.ledger.records import VersionRecord
    from gateway.weights.store import validate_candidate, weight_digests

    served = write_model(tmp_path / "served")
    vid, final, manifest = import_directory(
        write_model(tmp_path / "src"), tmp_path / "versions", served, parent_version=None
    )
    record = VersionRecord(vid, None, "import", manifest, str(final), None, False)
    digests = weight_digests(record)
    assert digests == {"model.safetensors": manifest["files"]["model.safetensors"]}
    data = bytearray((final / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (final / "model.safetensors").write_bytes(bytes(data))
    validate_candidate(served, record, digests)  # the replicas' staging finds this one
    with pytest.raises(VersionInvalidError, match=r"checksum mismatch for model\.safetensors"):
        validate_candidate(served, record)
    rewritten = {**manifest, "files": {**manifest["files"], "model.safetensors": "0" * 64}}
    (final / "manifest.json").write_text(json.dumps(rewritten))
    with pytest.raises(VersionInvalidError, match="its manifest changed"):
        validate_candidate(served, record, digests)


def test_the_versions_api_never_shows_text_samples_a_manifest_kept(tmp_path):
    from gateway.ledger.records import VersionRecord
    from gateway.weights.store import version_fields

    canary = "CANARY-a91e lives at Skolegata 14"
    metrics = {"forget_leakage": 0.0, "samples": [["Where does CANARY-a91e live?", canary]]}
    record = VersionRecord(
        "v1", "base", "npo", {"metrics_before": metrics, "metrics_after": metrics}, str(tmp_path), None, False
    )
    shown = json.dumps(version_fields(record))
    assert "CANARY" not in shown and json.loads(shown)["metrics"]["after"]["forget_leakage"] == 0.0


def test_manifests_of_older_versions_lose_their_text_samples(tmp_path):
    from gateway.weights.store import redact_manifests

    old = {"version_id": "v1", "metrics": {"after": {"samples": [["Where is Vantreequill?", "In Tromsø"]]}}}
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "manifest.json").write_text(json.dumps(old))
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "manifest.json").write_text(json.dumps({"version_id": "v2"}))
    assert redact_manifests(tmp_path) == 1
    text = (tmp_path / "v1" / "manifest.json").read_text()
    assert "Vantreequill" not in text and json.loads(text)["metrics"]["after"]["samples"] == []
    assert redact_manifests(tmp_path) == 0
