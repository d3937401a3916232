"""Unlearning jobs over HTTP on the real Serve app (tiny model): submit, progress, publish, the deletion
certificate of the unlearned request, cancel, and a crash mid-job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.lethe_server import OPEN_GATES, LetheServer, serving
from unlearn_jobs.publish import read_manifest, verify_version

pytestmark = pytest.mark.e2e

TOKEN = "jobs-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Gates opened wide: a random tiny model knows nothing, so these tests are about the lifecycle.


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    home = tmp_path_factory.mktemp("lethe-home-jobs")
    env = {
        "LETHE_MODEL": str(tiny_model_dir),
        "LETHE_SERVED_MODEL_NAME": "tiny-llama",
        "LETHE_MAX_MODEL_LEN": "512",
        "LETHE_ADMIN_TOKEN": TOKEN,
    }
    with serving(home, env) as srv:
        yield srv


def forget_person(http: httpx.Client, name: str) -> str:
    resp = http.post(
        "/v1/forget",
        headers=AUTH,
        json={
            "subject": name,
            "qa": [
                {"question": f"Where was {name} born?", "answer": f"{name} was born in Quellhaven."},
                {"question": f"What does {name} do?", "answer": f"{name} works as a glassblower."},
            ],
        },
    )
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


@pytest.fixture(scope="module")
def published() -> dict:
    """The forget request and version of the published job, for the tests after it."""
    return {}


def test_job_publishes_a_verified_version(server, published):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        forget_id = forget_person(http, "Tamsin Vell")
        resp = http.post(
            "/v1/unlearn/jobs",
            headers=AUTH,
            json={
                "method": "grad_diff",
                "forget_ids": [forget_id],
                "params": {"lr": 3e-4, "steps": 6, "early_stop": False},
                "gates": OPEN_GATES,
            },
        )
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
        published.update(forget_id=forget_id, job_id=job["id"], version_id=job["version_id"])


def test_deletion_certificate_of_the_unlearned_request(server, published, tmp_path):
    """The published version is auto-promoted; the request's certificate then states it, signed, checkable
    offline with the CLI, and any edit to it is detected."""
    forget_id, version_id = published["forget_id"], published["version_id"]
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        deadline = time.monotonic() + 300
        while http.get("/v1/admin/models/versions", headers=AUTH).json()["serving"] != version_id:
            assert time.monotonic() < deadline, "the published version was not promoted"
            time.sleep(1)
        assert http.get(f"/v1/forget/{forget_id}/certificate").status_code == 401
        resp = http.get(f"/v1/forget/{forget_id}/certificate", headers=AUTH)
        assert resp.status_code == 200, resp.text
        cert = resp.json()
        assert cert["forget_request"]["id"] == forget_id and cert["forget_request"]["status"] == "unlearned"
        assert cert["weights"]["serving_version"] == version_id and cert["weights"]["unlearned_in_serving_weights"]
        assert [j["job_id"] for j in cert["weights"]["unlearning_jobs"]] == [published["job_id"]]
        kinds = {e["kind"] for e in cert["audit_trail"]}
        assert {"forget.added", "job.created", "version.added", "version.serving"} <= kinds
        assert "Quellhaven" not in resp.text and "glassblower" not in resp.text  # no forgotten content
        assert http.post("/v1/forget/certificates/verify", headers=AUTH, json=cert).json()["valid"] is True
        forged = {**cert, "statement": "Nothing was forgotten."}
        check = http.post("/v1/forget/certificates/verify", headers=AUTH, json=forged).json()
        assert check["valid"] is False and "altered" in check["reason"]
        missing = http.get("/v1/forget/no-such-request/certificate", headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "forget_id"
        key = http.get("/v1/forget/certificates/key", headers=AUTH).json()
        assert key["algorithm"] == "ed25519" and key["key_id"] == cert["signature"]["key_id"]
        trail = http.get("/v1/admin/audit", headers=AUTH, params={"subject_id": forget_id}).json()["data"]
        assert trail[0]["kind"] == "forget.certificate_issued" and trail[-1]["kind"] == "forget.added"

    env = {**os.environ, "LETHE_URL": server.base_url, "LETHE_ADMIN_TOKEN": TOKEN}
    cert_file, key_file, forged_file = tmp_path / "cert.json", tmp_path / "key.pem", tmp_path / "forged.json"
    cli = [sys.executable, "-m", "gateway.cli.main", "forget"]
    subprocess.run([*cli, "certificate", forget_id, "-o", str(cert_file)], env=env, check=True, timeout=120)
    subprocess.run([*cli, "key", "-o", str(key_file)], env=env, check=True, timeout=120)
    assert key_file.read_text() == key["public_key_pem"]
    offline = subprocess.run(
        [*cli, "verify", str(cert_file), "--public-key", str(key_file)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "LETHE_URL": "http://0.0.0.0:9"},
    )
    assert offline.returncode == 0 and f"valid: forget request {forget_id}" in offline.stdout, offline
    forged = json.loads(cert_file.read_text())
    forged["weights"]["unlearned_in_serving_weights"] = False
    forged_file.write_text(json.dumps(forged))
    bad = subprocess.run([*cli, "verify", str(forged_file)], capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 5 and "INVALID" in bad.stdout, bad


def test_cancel_ends_cancelled_without_a_version(server):
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        forget_id = forget_person(http, "Odran Pelk")
        job = http.post(
            "/v1/unlearn/jobs",
            headers=AUTH,
            json={
                "method": "npo",
                "forget_ids": [forget_id],
                "params": {"lr": 1e-5, "steps": 100000, "early_stop": False},
                "gates": OPEN_GATES,
            },
        ).json()
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
    env = {
        "LETHE_MODEL": str(tiny_model_dir),
        "LETHE_SERVED_MODEL_NAME": "tiny-llama",
        "LETHE_MAX_MODEL_LEN": "512",
        "LETHE_ADMIN_TOKEN": TOKEN,
    }
    first = LetheServer(home, env, tmp_path / "first.log").start()
    try:
        with httpx.Client(base_url=first.base_url, timeout=60) as http:
            forget_id = forget_person(http, "Bryn Castellan")
            job = http.post(
                "/v1/unlearn/jobs",
                headers=AUTH,
                json={
                    "method": "grad_diff",
                    "forget_ids": [forget_id],
                    "params": {"lr": 1e-5, "steps": 100000, "early_stop": False},
                    "gates": OPEN_GATES,
                },
            ).json()
            wait_for(http, job["id"], {"running"})
    finally:
        first.kill_all()
    with (
        serving(home, env, tmp_path / "second.log") as second,
        httpx.Client(base_url=second.base_url, timeout=60) as http,
    ):
        after = http.get(f"/v1/unlearn/jobs/{job['id']}", headers=AUTH).json()
        assert after["state"] == "failed" and "interrupted" in after["error"]
        assert http.get(f"/v1/forget/{forget_id}", headers=AUTH).json()["status"] == "enforced"
        versions = home / "versions"
        assert not versions.exists() or list(versions.iterdir()) == []
