"""The durable ledger of forget requests, guard artifacts, audit events, unlearning jobs and weight versions."""

from gateway.ledger.records import AuditEvent, ForgetRecord, IndexSnapshot, JobRecord, VersionRecord
from gateway.ledger.states import ForgetStatus, JobState
from gateway.ledger.store import Ledger, default_url

__all__ = [
    "AuditEvent",
    "ForgetRecord",
    "ForgetStatus",
    "IndexSnapshot",
    "JobRecord",
    "JobState",
    "Ledger",
    "VersionRecord",
    "default_url",
]
