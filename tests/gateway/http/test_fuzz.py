"""Schemathesis over the app's OpenAPI schema, in-process, with no key, an unknown key, each role and
the admin token (every role is the wrong role somewhere): no 5xx, every status documented, every error
in the OpenAI shape. A short, derandomized run; `benchmarks/fuzz_api.py` runs the long one."""

from __future__ import annotations

from gateway.http.auth import AccessSettings
from gateway.ledger.actors import Role
from tests.support.api_fakes import ADMIN_TOKEN, MODEL, build_gateway
from tests.support.fuzz import fuzz_app


def credentials(secrets: dict[Role, str]) -> dict[str, dict[str, str]]:
    creds = {"no key": {}, "unknown key": {"authorization": "Bearer lethe_not-a-key"}}
    creds["admin token"] = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    creds.update({role.value: {"authorization": f"Bearer {secret}"} for role, secret in secrets.items()})
    return creds


def test_fuzzed_requests_get_documented_answers_in_the_openai_error_shape(tmp_path):
    gw = build_gateway(tmp_path / "home", settings=AccessSettings(admin_token=ADMIN_TOKEN, chat_auth="keys"))
    gw.authority.file("f-own", gw.actors[Role.REQUESTER])
    report = fuzz_app(gw.app, credentials(gw.secrets), served_model=MODEL, max_examples=5)
    assert not report.failures, "\n\n".join(report.failures.values())
    statuses = report.by_status()
    assert not [s for s in statuses if s >= 500]
    # Chat was fuzzed past the model check (the served model's name), into the pipeline.
    chat_ok = sum(
        n for (op, _, status), n in report.statuses.items() if op.endswith("/v1/chat/completions") and status == 200
    )
    assert chat_ok > 0 and statuses.get(401) and statuses.get(403)
