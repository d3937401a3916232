"""kill -9 of the whole server during a burst of forget requests loses nothing acknowledged."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.support.lethe_server import LetheServer

pytestmark = pytest.mark.e2e

TOKEN = "crash-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_acknowledged_forgets_survive_kill_9(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    env = {
        "LETHE_MODEL": str(tiny_model_dir),
        "LETHE_SERVED_MODEL_NAME": "tiny-llama",
        "LETHE_MAX_MODEL_LEN": "512",
        "LETHE_ADMIN_TOKEN": TOKEN,
        "LETHE_INGRESS_REPLICAS": "2",
    }
    first = LetheServer(home, env, tmp_path / "first.log").start()
    acked: list[tuple[str, str, int]] = []
    stop = threading.Event()

    def burst(worker: int) -> None:
        with httpx.Client(base_url=first.base_url, timeout=30) as http:
            for i in range(10_000):
                if stop.is_set():
                    return
                literal = f"KX-{worker}-{i:04d}-{worker * 7919 + i}"
                try:
                    resp = http.post("/v1/forget", json={"literals": [literal], "reason": "secret"}, headers=AUTH)
                except httpx.HTTPError:
                    return  # the server died under us: this request was never acknowledged
                if resp.status_code == 201:
                    body = resp.json()
                    acked.append((body["id"], literal, body["index_version"]))

    threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.kill_all()  # mid-burst: requests are in flight in every layer
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        first.kill_all()
    assert len(acked) >= 25, f"only {len(acked)} acknowledged before the kill:\n{first.log_tail()}"
    assert not first.processes()

    second = LetheServer(home, env, tmp_path / "second.log").start()
    try:
        with httpx.Client(base_url=second.base_url, timeout=30) as http:
            ready = http.get("/readyz").json()
            assert int(ready["index_version"]) >= max(v for _, _, v in acked)
            for forget_id, literal, version in acked:
                shown = http.get(f"/v1/forget/{forget_id}", headers=AUTH)
                assert shown.status_code == 200, (forget_id, shown.text)
                assert shown.json()["index_version"] == version
                check = http.post("/v1/forget/check", json={"text": f"it was {literal}."}, headers=AUTH).json()
                assert forget_id in {m["forget_id"] for m in check["matches"]}, (literal, check)
    finally:
        second.stop()
        second.kill_leftovers()
