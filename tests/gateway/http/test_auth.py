"""Roles on every route (allowed, forbidden with a 403 naming the role, no key 401), requester ownership,
open and keyed chat, rate limits and stream caps (429 + Retry-After), revocation, audit actors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.routing import APIRoute

from gateway.chat.service import ChatService
from gateway.errors import AuthenticationError
from gateway.http.app import create_app
from gateway.http.auth import AccessControl, AccessSettings, Requires
from gateway.jobs.service import UnlearnService
from gateway.ledger.actors import BOOTSTRAP_OPERATOR, Role
from tests.support.api_fakes import ADMIN_TOKEN, MODEL, EchoLLM, FakeJobs, build_gateway

R, A, OP, C = Role.REQUESTER, Role.AUDITOR, Role.OPERATOR, Role.CHAT
CHAT_BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hello?"}], "max_tokens": 4}

# Every route of the app: the roles it admits and a request that role would make. A route missing
# here fails `test_every_route_declares_its_roles`: a new route must say who may call it.
ROUTES: dict[tuple[str, str], tuple[frozenset[Role], dict[str, Any]]] = {
    ("POST", "/v1/chat/completions"): (frozenset({C, OP}), {"json": CHAT_BODY}),
    ("GET", "/v1/models"): (frozenset({C, OP}), {}),
    ("POST", "/v1/forget"): (frozenset({R, OP}), {"json": {"literals": ["x-secret-0001"]}}),
    ("GET", "/v1/forget"): (frozenset({A, OP}), {}),
    ("GET", "/v1/forget/{forget_id}"): (frozenset({R, A, OP}), {"path": {"forget_id": "f-own"}}),
    ("POST", "/v1/forget/check"): (frozenset({A, OP}), {"json": {"text": "hello"}}),
    ("GET", "/v1/forget/certificates/key"): (frozenset({R, A, OP}), {}),
    ("POST", "/v1/forget/certificates/verify"): (frozenset({R, A, OP}), {"json": {"signature": {}}}),
    ("GET", "/v1/forget/{forget_id}/certificate"): (frozenset({R, A, OP}), {"path": {"forget_id": "f-own"}}),
    ("POST", "/v1/forget/{forget_id}/shred"): (frozenset({OP}), {"path": {"forget_id": "f-own"}, "json": {}}),
    ("GET", "/v1/admin/audit"): (frozenset({A, OP}), {}),
    ("POST", "/v1/unlearn/jobs"): (frozenset({OP}), {"json": {"method": "npo"}}),
    ("GET", "/v1/unlearn/jobs"): (frozenset({OP}), {}),
    ("GET", "/v1/unlearn/jobs/{job_id}"): (frozenset({OP}), {"path": {"job_id": "j-1"}}),
    ("POST", "/v1/unlearn/jobs/{job_id}/cancel"): (frozenset({OP}), {"path": {"job_id": "j-1"}}),
    ("GET", "/v1/admin/models/versions"): (frozenset({A, OP}), {}),
    ("POST", "/v1/admin/models/versions"): (frozenset({OP}), {"json": {"path": "/nowhere"}}),
    ("POST", "/v1/admin/models/promote"): (frozenset({OP}), {"json": {"version": "v-base"}}),
    ("POST", "/v1/admin/models/rollback"): (frozenset({OP}), {}),
    ("GET", "/v1/admin/models/swaps"): (frozenset({A, OP}), {}),
    ("GET", "/v1/admin/leakage"): (frozenset({A, OP}), {}),
    ("POST", "/v1/admin/leakage/run"): (frozenset({OP}), {}),
    ("POST", "/v1/admin/keys"): (frozenset({OP}), {"json": {"name": "new-app", "role": "chat"}}),
    ("GET", "/v1/admin/keys"): (frozenset({OP}), {}),
    ("POST", "/v1/admin/keys/{key_id}/revoke"): (frozenset({OP}), {"path": {"key_id": "k_missing"}}),
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")}
PUBLIC |= {("HEAD", path) for _, path in PUBLIC} | {("GET", "/docs/oauth2-redirect"), ("HEAD", "/docs/oauth2-redirect")}


@pytest.fixture
def gateway(tmp_path):
    gw = build_gateway(tmp_path / "home", settings=AccessSettings(admin_token=ADMIN_TOKEN, chat_auth="keys"))
    gw.authority.file("f-own", gw.actors[R])
    gw.authority.file("f-other", None)
    return gw


@pytest.fixture
async def client(gateway):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app), base_url="http://test") as http:
        yield http


def _requires(route: APIRoute) -> Requires | None:
    pending = list(route.dependant.dependencies)
    while pending:
        dep = pending.pop()
        if isinstance(dep.call, Requires):
            return dep.call
        pending.extend(dep.dependencies)
    return None


def _call(client: httpx.AsyncClient, method: str, path: str, spec: dict[str, Any], token: str | None):
    url = path.format(**spec.get("path", {}))
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.request(method, url, json=spec.get("json"), headers=headers)


def test_every_route_declares_its_roles(gateway):
    seen = set()
    for route in gateway.app.routes:
        if not isinstance(route, APIRoute):
            continue
        for method in route.methods:
            key = (method, route.path)
            seen.add(key)
            if key in PUBLIC:
                assert _requires(route) is None, f"{key} is public but has a role check"
                continue
            assert key in ROUTES, f"{key} has no entry in ROUTES: declare who may call it"
            requires = _requires(route)
            assert requires is not None, f"{key} has no Requires dependency: anyone could call it"
            assert requires.roles == ROUTES[key][0], f"{key} admits {sorted(requires.roles)}"
    assert set(ROUTES) <= seen, f"routes in the table but not in the app: {set(ROUTES) - seen}"


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
async def test_no_key_is_a_401(client, method, path):
    resp = await _call(client, method, path, ROUTES[(method, path)][1], None)
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
async def test_an_unknown_key_is_a_401(client, method, path):
    resp = await _call(client, method, path, ROUTES[(method, path)][1], "lethe_not-a-real-key")
    assert resp.status_code == 401, resp.text


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
async def test_each_role_is_allowed_or_forbidden_by_name(client, gateway, method, path, role):
    allowed, spec = ROUTES[(method, path)]
    resp = await _call(client, method, path, spec, gateway.secrets[role])
    if role in allowed:
        assert resp.status_code not in (401, 403), resp.text
        assert resp.status_code < 500, resp.text
    else:
        assert resp.status_code == 403, resp.text
        error = resp.json()["error"]
        assert error["type"] == "permission_error" and error["code"] == "insufficient_role"
        assert all(r.value in error["message"] for r in allowed) and role.value in error["message"]


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
async def test_the_admin_token_is_an_operator(client, method, path):
    resp = await _call(client, method, path, ROUTES[(method, path)][1], ADMIN_TOKEN)
    assert resp.status_code not in (401, 403) and resp.status_code < 500, resp.text


async def test_a_requester_reads_only_its_own_requests(client, gateway):
    own = {"authorization": f"Bearer {gateway.secrets[R]}"}
    assert (await client.get("/v1/forget/f-own", headers=own)).status_code == 200
    assert (await client.get("/v1/forget/f-own/certificate", headers=own)).status_code == 200
    for path in ("/v1/forget/f-other", "/v1/forget/f-other/certificate", "/v1/forget/f-nothing"):
        resp = await client.get(path, headers=own)
        # The same answer as for an id that does not exist: no oracle for other requesters' ids.
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", path
    auditor = {"authorization": f"Bearer {gateway.secrets[A]}"}
    assert (await client.get("/v1/forget/f-other", headers=auditor)).status_code == 200


async def test_a_filed_request_belongs_to_its_key_and_names_it_as_actor(client, gateway):
    own = {"authorization": f"Bearer {gateway.secrets[R]}"}
    filed = await client.post("/v1/forget", json={"literals": ["x-secret-0002"]}, headers=own)
    assert filed.status_code == 201
    forget_id = filed.json()["id"]
    assert gateway.authority.owners[forget_id] == gateway.actors[R].key_id
    assert ("add", gateway.actors[R]) in gateway.authority.actors
    assert (await client.get(f"/v1/forget/{forget_id}", headers=own)).status_code == 200
    other = await client.post("/v1/admin/keys", json={"name": "other", "role": "requester"}, headers=_admin())
    other_headers = {"authorization": f"Bearer {other.json()['key']}"}
    assert (await client.get(f"/v1/forget/{forget_id}", headers=other_headers)).status_code == 404


def _admin() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_changes_carry_the_acting_key_to_the_deployments(client, gateway):
    op = {"authorization": f"Bearer {gateway.secrets[OP]}"}
    label = gateway.actors[OP].label
    assert (await client.post("/v1/admin/models/promote", json={"version": "v-base"}, headers=op)).status_code == 200
    assert (await client.post("/v1/admin/models/rollback", headers=_admin())).status_code == 200
    assert gateway.versions.actors == [("promote", label), ("rollback", BOOTSTRAP_OPERATOR.label)]
    assert (await client.post("/v1/unlearn/jobs", json={"method": "npo"}, headers=op)).status_code == 201
    assert (await client.post("/v1/unlearn/jobs/j-1/cancel", headers=op)).status_code == 200
    assert gateway.jobs.actors == [("submit", gateway.actors[OP]), ("cancel", gateway.actors[OP])]
    assert (await client.get("/v1/forget/f-own/certificate", headers=op)).status_code == 200
    assert gateway.authority.actors[-1] == ("certificate", gateway.actors[OP])


async def test_keys_are_created_shown_once_listed_and_revoked(client, gateway):
    made = await client.post("/v1/admin/keys", json={"name": "billing app", "role": "auditor"}, headers=_admin())
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    body = made.json()
    secret = body["key"]
    assert secret.startswith("lethe_") and body["prefix"] == secret[: len(body["prefix"])]
    assert body["created_by"] == BOOTSTRAP_OPERATOR.label
    listing = (await client.get("/v1/admin/keys", headers=_admin())).json()["data"]
    mine = [k for k in listing if k["id"] == body["id"]]
    assert mine and "key" not in mine[0] and secret not in made.text.replace(secret, "", 1)
    headers = {"authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/admin/audit", headers=headers)).status_code == 200
    revoked = await client.post(f"/v1/admin/keys/{body['id']}/revoke", headers=_admin())
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    # Revoked on this replica: refused at once, although the key was just looked up and cached.
    assert (await client.get("/v1/admin/audit", headers=headers)).status_code == 401
    assert (await client.post("/v1/admin/keys/k_nope/revoke", headers=_admin())).status_code == 404


@pytest.mark.parametrize(
    "body", [{"name": "", "role": "chat"}, {"name": "x", "role": "root"}, {"name": "a/b", "role": "chat"}]
)
async def test_a_bad_key_request_is_a_422(client, body):
    resp = await client.post("/v1/admin/keys", json=body, headers=_admin())
    assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_value"


async def test_open_chat_ignores_any_authorization_header(tmp_path):
    gw = build_gateway(tmp_path / "home")  # chat_auth none: the quick start, the openai SDK's "unused" key
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://test") as http:
        for headers in ({}, {"authorization": "Bearer unused"}):
            assert (await http.post("/v1/chat/completions", json=CHAT_BODY, headers=headers)).status_code == 200
            assert (await http.get("/v1/models", headers=headers)).status_code == 200
        assert (await http.get("/v1/forget")).status_code == 401  # the rest still needs a key


async def test_no_credentials_configured_disables_the_routes(tmp_path):
    app = create_app(ChatService(EchoLLM(), MODEL), max_body_bytes=4096, jobs=UnlearnService(FakeJobs()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        resp = await http.get("/v1/unlearn/jobs")
    assert resp.status_code == 401 and "LETHE_ADMIN_TOKEN" in resp.json()["error"]["message"]


async def test_rate_limit_is_a_429_with_retry_after_per_key(tmp_path):
    settings = AccessSettings(admin_token=ADMIN_TOKEN, rate_limit="3/minute")
    gw = build_gateway(tmp_path / "home", settings=settings)
    auditor = {"authorization": f"Bearer {gw.secrets[A]}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://test") as http:
        codes = [(await http.get("/v1/admin/audit", headers=auditor)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await http.get("/v1/admin/audit", headers=auditor)
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        # Another key has its own budget.
        assert (await http.get("/v1/admin/audit", headers=_admin())).status_code == 200


async def test_concurrent_chat_streams_are_capped_per_key(tmp_path):
    settings = AccessSettings(admin_token=ADMIN_TOKEN, chat_auth="keys", max_streams_per_key=1)
    gw = build_gateway(tmp_path / "home", settings=settings)
    chat = {"authorization": f"Bearer {gw.secrets[C]}"}
    access = gw.app.state.access
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://test") as http:
        # One chat of this key in flight (as a long stream would hold it): the next one is refused.
        release = access.open_stream(Request({"type": "http", "headers": []}), gw.actors[C])
        second = await http.post("/v1/chat/completions", json=CHAT_BODY, headers=chat)
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        assert second.json()["error"]["code"] == "too_many_streams"
        assert (await http.post("/v1/chat/completions", json=CHAT_BODY, headers=_admin())).status_code == 200
        release()
        release()  # idempotent
        for stream in (False, True):
            resp = await http.post("/v1/chat/completions", json={**CHAT_BODY, "stream": stream}, headers=chat)
            assert resp.status_code == 200
    # Every chat gave its slot back when it ended, streamed or not.
    assert access.streams_in_flight() == 0


class _BrokenKeys:
    def authenticate(self, secret: str):
        raise ConnectionError("ledger unreachable")

    def owner_of(self, forget_id: str):
        raise ConnectionError("ledger unreachable")


async def test_an_unreachable_key_store_is_a_503_and_lets_nothing_through(tmp_path):
    access = AccessControl(AccessSettings(admin_token=ADMIN_TOKEN), _BrokenKeys())
    app = create_app(ChatService(EchoLLM(), MODEL), max_body_bytes=4096, jobs=UnlearnService(FakeJobs()), access=access)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        resp = await http.get("/v1/unlearn/jobs", headers={"authorization": "Bearer lethe_some-key"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "keys_unavailable"
        assert "unreachable" not in resp.text
        # The bootstrap token needs no lookup.
        assert (await http.get("/v1/unlearn/jobs", headers=_admin())).status_code == 200


async def test_a_key_revoked_elsewhere_stops_working_within_the_cache_time(gateway):
    now = [0.0]
    access = AccessControl(AccessSettings(key_cache_s=5.0), gateway.keys, clock=lambda: now[0])
    request = Request({"type": "http", "headers": [(b"authorization", f"Bearer {gateway.secrets[A]}".encode())]})
    assert (await access.identify(request)) == gateway.actors[A]
    gateway.keys.revoke(gateway.actors[A].key_id, actor="another replica")
    now[0] = 4.9
    assert (await access.identify(request)) == gateway.actors[A]  # cached
    now[0] = 5.1
    with pytest.raises(AuthenticationError):
        await access.identify(request)
