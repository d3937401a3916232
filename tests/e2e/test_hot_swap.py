"""Hot swap on the real stack (Ray Serve + vLLM, tiny Llama, two LLM replicas): import, verify,
rolling promote under load, refusal of broken versions, smoke-test rollback, rollback, prefix cache,
restart on the serving version.

The tests run in file order and share one server: each leaves the state the next one expects.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.engines import smoke_failpoint
from tests.support.lethe_server import OPEN_GATES, serving
from tests.support.model_builders import build_embedding_variant, build_reshaped_copy, build_tiny_llama

pytestmark = pytest.mark.e2e

TOKEN = "swap-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "tiny-llama"
ROOT = Path(__file__).resolve().parents[2]
CAPITAL_TOKEN = 3575  # " capital" in the SmolLM2 tokenizer: every load prompt contains it
PROMPTS = [f"What is the capital of {country}?" for country in ("France", "Norway", "Peru", "Japan", "Kenya")]
# A shared prefix of several KV blocks that contains the changed token, then a question without it.
LONG_PREFIX = "Notes on the capital cities of the world. " + " ".join(
    f"Entry {i}: the river town number {i} lies north of the old bridge." for i in range(40)
)
PREFIX_PROMPT = LONG_PREFIX + "\nQuestion: which entry comes after entry 7?"


@pytest.fixture(scope="module")
def swap_model_dir(smollm2_dir, models_dir) -> Path:
    """A tiny random Llama initialised wide enough that its greedy answers depend on the prompt (the
    shared tiny model answers newlines to everything), so a changed embedding row shows in the text."""
    return build_tiny_llama(smollm2_dir, models_dir / "tiny-llama-swap", seed=3, initializer_range=0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory, swap_model_dir):
    home = tmp_path_factory.mktemp("lethe-home-swap")
    env = {
        "LETHE_MODEL": str(swap_model_dir),
        "LETHE_SERVED_MODEL_NAME": MODEL,
        "LETHE_DTYPE": "float32",
        "LETHE_LLM_REPLICAS": "2",
        "LETHE_INGRESS_REPLICAS": "1",
        "LETHE_MAX_MODEL_LEN": "1024",
        "LETHE_ADMIN_TOKEN": TOKEN,
        "LETHE_SMOKE_PROMPT": "Say hello to the team.",
        # vLLM behind a test seam: a replica's smoke test fails while its marker file exists (the
        # smoke-failure test below). The Ray workers import it from the checkout.
        "LETHE_ENGINE": "tests.support.engines:SmokeFailpointEngine",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    with serving(home, env) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=300) as client:
        yield client


@pytest.fixture(scope="module")
def state() -> dict:
    """What earlier tests learned (version ids, expected outputs), for later ones."""
    return {}


def chat(http: httpx.Client, prompt: str, max_tokens: int = 12) -> tuple[str, str]:
    resp = http.post(
        "/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "temperature": 0,
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.headers["x-lethe-model-version"], resp.json()["choices"][0]["message"]["content"]


def stream_chat(http: httpx.Client, prompt: str) -> tuple[str, str]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 12,
        "temperature": 0,
        "stream": True,
    }
    parts = []
    with http.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200, resp.read()
        version = resp.headers["x-lethe-model-version"]
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                event = json.loads(line[6:])
                assert "error" not in event, event
                parts.extend(c["delta"].get("content") or "" for c in event["choices"])
    return version, "".join(parts)


def versions(http: httpx.Client) -> dict:
    resp = http.get("/v1/admin/models/versions", headers=AUTH)
    assert resp.status_code == 200, resp.text
    return resp.json()


def outputs(http: httpx.Client) -> dict[str, str]:
    seen = {}
    for prompt in PROMPTS:
        version, text = chat(http, prompt)
        seen[prompt] = text
        seen.setdefault("_version", version)
        assert seen["_version"] == version
    return seen


def wait_for_replicas(http: httpx.Client, n: int, timeout_s: float = 180) -> dict:
    """/readyz answers once one LLM replica is up; swaps are about all of them."""
    deadline = time.monotonic() + timeout_s
    while True:
        listing = versions(http)
        if len(listing["replicas"]) >= n or time.monotonic() > deadline:
            return listing
        time.sleep(1)


def test_import_validates_and_records_a_version(server, http, state, swap_model_dir, tmp_path_factory):
    work = tmp_path_factory.mktemp("swap-artifacts")
    listing = wait_for_replicas(http, 2)
    base = listing["serving"]
    assert [v["id"] for v in listing["data"] if v["serving"]] == [base]
    assert {r["version"] for r in listing["replicas"]} == {base} and len(listing["replicas"]) == 2

    assert http.get("/v1/admin/models/versions").status_code == 401
    variant = build_embedding_variant(swap_model_dir, work / "variant", [CAPITAL_TOKEN])
    resp = http.post("/v1/admin/models/versions", headers=AUTH, json={"path": str(variant), "note": "row 3575"})
    assert resp.status_code == 201, resp.text
    imported = resp.json()
    # Foreign weights start their own lineage: nothing proves they descend from what serves.
    assert imported["parent"] is None and imported["method"] == "import" and not imported["serving"]
    assert (server.home / "versions" / imported["id"] / "manifest.json").is_file()

    reshaped = build_reshaped_copy(swap_model_dir, work / "reshaped")
    resp = http.post("/v1/admin/models/versions", headers=AUTH, json={"path": str(reshaped)})
    assert resp.status_code == 422 and "model.norm.weight" in resp.json()["error"]["message"]
    resp = http.post("/v1/admin/models/versions", headers=AUTH, json={"path": str(work / "missing")})
    assert resp.status_code == 422 and "no such directory" in resp.json()["error"]["message"]
    assert http.post("/v1/admin/models/promote", headers=AUTH, json={"version": "v-unknown"}).status_code == 404
    assert http.post("/v1/admin/models/promote", headers=AUTH, json={}).status_code == 422

    state.update(base=base, variant=imported["id"], work=work, before=outputs(http))
    # The long prefix goes into both replicas' prefix caches, computed with the base weights.
    state["prefix_before"] = {chat(http, PREFIX_PROMPT)[1] for _ in range(4)}


def test_promote_under_load_drops_nothing_and_headers_match_outputs(http, server, state):
    base, variant = state["base"], state["variant"]
    results: list[tuple[str, str, str]] = []  # (version, prompt, text)
    failures: list[str] = []
    stop = threading.Event()

    def worker(kind: str, offset: int) -> None:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        with httpx.Client(base_url=server.base_url, timeout=120) as own:
            i = offset
            while not stop.is_set():
                prompt = PROMPTS[i % len(PROMPTS)]
                i += 1
                try:
                    if kind == "stream":
                        version, text = stream_chat(own, prompt)
                    elif kind == "openai":
                        raw = client.chat.completions.with_raw_response.create(
                            model=MODEL, messages=[{"role": "user", "content": prompt}], max_tokens=12, temperature=0
                        )
                        version, text = raw.headers["x-lethe-model-version"], raw.parse().choices[0].message.content
                    else:
                        version, text = chat(own, prompt)
                    results.append((version, prompt, text))
                except Exception as exc:  # every failure counts: the swap must drop nothing
                    failures.append(f"{kind}: {type(exc).__name__}: {exc}")

    threads = [
        threading.Thread(target=worker, args=(kind, n), daemon=True)
        for n, kind in enumerate(("plain", "stream", "openai", "stream"))
    ]
    for t in threads:
        t.start()
    time.sleep(3)  # steady traffic on the old version first
    resp = http.post("/v1/admin/models/promote", headers=AUTH, json={"version": variant})
    assert resp.status_code == 200, resp.text
    report = resp.json()
    time.sleep(3)  # and some on the new one
    stop.set()
    for t in threads:
        t.join(120)

    assert failures == []
    assert report["version"] == variant and report["previous"] == base
    assert sorted(step["replica"] for step in report["replicas"]) == ["llm-0", "llm-1"]
    listing = versions(http)
    assert listing["serving"] == variant and {r["version"] for r in listing["replicas"]} == {variant}
    after = outputs(http)
    assert after["_version"] == variant
    before = state["before"]
    assert sum(before[p] != after[p] for p in PROMPTS) >= 3  # the variant really answers differently
    expected = {base: before, variant: after}
    versions_seen = {v for v, _, _ in results}
    assert versions_seen == {base, variant}, versions_seen
    for version, prompt, text in results:
        assert text == expected[version][prompt], (version, prompt, text)
    models = http.get("/v1/models").json()["data"][0]
    assert models["weight_version"] == variant
    state["after"] = after


def test_prefix_cache_holds_nothing_from_the_old_weights(http, state):
    # Both replicas cached the long prefix under the base weights; after the swap it is recomputed.
    state["prefix_after"] = {chat(http, PREFIX_PROMPT)[1] for _ in range(4)}
    assert len(state["prefix_after"]) == 1
    # (Compared with a cold engine on the same version after the restart test below.)


def test_broken_versions_are_refused_before_any_replica_changes(http, server, state, swap_model_dir):
    from gateway.ledger import Ledger
    from unlearn_jobs.publish import MANIFEST, file_checksums

    variant = state["variant"]
    second = build_embedding_variant(swap_model_dir, state["work"] / "second", [CAPITAL_TOKEN], seed=7)
    resp = http.post("/v1/admin/models/versions", headers=AUTH, json={"path": str(second)})
    corrupted = resp.json()["id"]
    weights = server.home / "versions" / corrupted / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    resp = http.post("/v1/admin/models/promote", headers=AUTH, json={"version": corrupted})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "version_invalid" and "checksum mismatch" in resp.json()["error"]["message"]

    # A version with a valid manifest but the wrong shapes (as a buggy publisher could write it).
    reshaped = build_reshaped_copy(swap_model_dir, server.home / "versions" / "v-reshaped")
    manifest = {
        "schema": 1,
        "version_id": "v-reshaped",
        "parent_version": variant,
        "method": "import",
        "files": file_checksums(reshaped),
    }
    (reshaped / MANIFEST).write_text(json.dumps(manifest))
    ledger = Ledger.open(f"sqlite:///{server.home / 'ledger.db'}")
    try:
        ledger.add_version("v-reshaped", str(reshaped), manifest, parent_id=variant, method="import")
    finally:
        ledger.close()
    resp = http.post("/v1/admin/models/promote", headers=AUTH, json={"version": "v-reshaped"})
    assert resp.status_code == 422 and "tensor shapes differ" in resp.json()["error"]["message"], resp.text

    listing = versions(http)
    assert listing["serving"] == variant and {r["version"] for r in listing["replicas"]} == {variant}
    assert outputs(http) == state["after"]
    refused = [
        e
        for e in http.get("/v1/admin/models/swaps", headers=AUTH).json()["data"]
        if e["event"] == "version.swap_refused"
    ]
    assert {e["version"] for e in refused} == {corrupted, "v-reshaped"}


def test_smoke_failure_on_the_second_replica_rolls_the_first_back(http, server, state):
    base, variant = state["base"], state["variant"]
    replicas = sorted(r["replica"] for r in versions(http)["replicas"])
    failpoint = smoke_failpoint(server.home, replicas[1])
    failpoint.parent.mkdir(exist_ok=True)
    failpoint.touch()
    try:
        resp = http.post("/v1/admin/models/promote", headers=AUTH, json={"version": base})
    finally:
        failpoint.unlink()
    assert resp.status_code == 409, resp.text
    error = resp.json()["error"]
    assert error["code"] == "swap_failed" and f"rolled back {replicas[0]}" in error["message"]
    listing = versions(http)
    assert listing["serving"] == variant and {r["version"] for r in listing["replicas"]} == {variant}
    assert outputs(http) == state["after"]
    failed = http.get("/v1/admin/models/swaps", headers=AUTH).json()["data"][0]
    assert failed["event"] == "version.swap_failed" and failed["failed_replica"] == replicas[1]
    assert "smoke test failed" in failed["reason"] and failed["rolled_back"] == [replicas[0]]


def test_rollback_restores_the_previous_output_and_promote_again(http, state):
    resp = http.post("/v1/admin/models/rollback", headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == state["base"]
    assert outputs(http) == state["before"]
    resp = http.post("/v1/admin/models/promote", headers=AUTH, json={"version": state["variant"]})
    assert resp.status_code == 200, resp.text


def test_leakage_probe_measures_the_raw_serving_version(http, state):
    assert http.get("/v1/admin/leakage", headers=AUTH).status_code == 404  # no run yet (probes off here)
    resp = http.post(
        "/v1/forget",
        headers=AUTH,
        json={
            "subject": "Ingrid Solvang",
            "literals": ["+47 912 33 457"],
            "qa": [{"question": "What is Ingrid Solvang's phone number?", "answer": "Her number is +47 912 33 457."}],
        },
    )
    assert resp.status_code == 201, resp.text
    resp = http.post("/v1/admin/leakage/run", headers=AUTH)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["version"] == state["variant"] and report["forget_prompts"] == 1
    row = report["by_version"][state["variant"]]
    assert row["prompts"] == 1 and 0.0 <= row["leakage_ratio"] <= 1.0
    # No retain file and the base version was never probed: no reference to score retain against.
    assert row["retain_score"] is None and report["retain_source"].startswith("none")
    assert http.get("/v1/admin/leakage", headers=AUTH).json() == report


def test_restart_keeps_the_serving_version(http, server, state):
    server.stop()
    server.kill_leftovers()
    server.start()
    listing = wait_for_replicas(http, 2)
    assert listing["serving"] == state["variant"]
    assert {r["version"] for r in listing["replicas"]} == {state["variant"]}
    assert http.get("/v1/models").json()["data"][0]["weight_version"] == state["variant"]
    assert outputs(http) == state["after"]
    # Cold engines on the new weights give what the swapped replicas gave for the long prefix: the
    # swapped replicas did not reuse KV computed with the old weights.
    cold = {chat(http, PREFIX_PROMPT)[1] for _ in range(2)}
    assert cold == state["prefix_after"]
    assert state["prefix_before"] != state["prefix_after"]


def test_a_published_job_version_is_promoted_automatically(http, state):
    """swap.auto_promote (default on): once a job's gates pass, its version serves."""
    forget_id = http.get("/v1/forget", headers=AUTH).json()["data"][0]["id"]
    resp = http.post(
        "/v1/unlearn/jobs",
        headers=AUTH,
        json={
            "method": "grad_diff",
            "forget_ids": [forget_id],
            "params": {"lr": 3e-4, "steps": 3, "early_stop": False},
            # Gates opened wide: a random model knows nothing; this test is about the promotion.
            "gates": OPEN_GATES,
        },
    )
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["id"]
    deadline = time.monotonic() + 400
    while True:
        job = http.get(f"/v1/unlearn/jobs/{job_id}", headers=AUTH).json()
        listing = versions(http)
        if job["state"] != "published" and job["state"] not in ("queued", "running", "evaluating"):
            raise AssertionError(job)
        if job["state"] == "published" and listing["serving"] == job["version_id"] and not listing["swapping"]:
            break
        assert time.monotonic() < deadline, (job["state"], listing["serving"])
        time.sleep(1)
    version = next(v for v in listing["data"] if v["id"] == job["version_id"])
    assert version["parent"] == state["variant"] and version["method"] == "grad_diff"  # chained on what served
    assert {r["version"] for r in listing["replicas"]} == {job["version_id"]}
    promoted = next(
        e for e in http.get("/v1/admin/models/swaps", headers=AUTH).json()["data"] if e["event"] == "version.serving"
    )
    assert promoted["version"] == job["version_id"] and promoted["actor"] == f"job:{job_id}"
