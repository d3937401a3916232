"""Forgotten content sealed per request (forget_payloads), wrapped deployment secrets, digests, shredding."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_vault"
down_revision = "0002_api_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forget_payloads",
        sa.Column("forget_id", sa.String(36), sa.ForeignKey("forget_requests.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )  # fmt: skip
    op.create_table(
        "ledger_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
    )
    op.add_column("forget_requests", sa.Column("content_digest", sa.String(96), nullable=True))
    op.add_column("forget_requests", sa.Column("shredded_at", sa.DateTime(timezone=True), nullable=True))
    # Plaintext filed before 0003 is sealed by Ledger.open (it needs the master key, which migrations do
    # not have); artifacts of format 1 are rebuilt from it by the forget authority at startup.


def downgrade() -> None:
    with op.batch_alter_table("forget_requests") as batch:
        batch.drop_column("shredded_at")
        batch.drop_column("content_digest")
    op.drop_table("ledger_secrets")
    op.drop_table("forget_payloads")
