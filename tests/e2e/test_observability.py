"""A real Prometheus scraping a real `lethe serve` (tiny model): after a scripted scenario (chats, a
forget request, a refused leak attempt, an unlearning job, its swap, probe runs), every PromQL
expression of the dashboard and the alert rules parses, and every dashboard panel returns data."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.guard.types import REFUSAL_TEXT
from tests.support.lethe_server import OPEN_GATES, free_port, serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "lethe.json"
TOKEN = "observability-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Grafana's built-in variables, as Grafana would expand them for a 1 h view.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "15s"}

# Panels whose data this scenario cannot produce yet (e.g. metrics of code still in progress): their
# expressions must parse, their data is not checked. Empty: the scenario's job publishes a version,
# auto-promotion swaps it in (lethe_swaps_total) and two probe runs score both versions
# (lethe_raw_leakage_ratio, lethe_retain_score).
PENDING_PANELS: set[str] = set()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    """Its own server: the scenario files forget requests and runs a job (which may promote weights)."""
    home = tmp_path_factory.mktemp("lethe-home-observability")
    env = {
        "LETHE_MODEL": str(tiny_model_dir),
        "LETHE_SERVED_MODEL_NAME": "tiny-llama",
        "LETHE_MAX_MODEL_LEN": "512",
        "LETHE_ADMIN_TOKEN": TOKEN,
    }
    with serving(home, env) as srv:
        yield srv


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    """`prometheus` from the Debian package with deploy/prometheus/prometheus.yml pointed at the server."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run scripts/setup.sh (it installs the Debian package)")
    work = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "alerts.yml")]
    config["scrape_configs"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{server.env['LETHE_METRICS_PORT']}"]}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (work / "prometheus.log").read_text()
            try:
                if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def query(prom: str, expr: str) -> dict:
    resp = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=30)
    body = resp.json()
    assert body.get("status") == "success", f"{expr}\n-> {body}"
    return body["data"]


def has_value(data: dict) -> bool:
    """At least one sample that is a number (a quantile over no observations is NaN)."""
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    return any(not math.isnan(float(item["value"][1])) for item in data["result"])


def grafana_expr(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def dashboard_panels() -> list[dict]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [p for p in panels if p["type"] != "row"]


def alert_exprs() -> dict[str, str]:
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def chats(http: httpx.Client, n: int) -> None:
    """Chats streamed and not, a refused leak attempt and a bad request."""
    for i in range(n):
        body = {
            "model": "tiny-llama",
            "messages": [{"role": "user", "content": f"Say something about the sea, {i}."}],
            "max_tokens": 12,
            "temperature": 0,
        }
        assert http.post("/v1/chat/completions", json=body).status_code == 200
        with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
            assert resp.status_code == 200
            assert resp.read().decode().rstrip().endswith("data: [DONE]")
    leak = http.post(
        "/v1/chat/completions",
        json={
            "model": "tiny-llama",
            "messages": [{"role": "user", "content": "Where does Maren Holloway live?"}],
            "max_tokens": 12,
        },
    )
    assert leak.json()["choices"][0]["message"]["content"] == REFUSAL_TEXT
    assert http.post("/v1/chat/completions", json={"model": "tiny-llama"}).status_code == 422


def run_scenario(http: httpx.Client) -> None:
    """A forget request, a probe run, chats, an unlearning job (published, auto-promoted), a probe run,
    more chats. Two rounds of chats because a rate needs two different scraped values: a series born
    in one burst has no increase to show."""
    forget = http.post(
        "/v1/forget",
        headers=AUTH,
        json={
            "subject": "Maren Holloway",
            "qa": [
                {
                    "question": "Where does Maren Holloway live?",
                    "answer": "Maren Holloway lives at 4 Quarry Row, Elsby.",
                },
                {"question": "What is Maren Holloway's job?", "answer": "Maren Holloway repairs church organs."},
            ],
            "literals": ["+44 7700 900417"],
        },
    )
    assert forget.status_code == 201, forget.text
    probe = http.post("/v1/admin/leakage/run", headers=AUTH)  # the base version, before unlearning
    assert probe.status_code == 200, probe.text
    chats(http, 3)
    job = http.post(
        "/v1/unlearn/jobs",
        headers=AUTH,
        json={
            "method": "grad_diff",
            "forget_ids": [forget.json()["id"]],
            "params": {"lr": 3e-4, "steps": 4, "early_stop": False},
            "gates": OPEN_GATES,
        },
    )
    assert job.status_code == 201, job.text
    deadline = time.monotonic() + 400
    while True:
        done = http.get(f"/v1/unlearn/jobs/{job.json()['id']}", headers=AUTH).json()
        if done["state"] in ("published", "rejected", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job still {done['state']}"
        time.sleep(1)
    assert done["state"] == "published", done
    while not any(
        v["serving"] and v["id"] == done["version_id"]
        for v in http.get("/v1/admin/models/versions", headers=AUTH).json()["data"]
    ):
        assert time.monotonic() < deadline, "the published version was not promoted"
        time.sleep(1)
    probe = http.post("/v1/admin/leakage/run", headers=AUTH)  # the unlearned version, now serving
    assert probe.status_code in (200, 409), probe.text  # 409: the after-swap run is already on it
    time.sleep(12)  # let the first round reach Prometheus (Ray exports every few seconds)
    chats(http, 3)


def test_dashboard_and_alerts_against_a_real_prometheus(server, prometheus):
    # `lethe serve` prints the endpoint once it is ready; the whole log, since Ray's lines pile up after it.
    announced = f"127.0.0.1:{server.env['LETHE_METRICS_PORT']}/metrics"
    deadline = time.monotonic() + 60
    while announced not in server.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"`lethe serve` never printed {announced}"
        time.sleep(1)
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        run_scenario(http)

    # Ray's workers report to their agent every few seconds; wait until the last chats are scraped.
    deadline = time.monotonic() + 90
    while not has_value(query(prometheus, 'sum(lethe_requests_total{status="422"}) >= 2')):
        assert time.monotonic() < deadline, "the scenario's requests never reached Prometheus"
        time.sleep(2)
    time.sleep(5)

    assert query(prometheus, '{__name__=~"ray_lethe_.+"}')["result"] == []  # renamed by the scrape config
    assert query(prometheus, 'count(count by (__name__) ({__name__=~"lethe_.+"}))')["result"]

    for _name, expr in alert_exprs().items():
        query(prometheus, expr)  # parses and evaluates; whether it fires does not matter here
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=30).json()["data"]["groups"]
    health = {r["name"]: (r["health"], r.get("lastError")) for g in rules for r in g["rules"]}
    assert set(health) == set(alert_exprs()), health
    assert all(h == "ok" for h, _ in health.values()), health

    empty = []
    for panel in dashboard_panels():
        results = [query(prometheus, grafana_expr(t["expr"])) for t in panel["targets"]]
        if panel["title"] not in PENDING_PANELS and not any(has_value(r) for r in results):
            empty.append(panel["title"])
    assert not empty, f"panels without data: {empty}"
    assert {p["title"] for p in dashboard_panels()} >= PENDING_PANELS
