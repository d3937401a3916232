"""The ledger on real SQLite and real PostgreSQL (each test runs on both): durability, monotonic versions,
concurrency, migrations, append-only audit, and values that must behave the same on either backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from gateway.guard.types import ForgetEntry
from gateway.ledger import Ledger
from gateway.ledger.migrate import head_revision

from .conftest import make_pair

ROOT = Path(__file__).resolve().parents[3]


def test_migration_from_empty_reaches_head(ledger):
    tables = set(inspect(ledger.engine).get_table_names())
    assert {
        "forget_requests",
        "guard_artifacts",
        "ledger_counters",
        "audit_events",
        "unlearn_jobs",
        "weight_versions",
        "serving_pointer",
        "alembic_version",
    } <= tables
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        if ledger.engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        else:
            # An acknowledged commit is on disk before it returns: fsync and synchronous commit stay on.
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
            assert conn.execute(text("SHOW fsync")).scalar() == "on"
    assert ledger.index_version() == 0


def test_forget_round_trip_and_durability_across_reopen(url):
    ledger = Ledger.open(url)
    entry, artifacts = make_pair(1)
    record = ledger.add_forget(entry, artifacts)
    assert record.index_version == 1 and record.status == "enforced" and record.enforced_at is not None
    ledger.close()
    reopened = Ledger.open(url)  # migrating an up-to-date schema is a no-op
    assert reopened.get_forget(entry.forget_id) == record
    assert reopened.get_forget(entry.forget_id).entry() == entry
    assert reopened.load_artifacts() == [artifacts]
    assert reopened.index_version() == 1
    assert reopened.get_forget("missing") is None


def test_index_version_is_monotonic_and_bumped_with_the_insert(ledger):
    versions = [ledger.add_forget(*make_pair(i)).index_version for i in range(5)]
    assert versions == [1, 2, 3, 4, 5]
    entry, artifacts = make_pair(2)  # duplicate id: the whole transaction rolls back, version unchanged
    with pytest.raises(IntegrityError):
        ledger.add_forget(entry, artifacts)
    assert ledger.index_version() == 5
    snapshot = ledger.snapshot()
    assert snapshot.version == 5 and [a.forget_id for a in snapshot.artifacts] == [f"forget-{i:04d}" for i in range(5)]


def test_mismatched_artifacts_are_refused(ledger):
    entry, _ = make_pair(1)
    _, other = make_pair(2)
    with pytest.raises(ValueError):
        ledger.add_forget(entry, other)
    assert ledger.index_version() == 0


def test_status_listing_and_paging(ledger):
    for i in range(4):
        ledger.add_forget(*make_pair(i))
    assert ledger.set_forget_status(["forget-0000", "forget-0001"], "unlearning") == 2
    assert [r.id for r in ledger.list_forgets(status="unlearning")] == ["forget-0000", "forget-0001"]
    assert [r.id for r in ledger.list_forgets(limit=2, offset=2)] == ["forget-0002", "forget-0003"]
    with pytest.raises(ValueError):
        ledger.set_forget_status(["forget-0000"], "forgotten")
    with pytest.raises(KeyError):
        ledger.set_forget_status(["nope"], "failed")
    with pytest.raises(ValueError):
        ledger.list_forgets(limit=0)


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from conftest import make_pair
    from gateway.ledger import Ledger
    ledger = Ledger.open({url!r})
    start, count = int(sys.argv[1]), int(sys.argv[2])
    for i in range(start, start + count):
        record = ledger.add_forget(*make_pair(i))
        print(record.id, record.index_version, flush=True)
""")


def _writer(url: str, start: int, count: int) -> subprocess.Popen:
    code = _WRITER.format(root=str(ROOT), tests=str(Path(__file__).parent), url=url)
    return subprocess.Popen(
        [sys.executable, "-c", code, str(start), str(count)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_processes_write_concurrently(url):
    Ledger.open(url).close()
    procs = [_writer(url, 0, 25), _writer(url, 1000, 25)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    acked = [line.split() for out, _ in outputs for line in out.splitlines()]
    versions = sorted(int(v) for _, v in acked)
    assert versions == list(range(1, 51))  # unique, gap-free: each bump shared its insert's transaction
    ledger = Ledger.open(url)
    assert ledger.index_version() == 50 and ledger.count_forgets() == 50


def test_kill_9_loses_no_acknowledged_request(url):
    Ledger.open(url).close()
    proc = _writer(url, 0, 10_000)
    acked = []
    deadline = time.monotonic() + 60
    while len(acked) < 15 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            acked.append(line.split())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acked) >= 15
    ledger = Ledger.open(url)
    for forget_id, version in acked:
        record = ledger.get_forget(forget_id)
        assert record is not None and record.index_version == int(version)
    assert ledger.index_version() >= max(int(v) for _, v in acked)
    assert ledger.index_version() == ledger.count_forgets()


def test_audit_is_append_only(ledger):
    ledger.add_forget(*make_pair(1))
    event = ledger.append_audit("operator.note", actor="alice", subject_id="forget-0001", details={"why": "test"})
    events = ledger.list_audit(subject_id="forget-0001")
    assert [e.kind for e in events] == ["forget.added", "operator.note"] and events[-1] == event
    assert not any(hasattr(ledger, name) for name in ("update_audit", "delete_audit"))
    for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"), ledger.engine.begin() as conn:
            conn.execute(text(statement))
    assert len(ledger.list_audit()) == 2


def test_jobs_lifecycle_and_interrupted_jobs(ledger):
    job = ledger.create_job("npo", ["forget-0001"], {"lr": 1e-5}, {"gpu": 0})
    assert job.state == "queued" and job.started_at is None
    running = ledger.update_job(job.id, state="running", progress=0.25, step=10, loss=1.5)
    assert running.started_at is not None and running.progress == 0.25 and running.loss == 1.5
    with pytest.raises(ValueError):
        ledger.update_job(job.id, state="exploded")
    with pytest.raises(ValueError):
        ledger.update_job(job.id, colour="red")
    with pytest.raises(KeyError):
        ledger.update_job("nope", state="running")
    done = ledger.create_job("grad_diff", ["forget-0002"])
    ledger.update_job(done.id, state="published", version_id="v2", metrics={"leak": 0.01})
    assert ledger.fail_interrupted_jobs("gateway restarted") == [job.id]
    failed = ledger.get_job(job.id)
    assert failed.state == "failed" and failed.error == "gateway restarted" and failed.finished_at is not None
    assert ledger.get_job(done.id).state == "published"
    assert [j.id for j in ledger.list_jobs(state="failed")] == [job.id]


def test_weight_versions_and_serving_pointer(ledger):
    assert ledger.serving_version() is None
    ledger.add_version("base", "/models/base", {"sha256": "a"})
    ledger.add_version("v1", "/versions/v1", {"sha256": "b"}, parent_id="base", method="npo")
    ledger.set_serving("base")
    ledger.set_serving("v1")
    assert ledger.serving_version().id == "v1"
    assert [(v.id, v.serving) for v in ledger.list_versions()] == [("base", False), ("v1", True)]
    ledger.set_serving("base")  # rollback
    assert ledger.serving_version().id == "base"
    with pytest.raises(KeyError):
        ledger.set_serving("missing")
    with pytest.raises(IntegrityError):
        ledger.add_version("v2", "/x", {}, parent_id="missing")  # foreign keys are on
    assert [e.details["previous"] for e in ledger.list_audit(kind="version.serving")] == [None, "base", "v1"]


# --- the same behaviour on every backend (SQLite is lax where PostgreSQL is strict) ---------------


def test_text_round_trips_byte_for_byte(ledger):
    entry, artifacts = make_pair(7)
    texts = ("Ærøskøbing – «quoted» 🙂 \\u0000 and a real NUL: \x00 end", "x" * 8_000)
    entry = ForgetEntry(
        entry.forget_id, "Søren Ødegård-Lie 🙂", texts=texts, literals=("+47 900 00 007",), reason="gdpr"
    )
    big = bytes(range(256)) * 4096  # 1 MiB of every byte value, NUL included
    artifacts = replace(artifacts, ngram_hashes=big)
    record = ledger.add_forget(entry, artifacts)
    assert ledger.get_forget(entry.forget_id) == record
    assert ledger.get_forget(entry.forget_id).entry() == entry  # NUL inside JSON payloads is fine
    assert ledger.load_artifacts() == [artifacts]
    stored = ledger.get_forget(entry.forget_id).created_at
    assert stored.tzinfo is not None and stored.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("field", ["nul", "long"])
def test_values_a_column_cannot_hold_are_refused_alike(ledger, field):
    with pytest.raises(ValueError, match="actor"):
        ledger.append_audit("operator.note", actor="a" * 129 if field == "long" else "al\x00ice")
    with pytest.raises(ValueError, match="method"):
        ledger.create_job("n" * 65 if field == "long" else "n\x00po", ["forget-0003"])
    assert ledger.index_version() == 0 and ledger.count_forgets() == 0 and ledger.list_audit() == []
    # Looking up a key no backend can store finds nothing (PostgreSQL would raise on it in a WHERE).
    assert ledger.get_forget("forget\x00") is None and ledger.get_job("job\x00") is None
    with pytest.raises(KeyError):
        ledger.update_job("job\x00", state="running")


def test_job_error_and_metrics_keep_any_text(ledger):
    job = ledger.create_job("npo", ["forget-0001"])
    failed = ledger.update_job(job.id, state="failed", error="boom\x00" + "e" * 10_000, metrics={"note": "a\x00b"})
    assert failed.error.startswith("boom") and failed.metrics == {"note": "a\x00b"}
    assert ledger.get_job(job.id).metrics == {"note": "a\x00b"}


_OPENER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from gateway.ledger import Ledger
    Ledger.open({url!r}).close()
    print("ok", flush=True)
""")


def test_replicas_starting_together_migrate_once(url):
    code = _OPENER.format(root=str(ROOT), url=url)
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    ledger = Ledger.open(url)
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(text("SELECT value FROM ledger_counters WHERE name = 'index_version'")).scalar() == 0
    ledger.close()


def test_schema_downgrades_and_upgrades_again(url):
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    from gateway.ledger.migrate import MIGRATIONS_DIR

    ledger = Ledger.open(url)
    ledger.add_forget(*make_pair(1))
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    downgrade = EnvironmentContext(
        config, script, fn=lambda rev, ctx: script._downgrade_revs("base", rev), destination_rev="base"
    )
    with ledger.engine.begin() as conn, downgrade as env:
        env.configure(connection=conn, target_metadata=None)
        env.run_migrations()
    assert not {"forget_requests", "audit_events"} & set(inspect(ledger.engine).get_table_names())
    ledger.close()
    again = Ledger.open(url)  # a clean upgrade, triggers and functions included
    assert again.index_version() == 0
    again.add_forget(*make_pair(2))
    with pytest.raises(Exception, match="append-only"), again.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
    again.close()


def test_postgres_url_without_a_driver_name_works(postgres):
    url = postgres.create_database()
    assert url.startswith("postgresql://")
    for variant in (url, url.replace("postgresql://", "postgres://", 1)):
        ledger = Ledger.open(variant)
        assert ledger.engine.dialect.name == "postgresql"
        ledger.close()
