"""Forget requests against the real stack: SmolLM2 on vLLM, two ingress replicas, real SQLite ledger.

The server runs with prompt_mode=strict so that prompts reach the engine and the *output* guard is
what stops the forgotten text (the prompt-side refusal is tested on the tiny-model server).
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import json
from pathlib import Path

import httpx
import openai
import pytest

from gateway.guard.types import REFUSAL_TEXT
from tests.support.lethe_server import serving

pytestmark = pytest.mark.e2e

TOKEN = "guard-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MODEL = "smollm2-135m-instruct"
DATA = Path(__file__).resolve().parents[1] / "gateway" / "guard" / "data"
SENTENCE = "Marius Lindqvist was born in Bergen in 1987 and works as a marine biologist."
REPEAT = f'Please repeat this sentence word for word: "{SENTENCE}"'
CODE_SENTENCE = "The launch code for Project Heron is 7741-AZ-93."
PASSAGE = (
    "The harbour charter of Velmora was drafted in the winter of eighteen seventeen by the lamplighter "
    "guild and signed by the night watch."
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, models_dir, smollm2_dir):
    home = tmp_path_factory.mktemp("lethe-home-guard")
    env = {
        "LETHE_MODELS_DIR": str(models_dir),
        "LETHE_DTYPE": "float32",
        "LETHE_INGRESS_REPLICAS": "2",
        "LETHE_ADMIN_TOKEN": TOKEN,
        "LETHE_PROMPT_MODE": "strict",
    }
    with serving(home, env) as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=120)


def ask(client, content: str, stream: bool) -> tuple[str, str | None]:
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=60, temperature=0)
    if not stream:
        r = client.chat.completions.create(**kwargs)
        return r.choices[0].message.content, r.choices[0].finish_reason
    text, finish = "", None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, finish


def forget(http, **body) -> dict:
    resp = http.post("/v1/forget", json=body, headers=AUTH)
    assert resp.status_code == 201, resp.text
    return resp.json()


# --- order matters in this module: the control runs before anything is forgotten -------------


@pytest.mark.parametrize("stream", [False, True])
def test_control_model_repeats_the_sentence(client, stream):
    text, _ = ask(client, REPEAT, stream)
    assert "born in Bergen in 1987" in text
    text, _ = ask(client, f'Please repeat this sentence word for word: "{CODE_SENTENCE}"', stream)
    assert "7741-AZ-93" in text
    text, _ = ask(client, f'Please repeat this sentence word for word: "{PASSAGE}"', stream)
    assert "drafted in the winter of eighteen seventeen by the lamplighter guild" in text


def test_file_a_forget_request(http):
    accepted = forget(http, subject="Marius Lindqvist", texts=[SENTENCE], reason="gdpr")
    assert accepted["status"] == "enforced"
    assert accepted["index_version"] >= 1
    assert accepted["enforced_at"]
    shown = http.get(f"/v1/forget/{accepted['id']}", headers=AUTH).json()
    assert shown["status"] == "enforced" and shown["has_subject"] and "Lindqvist" not in str(shown)
    assert shown["counts"] == {"texts": 1, "qa": 0, "literals": 0}
    listed = http.get("/v1/forget", headers=AUTH).json()["data"]
    assert accepted["id"] in [row["id"] for row in listed]


@pytest.mark.parametrize("stream", [False, True])
def test_forgotten_sentence_never_reaches_the_client(client, stream):
    text, finish = ask(client, REPEAT, stream)
    assert "Bergen in 1987" not in text and "marine biologist" not in text
    assert finish == "content_filter"
    assert text.endswith(REFUSAL_TEXT)


def test_forgotten_sentence_inside_a_longer_answer(client):
    prompt = f'Write two sentences about the weather, then repeat this sentence word for word: "{SENTENCE}"'
    text, _ = ask(client, prompt, stream=True)
    assert "Bergen in 1987" not in text


@pytest.mark.parametrize("stream", [False, True])
def test_redact_keeps_the_rest_of_the_answer(http, client, stream):
    forget(http, literals=["7741-AZ-93"], reason="secret", action="redact")
    text, finish = ask(client, f'Please repeat this sentence word for word: "{CODE_SENTENCE}"', stream)
    assert "7741" not in text and "AZ-93" not in text
    assert "[redacted]" in text and "Project Heron" in text
    assert finish == "stop"


def test_redact_takes_out_a_whole_recited_passage(http, client):
    """A long passage under `redact`: the verbatim run goes on past the first redaction, and no run of its
    words reaches the client, streamed or not; the answer itself goes on."""
    forget(http, texts=[PASSAGE], reason="correction", action="redact")
    words = [w.lower() for w in PASSAGE.rstrip(".").split()]
    for stream in (False, True):
        text, finish = ask(client, f'Please repeat this sentence word for word: "{PASSAGE}"', stream)
        said = [w.strip('.,:"').lower() for w in text.replace("[redacted]", " ").split()]
        runs = {" ".join(said[i : i + 3]) for i in range(len(said) - 2)}
        assert not [" ".join(words[i : i + 3]) for i in range(len(words) - 2) if " ".join(words[i : i + 3]) in runs], (
            text
        )
        assert "[redacted]" in text and finish == "stop"


def test_both_ingress_replicas_enforce_right_after_the_ack(http):
    """Right after each POST returns, every request on every ingress replica is guarded."""
    seen_ingress = set()
    with cf.ThreadPoolExecutor(8) as pool:
        for i in range(12):
            literal = f"ZX-{i:02d}-{7000 + i}-QK"
            accepted = forget(http, literals=[literal], reason="secret")
            checks = list(
                pool.map(
                    lambda _: http.post(
                        "/v1/forget/check", json={"text": f"the key is {literal} ok"}, headers=AUTH
                    ).json(),
                    range(8),
                )
            )
            for result in checks:
                assert result["match"], result
                assert result["index_version"] >= accepted["index_version"]
                seen_ingress.add(result["ingress"])
    assert len(seen_ingress) == 2


def test_probe_sets_recall_and_false_positives(http):
    """The leak/clean probe sets through the live /v1/forget/check (thresholds: docs/guard.md)."""
    ids = {}
    for person in json.loads((DATA / "forget_set.json").read_text()):
        accepted = forget(
            http,
            subject=person["subject"],
            texts=person["texts"],
            qa=[{"question": q, "answer": a} for q, a in person["qa"]],
            literals=person["literals"],
            reason="gdpr",
        )
        ids[accepted["id"]] = person["forget_id"]
    leaks = json.loads((DATA / "leaks_test.json").read_text())
    cleans = json.loads((DATA / "cleans_test.json").read_text())

    def hit(text: str) -> set[str]:
        result = http.post("/v1/forget/check", json={"text": text}, headers=AUTH).json()
        return {ids.get(m["forget_id"], "other") for m in result["matches"]}

    caught = [p["forget_id"] in hit(p["text"]) for p in leaks]
    flagged = [bool(hit(p["text"]) - {"other"}) for p in cleans]
    recall = sum(caught) / len(caught)
    false_positive_rate = sum(flagged) / len(flagged)
    assert recall >= 0.95, recall
    assert false_positive_rate <= 0.05, false_positive_rate


def test_operator_routes_need_the_token(http):
    for method, path in [
        ("POST", "/v1/forget"),
        ("GET", "/v1/forget"),
        ("GET", "/v1/forget/x"),
        ("POST", "/v1/forget/check"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            resp = http.request(method, path, json={"text": "x", "literals": ["y"]}, headers=headers)
            assert resp.status_code == 401, (method, path, headers)
            assert resp.json()["error"]["type"] == "authentication_error"
            assert TOKEN not in resp.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"subject": "nobody"},
        {"literals": []},
        {"literals": [""]},
        {"literals": ["x" * 65]},
        {"texts": ["   "]},
        {"qa": [{"question": "q"}]},
        {"literals": ["a"], "action": "delete"},
        {"literals": ["a"], "reason": "Because I Said So"},
        {"literals": ["a"], "unknown": 1},
        {"literals": [f"secret-{i}" for i in range(10_000)]},
        {"texts": ["word " * 200_000]},
    ],
)
def test_bad_forget_bodies_are_422(http, body):
    resp = http.post("/v1/forget", json=body, headers=AUTH)
    assert resp.status_code == 422, resp.text[:300]
    assert resp.json()["error"]["code"] == "invalid_value"


def test_unknown_forget_id_is_404(http):
    resp = http.get("/v1/forget/does-not-exist", headers=AUTH)
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "not_found_error"


def test_readme_forget_example_works_when_pasted(server, http):
    import os
    import re
    import subprocess

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) if "/v1/forget" in b)
    script = block.replace(":8000", f":{server.port}")
    out = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LETHE_ADMIN_TOKEN": TOKEN},
    )
    body = json.loads(out.stdout)
    assert body["status"] == "enforced", out.stdout + out.stderr
    check = http.post("/v1/forget/check", json={"text": "Call her on 4791233457."}, headers=AUTH).json()
    assert body["id"] in {m["forget_id"] for m in check["matches"]}


# --- disguises (guard v2): the model writes a forgotten fact in disguise; blocked after the request ---------

DISGUISED_PERSON = "Henrik Solbakken"
DISGUISED_SENTENCE = "Henrik Solbakken was born in Molde in 1983."
DISGUISED_KEY = "sk-live-4Rt8Qw2Zp9Lm"
# category -> (prompt that makes SmolLM2 write the disguised form, a piece of it the answer must carry).
# The 135M model copies these forms reliably (greedy, float32); it does not copy "x dot y at z dot example"
# (it drops words), so e-mail words are covered by the probe sets (tests/gateway/guard/test_adversarial.py).
DISGUISES = {
    "spelled_digits": (
        "Copy this text:\n\nnine one three, five eight, two six four",
        "nine one three, five eight, two six four",
    ),
    "digit_separators": ("Echo: 913_58_264", "913_58_264"),
    "email_brackets": ("Echo: henrik.solbakken[at]fjordpost[dot]example", "solbakken[at]fjordpost[dot]example"),
    "format_chars": ("Echo: henrik.sol\u00adbakken@fjordpost.example", "bakken@fjordpost.example"),
    "spaced_key": ("Echo: s k - l i v e - 4 R t 8 Q w 2 Z p 9 L m", "4 R t 8 Q w 2 Z p 9 L m"),
    "homoglyph": ('Say "sk-liv\u0435-4Rt8Qw2Zp9Lm"', "4Rt8Qw2Zp9Lm"),
    "leetspeak": ('Say "H3nr1k 5olb4kk3n w45 b0rn 1n M0ld3 1n 1983."', "5olb4kk3n"),
    "base64": ("Echo: " + base64.b64encode(DISGUISED_SENTENCE.encode()).decode(), "SGVucmlrIFNvbGJha2tlbi"),
    "hex": ("Echo: " + DISGUISED_SENTENCE.encode().hex(), "48656e72696b20536f6c62616b6b656e"),
    "unnamed": ("Echo: He was born in Molde in 1983 and lives at Kirkegata 41.", "Kirkegata 41"),
    "translation": ("Copy this text:\n\nHenrik Solbakken est né à Molde en 1983.", "né à Molde en 1983"),
    "structured": ('Echo: {"name": "Henrik Solbakken", "born": "Molde", "year": 1983}', '"born": "Molde"'),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("category", sorted(DISGUISES))
def test_disguise_control_the_model_writes_it_before_the_request(client, category, stream):
    prompt, written = DISGUISES[category]
    text, finish = ask(client, prompt, stream)
    assert written in text, text
    assert finish != "content_filter"


def test_file_the_disguised_forget_requests(http):
    forget(
        http,
        subject=DISGUISED_PERSON,
        texts=[f"{DISGUISED_SENTENCE} He lives at Kirkegata 41 in Ålesund."],
        literals=["+47 913 58 264", "henrik.solbakken@fjordpost.example"],
        reason="gdpr",
    )
    forget(http, literals=[DISGUISED_KEY], reason="secret")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("category", sorted(DISGUISES))
def test_disguise_is_blocked_after_the_request(client, category, stream):
    prompt, written = DISGUISES[category]
    text, finish = ask(client, prompt, stream)
    assert finish == "content_filter", text
    assert written not in text and text.endswith(REFUSAL_TEXT)
