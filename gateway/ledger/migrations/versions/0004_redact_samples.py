"""Job metrics and version manifests written before 0004 kept text samples (forget prompts and model
outputs); keep only their scores (unlearn_jobs.evaluate.redact_metrics)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from unlearn_jobs.evaluate import redact_metrics

revision = "0004_redact_samples"
down_revision = "0003_vault"
branch_labels = None
depends_on = None


def _redacted(value: object) -> object | None:
    """The redacted value, or None when there was nothing to redact."""
    raw = json.loads(value) if isinstance(value, str) else value
    clean = redact_metrics(raw)
    return None if clean == raw else clean


def upgrade() -> None:
    conn = op.get_bind()
    for table, key, column in (("unlearn_jobs", "id", "metrics"), ("weight_versions", "id", "manifest")):
        t = sa.table(table, sa.column(key, sa.String), sa.column(column, sa.JSON))
        for row_id, value in conn.execute(sa.select(t.c[key], t.c[column])).all():
            clean = _redacted(value)
            if clean is not None:
                conn.execute(sa.update(t).where(t.c[key] == row_id).values({column: clean}))


def downgrade() -> None:
    pass  # the text is gone for good, as intended
