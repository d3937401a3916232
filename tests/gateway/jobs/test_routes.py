"""The job routes over HTTP: the `state` filter takes the job-state vocabulary; anything else is a 422."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.http.app import create_app
from gateway.jobs.service import UnlearnService
from gateway.ledger.states import JobState

TOKEN = "operator-token"


class ListedJobs:
    """The manager's `list`, remembering the state filter it was given."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def list(self, state: JobState | None, limit: int, offset: int) -> list[dict[str, Any]]:
        self.asked.append(state)
        return []


@pytest.fixture
async def http():
    jobs = ListedJobs()
    app = create_app(None, max_body_bytes=4096, jobs=UnlearnService(jobs), admin_token=TOKEN)  # no chat here
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", headers={"authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client, jobs


async def test_the_state_filter_reaches_the_manager_as_a_job_state(http):
    client, jobs = http
    resp = await client.get("/v1/unlearn/jobs", params={"state": "published"})
    assert resp.status_code == 200 and resp.json() == {"object": "list", "data": []}
    assert jobs.asked == [JobState.PUBLISHED] and type(jobs.asked[0]) is JobState


async def test_an_unknown_state_is_a_422_in_the_openai_shape(http):
    client, jobs = http
    resp = await client.get("/v1/unlearn/jobs", params={"state": "finished"})
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid_value" and error["param"] == "query.state" and jobs.asked == []
