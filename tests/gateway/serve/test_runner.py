"""`lethe serve`'s Ray settings: token auth on for a local Ray, loopback, respect for explicit choices."""

from __future__ import annotations

import stat

from gateway.config import load_config
from gateway.serve.runner import _init_kwargs, local_ray_auth


def test_local_ray_gets_token_auth_with_a_private_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))  # no ~/.ray/auth_token
    env = local_ray_auth(tmp_path / "home", {})
    token = tmp_path / "home" / "ray" / "auth_token"
    assert env == {"RAY_AUTH_TOKEN_PATH": str(token)}  # the mode: Ray's default for a new local cluster (token)
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text()) == 64
    first = token.read_text()
    assert local_ray_auth(tmp_path / "home", {}) == env and token.read_text() == first  # kept across restarts


def test_explicit_auth_settings_are_respected(tmp_path):
    assert local_ray_auth(tmp_path, {"RAY_AUTH_MODE": "disabled"}) == {}
    assert local_ray_auth(tmp_path, {"RAY_AUTH_TOKEN": "abc"}) == {}
    assert not (tmp_path / "ray").exists()


def test_local_ray_is_loopback_and_a_joined_cluster_keeps_its_own(tmp_path):
    local = _init_kwargs(load_config(env={"LETHE_HOME": str(tmp_path)}))
    assert local["_node_ip_address"] == "127.0.0.1" and local["dashboard_host"] == "127.0.0.1"
    assert local["include_dashboard"] is False
    joined = _init_kwargs(load_config(env={"LETHE_HOME": str(tmp_path), "LETHE_RAY_ADDRESS": "127.0.0.1:6379"}))
    assert joined["address"] == "127.0.0.1:6379" and "_node_ip_address" not in joined
