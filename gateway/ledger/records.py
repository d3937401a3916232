"""Frozen records the ledger returns (their statuses and states are the enums of `gateway.ledger.states`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.guard.artifacts import EntryArtifacts
from gateway.guard.types import Action, ForgetEntry
from gateway.ledger.states import ForgetStatus, JobState


@dataclass(frozen=True)
class ForgetRecord:
    id: str
    subject: str | None
    reason: str
    action: Action
    payload: dict[str, Any]  # the request as filed: texts, qa, literals (opened from the vault; {} once shredded)
    status: ForgetStatus
    created_at: datetime
    enforced_at: datetime | None
    index_version: int
    counts: dict[str, int] = field(default_factory=dict)  # how many texts, qa pairs, literals were filed
    content_digest: str | None = None  # HMAC-SHA256 of the content under the filer's salt
    shredded_at: datetime | None = None  # when its content was destroyed (subject and payload then empty)
    has_subject: bool = False  # filed with a subject (known after shredding too)

    def entry(self) -> ForgetEntry:
        p = self.payload
        return ForgetEntry(
            forget_id=self.id,
            subject=self.subject,
            texts=tuple(p.get("texts", ())),
            qa=tuple((q, a) for q, a in p.get("qa", ())),
            literals=tuple(p.get("literals", ())),
            action=self.action,
            reason=self.reason,
        )

    def body(self) -> dict[str, Any]:
        """The request as a `POST /v1/forget` body (subject, texts, qa pairs, literals): what unlearning
        jobs and leakage probes learn from and what a certificate's content digest covers."""
        payload = self.payload or {}
        return {
            "subject": self.subject,
            "texts": list(payload.get("texts") or ()),
            "qa": [{"question": q, "answer": a} for q, a in payload.get("qa") or ()],
            "literals": list(payload.get("literals") or ()),
        }


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    kind: str
    subject_id: str | None
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "kind": self.kind,
            "subject_id": self.subject_id,
            "details": self.details,
        }


@dataclass(frozen=True)
class JobRecord:
    id: str
    method: str
    forget_ids: tuple[str, ...]
    params: dict[str, Any]
    resources: dict[str, Any]
    state: JobState
    progress: float
    step: int
    loss: float | None
    metrics: dict[str, Any]
    version_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class VersionRecord:
    id: str
    parent_id: str | None
    method: str | None
    manifest: dict[str, Any]
    path: str
    created_at: datetime
    serving: bool


@dataclass(frozen=True)
class IndexSnapshot:
    """Everything a guard replica needs to rebuild its index, read in one transaction."""

    version: int
    artifacts: tuple[EntryArtifacts, ...]  # ordered by the index version they arrived with
