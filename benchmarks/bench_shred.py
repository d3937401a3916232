"""Sealing and crypto-shredding throughput of the ledger (SQLite on local disk, and PostgreSQL when its
binaries are installed), with the read cost of opening sealed content beside it.

    .venv/bin/python benchmarks/bench_shred.py [--requests 500]

Files `--requests` forget requests (a subject, two texts, two QA pairs, a literal each; guard artifacts
of the real format with placeholder vectors), reads them all back (every payload opened: what a job or a
probe run pays), then shreds them one by one as the retention policy does (each shred its own
transaction, followed by the purge of freed pages), and reports requests per second for each.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reporting import publish_report  # noqa: E402

from gateway.ledger import Ledger  # noqa: E402
from gateway.ledger.vault import Vault  # noqa: E402
from tests.gateway.ledger.conftest import PostgresCluster, make_pair, postgres_bindir  # noqa: E402


def entry(i: int):
    from gateway.guard.types import ForgetEntry

    base, artifacts = make_pair(i)
    texts = (f"Person Number{i} was born in Bergen in 1964.", f"Number{i} keeps bees on Skolegata {i}.")
    qa = ((f"Where does Number{i} live?", "Bergen"), (f"What does Number{i} keep?", "Bees."))
    return ForgetEntry(
        base.forget_id, base.subject, texts=texts, qa=qa, literals=base.literals, reason="gdpr"
    ), artifacts


def measure(url: str, n: int) -> dict[str, float]:
    ledger = Ledger.open(url, vault=Vault(Vault.new_key()))
    pairs = [entry(i) for i in range(n)]
    start = time.perf_counter()
    for e, a in pairs:
        ledger.add_forget(e, a)
    filed = time.perf_counter() - start
    start = time.perf_counter()
    for e, _ in pairs:
        assert ledger.get_forget(e.forget_id).subject == e.subject
    read = time.perf_counter() - start
    start = time.perf_counter()
    for e, _ in pairs:
        ledger.shred(e.forget_id, reason="bench", actor="bench")
    shredded = time.perf_counter() - start
    ledger.close()
    return {"file_per_s": n / filed, "open_per_s": n / read, "shred_per_s": n / shredded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    os.environ.setdefault("LETHE_MASTER_KEY", "YmVuY2gtb25seS1tYXN0ZXIta2V5LTMyLWJ5dGVzISE=")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(f"sqlite:///{Path(tmp) / 'ledger.db'}", args.requests)
        rows.append(("SQLite (WAL, synchronous=FULL, secure_delete)", result))
    bindir = postgres_bindir()
    if bindir is not None:
        cluster = PostgresCluster(bindir).start()
        try:
            rows.append(("PostgreSQL (local, throwaway)", measure(cluster.create_database(), args.requests)))
        finally:
            cluster.stop()
    lines = [
        "## Sealing and shredding throughput",
        "",
        f"{args.requests} forget requests filed, opened and shredded one at a time (one transaction each).",
        "",
        "| ledger | filed (sealed) per s | opened per s | shredded per s |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {r['file_per_s']:.0f} | {r['open_per_s']:.0f} | {r['shred_per_s']:.0f} |" for name, r in rows),
    ]
    publish_report("\n".join(lines), ROOT / "benchmarks" / "results" / "shred.md")


if __name__ == "__main__":
    main()
