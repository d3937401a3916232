"""The SQLite ledger's files are private (0600) whatever the umask: the database, its -wal and -shm."""

from __future__ import annotations

import os
import stat

from gateway.ledger import Ledger


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_ledger_files_are_0600_whatever_the_umask(tmp_path):
    old = os.umask(0o000)
    try:
        db = tmp_path / "home" / "ledger.db"
        ledger = Ledger.open(f"sqlite:///{db}")
        ledger.append_audit("test.event", actor="test", details={"n": 1})  # a write: the WAL exists now
        files = [db, db.with_name("ledger.db-wal"), db.with_name("ledger.db-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert mode(db.parent) == 0o700
        ledger.close()
    finally:
        os.umask(old)


def test_an_existing_world_readable_ledger_is_tightened_on_open(tmp_path):
    db = tmp_path / "ledger.db"
    Ledger.open(f"sqlite:///{db}").close()
    os.chmod(db, 0o644)
    ledger = Ledger.open(f"sqlite:///{db}")
    assert mode(db) == 0o600
    ledger.close()
