"""Forget requests in the authority process: wire payload -> ForgetEntry -> ledger + index, and back."""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway.observability import metrics
from gateway.forget.certificates import CertificateSigner, build_certificate
from gateway.guard.types import ForgetEntry
from gateway.forget.sync import IndexAuthority
from gateway.ledger import ForgetRecord, Ledger


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
    payload = record.payload or {}
    return {
        "id": record.id,
        "status": record.status,
        "subject": record.subject,
        "reason": record.reason,
        "action": record.action,
        "index_version": record.index_version,
        "created_at": record.created_at.isoformat(),
        "enforced_at": record.enforced_at.isoformat() if record.enforced_at else None,
        "counts": {key: len(payload.get(key) or ()) for key in ("texts", "qa", "literals")},
    }


class ForgetRecords:
    """The authority's view of the ledger: add (through the index authority), get, list."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        metrics.set_forget_index(ledger.index_version(), ledger.count_forgets())

    @classmethod
    def open(cls, url: str) -> "ForgetRecords":
        return cls(Ledger.open(url))

    async def add(self, authority: IndexAuthority, payload: dict[str, Any]) -> dict[str, Any]:
        received = time.perf_counter()
        entry = entry_from_payload(payload)
        result = await authority.add(entry)
        record: ForgetRecord = result["record"]
        metrics.record_forget_enforced(time.perf_counter() - received, record.index_version, authority.entries)
        # The moment every live ingress replica enforced it (the ledger's enforced_at is the commit, just
        # before): what a deletion certificate states.
        self.ledger.append_audit("forget.enforced", actor="authority", subject_id=record.id, details={
            "enforced_at": result["enforced_at"], "index_version": record.index_version,
            "replicas_acknowledged": len(result.get("acked") or ()),
        })
        if result["evicted"]:
            self.ledger.append_audit(
                "guard.replicas_evicted", actor="authority", subject_id=record.id,
                details={"replicas": result["evicted"], "index_version": record.index_version},
            )
        return {
            "id": record.id,
            "status": record.status,
            "index_version": record.index_version,
            "enforced_at": result["enforced_at"],
        }

    def get(self, forget_id: str) -> dict[str, Any] | None:
        record = self.ledger.get_forget(forget_id)
        return status_fields(record) if record is not None else None

    def list(self, status: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        return [status_fields(r) for r in self.ledger.list_forgets(status=status, limit=limit, offset=offset)]

    def audit(self, kind: str | None, subject_id: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        """Audit events, newest first."""
        return [e.to_dict() for e in self.ledger.list_audit(kind=kind, subject_id=subject_id, limit=limit,
                                                            offset=offset, newest_first=True)]

    def certificate(self, signer: CertificateSigner, forget_id: str, *, leakage: dict[str, Any] | None = None,
                    serving: Any = None) -> dict[str, Any] | None:
        """The signed deletion certificate of one request, or None if there is no such request."""
        body = build_certificate(self.ledger, forget_id, leakage=leakage, serving=serving)
        if body is None:
            return None
        self.ledger.append_audit("forget.certificate_issued", actor="operator", subject_id=forget_id,
                                 details={"key_id": signer.key_id})
        return signer.sign(body)
