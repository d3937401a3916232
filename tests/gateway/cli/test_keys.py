"""`lethe keys create|list|revoke` against the real key routes (in-process app)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from gateway.cli import keys as keys_cli
from gateway.cli.client import OperatorClient
from gateway.cli.main import main
from tests.support.api_fakes import ADMIN_TOKEN, build_gateway


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    gw = build_gateway(tmp_path / "home")

    def client(args) -> OperatorClient:
        cli = OperatorClient("http://testserver", args.token or ADMIN_TOKEN)
        cli._http = TestClient(gw.app, headers=dict(cli._http.headers))
        return cli

    monkeypatch.setattr(keys_cli, "_client", client)
    return gw


def test_create_prints_the_key_once_list_and_revoke(gateway, capsys):
    assert main(["keys", "create", "billing app", "--role", "requester"]) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("lethe_") and "shown this once" in err
    key = gateway.keys.authenticate(secret)
    assert key is not None and key.name == "billing app" and key.role == "requester"

    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert key.id in listing and secret not in listing and "active" in listing

    assert main(["keys", "revoke", key.id]) == 0
    assert "revoked" in capsys.readouterr().out and gateway.keys.authenticate(secret) is None
    assert main(["keys", "list"]) == 0
    assert key.id not in capsys.readouterr().out  # revoked keys only with --all
    assert main(["keys", "list", "--all"]) == 0
    assert key.id in capsys.readouterr().out


def test_a_key_without_the_operator_role_cannot_make_keys(gateway, capsys):
    auditor = gateway.secrets[next(r for r in gateway.secrets if r.value == "auditor")]
    assert main(["keys", "create", "x", "--role", "operator", "--token", auditor]) == 1
    assert "403" in capsys.readouterr().err
