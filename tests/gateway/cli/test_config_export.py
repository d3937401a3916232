"""`lethe config export --serve`: the Serve config on stdout or in a file, and the RayService patch."""

from __future__ import annotations

import pytest
import yaml

from gateway.cli.main import main
from gateway.config import load_config
from gateway.serve.serve_config import config_from_args

CONFIG = "home: /var/lib/lethe\nserver:\n  host: 0.0.0.0\n  llm_replicas: 2\n  spans_nodes: true\n"


def test_export_writes_serve_config_and_rayservice_patch(tmp_path, monkeypatch):
    source = tmp_path / "lethe.yaml"
    source.write_text(CONFIG)
    monkeypatch.setenv("LETHE_LLM_REPLICAS", "7")  # ignored: the file alone, unless --env
    monkeypatch.setenv("LETHE_ADMIN_TOKEN", "never-exported")
    out, patch = tmp_path / "serve.yaml", tmp_path / "patch.yaml"
    code = main(["config", "export", "--serve", "--config", str(source), "-o", str(out), "--rayservice", str(patch)])
    assert code == 0
    serve = yaml.safe_load(out.read_text())
    rayservice = yaml.safe_load(patch.read_text())
    assert rayservice["kind"] == "RayService" and rayservice["metadata"]["name"] == "lethe"
    assert yaml.safe_load(rayservice["spec"]["serveConfigV2"]) == serve
    config = config_from_args(serve["applications"][0]["args"], env={})
    assert config == load_config(source, env={}) and config.server.llm_replicas == 2
    assert "never-exported" not in out.read_text() + patch.read_text()


def test_export_with_env_applies_lethe_variables(tmp_path, monkeypatch, capsys):
    source = tmp_path / "lethe.yaml"
    source.write_text(CONFIG)
    monkeypatch.setenv("LETHE_LLM_REPLICAS", "3")
    assert main(["config", "export", "--serve", "--env", "--config", str(source)]) == 0
    serve = yaml.safe_load(capsys.readouterr().out)
    assert serve["applications"][0]["args"]["lethe"]["server"]["llm_replicas"] == 3


def test_export_needs_a_kind_and_a_valid_config(tmp_path, capsys):
    assert main(["config", "export"]) == 2
    assert "--serve" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: 70000\n")
    assert main(["config", "export", "--serve", "--config", str(bad)]) == 2
    assert "server.port" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--log-level", "--log-json"])
def test_serve_accepts_log_flags(flag):
    from gateway.cli.main import build_parser

    args = build_parser().parse_args(["serve", flag] + (["DEBUG"] if flag == "--log-level" else []))
    assert args.func.__name__ == "cmd_serve"
