"""Initial ledger schema: forget requests, guard artifacts, counters, audit, jobs, weight versions."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

_AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "forget_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subject", sa.String(512), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enforced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("index_version", sa.BigInteger, nullable=False, unique=True),
    )
    op.create_index("ix_forget_requests_status", "forget_requests", ["status"])
    op.create_table(
        "guard_artifacts",
        sa.Column("forget_id", sa.String(36), sa.ForeignKey("forget_requests.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("format", sa.Integer, nullable=False),
        sa.Column("terms", sa.JSON, nullable=False),
        sa.Column("ngram_hashes", sa.LargeBinary, nullable=False),
        sa.Column("output_vectors", sa.LargeBinary, nullable=False),
        sa.Column("question_vectors", sa.LargeBinary, nullable=False),
    )
    counters = op.create_table(
        "ledger_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(counters, [{"name": "index_version", "value": 0}])
    op.create_table(
        "audit_events",
        sa.Column("id", _AutoId, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_events_subject", "audit_events", ["subject_id"])
    op.create_table(
        "unlearn_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("forget_ids", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("resources", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("loss", sa.Float, nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("version_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_unlearn_jobs_state", "unlearn_jobs", ["state"])
    op.create_table(
        "weight_versions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("parent_id", sa.String(64), sa.ForeignKey("weight_versions.id"), nullable=True),
        sa.Column("method", sa.String(64), nullable=True),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "serving_pointer",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("version_id", sa.String(64), sa.ForeignKey("weight_versions.id"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The audit trail is append-only in the database itself, not only in the API.
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'audit_events is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    for table in ("serving_pointer", "weight_versions", "unlearn_jobs", "audit_events", "ledger_counters",
                  "guard_artifacts", "forget_requests"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
