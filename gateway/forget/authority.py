"""The authority side of forget requests: wire payload -> ForgetEntry -> ledger, and the index versions
it publishes to every ingress replica (long-poll, apply, ack, fence).

The authority is the only writer of forget requests. `add` commits to the ledger, publishes the
new version, and returns only once every live follower has acknowledged it; a follower that does
not within `ack_timeout_s` is evicted (told to leave service, and its actor killed so Serve
replaces it). A follower (`gateway.forget.follower`) that has not heard from the authority for
`fence_after_s` takes itself out of service: it can never serve from a stale index while the
authority believes it is gone. The messages both sides exchange are defined here.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.forget.certificates import CertificateSigner, build_certificate
from gateway.guard.artifacts import EntryArtifacts, build_artifacts
from gateway.guard.embedder import Embedder
from gateway.guard.types import ForgetEntry
from gateway.ledger import ForgetRecord, ForgetStatus, IndexSnapshot, Ledger
from gateway.observability import metrics

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


class AuthorityClient(Protocol):
    """How a follower reaches the authority (a Serve handle in production, the authority itself in tests)."""

    async def poll(self, follower_id: str, known: int, actor: Any = None) -> IndexUpdate: ...

    async def ack(self, follower_id: str, version: int) -> bool: ...


class LedgerLike(Protocol):
    """What the authority needs of the ledger (gateway.ledger.Ledger)."""

    def add_forget(self, entry: ForgetEntry, artifacts: EntryArtifacts) -> Any: ...

    def snapshot(self) -> IndexSnapshot: ...  # .version and .artifacts (in version order), read consistently


@dataclass
class _Follower:
    acked: int
    last_seen: float
    actor: Any = None
    evicted: bool = False


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
                except TimeoutError:
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

    async def poll(
        self, follower_id: str, known: int, actor: Any = None, timeout_s: float | None = None
    ) -> IndexUpdate:
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait_for(lambda: self.version > known), timeout)
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
            fid: {"acked": f.acked, "live": fid in live, "evicted": f.evicted} for fid, f in self._followers.items()
        }


def entry_from_payload(payload: dict[str, Any]) -> ForgetEntry:
    """A validated `ForgetRequest` body (model_dump) as the guard's entry, with a fresh id."""
    return ForgetEntry(
        forget_id=str(uuid.uuid4()),
        subject=(payload.get("subject") or None),
        texts=tuple(payload.get("texts") or ()),
        qa=tuple((qa["question"], qa["answer"]) for qa in payload.get("qa") or ()),
        literals=tuple(payload.get("literals") or ()),
        action=payload.get("action", "block"),
        reason=payload.get("reason", "gdpr"),
    )


def status_fields(record: ForgetRecord) -> dict[str, Any]:
    """A ledger record as the `ForgetStatus` wire fields (texts and literals are not echoed back)."""
    payload = record.payload or {}
    return {
        "id": record.id,
        "status": record.status,
        "subject": record.subject,
        "reason": record.reason,
        "action": record.action,
        "index_version": record.index_version,
        "created_at": record.created_at.isoformat(),
        "enforced_at": record.enforced_at.isoformat() if record.enforced_at else None,
        "counts": {key: len(payload.get(key) or ()) for key in ("texts", "qa", "literals")},
    }


class ForgetRecords:
    """The authority's view of the ledger: add (through the index authority), get, list."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        metrics.set_forget_index(ledger.index_version(), ledger.count_forgets())

    @classmethod
    def open(cls, url: str) -> ForgetRecords:
        return cls(Ledger.open(url))

    async def add(self, authority: IndexAuthority, payload: dict[str, Any]) -> dict[str, Any]:
        received = time.perf_counter()
        entry = entry_from_payload(payload)
        result = await authority.add(entry)
        record: ForgetRecord = result["record"]
        metrics.record_forget_enforced(time.perf_counter() - received, record.index_version, authority.entries)
        # The moment every live ingress replica enforced it (the ledger's enforced_at is the commit, just
        # before): what a deletion certificate states.
        self.ledger.append_audit(
            "forget.enforced",
            actor="authority",
            subject_id=record.id,
            details={
                "enforced_at": result["enforced_at"],
                "index_version": record.index_version,
                "replicas_acknowledged": len(result.get("acked") or ()),
            },
        )
        if result["evicted"]:
            self.ledger.append_audit(
                "guard.replicas_evicted",
                actor="authority",
                subject_id=record.id,
                details={"replicas": result["evicted"], "index_version": record.index_version},
            )
        return {
            "id": record.id,
            "status": record.status,
            "index_version": record.index_version,
            "enforced_at": result["enforced_at"],
        }

    def get(self, forget_id: str) -> dict[str, Any] | None:
        record = self.ledger.get_forget(forget_id)
        return status_fields(record) if record is not None else None

    def list(self, status: ForgetStatus | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        return [status_fields(r) for r in self.ledger.list_forgets(status=status, limit=limit, offset=offset)]

    def audit(self, kind: str | None, subject_id: str | None, limit: int, offset: int) -> builtins.list[dict[str, Any]]:
        """Audit events, newest first."""
        return [
            e.to_dict()
            for e in self.ledger.list_audit(
                kind=kind, subject_id=subject_id, limit=limit, offset=offset, newest_first=True
            )
        ]

    def certificate(
        self, signer: CertificateSigner, forget_id: str, *, leakage: dict[str, Any] | None = None, serving: Any = None
    ) -> dict[str, Any] | None:
        """The signed deletion certificate of one request, or None if there is no such request."""
        body = build_certificate(self.ledger, forget_id, leakage=leakage, serving=serving)
        if body is None:
            return None
        self.ledger.append_audit(
            "forget.certificate_issued", actor="operator", subject_id=forget_id, details={"key_id": signer.key_id}
        )
        return signer.sign(body)
