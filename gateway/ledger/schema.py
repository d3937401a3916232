"""The ledger's tables (SQLAlchemy Core), written once for SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_AutoId = BigInteger().with_variant(Integer(), "sqlite")

forget_requests = Table(
    "forget_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(512), nullable=True),
    Column("reason", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("enforced_at", DateTime(timezone=True), nullable=True),
    Column("index_version", BigInteger, nullable=False, unique=True),
    # The API key that filed it (gateway.ledger.keys): a requester key reads only its own requests.
    Column("created_by", String(64), nullable=True),
    # Since 0003 `subject` stays NULL and `payload` holds only counts: the content is in forget_payloads.
    Column("content_digest", String(96), nullable=True),  # HMAC-SHA256 under a salt only the filer has
    Column("shredded_at", DateTime(timezone=True), nullable=True),
    Index("ix_forget_requests_status", "status"),
)

# The one place a forget request's content lives: sealed with its own data key, wrapped by the master key
# (gateway.ledger.vault). Shredding deletes the row; the guard keeps its hashed artifacts.
forget_payloads = Table(
    "forget_payloads",
    metadata,
    Column("forget_id", String(36), ForeignKey("forget_requests.id", ondelete="CASCADE"), primary_key=True),
    Column("key_id", String(32), nullable=False),  # the master key that wraps the data key
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
)

# Deployment secrets wrapped by the master key (row "guard_term_key": the guard's hash key).
ledger_secrets = Table(
    "ledger_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
)

guard_artifacts = Table(
    "guard_artifacts",
    metadata,
    Column("forget_id", String(36), ForeignKey("forget_requests.id", ondelete="CASCADE"), primary_key=True),
    Column("model_name", String(128), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("format", Integer, nullable=False),
    Column("terms", JSON, nullable=False),  # literal keys, anchors, subject and attribute terms
    Column("ngram_hashes", LargeBinary, nullable=False),
    Column("output_vectors", LargeBinary, nullable=False),
    Column("question_vectors", LargeBinary, nullable=False),
)

# Monotonic counters, bumped in the transaction that uses them (row "index_version").
ledger_counters = Table(
    "ledger_counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", _AutoId, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("subject_id", String(64), nullable=True),
    Column("details", JSON, nullable=False),
    Index("ix_audit_events_subject", "subject_id"),
)

unlearn_jobs = Table(
    "unlearn_jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("method", String(64), nullable=False),
    Column("forget_ids", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("progress", Float, nullable=False),
    Column("step", Integer, nullable=False),
    Column("loss", Float, nullable=True),
    Column("metrics", JSON, nullable=False),
    Column("version_id", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_unlearn_jobs_state", "state"),
)

weight_versions = Table(
    "weight_versions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("parent_id", String(64), ForeignKey("weight_versions.id"), nullable=True),
    Column("method", String(64), nullable=True),
    Column("manifest", JSON, nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row: which weight version serves. A pointer, so a promotion is one atomic update.
serving_pointer = Table(
    "serving_pointer",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("version_id", String(64), ForeignKey("weight_versions.id"), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# API keys (gateway.ledger.keys): only a SHA-256 of each key is stored; the key is shown once.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(24), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)
