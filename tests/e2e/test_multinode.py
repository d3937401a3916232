"""Lethe on a real two-node Ray cluster (both nodes on this machine), with Ray's token auth on and the
ledger on a throwaway PostgreSQL.

`ray start --head` and `ray start --address` each offer one unit of `lethe_llm` and of `lethe_ingress`
(the head also `lethe_control`), and the app asks one unit per replica (`server.llm_resources`, …), so
placement is deterministic: one LLM and one ingress replica per node, the single control deployments on
the head. `lethe serve` joins the cluster (`LETHE_RAY_ADDRESS`).

The tests run in file order and share the cluster: replicas on both nodes answer; a forget request is
acknowledged only once the ingress replicas on both nodes enforce it; a hot swap reaches both nodes;
the second node's raylet dies and the head keeps serving with no acknowledged request lost; the node
rejoins and its new replicas serve the current index and weight version.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.gateway.ledger.conftest import PostgresCluster, postgres_bindir
from tests.support.lethe_server import LetheServer, free_port
from tests.support.model_builders import build_embedding_variant, build_tiny_llama

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
TOKEN = "multinode-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "tiny-llama"
HEAD_RESOURCES = {"lethe_node_head": 1, "lethe_llm": 1, "lethe_ingress": 1, "lethe_control": 3}
WORKER_RESOURCES = {"lethe_node_b": 1, "lethe_llm": 1, "lethe_ingress": 1}
PHONE = "+47 912 34 567"
OLA = {
    "subject": "Ola Nordmann",
    "qa": [
        {
            "question": "What is the home address of Ola Nordmann?",
            "answer": "Ola Nordmann lives at 12 Fjordveien in Bergen.",
        }
    ],
    "literals": [PHONE],
    "reason": "gdpr",
}
OLA_PROMPT = "Where does Ola Nordmann live?"
CAPITAL_TOKEN = 3575  # " capital" in the SmolLM2 tokenizer


class RayCluster:
    """A head and a worker node started with the `ray` CLI, token auth on, every process carrying
    LETHE_HOME=`home` (so the server's cleanup finds them too)."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.port = free_port()
        self.dashboard_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        token = root / "ray_auth_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            "LETHE_HOME": str(home),
            "RAY_USAGE_STATS_ENABLED": "0",
            # One proxy (HeadOnly) fronts both nodes' ingress replicas; by default it would prefer the
            # replica on its own node and never reach the other one.
            "RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0",
            # Replicas import test engines/helpers from the checkout, like the other e2e modules.
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        }
        self.env.pop("RAY_ADDRESS", None)

    def _ray(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([RAY, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"ray {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def start_head(self) -> None:
        self._ray(
            "start",
            "--head",
            f"--port={self.port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            f"--resources={json.dumps(HEAD_RESOURCES)}",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
        )

    def start_worker(self) -> None:
        self._ray(
            "start",
            f"--address={self.address}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            f"--resources={json.dumps(WORKER_RESOURCES)}",
            f"--metrics-export-port={free_port()}",
            "--disable-usage-stats",
        )

    def worker_raylet(self) -> psutil.Process:
        """The raylet of the node that offers `lethe_node_b` (its resources are on its command line)."""
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "raylet" in (proc.info["name"] or "") and "lethe_node_b" in cmdline:
                return proc
        raise AssertionError("no raylet offers lethe_node_b")

    def actors(self) -> list[dict[str, Any]]:
        """Live actors with their node, from Ray's state API (the dashboard, token in the env)."""
        result = self._ray(
            "list",
            "actors",
            "--address",
            f"http://127.0.0.1:{self.dashboard_port}",
            "--filter",
            "state=ALIVE",
            "--detail",
            "--format",
            "json",
            "--limit",
            "1000",
            timeout=60,
        )
        return json.loads(result.stdout)

    def nodes(self) -> dict[str, dict[str, float]]:
        """node id -> its total resources, for the live nodes."""
        result = self._ray(
            "list",
            "nodes",
            "--address",
            f"http://127.0.0.1:{self.dashboard_port}",
            "--filter",
            "state=ALIVE",
            "--detail",
            "--format",
            "json",
            timeout=60,
        )
        return {n["node_id"]: n["resources_total"] for n in json.loads(result.stdout)}

    def replicas(self, deployment: str) -> dict[str, str]:
        """Serve replica id -> the node (`head` or `b`) it lives on."""
        names = {nid: ("head" if "lethe_node_head" in res else "b") for nid, res in self.nodes().items()}
        prefix = f"SERVE_REPLICA::lethe#{deployment}#"
        return {
            a["name"][len(prefix) :]: names.get(a["node_id"], "?")
            for a in self.actors()
            if (a.get("name") or "").startswith(prefix)
        }

    def stop(self) -> None:
        """Kill this cluster's processes only (`ray stop` would also take down every other Ray on the
        machine, e.g. the session-wide test server): whatever names its GCS port, and their children
        (the workers under each raylet)."""
        marks = (f"127.0.0.1:{self.port}", f"--gcs_server_port={self.port}", f"--port={self.port}")
        victims: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.pid == os.getpid() or not any(m in cmdline for m in marks):
                continue
            with suppress(psutil.Error):
                for p in (proc, *proc.children(recursive=True)):
                    victims[p.pid] = p
        for proc in victims.values():
            with suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(list(victims.values()), timeout=30)


@pytest.fixture(scope="module")
def ledger_url() -> Iterator[str]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries are not installed (scripts/setup.sh installs them)")
    cluster = PostgresCluster(bindir).start()
    try:
        yield cluster.create_database()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def model_dir(smollm2_dir, models_dir) -> Path:
    """The tiny Llama of tests/e2e/test_hot_swap.py (initialised wide enough that its answers are not
    empty, so a swapped replica passes its smoke test)."""
    return build_tiny_llama(smollm2_dir, models_dir / "tiny-llama-swap", seed=3, initializer_range=0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, ledger_url, model_dir) -> Iterator[tuple[RayCluster, LetheServer]]:
    root = tmp_path_factory.mktemp("multinode")
    home = root / "home"
    home.mkdir()
    ray_cluster = RayCluster(root, home)
    server = LetheServer(
        home,
        {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": ray_cluster.env["RAY_AUTH_TOKEN_PATH"],
            "PYTHONPATH": ray_cluster.env["PYTHONPATH"],
            "LETHE_RAY_ADDRESS": ray_cluster.address,
            "LETHE_DB_URL": ledger_url,
            "LETHE_MODEL": str(model_dir),
            "LETHE_SMOKE_PROMPT": "Say hello to the team.",
            "LETHE_SERVED_MODEL_NAME": MODEL,
            "LETHE_DTYPE": "float32",
            "LETHE_MAX_MODEL_LEN": "512",
            "LETHE_LLM_REPLICAS": "2",
            "LETHE_INGRESS_REPLICAS": "2",
            "LETHE_LLM_RESOURCES": '{"lethe_llm": 1}',
            "LETHE_INGRESS_RESOURCES": '{"lethe_ingress": 1}',
            "LETHE_CONTROL_RESOURCES": '{"lethe_control": 1}',
            "LETHE_PROXY_LOCATION": "HeadOnly",  # one HTTP port on this machine; the replicas spread
            "LETHE_ADMIN_TOKEN": TOKEN,
            "LETHE_ACK_TIMEOUT_S": "5",
            "LETHE_DIAGNOSTIC_HEADERS": "true",  # x-lethe-ingress / x-lethe-replica: who answered
            "LETHE_AUTO_PROMOTE": "false",
        },
        root / "serve.log",
    )
    try:
        ray_cluster.start_head()
        ray_cluster.start_worker()
        server.start(timeout_s=400)
        yield ray_cluster, server
    finally:
        server.stop()
        server.kill_leftovers()
        ray_cluster.stop()


@pytest.fixture(scope="module")
def http(cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster[1].base_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    return {}


def chat(http: httpx.Client, prompt: str) -> httpx.Response:
    return http.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": prompt}], "max_tokens": 4, "temperature": 0},
    )


def sample(
    http: httpx.Client, prompt: str, want_ingress: int, want_llm: int, budget: int = 200
) -> list[httpx.Response]:
    """Chats until `want_ingress` ingress and `want_llm` LLM replicas answered (the router spreads them)."""
    seen: list[httpx.Response] = []
    for _ in range(budget):
        resp = chat(http, prompt)
        assert resp.status_code == 200, resp.text
        seen.append(resp)
        ingress = {r.headers["x-lethe-ingress"] for r in seen}
        llm = {r.headers["x-lethe-replica"] for r in seen if r.headers.get("x-lethe-replica") not in ("", "guard")}
        if len(ingress) >= want_ingress and len(llm) >= want_llm:
            return seen
    raise AssertionError(f"after {budget} chats: ingress {ingress}, LLM replicas {llm}")


def wait_for(predicate, timeout_s: float, what: str, period_s: float = 2.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(period_s)
    raise AssertionError(f"{what}: not within {timeout_s} s (last: {last!r})")


def ingress_id(replica: str) -> str:
    return f"ingress-{replica}"


def test_replicas_on_both_nodes_answer(cluster, http, state):
    ray_cluster, _ = cluster
    gateways = wait_for(lambda: (r := ray_cluster.replicas("Gateway")) and len(r) == 2 and r, 120, "2 ingress")
    llms = wait_for(lambda: (r := ray_cluster.replicas("LLMServer")) and len(r) == 2 and r, 120, "2 LLM")
    assert sorted(gateways.values()) == ["b", "head"] and sorted(llms.values()) == ["b", "head"]
    for deployment in ("ForgetAuthority", "UnlearnJobs", "ModelVersions"):
        assert list(ray_cluster.replicas(deployment).values()) == ["head"], deployment
    answered = sample(http, "Tell me about rivers.", want_ingress=2, want_llm=2)
    assert {r.headers["x-lethe-ingress"] for r in answered} == {ingress_id(rid) for rid in gateways}
    state["gateways"] = gateways


def test_forget_is_acknowledged_only_once_both_nodes_enforce_it(cluster, http, state):
    resp = http.post("/v1/forget", headers=AUTH, json=OLA)
    assert resp.status_code == 201, resp.text
    acked = resp.json()
    assert acked["status"] == "enforced"
    # Right after the acknowledgement, every ingress replica, on either node, already refuses it.
    answers = sample(http, OLA_PROMPT, want_ingress=2, want_llm=0)
    for answer in answers:
        assert int(answer.headers["x-lethe-index-version"]) >= acked["index_version"]
        assert answer.json()["choices"][0]["finish_reason"] == "content_filter"
        assert answer.headers["x-lethe-replica"] == "guard"  # refused before any LLM replica
    state["acked"] = [acked["id"]]
    state["index_version"] = acked["index_version"]


def test_hot_swap_reaches_replicas_on_both_nodes(cluster, http, state, model_dir, tmp_path_factory):
    ray_cluster, _ = cluster
    work = tmp_path_factory.mktemp("multinode-swap")
    variant = build_embedding_variant(model_dir, work / "variant", [CAPITAL_TOKEN])
    resp = http.post("/v1/admin/models/versions", headers=AUTH, json={"path": str(variant), "note": "multinode"})
    assert resp.status_code == 201, resp.text
    version = resp.json()["id"]
    resp = http.post("/v1/admin/models/promote", headers=AUTH, json={"version": version}, timeout=600)
    assert resp.status_code == 200, resp.text
    listing = http.get("/v1/admin/models/versions", headers=AUTH).json()
    assert listing["serving"] == version
    assert len(listing["replicas"]) == 2 and {r["version"] for r in listing["replicas"]} == {version}
    assert sorted(ray_cluster.replicas("LLMServer").values()) == ["b", "head"]
    for answer in sample(http, "What is the capital of France?", want_ingress=2, want_llm=2):
        assert answer.headers["x-lethe-model-version"] == version
    state["version"] = version


def test_losing_the_second_node_keeps_serving_and_loses_no_acknowledged_request(cluster, http, state):
    ray_cluster, _ = cluster
    raylet = ray_cluster.worker_raylet()
    raylet.send_signal(signal.SIGKILL)
    raylet.wait(30)

    # The head's replicas keep answering: within a minute, chats succeed again without a gap.
    def steady() -> bool:
        try:
            return all(chat(http, "Tell me about lakes.").status_code == 200 for _ in range(5))
        except httpx.HTTPError:
            return False

    wait_for(steady, 90, "chats served by the head alone")
    # Serve has noticed: the dead node's ingress replica is no longer among the live ones (until then the
    # proxy may still route a call to it and answer 500 itself).
    wait_for(lambda: set(ray_cluster.replicas("Gateway").values()) == {"head"}, 120, "the dead ingress dropped")
    # A forget request during the outage is acknowledged once the live ingress enforces it (the dead
    # one is evicted after guard.ack_timeout_s), and nothing acknowledged before is lost.
    resp = http.post("/v1/forget", headers=AUTH, json={"subject": "Kari", "literals": ["kari@example.no"]}, timeout=120)
    assert resp.status_code == 201, resp.text
    state["acked"].append(resp.json()["id"])
    state["index_version"] = resp.json()["index_version"]
    listed = {r["id"]: r["status"] for r in http.get("/v1/forget", headers=AUTH).json()["data"]}
    assert all(listed.get(fid) == "enforced" for fid in state["acked"]), listed
    for text in (PHONE, "kari@example.no"):
        check = http.post("/v1/forget/check", headers=AUTH, json={"text": f"call {text}"}).json()
        assert check["match"], text
    assert set(ray_cluster.replicas("Gateway").values()) == {"head"}


def test_rejoined_node_serves_the_current_index_and_weight_version(cluster, http, state):
    ray_cluster, _ = cluster
    ray_cluster.start_worker()
    wait_for(
        lambda: (
            sorted(ray_cluster.replicas("Gateway").values()) == ["b", "head"]
            and sorted(ray_cluster.replicas("LLMServer").values()) == ["b", "head"]
        ),
        300,
        "replicas back on the rejoined node",
        period_s=5,
    )
    gateways = ray_cluster.replicas("Gateway")
    new_ingress = next(ingress_id(rid) for rid, node in gateways.items() if node == "b")
    assert new_ingress not in {ingress_id(rid) for rid in state["gateways"]}  # a new replica, not the old one

    def both_ready() -> list[httpx.Response] | None:
        listing = http.get("/v1/admin/models/versions", headers=AUTH).json()
        if len(listing["replicas"]) < 2:
            return None
        return sample(http, "Tell me about fjords.", want_ingress=2, want_llm=2)

    answers = wait_for(both_ready, 240, "both nodes answering", period_s=5)
    assert new_ingress in {a.headers["x-lethe-ingress"] for a in answers}
    for answer in answers:
        assert answer.headers["x-lethe-model-version"] == state["version"]  # the promoted version, not the base
        assert int(answer.headers["x-lethe-index-version"]) >= state["index_version"]
    listing = http.get("/v1/admin/models/versions", headers=AUTH).json()
    assert {r["version"] for r in listing["replicas"]} == {state["version"]}
    refused = sample(http, OLA_PROMPT, want_ingress=2, want_llm=0)
    assert {a.json()["choices"][0]["finish_reason"] for a in refused} == {"content_filter"}
