"""Index propagation: the authority waits for every live follower, evicts laggards, followers fence."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from gateway.guard.index import ForgetIndex
from gateway.guard.types import ForgetEntry
from gateway.ledger.records import IndexSnapshot
from gateway.forget.sync import IndexAuthority, IndexFollower, IndexUpdate, SyncTiming

FAST = SyncTiming(poll_timeout_s=0.2, ack_timeout_s=0.5, lease_s=2.0, fence_after_s=1.0)


@dataclass(frozen=True)
class _Record:
    id: str
    index_version: int


class MemoryLedger:
    """Stand-in for the ledger in these unit tests: versions are 1, 2, 3, … in commit order."""

    def __init__(self) -> None:
        self.rows: list = []

    def add_forget(self, entry, artifacts):
        self.rows.append(artifacts)
        return _Record(entry.forget_id, len(self.rows))

    def snapshot(self):
        return IndexSnapshot(len(self.rows), tuple(self.rows))


class DirectClient:
    """Followers call the authority in-process; `mute` makes one follower stop applying updates."""

    def __init__(self, authority: IndexAuthority) -> None:
        self.authority = authority
        self.mute = False

    async def poll(self, follower_id, known, actor=None):
        if self.mute:
            await asyncio.sleep(3600)
        return await self.authority.poll(follower_id, known, actor)

    async def ack(self, follower_id, version):
        return await self.authority.ack(follower_id, version)


def entry(i: int) -> ForgetEntry:
    return ForgetEntry(f"f-{i}", f"Person {i}", literals=(f"+47 900 00 {i:03d}",), reason="gdpr")


async def start_follower(authority, embedder, **kw) -> tuple[IndexFollower, DirectClient]:
    client = DirectClient(authority)
    follower = IndexFollower(client, ForgetIndex.empty(embedder), timing=FAST, **kw)
    await follower.bootstrap()
    follower.start()
    return follower, client


async def test_add_returns_after_every_follower_applied(embedder):
    authority = IndexAuthority(MemoryLedger(), embedder, timing=FAST)
    followers = [await start_follower(authority, embedder) for _ in range(2)]
    for i in range(1, 6):
        result = await authority.add(entry(i))
        assert result["record"].index_version == i
        assert sorted(result["acked"]) == sorted(f.follower_id for f, _ in followers)
        for follower, _ in followers:
            # The guarantee: by the time add() returns, every follower enforces the new entry.
            assert follower.index.version == i
            assert follower.index.check_output(f"call +47 900 00 {i:03d} now").match
    for follower, _ in followers:
        await follower.stop()


async def test_new_follower_catches_up_from_the_authority(embedder):
    ledger = MemoryLedger()
    authority = IndexAuthority(ledger, embedder, timing=FAST)
    for i in range(1, 4):
        await authority.add(entry(i))
    late, _ = await start_follower(authority, embedder)
    assert late.index.version == 3 and len(late.index) == 3
    # A restarted authority rebuilds the same version from the ledger.
    again = IndexAuthority(ledger, embedder, timing=FAST)
    assert again.version == 3
    update = await again.poll("fresh", 0, timeout_s=0)
    assert update.version == 3 and len(update.artifacts) == 3
    await late.stop()


async def test_lagging_follower_is_evicted_and_leaves_service(embedder):
    killed = []
    authority = IndexAuthority(MemoryLedger(), embedder, timing=FAST, kill_actor=killed.append)
    good, _ = await start_follower(authority, embedder)
    bad, bad_client = await start_follower(authority, embedder, actor="bad-actor-handle")
    bad_client.mute = True
    await asyncio.sleep(0.3)  # let the bad follower's current poll finish and the next one hang
    result = await authority.add(entry(1))
    assert result["evicted"] == [bad.follower_id]
    assert killed == ["bad-actor-handle"]
    assert good.index.version == 1
    # The evicted follower is told so at its next contact and refuses to serve.
    update = await authority.poll(bad.follower_id, 0, timeout_s=0)
    assert update == IndexUpdate(1, (), evicted=True)
    assert await authority.ack(bad.follower_id, 1) is False
    await good.stop()
    await bad.stop()


async def test_silent_follower_fences_itself(embedder):
    now = [0.0]
    authority = IndexAuthority(MemoryLedger(), embedder, timing=FAST)
    follower = IndexFollower(DirectClient(authority), ForgetIndex.empty(embedder), timing=FAST, clock=lambda: now[0])
    await follower.bootstrap()
    assert follower.out_of_service_reason() is None
    now[0] = FAST.fence_after_s + 0.1
    assert "has not reached the forget-index authority" in follower.out_of_service_reason()


def test_timing_must_fence_before_the_lease_ends():
    with pytest.raises(ValueError):
        SyncTiming(poll_timeout_s=1, fence_after_s=10, lease_s=5)
