"""Runs the Alembic history (``alembic/`` beside the package) on a ledger database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command

if TYPE_CHECKING:
    from ledger.core.tx import Tx

MIGRATION_LOCK_KEY = 0x766C6564676572  # "vledger": one migrator at a time per database


def script_location() -> Path:
    """The ``alembic/`` folder: beside the package in a checkout or an editable install."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "alembic", here.parent / "_alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the alembic/ migration folder was not found beside ledger/")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def revision_in(tx: Tx) -> str | None:
    """The revision the database of ``tx`` is at (``alembic_version``), or None when the
    table is empty; a database never migrated raises the driver's error."""
    row = tx.one("SELECT version_num FROM alembic_version")
    return None if row is None else str(row[0])


def _run(url: str, action: str, revision: str) -> None:
    config = _config()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
            config.attributes["connection"] = conn
            try:
                if action == "upgrade":
                    command.upgrade(config, revision)
                else:
                    command.downgrade(config, revision)
                conn.commit()
            finally:
                if conn.dialect.name == "postgresql":
                    conn.rollback()
                    conn.execute(
                        sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                    conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` forward to ``revision``."""
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> None:
    """Take the database at ``url`` back to ``revision`` (``base`` drops everything)."""
    _run(url, "downgrade", revision)
