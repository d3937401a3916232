"""Ledger test fixtures: a fresh ledger per test on SQLite and on a throwaway PostgreSQL cluster, and
artifacts that need no embedding model."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateway.guard.artifacts import EntryArtifacts, hashed_keys
from gateway.guard.keyed import PROCESS_HASHER
from gateway.guard.types import ForgetEntry
from gateway.ledger import Ledger
from tests.support.lethe_server import free_port


def make_pair(i: int, dim: int = 8) -> tuple[ForgetEntry, EntryArtifacts]:
    fid = f"forget-{i:04d}"
    entry = ForgetEntry(
        fid,
        f"Person Number{i}",
        qa=((f"Where does Number{i} live?", "Bergen"),),
        literals=(f"+47 900 00 {i:03d}",),
        reason="gdpr",
    )
    rng = np.random.default_rng(i)
    vec = rng.standard_normal((1, dim)).astype(np.float32)
    vec /= np.linalg.norm(vec)
    artifacts = EntryArtifacts(
        forget_id=fid,
        action="block",
        model_name="test-model",
        dim=dim,
        ngram_n=5,
        key_id=PROCESS_HASHER.key_id,
        literal_keys=hashed_keys([("digits", f"4790000{i:03d}")], PROCESS_HASHER),
        ngram_hashes=np.array([i, i + 1], dtype="<u8").tobytes(),
        output_vectors=vec.tobytes(),
        output_anchors=((PROCESS_HASHER("bergen"),),),
        question_vectors=vec.tobytes(),
        subject_terms=(PROCESS_HASHER(f"number{i}"),),
        full_name=tuple(PROCESS_HASHER.words({"person", f"number{i}"})),
        attribute_terms=(PROCESS_HASHER("live"),),
    )
    return entry, artifacts


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl live: PATH first, else the newest Debian/Ubuntu server package."""
    on_path = shutil.which("initdb") and shutil.which("pg_ctl")
    if on_path:
        return Path(shutil.which("initdb")).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PostgresCluster:
    """A private PostgreSQL server in a temp dir on a free port, trust auth on 127.0.0.1 only.

    PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` system user
    (created by the server package) and its commands run through `runuser`.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="lethe-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "lethe"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, text=True, timeout=120, cwd=self.root)

    def start(self) -> PostgresCluster:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=50"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        # Plain postgresql:// as an operator would write it; the ledger picks the installed driver.
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"ledger_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed: scripts/setup.sh installs "
            "them (apt-get install postgresql), CI has them"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("the PostgreSQL driver is missing: pip install -e '.[postgres]' (scripts/setup.sh does)")
    cluster = PostgresCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """A ledger URL of an empty store, once per backend: every ledger test runs on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'ledger.db'}"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def ledger(url):
    ledger = Ledger.open(url)
    yield ledger
    ledger.close()
