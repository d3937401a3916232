"""The ledger on real SQLite: durability, monotonic versions, concurrency, migrations, append-only audit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from gateway.ledger import Ledger
from gateway.ledger.migrate import head_revision

from .conftest import make_pair

ROOT = Path(__file__).resolve().parents[3]


def test_migration_from_empty_reaches_head(ledger):
    tables = set(inspect(ledger.engine).get_table_names())
    assert {"forget_requests", "guard_artifacts", "ledger_counters", "audit_events", "unlearn_jobs",
            "weight_versions", "serving_pointer", "alembic_version"} <= tables
    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
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
    with pytest.raises(Exception):
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
    return subprocess.Popen([sys.executable, "-c", code, str(start), str(count)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


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
        with pytest.raises(Exception, match="append-only"):
            with ledger.engine.begin() as conn:
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
    with pytest.raises(Exception):
        ledger.add_version("v2", "/x", {}, parent_id="missing")  # foreign keys are on
    assert [e.details["previous"] for e in ledger.list_audit(kind="version.serving")] == [None, "base", "v1"]
