"""Rolling weight swaps across the LLM replicas: promote, roll back, import (no Ray here).

A swap is refused before any replica changes when the version fails its checks (checksums,
architecture, tensor names and shapes). Meanwhile every replica stages the version in memory (read
and hashed; it keeps serving). Then the replicas drain together; each loads and runs its smoke test
as soon as it has drained, alongside replicas on other cores or GPUs and after those (drained
before it) that share one with it. If one fails, the replicas already swapped go back to the
previous weights, the ones still waiting reopen unchanged, and the old version keeps serving. The
serving version is the ledger's pointer, so a restarted or added replica starts on it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.errors import unwrap_remote_error
from gateway.ledger import Ledger
from gateway.ledger.records import AuditEvent, VersionRecord
from gateway.weights.store import (
    VersionInvalidError,
    ensure_base_version,
    import_directory,
    proven_parent,
    serving_record,
    validate_candidate,
    verify_files,
    version_fields,
    weight_digests,
)

log = logging.getLogger(__name__)

# Replicas that finish draining within this many seconds of each other load in replica-id order.
DRAIN_TIE_S = 0.05


class VersionNotFoundError(KeyError):
    pass


class SwapConflictError(RuntimeError):
    """Another swap is running, or there is nothing to roll back to."""


class SwapFailedError(RuntimeError):
    """A replica could not take the version; every replica is back on the previous one."""


class Fleet(Protocol):
    """The LLM replicas as the controller reaches them (Serve broadcasts in production)."""

    async def states(self) -> list[dict[str, Any]]:
        """One `{replica, version, path}` per live replica."""

    async def stage(
        self, replica: str, path: str, version: str, digests: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Read `path` into the replica's memory and check each weight file against `digests` (its sha256
        by file name; None: the version's manifest on disk); it keeps serving. Raises when it fails."""

    async def discard_staged(self, replica: str) -> None:
        """Free what `stage` read (the swap it was for will not happen)."""

    async def swap(
        self,
        replica: str,
        path: str,
        version: str,
        ticket: str | None = None,
        hold: bool = False,
        digests: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Swap one replica (from the staged weights when `stage` read `path`, else it stages them first,
        checked against `digests`); raises (after the replica restored its weights) when it fails.
        `ticket` names the swap for `phase` and `proceed`; with `hold`, the drained replica loads only
        once `proceed` lets it."""

    async def phase(self, replica: str, ticket: str, phase: str) -> None:
        """Return once the replica's swap `ticket` reached `phase` ("drained", "loaded") or ended (the
        controller waits for "drained"; "loaded" also marks a ticket the replica may forget)."""

    async def proceed(self, replica: str, ticket: str, load: bool = True) -> None:
        """Let the held swap `ticket` load, or (`load` False) call it off: it reopens unchanged."""


@dataclass
class SwapHooks:
    """Called after each swap outcome (metrics, probes); exceptions are logged, never raised."""

    on_result: Any = None  # (result: str, seconds: float, version: str) -> None


class SwapController:
    """The one writer of the serving version.

    >>> controller = SwapController(ledger, fleet, base_dir="/models/smollm2", versions_dir="/lethe/versions")
    >>> report = await controller.promote("v20261127T101500Z-a1b2c3")
    >>> await controller.rollback()
    """

    def __init__(
        self,
        ledger: Ledger,
        fleet: Fleet,
        *,
        base_dir: str | Path,
        versions_dir: str | Path,
        hooks: SwapHooks | None = None,
        overlap: bool = True,
    ) -> None:
        self._ledger = ledger
        self._fleet = fleet
        # False: stage nothing ahead, and each replica's swap ends before the next one starts.
        self._overlap = overlap
        self._base_dir = Path(base_dir)
        self._versions_dir = Path(versions_dir)
        self._hooks = hooks or SwapHooks()
        self._lock = asyncio.Lock()
        self._reconciling = False  # the lock is held by reconcile(), not by a swap
        ensure_base_version(ledger, base_dir)

    # --- reads ---------------------------------------------------------------------------------

    def serving(self) -> VersionRecord:
        return serving_record(self._ledger, self._base_dir)

    async def list(self) -> dict[str, Any]:
        serving = self.serving()
        versions = [version_fields(v) for v in self._ledger.list_versions(limit=1000)]
        for v in versions:
            v["serving"] = v["id"] == serving.id
        known = True
        try:
            replicas = await self._fleet.states()
        except Exception as exc:  # the list is still useful without the live view
            log.warning("could not read replica states: %s", exc)
            replicas, known = [], False
        return {
            "serving": serving.id,
            "swapping": self._lock.locked(),
            "replicas_known": known,  # False: `replicas` is empty because the replicas did not answer
            "data": versions,
            "replicas": sorted(
                (
                    {"replica": r["replica"], "version": r["version"], "verified": r.get("verified", True)}
                    for r in replicas
                ),
                key=lambda r: r["replica"],
            ),
        }

    def history(self, limit: int = 50) -> builtins.list[dict[str, Any]]:
        kinds = ("version.serving", "version.swap_failed", "version.swap_refused", "version.imported")
        events = [e for kind in kinds for e in self._ledger.list_audit(kind=kind, limit=limit, newest_first=True)]
        events.sort(key=lambda e: e.id, reverse=True)
        return [
            {"at": e.at.isoformat(), "event": e.kind, "version": e.subject_id, "actor": e.actor, **e.details}
            for e in events[:limit]
        ]

    # --- writes --------------------------------------------------------------------------------

    async def promote(self, version_id: str, *, actor: str = "operator", kind: str = "promote") -> dict[str, Any]:
        record = self._ledger.get_version(version_id)
        if record is None:
            raise VersionNotFoundError(version_id)
        if self._lock.locked() and not self._reconciling:
            raise SwapConflictError("another swap is in progress; retry when it ends")
        async with self._lock:  # a reconcile holding it (a replica brought back on version) is waited for
            return await self._swap_to(record, actor=actor, kind=kind)

    async def rollback(self, *, actor: str = "operator") -> dict[str, Any]:
        target = self._previous_serving()
        if target is None:
            raise SwapConflictError("there is no previous serving version to roll back to")
        return await self.promote(target, actor=actor, kind="rollback")

    async def import_version(self, path: str, *, actor: str = "operator", note: str | None = None) -> dict[str, Any]:
        # Not the serving version: an import descends only from a version whose exact weights it holds
        # (gateway.weights.store), else certificates would call foreign weights "unlearned".
        parent = await asyncio.to_thread(proven_parent, self._ledger, path)
        vid, final, manifest = await asyncio.to_thread(
            import_directory, path, self._versions_dir, self._base_dir, parent_version=parent, note=note
        )
        record = self._ledger.add_version(vid, str(final), manifest, parent_id=parent, method="import", actor=actor)
        self._ledger.append_audit(
            "version.imported",
            actor=actor,
            subject_id=vid,
            details={"source": manifest["extra"]["imported_from"], "parent": parent},
        )
        return version_fields(record)

    async def reconcile(self) -> builtins.list[dict[str, Any]]:
        """Bring replicas that are not on the serving version onto it (e.g. one that restarted
        from an older pointer during a swap)."""
        if self._lock.locked():
            return []
        # Asked without the lock first: the periodic check finds nothing to do nearly always, and a
        # promotion arriving meanwhile must not be refused for it.
        if not [r for r in await self._fleet.states() if _stale(r, self.serving().id)]:
            return []
        if self._lock.locked():
            return []
        async with self._lock:
            self._reconciling = True
            try:
                return await self._reconcile_locked()
            finally:
                self._reconciling = False

    async def _reconcile_locked(self) -> builtins.list[dict[str, Any]]:
        target = self.serving()
        stale = [r for r in await self._fleet.states() if _stale(r, target.id)]
        if not stale:
            return []
        try:
            # A replica refusing traffic (unverified) stays so until the target verifies.
            await asyncio.to_thread(validate_candidate, self._base_dir, target)
        except VersionInvalidError as exc:
            log.error("serving version %s fails verification (%s): not reconciling replicas", target.id, exc)
            return []
        results = []
        for r in sorted(stale, key=lambda r: r["replica"]):
            try:
                results.append(await self._fleet.swap(r["replica"], target.path, target.id))
            except Exception as exc:
                log.error("replica %s could not be brought to %s: %s", r["replica"], target.id, exc)
        return results

    # --- internals -----------------------------------------------------------------------------

    def _previous_serving(self) -> str | None:
        """Promotions push onto a stack and rollbacks pop it: repeated rollbacks walk back in time."""
        stack = [ensure_base_version(self._ledger, self._base_dir).id]
        for event in self._serving_events():
            if event.details.get("action") == "rollback":
                if len(stack) > 1:
                    stack.pop()
            elif event.subject_id is not None:  # always set: set_serving names the version it serves
                stack.append(event.subject_id)
        return stack[-2] if len(stack) > 1 else None

    def _serving_events(self) -> Iterator[AuditEvent]:
        offset = 0
        while True:
            page = self._ledger.list_audit(kind="version.serving", limit=1000, offset=offset)
            yield from page
            if len(page) < 1000:
                return
            offset += len(page)

    def _report(self, result: str, seconds: float, version: str) -> None:
        if self._hooks.on_result is not None:
            try:
                self._hooks.on_result(result, seconds, version)
            except Exception:  # observability must never break a swap
                log.exception("swap hook failed")

    async def _swap_to(self, record: VersionRecord, *, actor: str, kind: str) -> dict[str, Any]:
        started = time.monotonic()
        previous = self.serving()
        # The weights are hashed once, by each replica as it stages them (the bytes it loads), against
        # the manifest's digests as read here; the controller checks everything else.
        staging: dict[str, asyncio.Task[dict[str, Any]]] = {}
        try:
            digests = await asyncio.to_thread(weight_digests, record)
        except VersionInvalidError as exc:
            await self._refuse(record, exc, staging, actor=actor, kind=kind, started=started)
            raise
        # Staging changes nothing a replica serves, so it runs alongside the checks; a refusal discards it.
        if self._overlap:
            try:
                stale = [r for r in await self._fleet.states() if _stale(r, record.id)]
            except Exception as exc:  # the loop below asks again and says what is wrong
                log.warning("could not read replica states before staging: %s", exc)
                stale = []
            staging = {
                r["replica"]: asyncio.create_task(self._fleet.stage(r["replica"], record.path, record.id, digests))
                for r in stale
            }
        try:
            await asyncio.to_thread(validate_candidate, self._base_dir, record, digests)
        except VersionInvalidError as exc:
            await self._refuse(record, exc, staging, actor=actor, kind=kind, started=started)
            raise
        done: builtins.list[dict[str, Any]] = []
        steps: builtins.list[dict[str, Any]] = []
        # Later passes catch replicas that joined (or restarted on the old pointer) meanwhile.
        for _ in range(3):
            states = sorted(await self._fleet.states(), key=lambda r: r["replica"])
            if not states and not done:
                await self._discard(staging)
                raise SwapFailedError("no LLM replica is running")
            pending = [r for r in states if _stale(r, record.id)]
            if not pending:
                break
            failure = await self._roll(record, digests, pending, staging, done, steps)
            staging = {}
            if failure is not None:
                failed, error = failure
                if not done:  # nothing changed: if the version's own files are wrong, it is refused as such
                    await self._refuse_if_invalid(record, actor=actor, kind=kind, started=started)
                await self._fail(record, previous, failed, done, error, actor=actor, kind=kind, started=started)
        await self._discard(staging)
        self._ledger.set_serving(record.id, actor=actor, action=kind)
        seconds = time.monotonic() - started
        self._report("ok", seconds, record.id)
        log.info("%s: now serving %s (was %s) after %.2f s", kind, record.id, previous.id, seconds)
        return {
            "version": record.id,
            "previous": previous.id,
            "kind": kind,
            "seconds": round(seconds, 3),
            "replicas": steps,
        }

    async def _refuse(
        self,
        record: VersionRecord,
        exc: VersionInvalidError,
        staging: dict[str, asyncio.Task[dict[str, Any]]],
        *,
        actor: str,
        kind: str,
        started: float,
    ) -> None:
        await self._discard(staging)
        self._ledger.append_audit(
            "version.swap_refused", actor=actor, subject_id=record.id, details={"reason": str(exc), "action": kind}
        )
        self._report("refused", time.monotonic() - started, record.id)

    async def _refuse_if_invalid(self, record: VersionRecord, *, actor: str, kind: str, started: float) -> None:
        """After a replica failed to stage or load `record`: hash its files here (only now), and refuse the
        version when they are not the ones its manifest lists (a corrupted or altered version)."""
        if record.manifest.get("base"):
            return
        try:
            await asyncio.to_thread(verify_files, Path(record.path))
        except VersionInvalidError as exc:
            await self._refuse(record, exc, {}, actor=actor, kind=kind, started=started)
            raise

    async def _roll(
        self,
        record: VersionRecord,
        digests: dict[str, str],
        pending: builtins.list[dict[str, Any]],
        staging: dict[str, asyncio.Task[dict[str, Any]]],
        done: builtins.list[dict[str, Any]],
        steps: builtins.list[dict[str, Any]],
    ) -> tuple[dict[str, Any], BaseException] | None:
        """Swap `pending`; appends the replicas that took the version to `done` (their reports to
        `steps`) and returns the first failure, once no swap is running any more.

        Overlapped: every replica is staged first (still serving), then all drain at once, so the swap
        waits for the longest request in flight once, not once per replica. A drained replica loads and
        smoke-tests at once unless a replica let go before it shares a core or GPU with it: then after
        that one's swap ended. Without overlap: one whole swap after another, in replica-id order.
        """
        if staging:  # staged in parallel: a replica that cannot read the version fails it before any drains
            await asyncio.wait(staging.values())
            for replica in pending:
                stage = staging.get(replica["replica"])
                if stage is not None and _failed(stage):
                    await self._discard(staging)
                    return replica, stage.exception() or RuntimeError("staging failed")
            staging.clear()
        if not self._overlap:
            for replica in pending:
                try:
                    steps.append(await self._fleet.swap(replica["replica"], record.path, record.id, digests=digests))
                except Exception as exc:
                    return replica, exc
                done.append(replica)
            return None
        tickets = {r["replica"]: uuid.uuid4().hex for r in pending}
        swaps = {
            name: asyncio.create_task(self._fleet.swap(name, record.path, record.id, ticket, True, digests))
            for name, ticket in tickets.items()
        }
        drained = {
            name: asyncio.create_task(self._fleet.phase(name, ticket, "drained")) for name, ticket in tickets.items()
        }
        waiting = list(pending)  # drained or draining, not yet let go to load
        called_off: set[str] = set()
        let_go: builtins.list[dict[str, Any]] = []  # let go to load, in that order
        try:
            while waiting:
                await asyncio.wait({drained[r["replica"]] for r in waiting}, return_when=asyncio.FIRST_COMPLETED)
                first = next(r for r in waiting if drained[r["replica"]].done())
                earlier = {drained[r["replica"]] for r in waiting[: waiting.index(first)]}
                if earlier:  # drains that end together load in replica-id order: a stable order
                    await asyncio.wait(earlier, timeout=DRAIN_TIE_S)
                replica = next(r for r in waiting if drained[r["replica"]].done())
                name = replica["replica"]
                for before in let_go:  # one load or smoke test per core at a time; other cores at once
                    if _share_devices(before, replica):
                        await asyncio.wait({swaps[before["replica"]]})
                if any(_failed(t) for t in swaps.values()):
                    break
                try:
                    await self._fleet.proceed(name, tickets[name], True)
                except Exception as exc:  # it times out on its own, unchanged; the next pass retries it
                    log.warning("could not let %s load: %s", name, exc)
                    break
                waiting.remove(replica)
                let_go.append(replica)
        finally:
            for replica in waiting:
                called_off.add(replica["replica"])
                with contextlib.suppress(Exception):
                    await self._fleet.proceed(replica["replica"], tickets[replica["replica"]], False)
            for wait in drained.values():
                wait.cancel()
                await _settle(wait)
        failure: tuple[dict[str, Any], BaseException] | None = None
        results = await asyncio.gather(*swaps.values(), return_exceptions=True)
        for replica, result in zip(pending, results, strict=True):
            if not isinstance(result, BaseException):
                done.append(replica)
                steps.append(result)
            elif replica["replica"] not in called_off and failure is None:
                failure = (replica, result)
        return failure

    async def _discard(self, staging: dict[str, asyncio.Task[dict[str, Any]]]) -> None:
        for name, task in staging.items():
            await _settle(task)
            with contextlib.suppress(Exception):
                await self._fleet.discard_staged(name)
        staging.clear()

    async def _fail(
        self,
        record: VersionRecord,
        previous: VersionRecord,
        replica: dict[str, Any],
        done: builtins.list[dict[str, Any]],
        exc: BaseException,
        *,
        actor: str,
        kind: str,
        started: float,
    ) -> None:
        """Put the replicas already swapped back, record why, raise SwapFailedError."""
        reason = _reason(exc)
        restored = await self._restore(done)
        self._ledger.append_audit(
            "version.swap_failed",
            actor=actor,
            subject_id=record.id,
            details={
                "reason": reason,
                "action": kind,
                "failed_replica": replica["replica"],
                "rolled_back": [r["replica"] for r in done],
                "restore_errors": restored,
                "serving": previous.id,
            },
        )
        self._report("rolled_back" if done else "failed", time.monotonic() - started, record.id)
        rolled = f"rolled back {', '.join(r['replica'] for r in done)}; " if done else ""
        raise SwapFailedError(
            f"swap to {record.id} failed on {replica['replica']}: {reason}; {rolled}still serving {previous.id}"
        )

    async def _restore(self, done: builtins.list[dict[str, Any]]) -> builtins.list[str]:
        errors = []
        for replica in reversed(done):
            try:
                await self._fleet.swap(replica["replica"], replica["path"], replica["version"])
            except Exception as exc:
                errors.append(f"{replica['replica']}: {_reason(exc)}")
                log.error("could not restore %s to %s: %s", replica["replica"], replica["version"], exc)
        return errors


def _share_devices(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two replicas compute on a common core or GPU; unknown devices count as shared."""
    first, second = set(a.get("devices") or ()), set(b.get("devices") or ())
    return not first or not second or bool(first & second)


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


async def _settle(task: asyncio.Task[Any]) -> None:
    """Wait for `task` and drop its outcome (its failure was reported elsewhere, or does not matter)."""
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved: asyncio logs no "exception was never retrieved"


def _stale(replica: dict[str, Any], version: str) -> bool:
    """A replica that must be swapped to `version`: on other weights, or refusing traffic (unverified)."""
    return bool(replica["version"] != version or not replica.get("verified", True))


def _reason(exc: BaseException) -> str:
    original = unwrap_remote_error(exc)
    return str(original) or type(original).__name__
