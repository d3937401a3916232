"""In-process stand-ins for tests of forget-index propagation: a memory ledger, a direct authority client."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gateway.forget.authority import IndexAuthority, IndexUpdate, SyncTiming
from gateway.forget.follower import IndexFollower
from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.embedder import Embedder
from gateway.guard.index import ForgetIndex
from gateway.guard.types import ForgetEntry
from gateway.ledger.records import IndexSnapshot

FAST = SyncTiming(poll_timeout_s=0.2, ack_timeout_s=0.5, lease_s=2.0, fence_after_s=1.0)


@dataclass(frozen=True)
class _Record:
    id: str
    index_version: int


class MemoryLedger:
    """Stand-in for the ledger in these unit tests: versions are 1, 2, 3, … in commit order."""

    def __init__(self) -> None:
        self.rows: list[EntryArtifacts] = []

    def add_forget(
        self, entry: ForgetEntry, artifacts: EntryArtifacts, *, content_digest: str | None = None
    ) -> _Record:
        self.rows.append(artifacts)
        return _Record(entry.forget_id, len(self.rows))

    def snapshot(self) -> IndexSnapshot:
        return IndexSnapshot(len(self.rows), tuple(self.rows))

    def artifacts_since(self, version: int) -> tuple[int, list[tuple[int, EntryArtifacts]]]:
        return len(self.rows), [(v, a) for v, a in enumerate(self.rows, start=1) if v > version]


class DirectClient:
    """Followers call the authority in-process; `mute` makes one follower stop applying updates."""

    def __init__(self, authority: IndexAuthority) -> None:
        self.authority = authority
        self.mute = False

    async def poll(self, follower_id: str, known: int, actor: Any = None) -> IndexUpdate:
        if self.mute:
            await asyncio.sleep(3600)
        return await self.authority.poll(follower_id, known, actor)

    async def ack(self, follower_id: str, version: int) -> bool:
        return await self.authority.ack(follower_id, version)


def entry(i: int) -> ForgetEntry:
    return ForgetEntry(f"f-{i}", f"Person {i}", literals=(f"+47 900 00 {i:03d}",), reason="gdpr")


async def start_follower(
    authority: IndexAuthority, embedder: Embedder, **kw: Any
) -> tuple[IndexFollower, DirectClient]:
    client = DirectClient(authority)
    follower = IndexFollower(client, ForgetIndex.empty(embedder), timing=FAST, **kw)
    await follower.bootstrap()
    follower.start()
    return follower, client
