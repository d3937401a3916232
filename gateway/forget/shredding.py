"""When forgotten content is destroyed: the retention policy that crypto-shreds forget requests.

Shredding (`Ledger.shred`) deletes a request's sealed content and its wrapped data key; what stays is what
the guard enforces it with (keyed hashes, embeddings) and the counts, digest and audit trail a certificate
quotes. A request is due:
- policy `unlearned`: its status is `unlearned` (a job published weights without it), the serving version
  is that job's version or descends from it, and the latest leakage report measured the serving version
  and did not find it leaking;
- policy `retention`: `retention_days` after it was filed, whatever its status;
- policy `never`: only when an operator asks (`POST /v1/forget/{id}/shred`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.ledger import ForgetRecord, ForgetStatus, JobState, Ledger

log = logging.getLogger(__name__)
_PAGE = 500


def _records(ledger: Ledger) -> Iterator[ForgetRecord]:
    offset = 0
    while True:
        page = ledger.list_forgets(limit=_PAGE, offset=offset)
        yield from page
        if len(page) < _PAGE:
            return
        offset += _PAGE


def _serving_lineage(ledger: Ledger) -> list[str]:
    """The serving version and its ancestors, newest first."""
    lineage: list[str] = []
    version = ledger.serving_version()
    while version is not None and version.id not in lineage:
        lineage.append(version.id)
        version = ledger.get_version(version.parent_id) if version.parent_id else None
    return lineage


def _unlearned_versions(ledger: Ledger) -> dict[str, set[str]]:
    """forget id -> the versions published by jobs that unlearned it."""
    found: dict[str, set[str]] = {}
    offset = 0
    while True:
        jobs = ledger.list_jobs(state=JobState.PUBLISHED, limit=_PAGE, offset=offset)
        for job in jobs:
            if job.version_id:
                for forget_id in job.forget_ids:
                    found.setdefault(forget_id, set()).add(job.version_id)
        if len(jobs) < _PAGE:
            return found
        offset += _PAGE


def due_for_shredding(
    ledger: Ledger, policy: str, retention_days: float, report: dict[str, Any] | None, now: datetime | None = None
) -> list[str]:
    """Ids of the requests the policy says to shred now (see the module docstring)."""
    if policy == "never":
        return []
    now = now or datetime.now(UTC)
    pending = [r for r in _records(ledger) if r.shredded_at is None]
    if policy == "retention":
        horizon = now - timedelta(days=retention_days)
        return [r.id for r in pending if r.created_at <= horizon]
    if policy != "unlearned":
        raise ValueError(f"unknown shred policy {policy!r}")
    lineage = _serving_lineage(ledger)
    if not report or not lineage or report.get("version") != lineage[0]:
        return []  # no leakage measurement of the weights that serve now: nothing is proven clean
    leaking = set(report.get("leaking_forget_ids") or ())
    published = _unlearned_versions(ledger)
    return [
        r.id
        for r in pending
        if r.status is ForgetStatus.UNLEARNED and r.id not in leaking and published.get(r.id, set()) & set(lineage)
    ]


def shred(ledger: Ledger, forget_id: str, *, reason: str, actor: str, drop_semantic: bool) -> datetime | None:
    """Shred one request (and drop its semantic rows if asked). None: no such request."""
    at = ledger.shred(forget_id, reason=reason, actor=actor)
    if at is not None and drop_semantic:
        ledger.drop_semantic_rows(forget_id, actor=actor)
    return at


def shred_due(
    ledger: Ledger,
    *,
    policy: str,
    retention_days: float,
    drop_semantic: bool,
    report: dict[str, Any] | None,
) -> list[str]:
    """Shred every request the policy says is due; returns their ids (logged by id only)."""
    done = []
    for forget_id in due_for_shredding(ledger, policy, retention_days, report):
        shred(ledger, forget_id, reason=f"policy:{policy}", actor="retention", drop_semantic=drop_semantic)
        done.append(forget_id)
    if done:
        log.info("shredded the content of %d forget requests (policy %s)", len(done), policy)
    return done
