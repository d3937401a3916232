"""Unlearning jobs over HTTP on the real Serve app (tiny model): submit, progress, publish, cancel,
and a crash mid-job."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.lethe_server import LetheServer, serving
from unlearn_jobs.publish import read_manifest, verify_version

pytestmark = pytest.mark.e2e

TOKEN = "jobs-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Gates opened wide: a random tiny model knows nothing, so these tests are about the lifecycle.
OPEN_GATES = {"forget_hit_rate_max": 1.0, "retain_hit_rate_min_ratio": 0.0, "perplexity_max_ratio": 1000.0}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("lethe-home-jobs")
    env = {"LETHE_MODEL": str(tiny_model_dir), "LETHE_SERVED_MODEL_NAME": "tiny-llama",
           "LETHE_MAX_MODEL_LEN": "512", "LETHE_ADMIN_TOKEN": TOKEN}
    with serving(home, env) as srv:
        yield srv


def forget_person(http: httpx.Client, name: str) -> str:
    resp = http.post("/v1/forget", headers=AUTH, json={
        "subject": name,
        "qa": [{"question": f"Where was {name} born?", "answer": f"{name} was born in Quellhaven."},
               {"question": f"What does {name} do?", "answer": f"{name} works as a glassblower."}],
    })
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def wait_for(http: httpx.Client, job_id: str, states: set[str], timeout_s: float = 300) -> tuple[dict, list[float]]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = http.get(f"/v1/unlearn/jobs/{job_id}", headers=AUTH).json()
        seen.append(job["progress"])
        if job["state"] in states:
            return job, seen
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout_s} s")


def test_job_publishes_a_verified_version(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        forget_id = forget_person(http, "Tamsin Vell")
        resp = http.post("/v1/unlearn/jobs", headers=AUTH, json={
            "method": "grad_diff", "forget_ids": [forget_id],
            "params": {"lr": 3e-4, "steps": 6, "early_stop": False}, "gates": OPEN_GATES,
        })
        assert resp.status_code == 201, resp.text
        job = resp.json()
        assert job["state"] in {"queued", "running"} and job["forget_ids"] == [forget_id]
        assert http.get(f"/v1/forget/{forget_id}", headers=AUTH).json()["status"] == "unlearning"

        job, progress = wait_for(http, job["id"], {"published", "rejected", "failed", "cancelled"})
        assert job["state"] == "published", job
        assert any(0 < p < 100 for p in progress) or job["step"] > 0
        assert job["progress"] == 100 and job["version_id"]
        assert job["metrics"]["after"]["forget"] is not None
        version_dir = server.home / "versions" / job["version_id"]
        verify_version(version_dir)  # every file's sha256 matches the manifest
        manifest = read_manifest(version_dir)
        assert manifest["method"] == "grad_diff" and manifest["forget_ids"] == [forget_id]
        assert http.get(f"/v1/forget/{forget_id}", headers=AUTH).json()["status"] == "unlearned"
        listed = http.get("/v1/unlearn/jobs", headers=AUTH, params={"state": "published"}).json()["data"]
        assert job["id"] in [j["id"] for j in listed]


def test_cancel_ends_cancelled_without_a_version(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        forget_id = forget_person(http, "Odran Pelk")
        job = http.post("/v1/unlearn/jobs", headers=AUTH, json={
            "method": "npo", "forget_ids": [forget_id],
            "params": {"lr": 1e-5, "steps": 100000, "early_stop": False}, "gates": OPEN_GATES,
        }).json()
        wait_for(http, job["id"], {"running"})
        assert http.post(f"/v1/unlearn/jobs/{job['id']}/cancel", headers=AUTH).status_code == 200
        job, _ = wait_for(http, job["id"], {"cancelled", "failed", "published", "rejected"})
        assert job["state"] == "cancelled", job
        assert job["version_id"] is None
        assert http.get(f"/v1/forget/{forget_id}", headers=AUTH).json()["status"] == "enforced"


def test_bad_job_requests(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        for body, needle in [
            ({"method": "magic"}, "unknown method"),
            ({"method": "npo", "forget_ids": ["nope"]}, "unknown forget request"),
            ({"method": "npo", "params": {"lr": "fast"}}, "lr"),
            ({"method": "npo", "params": {"warp": 9}}, "warp"),
        ]:
            resp = http.post("/v1/unlearn/jobs", headers=AUTH, json=body)
            assert resp.status_code == 422, resp.text
            assert needle in resp.json()["error"]["message"]
        assert http.get("/v1/unlearn/jobs/unknown", headers=AUTH).status_code == 404
        assert http.post("/v1/unlearn/jobs", json={"method": "npo"}).status_code == 401


def test_crash_mid_job_leaves_a_failed_job_and_no_version(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    env = {"LETHE_MODEL": str(tiny_model_dir), "LETHE_SERVED_MODEL_NAME": "tiny-llama",
           "LETHE_MAX_MODEL_LEN": "512", "LETHE_ADMIN_TOKEN": TOKEN}
    first = LetheServer(home, env, tmp_path / "first.log").start()
    try:
        with httpx.Client(base_url=first.base_url, timeout=60) as http:
            forget_id = forget_person(http, "Bryn Castellan")
            job = http.post("/v1/unlearn/jobs", headers=AUTH, json={
                "method": "grad_diff", "forget_ids": [forget_id],
                "params": {"lr": 1e-5, "steps": 100000, "early_stop": False}, "gates": OPEN_GATES,
            }).json()
            wait_for(http, job["id"], {"running"})
    finally:
        first.kill_all()
    with serving(home, env, tmp_path / "second.log") as second, \
            httpx.Client(base_url=second.base_url, timeout=60) as http:
        after = http.get(f"/v1/unlearn/jobs/{job['id']}", headers=AUTH).json()
        assert after["state"] == "failed" and "interrupted" in after["error"]
        assert http.get(f"/v1/forget/{forget_id}", headers=AUTH).json()["status"] == "enforced"
        versions = home / "versions"
        assert not versions.exists() or list(versions.iterdir()) == []
