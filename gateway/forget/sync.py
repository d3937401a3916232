"""Forget-index versions from one authority to every ingress replica: long-poll, apply, ack, fence.

The authority is the only writer of forget requests. `add` commits to the ledger, publishes the
new version, and returns only once every live follower has acknowledged it; a follower that does
not within `ack_timeout_s` is evicted (told to leave service, and its actor killed so Serve
replaces it). A follower that has not heard from the authority for `fence_after_s` takes itself
out of service: it can never serve from a stale index while the authority believes it is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from gateway.observability import metrics
from gateway.guard.artifacts import EntryArtifacts, build_artifacts
from gateway.guard.embedder import Embedder
from gateway.guard.index import ForgetIndex
from gateway.guard.types import ForgetEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncTiming:
    """How long things may take; the follower's fence must trip before the authority's lease ends."""

    poll_timeout_s: float = 5.0
    ack_timeout_s: float = 10.0
    lease_s: float = 20.0
    fence_after_s: float = 15.0

    def __post_init__(self) -> None:
        if not self.poll_timeout_s < self.fence_after_s < self.lease_s:
            raise ValueError("need poll_timeout_s < fence_after_s < lease_s")


@dataclass(frozen=True)
class IndexUpdate:
    """What a poll returns: the authority's version and the entries a follower lacks."""

    version: int
    artifacts: tuple[EntryArtifacts, ...]
    evicted: bool = False


@dataclass
class _Follower:
    acked: int
    last_seen: float
    actor: Any = None
    evicted: bool = False


class LedgerLike(Protocol):
    """What the authority needs of the ledger (gateway.ledger.Ledger)."""

    def add_forget(self, entry: ForgetEntry, artifacts: EntryArtifacts) -> Any: ...

    def snapshot(self) -> Any: ...  # .version and .artifacts (in version order), read consistently


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class IndexAuthority:
    """One writer, many readers: the source of truth for index versions.

    >>> authority = IndexAuthority(ledger, embedder)
    >>> record = await authority.add(entry_fields)          # returns once every follower applied it
    >>> update = await authority.poll("ingress-1", known=0)  # a follower catching up
    """

    def __init__(
        self,
        ledger: LedgerLike,
        embedder: Embedder,
        *,
        timing: SyncTiming = SyncTiming(),
        kill_actor: Callable[[Any], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ledger = ledger
        self._embedder = embedder
        self._timing = timing
        self._kill_actor = kill_actor
        self._clock = clock
        # Entries in version order; a version v means "the first v forget requests".
        snapshot = ledger.snapshot()
        self._log: list[tuple[int, EntryArtifacts]] = [(i, a) for i, a in enumerate(snapshot.artifacts, start=1)]
        self.version = int(snapshot.version)
        self._changed = asyncio.Condition()
        self._write_lock = asyncio.Lock()
        self._followers: dict[str, _Follower] = {}

    @property
    def entries(self) -> int:
        """Forget requests in the published index."""
        return len(self._log)

    # --- writer side ------------------------------------------------------------------------

    async def add(self, entry: ForgetEntry) -> dict[str, Any]:
        """Commit `entry`, publish it, wait for every live follower. Returns the ledger record's fields
        plus `enforced_at` and the followers that acknowledged / were evicted."""
        artifacts = await asyncio.to_thread(build_artifacts, entry, self._embedder)
        async with self._write_lock:
            record = await asyncio.to_thread(self._ledger.add_forget, entry, artifacts)
            version = int(record.index_version)
            self._log.append((version, artifacts))
            async with self._changed:
                self.version = version
                self._changed.notify_all()
        acked, evicted = await self._await_acks(version)
        return {"record": record, "enforced_at": _now_iso(), "acked": acked, "evicted": evicted}

    async def _await_acks(self, version: int) -> tuple[list[str], list[str]]:
        deadline = self._clock() + self._timing.ack_timeout_s
        async with self._changed:
            while True:
                lagging = [fid for fid, f in self._live().items() if f.acked < version]
                if not lagging:
                    break
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except asyncio.TimeoutError:
                    continue
        evicted = []
        for fid in lagging:
            self._evict(fid)
            evicted.append(fid)
        acked = [fid for fid, f in self._live().items() if f.acked >= version]
        return acked, evicted

    def _evict(self, follower_id: str) -> None:
        follower = self._followers[follower_id]
        follower.evicted = True
        log.warning("follower %s did not apply the index in time: taking it out of service", follower_id)
        if follower.actor is not None and self._kill_actor is not None:
            try:
                self._kill_actor(follower.actor)
            except Exception:  # already dead is fine: either way it serves nothing stale
                log.exception("could not kill follower %s", follower_id)

    def _live(self) -> dict[str, _Follower]:
        horizon = self._clock() - self._timing.lease_s
        return {fid: f for fid, f in self._followers.items() if not f.evicted and f.last_seen >= horizon}

    # --- follower side ----------------------------------------------------------------------

    async def poll(self, follower_id: str, known: int, actor: Any = None, timeout_s: float | None = None) -> IndexUpdate:
        """Long-poll: returns as soon as the version passes `known` (or after the poll timeout)."""
        follower = self._followers.get(follower_id)
        if follower is None:
            follower = self._followers[follower_id] = _Follower(acked=known, last_seen=self._clock(), actor=actor)
        follower.last_seen = self._clock()
        if follower.evicted:
            return IndexUpdate(self.version, (), evicted=True)
        timeout = self._timing.poll_timeout_s if timeout_s is None else timeout_s
        async with self._changed:
            if self.version <= known and timeout > 0:
                try:
                    await asyncio.wait_for(self._changed.wait_for(lambda: self.version > known), timeout)
                except asyncio.TimeoutError:
                    pass
        follower.last_seen = self._clock()
        return IndexUpdate(self.version, tuple(a for v, a in self._log if v > known))

    async def ack(self, follower_id: str, version: int) -> bool:
        """A follower serves `version` now. False means: you were evicted, leave service."""
        follower = self._followers.get(follower_id)
        if follower is None:
            follower = self._followers[follower_id] = _Follower(acked=version, last_seen=self._clock())
        if follower.evicted:
            return False
        follower.acked = max(follower.acked, version)
        follower.last_seen = self._clock()
        async with self._changed:
            self._changed.notify_all()
        return True

    def followers(self) -> dict[str, dict[str, Any]]:
        live = self._live()
        return {
            fid: {"acked": f.acked, "live": fid in live, "evicted": f.evicted}
            for fid, f in self._followers.items()
        }


class AuthorityClient(Protocol):
    async def poll(self, follower_id: str, known: int, actor: Any = None) -> IndexUpdate: ...

    async def ack(self, follower_id: str, version: int) -> bool: ...


@dataclass
class IndexFollower:
    """An ingress replica's local copy of the index, kept current by long-polling the authority.

    >>> follower = IndexFollower(client, ForgetIndex.empty(embedder))
    >>> await follower.bootstrap(); follower.start()
    >>> follower.index.check_output(text)     # the snapshot every chat check uses
    """

    client: AuthorityClient
    index: ForgetIndex
    timing: SyncTiming = field(default_factory=SyncTiming)
    actor: Any = None
    follower_id: str = field(default_factory=lambda: f"ingress-{uuid.uuid4().hex[:8]}")
    clock: Callable[[], float] = time.monotonic
    evicted: bool = False
    failure: str | None = None
    _last_contact: float = 0.0
    _task: asyncio.Task[None] | None = None

    async def bootstrap(self) -> None:
        update = await self.client.poll(self.follower_id, self.index.version, self.actor)
        await self._apply(update)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"index-follower-{self.follower_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def out_of_service_reason(self) -> str | None:
        """None while this replica may answer chats; else why not."""
        if self.evicted:
            return "this replica was taken out of service for missing an index update"
        if self.failure is not None:
            return f"this replica could not apply the forget index: {self.failure}"
        silent = self.clock() - self._last_contact
        if silent > self.timing.fence_after_s:
            return f"this replica has not reached the forget-index authority for {silent:.0f} s"
        return None

    async def _apply(self, update: IndexUpdate) -> None:
        self._last_contact = self.clock()
        if update.evicted:
            self.evicted = True
            return
        if update.version > self.index.version:
            # Building a new snapshot can take a while at scale (FAISS adds): keep the loop free.
            self.index = await asyncio.to_thread(self.index.with_entries, list(update.artifacts), update.version)
        metrics.set_guard_index_version(self.index.version)
        if not await self.client.ack(self.follower_id, self.index.version):
            self.evicted = True

    async def _run(self) -> None:
        backoff = 0.1
        while not self.evicted:
            try:
                update = await self.client.poll(self.follower_id, self.index.version, self.actor)
                await self._apply(update)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except ValueError as exc:  # the update itself is unusable: leave service, don't loop
                self.failure = str(exc)
                log.exception("index update failed")
                return
            except Exception:  # authority restarting or unreachable: retry; the fence covers us
                log.warning("index poll failed; retrying in %.1f s", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
