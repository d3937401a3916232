"""Config: file + LETHE_* overrides, validated with messages that name the source."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import DEFAULT_CONFIG_PATH, ConfigError, load_config


def test_default_file_loads_with_documented_defaults():
    cfg = load_config(env={})
    assert cfg.server.port == 8000
    assert cfg.server.llm_replicas == 1 and cfg.server.ingress_replicas == 1
    assert cfg.engine.model == "smollm2-135m-instruct"
    assert cfg.home == Path("~/.lethe").expanduser()
    assert cfg.model_path == cfg.home / "models" / "smollm2-135m-instruct"
    assert cfg.served_model_name == "smollm2-135m-instruct"


def test_environment_overrides_file(tmp_path):
    env = {
        "LETHE_HOME": str(tmp_path),
        "LETHE_PORT": "9001",
        "LETHE_MODEL": str(tmp_path / "my-model"),
        "LETHE_INGRESS_REPLICAS": "2",
        "LETHE_LLM_REPLICAS": "3",
        "LETHE_ADMIN_TOKEN": "s3cret",
    }
    cfg = load_config(env=env)
    assert cfg.server.port == 9001
    assert cfg.server.ingress_replicas == 2 and cfg.server.llm_replicas == 3
    assert cfg.model_path == tmp_path / "my-model"
    assert cfg.served_model_name == "my-model"
    assert cfg.admin_token == "s3cret"
    assert cfg.models_root == tmp_path / "models"


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("LETHE_PORT", "70000", "server.port (from $LETHE_PORT)"),
        ("LETHE_PORT", "eighty", "server.port (from $LETHE_PORT)"),
        ("LETHE_LLM_REPLICAS", "0", "server.llm_replicas (from $LETHE_LLM_REPLICAS)"),
        ("LETHE_DTYPE", "int3", "engine.dtype (from $LETHE_DTYPE)"),
    ],
)
def test_bad_values_are_named(variable, value, needle):
    with pytest.raises(ConfigError) as info:
        load_config(env={variable: value})
    assert needle in str(info.value)
    assert repr(value) in str(info.value)


def test_unknown_key_in_file_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  prot: 8000\n")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_config(path, env={})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})


def test_shipped_config_is_the_default():
    assert DEFAULT_CONFIG_PATH.is_file()
    assert load_config(DEFAULT_CONFIG_PATH, env={}) == load_config(env={})


def test_probe_views_are_text_only_leakage_views():
    from gateway.config import ProbesConfig

    assert ProbesConfig().views == ["paraphrase_heldout", "fill_blank", "multiple_choice", "yes_no", "json"]
    assert ProbesConfig(views=["multilingual", "multilingual"]).views == ["multilingual"]
    with pytest.raises(ValueError, match="weights-only"):
        ProbesConfig(views=["quantized_int8"])
