"""The durable ledger of forget requests, guard artifacts, audit events, unlearning jobs and weight versions."""

from gateway.ledger.records import (
    FORGET_STATUSES, JOB_STATES, AuditEvent, ForgetRecord, IndexSnapshot, JobRecord, VersionRecord,
)
from gateway.ledger.store import Ledger, default_url

__all__ = [
    "FORGET_STATUSES", "JOB_STATES", "AuditEvent", "ForgetRecord", "IndexSnapshot", "JobRecord", "Ledger",
    "VersionRecord", "default_url",
]
