"""An ingress replica's copy of the forget index, kept current by long-polling the index authority.

The follower applies every update before it acknowledges it (`gateway.forget.authority` holds the
authority and the messages); one that cannot reach the authority for `fence_after_s`, or was evicted,
reports itself out of service so its replica answers no chat from a stale index.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.forget.authority import AuthorityClient, IndexUpdate, SyncTiming
from gateway.guard.index import ForgetIndex
from gateway.observability import metrics

log = logging.getLogger(__name__)


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
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

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
