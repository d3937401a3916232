"""Index followers: a new one catches up from the authority, a silent one fences itself."""

from __future__ import annotations

from gateway.forget.authority import IndexAuthority
from gateway.forget.follower import IndexFollower
from gateway.guard.index import ForgetIndex
from tests.support.index_sync import FAST, DirectClient, MemoryLedger, entry, start_follower


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


async def test_silent_follower_fences_itself(embedder):
    now = [0.0]
    authority = IndexAuthority(MemoryLedger(), embedder, timing=FAST)
    follower = IndexFollower(DirectClient(authority), ForgetIndex.empty(embedder), timing=FAST, clock=lambda: now[0])
    await follower.bootstrap()
    assert follower.out_of_service_reason() is None
    now[0] = FAST.fence_after_s + 0.1
    assert "has not reached the forget-index authority" in follower.out_of_service_reason()
