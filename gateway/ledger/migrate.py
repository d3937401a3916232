"""Schema migrations: runs the Alembic scripts shipped in this package up to head, without an alembic.ini."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

if TYPE_CHECKING:  # alembic itself is imported only when a migration runs
    from alembic.runtime.migration import MigrationContext, RevisionStep

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def upgrade_to_head(connection: Connection) -> str | None:
    """Upgrade the schema on `connection` (inside its transaction) and return the revision reached."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory(str(MIGRATIONS_DIR))

    def upgrade(revision: str, context: MigrationContext) -> list[RevisionStep]:
        return script._upgrade_revs("head", revision)

    with EnvironmentContext(config, script, fn=upgrade, destination_rev="head") as env:
        env.configure(connection=connection, target_metadata=None)
        env.run_migrations()
        return env.get_context().get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
