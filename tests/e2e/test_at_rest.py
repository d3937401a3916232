"""Nothing forgotten stays at rest (real Serve app, tiny model): a forget request carrying a unique canary
goes through its whole life (enforced, unlearned by a job, published, promoted, probed, certified,
audited, scraped, shredded, restarted). Then every file under LETHE_HOME (SQLite pages and WAL included),
the serve log, the metrics endpoint and every API response are searched for the canary: it is nowhere
outside ciphertext, and once shredded not even there. The guard still blocks the canary's literal, a
verbatim run and a paraphrase from its one-way derivatives, before and after a restart."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.support.lethe_server import OPEN_GATES, LetheServer

pytestmark = pytest.mark.e2e

TOKEN = "at-rest-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# Unique strings that exist nowhere but in this request (and, lowercased, in nothing else either).
CANARY = "Vantreequill"
SUBJECT = "Ada Quillonbeck"
LITERAL = "QX-7731-ZORVAL"
TEXT = f"{SUBJECT} hid the {CANARY} archive under the old Skolegata lighthouse in Tromsø in 1987."
QA = {
    "question": f"Where did {SUBJECT} hide the {CANARY} archive?",
    "answer": f"Under the Skolegata lighthouse in Tromsø, in 1987, with the {CANARY} seal.",
}
NEEDLES = [CANARY.casefold(), "quillonbeck", LITERAL.casefold(), "zorval"]

# What an attacker asks the guard to let through after the content was shredded.
LEAKS = {
    "literal": f"The archive code is {LITERAL.lower().replace('-', ' ')}.",
    "verbatim": f"Some say {SUBJECT} hid the {CANARY} archive under the old Skolegata lighthouse in Tromsø.",
    "paraphrase": f"In 1987 {SUBJECT} concealed an archive beneath a lighthouse on Skolegata in Tromsø.",
}


def _hits(blob: bytes) -> list[str]:
    lowered = blob.lower()
    return [n for n in NEEDLES if n.encode() in lowered or n.encode("utf-16-le") in lowered]


def _scan_home(home: Path) -> dict[str, list[str]]:
    found = {}
    for path in home.rglob("*"):
        if path.is_file() and not path.is_symlink():
            hits = _hits(path.read_bytes())
            if hits:
                found[str(path.relative_to(home))] = hits
    return found


def _guard_blocks(http: httpx.Client) -> dict[str, bool]:
    return {
        name: http.post("/v1/forget/check", headers=AUTH, json={"text": text}).json()["match"]
        for name, text in LEAKS.items()
    }


def _wait(predicate, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(1)


def test_a_canary_leaves_no_plaintext_at_rest_and_stays_enforced_after_shredding(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    env = {
        "LETHE_MODEL": str(tiny_model_dir),
        "LETHE_SERVED_MODEL_NAME": "tiny-llama",
        "LETHE_MAX_MODEL_LEN": "512",
        "LETHE_ADMIN_TOKEN": TOKEN,
        "LETHE_SHRED": "never",  # shredded on the operator's word below, at a known moment
    }
    server = LetheServer(home, env, home / "serve.log")
    responses: list[str] = []

    def call(http: httpx.Client, method: str, url: str, **kw) -> httpx.Response:
        resp = http.request(method, url, headers=AUTH, **kw)
        responses.append(resp.text)
        return resp

    try:
        server.start()
        with httpx.Client(base_url=server.base_url, timeout=120) as http:
            filed = call(
                http,
                "POST",
                "/v1/forget",
                json={"subject": SUBJECT, "texts": [TEXT], "qa": [QA], "literals": [LITERAL]},
            )
            assert filed.status_code == 201, filed.text
            forget_id, salt = filed.json()["id"], filed.json()["content_digest_salt"]
            assert all(_guard_blocks(http).values())
            chat = http.post(
                "/v1/chat/completions",
                json={
                    "model": "tiny-llama",
                    "messages": [{"role": "user", "content": f"Where is the {CANARY} archive?"}],
                },
            )
            responses.append(chat.text)
            assert chat.status_code in (200, 400), chat.text

            job = call(
                http,
                "POST",
                "/v1/unlearn/jobs",
                json={
                    "method": "grad_diff",
                    "forget_ids": [forget_id],
                    "params": {"lr": 3e-4, "steps": 4, "early_stop": False},
                    "gates": OPEN_GATES,
                },
            ).json()
            _wait(
                lambda: (
                    call(http, "GET", f"/v1/unlearn/jobs/{job['id']}").json()["state"]
                    in {"published", "rejected", "failed"}
                ),
                "job did not end",
            )
            job = call(http, "GET", f"/v1/unlearn/jobs/{job['id']}").json()
            assert job["state"] == "published", job
            _wait(
                lambda: call(http, "GET", "/v1/admin/models/versions").json()["serving"] == job["version_id"],
                "not promoted",
            )
            probe = call(http, "POST", "/v1/admin/leakage/run")
            assert probe.status_code == 200, probe.text
            call(http, "GET", "/v1/admin/leakage")
            cert = call(http, "GET", f"/v1/forget/{forget_id}/certificate").json()
            assert cert["forget_request"]["content_digest"].startswith("hmac-sha256:")
            for url in (
                "/v1/forget",
                f"/v1/forget/{forget_id}",
                "/v1/unlearn/jobs",
                "/v1/admin/audit",
                "/v1/admin/models/swaps",
            ):
                call(http, "GET", url)
            responses.append(httpx.get(f"http://127.0.0.1:{server.env['LETHE_METRICS_PORT']}/metrics", timeout=30).text)

            shredded = call(http, "POST", f"/v1/forget/{forget_id}/shred", json={})
            assert shredded.status_code == 200 and shredded.json()["shredded_at"], shredded.text
            assert shredded.json()["has_subject"] and shredded.json()["counts"]["texts"] == 1
            assert http.post(f"/v1/forget/{forget_id}/shred", json={}).status_code == 401  # operators only
            assert _guard_blocks(http) == {name: True for name in LEAKS}
            cert = call(http, "GET", f"/v1/forget/{forget_id}/certificate").json()
            assert cert["forget_request"]["shredded_at"]
            trail = call(http, "GET", "/v1/admin/audit", params={"subject_id": forget_id}).json()["data"]
            assert "forget.shredded" in {e["kind"] for e in trail}

        server.stop()
        server.start()  # the index rebuilt from the ledger: hashed artifacts only
        with httpx.Client(base_url=server.base_url, timeout=120) as http:
            assert _guard_blocks(http) == {name: True for name in LEAKS}
            assert call(http, "GET", f"/v1/forget/{forget_id}").json()["shredded_at"]
            responses.append(httpx.get(f"http://127.0.0.1:{server.env['LETHE_METRICS_PORT']}/metrics", timeout=30).text)
    finally:
        server.stop()
        server.kill_leftovers()

    assert salt and not [r for r in responses if _hits(r.encode())], "the canary came back in an API response"
    assert _scan_home(home) == {}, "the canary is at rest in clear (or still decryptable) under LETHE_HOME"
    with sqlite3.connect(home / "ledger.db") as db:  # no sealed copy left for any key to open
        assert db.execute("SELECT count(*) FROM forget_payloads WHERE forget_id = ?", (forget_id,)).fetchone() == (0,)
