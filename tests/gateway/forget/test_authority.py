"""The index authority: waits for every live follower, evicts laggards, rebuilds its version from the ledger."""

from __future__ import annotations

import asyncio

import pytest

from gateway.forget.authority import IndexAuthority, IndexUpdate, SyncTiming
from tests.support.index_sync import FAST, MemoryLedger, entry, start_follower


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


def test_timing_must_fence_before_the_lease_ends():
    with pytest.raises(ValueError):
        SyncTiming(poll_timeout_s=1, fence_after_s=10, lease_s=5)
