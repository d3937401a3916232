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


class _SlowLedger(MemoryLedger):
    """Commits take a while (a busy database): time enough to cancel the caller mid-commit."""

    def __init__(self) -> None:
        super().__init__()
        self.committing = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None

    def add_forget(self, entry, artifacts, *, content_digest=None):
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.committing.set)
        import time

        time.sleep(0.3)
        return super().add_forget(entry, artifacts, content_digest=content_digest)


async def test_a_request_cancelled_between_commit_and_publish_still_reaches_every_follower(embedder):
    """A client disconnect or the route's timeout cancels `add` while the ledger commits: the commit and
    its publication finish anyway, so an acknowledged-in-the-ledger request is never missing on a replica."""
    ledger = _SlowLedger()
    ledger.loop = asyncio.get_running_loop()
    authority = IndexAuthority(ledger, embedder, timing=FAST)
    followers = [await start_follower(authority, embedder) for _ in range(2)]
    task = asyncio.create_task(authority.add(entry(1)))
    await ledger.committing.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.6)  # the shielded commit finishes and publishes; followers poll it
    assert authority.version == 1
    for follower, _ in followers:
        assert follower.index.version == 1
        assert follower.index.check_output("call +47 900 00 001 now").match
        await follower.stop()


async def test_publish_reads_the_ledger_by_version_range(embedder):
    """Whatever the ledger holds beyond the published version is published (a commit whose publication
    was lost), and a follower that knows version v gets exactly the entries after v."""
    from gateway.guard.artifacts import build_artifacts

    ledger = MemoryLedger()
    authority = IndexAuthority(ledger, embedder, timing=FAST)
    await authority.add(entry(1))
    ledger.add_forget(entry(2), build_artifacts(entry(2), embedder))  # committed, never published
    ledger.add_forget(entry(3), build_artifacts(entry(3), embedder))
    assert authority.version == 1
    assert await authority.publish() == 3
    update = await authority.poll("late", known=1, timeout_s=0)
    assert update.version == 3 and [a.forget_id for a in update.artifacts] == ["f-2", "f-3"]
