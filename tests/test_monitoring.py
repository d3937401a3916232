"""Monitoring files stay valid: promtool accepts the scrape config and the rules, the rule unit tests
pass, and the dashboard and rules name only metrics that gateway.observability.metrics defines (or Ray's own)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.observability.metrics import SPECS

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "lethe.json"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run scripts/setup.sh (it installs the Debian package prometheus)")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=ROOT)


def test_promtool_check_config():
    result = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules():
    result = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules():
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard_exprs() -> dict[str, list[str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in panels if p["type"] != "row"}


def rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def exported_names() -> set[str]:
    names = set()
    for spec in SPECS:
        names.add(spec.name)
        if spec.kind == "histogram":
            names |= {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    return names


def test_dashboard_and_rules_use_only_defined_metrics():
    known = exported_names()
    used = []
    for exprs in [*dashboard_exprs().values(), list(rule_exprs().values())]:
        for expr in exprs:
            used += re.findall(r"\b(lethe_[a-z_]+)\b", expr)
    assert used and set(used) <= known, set(used) - known


def test_every_metric_is_on_the_dashboard():
    text = " ".join(e for exprs in dashboard_exprs().values() for e in exprs)
    missing = [spec.name for spec in SPECS if spec.name not in text]
    assert not missing, missing


def test_dashboard_panels_are_well_formed():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for title, exprs in dashboard_exprs().items():
        assert exprs, title
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
