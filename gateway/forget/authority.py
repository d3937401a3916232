"""The authority side of forget requests: wire payload -> ForgetEntry -> ledger, and the index versions
it publishes to every ingress replica (long-poll, apply, ack, fence).

The authority is the only writer of forget requests. `add` commits to the ledger, publishes the
new version, and returns only once every live follower has acknowledged it. Commit and publish are
shielded from cancellation (a client that disconnects cannot leave a committed request unpublished),
and publishing reads the ledger by version range, so whatever was committed reaches every follower; a follower that does
not within `ack_timeout_s` is evicted (told to leave service, and its actor killed so Serve
replaces it). A follower (`gateway.forget.follower`) that has not heard from the authority for
`fence_after_s` takes itself out of service: it can never serve from a stale index while the
authority believes it is gone. The messages both sides exchange are defined here.

A stalled database never delays a poll or an ack: polls and acks touch only memory, and every ledger
call runs on `LedgerCalls`' worker threads, bounded by the ledger's call timeout (well under the fence).
An add the ledger cannot take in time fails with `LedgerUnavailableError`, saying the request was not
recorded; an acknowledged request was committed before its acknowledgement.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.forget.certificates import CertificateSigner, build_certificate
from gateway.forget.shredding import shred
from gateway.guard.artifacts import EntryArtifacts, build_artifacts
from gateway.guard.embedder import Embedder
from gateway.guard.keyed import PROCESS_HASHER, TermHasher
from gateway.guard.types import ForgetEntry
from gateway.ledger import ForgetRecord, ForgetStatus, Ledger
from gateway.ledger.calls import DEFAULT_TIMEOUTS, LedgerCalls, LedgerOutcomeUnknownError, LedgerUnavailableError
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

    def add_forget(
        self, entry: ForgetEntry, artifacts: EntryArtifacts, *, content_digest: str | None = None
    ) -> Any: ...

    # The index version now, and (version, artifacts) of every request committed after `version`.
    def artifacts_since(self, version: int) -> tuple[int, list[tuple[int, EntryArtifacts]]]: ...


@dataclass
class _Follower:
    acked: int
    last_seen: float
    actor: Any = None
    evicted: bool = False


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def ledger_calls(ledger: Any) -> LedgerCalls:
    """Worker threads for `ledger`'s calls, bounded by its call timeout (a stand-in ledger: the default)."""
    timeouts = getattr(ledger, "timeouts", DEFAULT_TIMEOUTS)
    return LedgerCalls(timeouts.call_s)


class _Background:
    """Tasks that outlive the request that started them (kept referenced until done)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


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
        hasher: TermHasher = PROCESS_HASHER,
        calls: LedgerCalls | None = None,
    ) -> None:
        self._ledger = ledger
        self._calls = calls if calls is not None else ledger_calls(ledger)
        self._background = _Background()
        self._embedder = embedder
        self._hasher = hasher
        self._timing = timing
        self._kill_actor = kill_actor
        self._clock = clock
        # (index version, artifacts) in version order, as the ledger numbered them.
        version, rows = ledger.artifacts_since(0)
        self._log: list[tuple[int, EntryArtifacts]] = rows
        self.version = int(version)
        self._changed = asyncio.Condition()
        self._write_lock = asyncio.Lock()
        self._followers: dict[str, _Follower] = {}

    @property
    def entries(self) -> int:
        """Forget requests in the published index."""
        return len(self._log)

    # --- writer side ------------------------------------------------------------------------

    async def add(self, entry: ForgetEntry, *, content_digest: str | None = None) -> dict[str, Any]:
        """Commit `entry`, publish it, wait for every live follower. Returns the ledger record's fields
        plus `enforced_at` and the followers that acknowledged / were evicted. Once the commit has
        started, cancelling the caller (a client disconnect, a timeout) no longer stops it: the commit and
        the publication run to the end in their own task."""
        artifacts = await asyncio.to_thread(build_artifacts, entry, self._embedder, None, self._hasher)
        record = await asyncio.shield(asyncio.ensure_future(self._commit(entry, artifacts, content_digest)))
        version = int(record.index_version)
        acked, evicted = await self._await_acks(version)
        return {"record": record, "enforced_at": _now_iso(), "acked": acked, "evicted": evicted}

    async def _commit(self, entry: ForgetEntry, artifacts: EntryArtifacts, content_digest: str | None) -> Any:
        async with self._write_lock:
            try:
                record = await self._calls(self._ledger.add_forget, entry, artifacts, content_digest=content_digest)
            except LedgerOutcomeUnknownError as exc:
                # Stored or not is the database's answer, when it comes: publish whatever it holds then.
                self._background.start(self._publish_later(exc.pending))
                raise LedgerOutcomeUnknownError(
                    f"{exc}: the forget request may or may not be recorded (if it is, it is enforced as soon as "
                    "the ledger answers again and GET /v1/forget lists it); check before filing it again"
                ) from None
            except LedgerUnavailableError as exc:
                raise LedgerUnavailableError(
                    f"{exc}: the forget request was NOT recorded and nothing is enforced for it; file it again "
                    "once the ledger is back"
                ) from None
            await self._publish_committed(int(record.index_version), artifacts)
        return record

    async def _publish_committed(self, version: int, artifacts: EntryArtifacts) -> None:
        try:
            await self.publish()
            return
        except LedgerUnavailableError:
            if version != self.version + 1:
                self._background.start(self._publish_later(None))
                raise LedgerUnavailableError(
                    "the forget request was recorded, then the ledger stopped answering before it could be "
                    "published: it is enforced as soon as the ledger answers again (GET /v1/forget lists it)"
                ) from None
        # The ledger stalled between the commit and the read-back: the one request committed since the
        # published version is the one in hand, so publish it as it was committed.
        log.warning("the ledger did not answer after a commit: publishing version %d from memory", version)
        async with self._changed:
            self._log.append((version, artifacts))
            self.version = version
            self._changed.notify_all()

    async def _publish_later(self, pending: Any) -> None:
        """After an add whose outcome the ledger did not tell: publish once it answers again."""
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(pending)
        while True:
            try:
                async with self._write_lock:
                    await self.publish()
                return
            except LedgerUnavailableError:
                await asyncio.sleep(self._timing.poll_timeout_s)

    async def publish(self) -> int:
        """Publish every request the ledger holds beyond the published version (normally the one just
        committed; after a failure between commit and publish, all it missed). Returns the version."""
        version, rows = await self._calls(self._ledger.artifacts_since, self.version)
        rows = [(v, a) for v, a in rows if v > self.version]
        async with self._changed:
            if rows or version > self.version:
                self._log.extend(rows)
                self.version = max(version, self.version)
                self._changed.notify_all()
        return self.version

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


def rebuild_stale_artifacts(ledger: Ledger, embedder: Embedder, hasher: TermHasher) -> int:
    """Rebuild, from the sealed content, guard artifacts of an older format or hashed with another key
    (a ledger from before keyed hashing). Returns how many were rebuilt. A shredded request's artifacts
    cannot be rebuilt: that is an error to fix (restore the guard key), never skipped silently."""
    stale = ledger.stale_artifacts(hasher.key_id)
    for forget_id in stale:
        record = ledger.get_forget(forget_id)
        if record is None:
            continue
        if record.shredded_at is not None:
            raise RuntimeError(
                f"guard artifacts of {forget_id} were hashed with another key and its content is shredded: "
                "restore the ledger's guard key (ledger_secrets) instead of rebuilding"
            )
        ledger.replace_artifacts(build_artifacts(record.entry(), embedder, None, hasher))
    if stale:
        log.info("rebuilt the guard artifacts of %d forget requests", len(stale))
    return len(stale)


def keyed_content_digest(body: dict[str, Any], salt: bytes) -> str:
    """HMAC-SHA256 of a forget request's content (subject, texts, qa, literals in canonical JSON) under a
    per-request salt that only the filer gets (once, in the filing response): a certificate's digest then
    proves which content it covers to whoever holds the salt, and cannot be brute-forced by anyone else
    (an unsalted hash of a phone number can).

    >>> keyed_content_digest({"subject": "A", "texts": ["x"]}, b"0" * 16)[:20]
    'hmac-sha256:6e88d163'
    """
    content = {
        "subject": body.get("subject") or None,
        "texts": list(body.get("texts") or []),
        "qa": [[q["question"], q["answer"]] if isinstance(q, dict) else list(q) for q in body.get("qa") or []],
        "literals": list(body.get("literals") or []),
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return "hmac-sha256:" + hmac.new(salt, canonical, hashlib.sha256).hexdigest()


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
    return {
        "id": record.id,
        "status": record.status,
        "has_subject": record.has_subject,
        "reason": record.reason,
        "action": record.action,
        "index_version": record.index_version,
        "created_at": record.created_at.isoformat(),
        "enforced_at": record.enforced_at.isoformat() if record.enforced_at else None,
        "counts": {key: int(record.counts.get(key, 0)) for key in ("texts", "qa", "literals")},
        "shredded_at": record.shredded_at.isoformat() if record.shredded_at else None,
    }


# An audit event a stalled ledger could not take right after an acknowledgement is retried this long.
AUDIT_RETRY_S = 600.0


class ForgetRecords:
    """The authority's view of the ledger: add (through the index authority), get, list. The reads are
    plain calls: the serving side runs them through `calls` (off its event loop, bounded in time)."""

    def __init__(self, ledger: Ledger, calls: LedgerCalls | None = None) -> None:
        self.ledger = ledger
        self.calls = calls if calls is not None else ledger_calls(ledger)
        self._background = _Background()
        metrics.set_forget_index(ledger.index_version(), ledger.count_forgets())

    @classmethod
    def open(cls, url: str) -> ForgetRecords:
        return cls(Ledger.open(url))

    async def add(self, authority: IndexAuthority, payload: dict[str, Any]) -> dict[str, Any]:
        received = time.perf_counter()
        entry = entry_from_payload(payload)
        salt = os.urandom(16)
        result = await authority.add(entry, content_digest=keyed_content_digest(payload, salt))
        record: ForgetRecord = result["record"]
        metrics.record_forget_enforced(time.perf_counter() - received, record.index_version, authority.entries)
        # The moment every live ingress replica enforced it (the ledger's enforced_at is the commit, just
        # before): what a deletion certificate states.
        await self._audit(
            "forget.enforced",
            record.id,
            {
                "enforced_at": result["enforced_at"],
                "index_version": record.index_version,
                "replicas_acknowledged": len(result.get("acked") or ()),
            },
        )
        if result["evicted"]:
            await self._audit(
                "guard.replicas_evicted",
                record.id,
                {"replicas": result["evicted"], "index_version": record.index_version},
            )
        return {
            "id": record.id,
            "status": record.status,
            "index_version": record.index_version,
            "enforced_at": result["enforced_at"],
            # Shown once: with it the filer can check a certificate's content_digest; Lethe keeps no copy.
            "content_digest_salt": base64.urlsafe_b64encode(salt).decode(),
        }

    async def _audit(self, kind: str, forget_id: str, details: dict[str, Any]) -> None:
        """Record an event of an acknowledged request. The request is committed and enforced whatever
        happens here: a ledger that stalls now delays the event (retried in the background), not the 201."""
        try:
            await self.calls(self.ledger.append_audit, kind, actor="authority", subject_id=forget_id, details=details)
        except LedgerUnavailableError:
            log.warning("the ledger did not take the %s event of %s: retrying in the background", kind, forget_id)
            self._background.start(self._audit_later(kind, forget_id, details))

    async def _audit_later(self, kind: str, forget_id: str, details: dict[str, Any]) -> None:
        deadline = time.monotonic() + AUDIT_RETRY_S
        while time.monotonic() < deadline:
            await asyncio.sleep(self.calls.timeout_s)
            try:
                await self.calls(
                    self.ledger.append_audit, kind, actor="authority", subject_id=forget_id, details=details
                )
                return
            except LedgerUnavailableError:
                continue
        log.error("the %s event of %s could not be recorded: the ledger stayed unavailable", kind, forget_id)

    def shred(self, forget_id: str, *, drop_semantic: bool, actor: str = "operator") -> dict[str, Any] | None:
        """Crypto-shred one request on an operator's word (gateway.forget.shredding); None: no such request."""
        if shred(self.ledger, forget_id, reason="requested", actor=actor, drop_semantic=drop_semantic) is None:
            return None
        return self.get(forget_id)

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
        self,
        signer: CertificateSigner,
        forget_id: str,
        *,
        leakage: dict[str, Any] | None = None,
        serving: Any = None,
        guard: dict[str, Any] | None = None,
        replicas: builtins.list[dict[str, Any]] | None = None,
    ) -> dict[str, Any] | None:
        """The signed deletion certificate of one request, or None if there is no such request. `guard`: the
        guard's state (certificates.guard_state); `replicas`: each LLM replica's version when issued."""
        body = build_certificate(
            self.ledger, forget_id, leakage=leakage, serving=serving, guard=guard, replicas=replicas
        )
        if body is None:
            return None
        self.ledger.append_audit(
            "forget.certificate_issued", actor="operator", subject_id=forget_id, details={"key_id": signer.key_id}
        )
        return signer.sign(body)
