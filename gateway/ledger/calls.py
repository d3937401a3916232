"""Ledger calls off the event loop and bounded in time: a stalled or unreachable database answers
`LedgerUnavailableError` within `LedgerTimeouts.call_s` instead of blocking whoever shares the loop.

Why a client-side bound on top of the database's own timeouts (`gateway.ledger.store`): a database that
is stopped (SIGSTOP, a paused VM) still has its kernel accept and acknowledge our packets, so no server
timeout fires and no TCP timeout trips; only the caller can stop waiting. The worker thread stays
blocked until the database answers, so a call given up on must not commit afterwards: every call runs
with a `CommitGate` that the ledger's engines consult just before each COMMIT goes out (the `commit`
engine event). Once the caller gave up, the gate refuses the commit and the transaction rolls back;
so "not recorded" is a promise, except when the COMMIT itself was already on its way
(`LedgerOutcomeUnknownError`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Worker threads per process: a stopped database blocks at most this many, and further calls wait in
# the queue (and give up there, never having started) instead of piling up threads.
LEDGER_WORKERS = 4


@dataclass(frozen=True)
class LedgerTimeouts:
    """How long the ledger waits, each well under the ingress fence (`SyncTiming.fence_after_s`, 15 s by
    default) so a forget request fails with a clear 503 long before anything else gives up.

    connect_s: PostgreSQL `connect_timeout` (libpq counts whole seconds, at least 2).
    lock_s: waiting for a lock: SQLite's busy timeout, PostgreSQL's `lock_timeout`.
    statement_s: PostgreSQL's `statement_timeout` (server side: a slow query, a lock queue).
    pool_s: waiting for a free pooled connection.
    idle_in_transaction_s: PostgreSQL ends a session that holds a transaction open this long (a frozen
        client must not hold the index counter's row lock forever).
    call_s: the caller stops waiting for one ledger call (`LedgerCalls`): above the others, so the
        database's own error (definitely nothing written) normally comes first.
    """

    connect_s: float = 3.0
    lock_s: float = 4.0
    statement_s: float = 5.0
    pool_s: float = 2.0
    idle_in_transaction_s: float = 30.0
    call_s: float = 7.0

    def __post_init__(self) -> None:
        if not 0 < self.lock_s <= self.statement_s < self.call_s:
            raise ValueError("need 0 < lock_s <= statement_s < call_s")
        if min(self.connect_s, self.pool_s, self.idle_in_transaction_s) <= 0:
            raise ValueError("ledger timeouts must be positive")


DEFAULT_TIMEOUTS = LedgerTimeouts()
# Opening the ledger migrates the schema: several processes start together and one migrates while the
# others wait for its lock, and a migration may rewrite many rows. Startup may wait; serving may not.
MIGRATION_TIMEOUTS = LedgerTimeouts(lock_s=60.0, statement_s=600.0, call_s=601.0, idle_in_transaction_s=600.0)


class LedgerUnavailableError(RuntimeError):
    """The ledger did not answer in time or refused the connection: nothing this call wrote was
    committed (the transaction rolled back, or its commit will be refused)."""


class LedgerOutcomeUnknownError(LedgerUnavailableError):
    """The ledger stopped answering while a COMMIT was on its way: the write may or may not be stored.
    `pending`: the call still running on its worker thread (this process only; not pickled)."""

    pending: concurrent.futures.Future[Any] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args)


# Database errors that say "the database is not usable now" rather than "this request is wrong":
# connection refused or lost, SQLite busy, PostgreSQL statement/lock/connect timeouts, pool exhausted.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
)


class CommitGate:
    """Whether the call running on a worker thread may still commit; shared with the caller."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._committing = False

    def before_commit(self) -> None:
        """On the worker thread, just before a COMMIT is sent: refuse it if the caller gave up."""
        with self._lock:
            if self._abandoned:
                raise LedgerUnavailableError("the caller stopped waiting for this ledger call: rolled back")
            self._committing = True

    def abandon(self) -> bool:
        """The caller gives up. True: nothing this call does commits from now on; False: a COMMIT already
        went out (its outcome is the database's)."""
        with self._lock:
            self._abandoned = True
            return not self._committing


_gate: contextvars.ContextVar[CommitGate | None] = contextvars.ContextVar("lethe_ledger_commit_gate", default=None)


def check_commit(_conn: Any = None) -> None:
    """The `commit` event of every ledger engine: consult the gate of the call in progress, if any."""
    gate = _gate.get()
    if gate is not None:
        gate.before_commit()


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class LedgerCalls:
    """Runs ledger calls on a small pool of worker threads, each bounded by `timeout_s`; the calling
    context (the acting API key) goes with the call.

    >>> calls = LedgerCalls(ledger.timeouts.call_s)
    >>> record = await calls(ledger.get_forget, forget_id)   # LedgerUnavailableError if stalled
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUTS.call_s, *, workers: int = LEDGER_WORKERS) -> None:
        self.timeout_s = timeout_s
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ledger")

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        gate = CommitGate()
        context = contextvars.copy_context()
        context.run(_gate.set, gate)
        future = self._executor.submit(context.run, functools.partial(fn, *args, **kwargs))
        running = asyncio.wrap_future(future)
        running.add_done_callback(_retrieve)  # a call given up on may still fail later: not an error then
        try:
            return await asyncio.wait_for(asyncio.shield(running), self.timeout_s)
        except TimeoutError:
            if future.cancel() or gate.abandon():  # never started, or will roll back
                raise LedgerUnavailableError(f"the ledger did not answer within {self.timeout_s:g} s") from None
            unknown = LedgerOutcomeUnknownError(
                f"the ledger stopped answering within {self.timeout_s:g} s while committing"
            )
            unknown.pending = future
            raise unknown from None
        except asyncio.CancelledError:
            if not future.cancel():
                gate.abandon()  # the caller is gone: nothing it started commits later
            raise
        except UNAVAILABLE_ERRORS as exc:
            # The client sees the kind of failure; what the database said (hosts, paths) goes to the log.
            log.warning("ledger call %s failed: %s", getattr(fn, "__name__", fn), exc)
            raise LedgerUnavailableError(f"the ledger is unavailable ({type(exc).__name__})") from exc

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
