"""The forget routes over HTTP: the `status` filter takes the forget-status vocabulary; anything else is a 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.forget.service import ForgetService
from gateway.http.app import create_app
from gateway.ledger.states import ForgetStatus

TOKEN = "operator-token"
ROW = {
    "id": "f-1",
    "status": "unlearned",
    "has_subject": False,
    "reason": "secret",
    "action": "block",
    "index_version": 1,
    "created_at": "2026-11-27T12:00:00+00:00",
    "enforced_at": "2026-11-27T12:00:00+00:00",
    "counts": {"texts": 0, "qa": 0, "literals": 1},
}


class ListedForgets:
    """The authority's `list`, remembering the status filter it was given."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def list(self, status: ForgetStatus | None, limit: int, offset: int) -> list[dict[str, Any]]:
        self.asked.append(status)
        return [ROW]


@pytest.fixture
async def http():
    authority = ListedForgets()
    forget = ForgetService(authority, guard=None)  # no check route is called here
    app = create_app(None, max_body_bytes=4096, forget=forget, admin_token=TOKEN)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client, authority


async def test_the_status_filter_reaches_the_authority_as_a_forget_status(http):
    client, authority = http
    resp = await client.get("/v1/forget", params={"status": "unlearned"})
    assert resp.status_code == 200 and [r["status"] for r in resp.json()["data"]] == ["unlearned"]
    assert authority.asked == [ForgetStatus.UNLEARNED] and type(authority.asked[0]) is ForgetStatus


async def test_an_unknown_status_is_a_422_in_the_openai_shape(http):
    client, authority = http
    resp = await client.get("/v1/forget", params={"status": "forgotten"})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid_value" and error["param"] == "query.status" and authority.asked == []
