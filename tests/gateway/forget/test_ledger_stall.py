"""A stalled database is survivable: a stopped PostgreSQL server (SIGSTOP on every server process) and a
SQLite file locked by another connection. Real ledger, real index authority, real followers and the real
embedder, in one event loop as in the authority's replica: followers keep acknowledging and never fence,
`POST /v1/forget` answers a 503 `ledger_unavailable` saying the request was NOT recorded within the
ledger's call timeout, a request acknowledged before the stall is still there after it, and adds work
again once the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from gateway.errors import ServiceUnavailableError
from gateway.forget.authority import ForgetRecords, IndexAuthority, SyncTiming
from gateway.forget.follower import IndexFollower
from gateway.forget.service import ForgetService
from gateway.guard.index import ForgetIndex
from gateway.http.app import create_app
from gateway.http.auth import AccessControl, AccessSettings, Requires
from gateway.ledger import Ledger
from gateway.ledger.actors import Role
from gateway.ledger.calls import LedgerCalls, LedgerTimeouts, LedgerUnavailableError
from gateway.ledger.keys import KeyStore
from tests.gateway.ledger.conftest import PostgresCluster, postgres_bindir
from tests.support.index_sync import DirectClient

TOKEN = "operator-token"
# Short enough to keep each test well under 30 s; the fence is the followers' (1.5 s), so a loop blocked
# by the database for longer than that would take them out of service.
TIMEOUTS = LedgerTimeouts(connect_s=2.0, lock_s=0.5, statement_s=1.0, pool_s=0.5, call_s=1.5)
TIMING = SyncTiming(poll_timeout_s=0.3, ack_timeout_s=1.0, lease_s=3.0, fence_after_s=1.5)
# How long the database stays stalled: well past the fence, so not fencing means something.
STALL_S = 3 * TIMING.fence_after_s
# The watchdog's limit on a stall (a regression that blocks the loop on the database fails, never hangs).
RESUME_AFTER_S = 15.0
# What "fails fast" allows on top of the call timeout (a loaded 2-core CI box).
SLACK_S = 1.5


def _payload(i: int) -> dict[str, Any]:
    return {
        "subject": f"Stall Person{i}",
        "texts": [],
        "qa": [],
        "literals": [f"+47 955 00 {i:03d}"],
        "reason": "gdpr",
        "action": "block",
    }


class InProcessAuthority:
    """The ForgetAuthority deployment's calls (gateway.serve.deployments), without Ray: the same ledger
    calls through the same `LedgerCalls`."""

    def __init__(self, records: ForgetRecords, authority: IndexAuthority) -> None:
        self.records, self.authority = records, authority

    async def add(self, payload: dict[str, Any], actor: Any = None) -> dict[str, Any]:
        return await self.records.add(self.authority, payload)

    async def get(self, forget_id: str) -> dict[str, Any] | None:
        return await self.records.calls(self.records.get, forget_id)

    async def list(self, status: Any, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self.records.calls(self.records.list, status, limit, offset)


@dataclass
class Gateway:
    ledger: Ledger
    records: ForgetRecords
    authority: IndexAuthority
    followers: list[IndexFollower]
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def gateway(url: str, embedder: Any) -> AsyncIterator[Gateway]:
    ledger = Ledger.open(url, timeouts=TIMEOUTS)
    calls = LedgerCalls(TIMEOUTS.call_s)
    records = ForgetRecords(ledger, calls)
    authority = IndexAuthority(ledger, embedder, timing=TIMING, calls=calls)
    followers = []
    for _ in range(2):
        follower = IndexFollower(DirectClient(authority), ForgetIndex.empty(embedder), timing=TIMING)
        await follower.bootstrap()
        follower.start()
        followers.append(follower)
    service = ForgetService(InProcessAuthority(records, authority), guard=followers[0])
    app = create_app(None, max_body_bytes=1 << 16, forget=service, admin_token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {TOKEN}"}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as http:
            yield Gateway(ledger, records, authority, followers, http)
    finally:
        for follower in followers:
            await follower.stop()
        calls.close()
        ledger.close()


async def _watch_followers(followers: list[IndexFollower], seen: list[str]) -> None:
    """Every 50 ms, note any follower that would refuse chat (fenced, evicted or failed)."""
    while True:
        seen.extend(r for f in followers if (r := f.out_of_service_reason()) is not None)
        await asyncio.sleep(0.05)


async def _file(gw: Gateway, i: int) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = await gw.http.post("/v1/forget", json=_payload(i))
    return resp, time.monotonic() - started


def _assert_refused_unrecorded(resp: httpx.Response, took: float) -> None:
    assert resp.status_code == 503, resp.text
    error = resp.json()["error"]
    assert error["type"] == "service_unavailable" and error["code"] == "ledger_unavailable"
    assert "NOT recorded" in error["message"]
    assert took < TIMEOUTS.call_s + SLACK_S, f"took {took:.1f} s"


async def _survives(gw: Gateway, stall: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
    """The shared scenario: one request acknowledged, the database stalled, then back."""
    resp, _ = await _file(gw, 1)
    assert resp.status_code == 201, resp.text
    acknowledged = resp.json()["id"]
    version = gw.authority.version
    out_of_service: list[str] = []
    watch = asyncio.create_task(_watch_followers(gw.followers, out_of_service))
    try:
        with stall():
            stalled_at = time.monotonic()
            resp, took = await _file(gw, 2)
            _assert_refused_unrecorded(resp, took)
            # Reads answer or fail just as fast (SQLite's WAL still reads under a writer's lock).
            started = time.monotonic()
            read = await gw.http.get(f"/v1/forget/{acknowledged}")
            assert read.status_code in (200, 503), read.text
            assert read.status_code == 200 or read.json()["error"]["code"] == "ledger_unavailable"
            assert time.monotonic() - started < TIMEOUTS.call_s + SLACK_S
            await asyncio.sleep(max(0.0, STALL_S - (time.monotonic() - stalled_at)))
            # Chat's guard meanwhile: every follower in service, still enforcing what was acknowledged.
            for follower in gw.followers:
                assert follower.index.version == version
                assert follower.index.check_output("call +47 955 00 001 today").match
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    assert out_of_service == [], out_of_service[:3]
    # A call given up on during the stall may still be blocked on its worker thread: once the database
    # answers it rolls back (its commit is refused), and nothing of it lands.
    await asyncio.sleep(TIMEOUTS.lock_s)
    resp, _ = await _file(gw, 3)
    assert resp.status_code == 201, resp.text
    assert resp.json()["index_version"] == version + 1  # the refused request took no version
    ids = {row.id for row in gw.ledger.list_forgets()}
    assert ids == {acknowledged, resp.json()["id"]}
    for follower in gw.followers:
        assert follower.index.version == version + 1
        assert follower.index.check_output("call +47 955 00 001 or +47 955 00 003").match
        assert not follower.index.check_output("call +47 955 00 002").match


# --- PostgreSQL: the whole server stopped --------------------------------------------------------


def _server_pids(data: Path) -> list[int]:
    """The postmaster (first line of postmaster.pid) and every process it started."""
    postmaster = int((data / "postmaster.pid").read_text().splitlines()[0])
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after ")".
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                children.append(int(entry.name))
    return [postmaster, *children]


@contextlib.contextmanager
def _stopped(data: Path) -> Iterator[None]:
    """SIGSTOP the server (the postmaster first: it forks no new backend meanwhile); SIGCONT always, and
    from a watchdog thread after `RESUME_AFTER_S` too, should a regression block the event loop on it."""
    pids = _server_pids(data)
    stopped: list[int] = []

    def resume() -> None:
        for pid in reversed(stopped):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    watchdog = threading.Timer(RESUME_AFTER_S, resume)
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
        watchdog.start()
        yield
    finally:
        watchdog.cancel()
        resume()


@pytest.fixture(scope="module")
def stoppable_postgres() -> Iterator[PostgresCluster]:
    """A cluster of this module's own: it is stopped and resumed, no other test should share it."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed (scripts/setup.sh installs them)")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install -e '.[postgres]'")
    cluster = PostgresCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_a_stopped_postgresql_server_is_survivable(stoppable_postgres, embedder):
    async with gateway(stoppable_postgres.create_database(), embedder) as gw:
        await _survives(gw, lambda: _stopped(stoppable_postgres.data))


async def test_api_keys_with_postgresql_stopped(stoppable_postgres, embedder):
    """Open chat never asks the ledger; with keys, a key looked up before the stall serves from the cache
    for `key_cache_s`, and one the ledger cannot check is a 503 `keys_unavailable` (fail closed)."""
    ledger = Ledger.open(stoppable_postgres.create_database(), timeouts=TIMEOUTS)
    keys = KeyStore(ledger)
    _, known = keys.create("billing-app", Role.CHAT, actor="test")
    _, unseen = keys.create("other-app", Role.CHAT, actor="test")
    open_chat = AccessControl(AccessSettings(chat_auth="none"), keys)
    keyed = AccessControl(AccessSettings(chat_auth="keys", key_cache_s=60.0), keys)
    chat = Requires(Role.CHAT, chat=True)

    def request(secret: str) -> Request:
        headers = [(b"authorization", f"Bearer {secret}".encode())]
        return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "client": ("10.0.0.1", 1)})

    assert (await keyed.authorize(request(known), chat)).name == "billing-app"
    try:
        with _stopped(stoppable_postgres.data):
            started = time.monotonic()
            assert await asyncio.wait_for(open_chat.authorize(request(unseen), chat), 0.5) is None
            assert (await asyncio.wait_for(keyed.authorize(request(known), chat), 0.5)).name == "billing-app"
            with pytest.raises(ServiceUnavailableError) as refused:
                await keyed.authorize(request(unseen), chat)
            assert refused.value.status == 503 and refused.value.code == "keys_unavailable"
            assert time.monotonic() - started < 5.0 + SLACK_S  # the lookup's own bound (gateway.http.auth)
    finally:
        ledger.close()


# --- SQLite: the file locked by another connection -----------------------------------------------


@contextlib.contextmanager
def _locked(db: Path) -> Iterator[None]:
    """Another connection holds the write lock (`BEGIN EXCLUSIVE`) until the block ends."""
    holder = sqlite3.connect(db, isolation_level=None, timeout=10)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_a_locked_sqlite_file_is_survivable(tmp_path, embedder):
    db = tmp_path / "home" / "ledger.db"
    async with gateway(f"sqlite:///{db}", embedder) as gw:
        await _survives(gw, lambda: _locked(db))


async def test_a_call_given_up_on_never_commits_later(tmp_path, embedder):
    """The caller stops waiting while the worker thread is still blocked: when the thread gets through,
    its commit is refused and rolled back, so 'NOT recorded' stays true."""
    from tests.gateway.ledger.conftest import make_pair

    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}", timeouts=TIMEOUTS)
    calls = LedgerCalls(0.2)
    entry, artifacts = make_pair(1)
    through = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_add() -> Any:
        time.sleep(0.5)  # the database answers only after the caller gave up
        try:
            return ledger.add_forget(entry, artifacts)
        finally:
            loop.call_soon_threadsafe(through.set)

    with pytest.raises(LedgerUnavailableError, match=r"did not answer within 0\.2 s"):
        await calls(slow_add)
    await asyncio.wait_for(through.wait(), 5)
    assert ledger.get_forget(entry.forget_id) is None and ledger.index_version() == 0
    calls.close()
    ledger.close()


async def test_a_ledger_that_stalls_right_after_the_commit_still_publishes_it(embedder):
    """Committed, then the read-back for publishing fails: the request in hand is the one committed since
    the published version, so it is published as committed and acknowledged as usual."""
    from tests.support.index_sync import MemoryLedger, entry

    class StallsAfterCommit(MemoryLedger):
        stalled = False

        def add_forget(self, *args: Any, **kwargs: Any) -> Any:
            record = super().add_forget(*args, **kwargs)
            self.stalled = True
            return record

        def artifacts_since(self, version: int) -> Any:
            if self.stalled:
                raise LedgerUnavailableError("the ledger did not answer")
            return super().artifacts_since(version)

    ledger = StallsAfterCommit()
    authority = IndexAuthority(ledger, embedder, timing=TIMING)
    follower = IndexFollower(DirectClient(authority), ForgetIndex.empty(embedder), timing=TIMING)
    await follower.bootstrap()
    follower.start()
    try:
        result = await authority.add(entry(1))
        assert result["record"].index_version == 1 and result["acked"] == [follower.follower_id]
        assert follower.index.version == 1 and follower.index.check_output("call +47 900 00 001").match
    finally:
        await follower.stop()
