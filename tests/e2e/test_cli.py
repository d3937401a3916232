"""`lethe forget …` as an operator runs it, against the real tiny-model server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def lethe(server, *args: str, token: str = "test-admin-token") -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "LETHE_URL": server.base_url, "LETHE_ADMIN_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_forget_add_list_show_check(tiny_server):
    added = lethe(
        tiny_server,
        "forget",
        "add",
        "--subject",
        "Odile Varga",
        "--literal",
        "odile.varga@example.org",
        "--qa",
        "Where does Odile Varga work? => Odile Varga works at the Pécs observatory.",
        "--reason",
        "gdpr",
    )
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)
    assert record["status"] == "enforced"

    shown = json.loads(lethe(tiny_server, "forget", "show", record["id"]).stdout)
    assert shown["has_subject"] and "Odile" not in json.dumps(shown) and shown["counts"]["literals"] == 1
    listed = json.loads(lethe(tiny_server, "forget", "list").stdout)
    assert record["id"] in [r["id"] for r in listed["data"]]

    hit = lethe(tiny_server, "forget", "check", "Write to ODILE.VARGA@example.org today")
    assert hit.returncode == 3 and json.loads(hit.stdout)["match"] is True
    miss = lethe(tiny_server, "forget", "check", "The weather is mild today.")
    assert miss.returncode == 0 and json.loads(miss.stdout)["match"] is False


def test_cli_errors_are_one_clear_line(tiny_server):
    denied = lethe(tiny_server, "forget", "list", token="wrong")
    assert denied.returncode == 1
    assert denied.stderr.strip() == "lethe: error: 401: invalid or revoked API key"
    empty = lethe(tiny_server, "forget", "add")
    assert empty.returncode == 1 and "422" in empty.stderr
