"""The ledger's timeouts: every wait on the database ends well before an ingress replica would fence itself,
and each backend really runs with them (SQLite's busy timeout; PostgreSQL's session settings)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway.forget.authority import SyncTiming
from gateway.ledger import Ledger
from gateway.ledger.calls import DEFAULT_TIMEOUTS, LedgerTimeouts


def test_every_default_wait_ends_before_the_fence():
    fence = SyncTiming().fence_after_s
    t = DEFAULT_TIMEOUTS
    assert max(t.connect_s, t.lock_s, t.statement_s, t.pool_s, t.call_s) < fence
    # A call's own bound comes last: the database's error (certainly nothing written) normally first.
    assert t.lock_s <= t.statement_s < t.call_s
    assert t.call_s <= fence / 2  # room for the ingress to answer the 503 long before anything fences


def test_timeouts_are_validated():
    with pytest.raises(ValueError):
        LedgerTimeouts(lock_s=5.0, statement_s=3.0)
    with pytest.raises(ValueError):
        LedgerTimeouts(statement_s=5.0, call_s=5.0)


def test_the_ledger_runs_with_its_timeouts(url):
    ledger = Ledger.open(url)
    try:
        assert ledger.timeouts == DEFAULT_TIMEOUTS
        with ledger.engine.connect() as conn:
            if ledger.engine.dialect.name == "sqlite":
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == int(DEFAULT_TIMEOUTS.lock_s * 1000)
            else:
                settings = {
                    name: conn.execute(text(f"SHOW {name}")).scalar()
                    for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
                }
                assert settings == {
                    "statement_timeout": "5s",
                    "lock_timeout": "4s",
                    "idle_in_transaction_session_timeout": "30s",
                }
    finally:
        ledger.close()


def test_what_a_postgresql_url_sets_itself_wins(postgres):
    url = postgres.create_database() + "?options=-c%20statement_timeout%3D9000&connect_timeout=4"
    ledger = Ledger.open(url)
    try:
        with ledger.engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "9s"
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "4s"  # ours, where the URL says nothing
    finally:
        ledger.close()
