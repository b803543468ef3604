"""Alembic environment: one migration history for SQLite and PostgreSQL.

The URL comes from ``config.attributes["url"]`` (set by ``ledger.core.migrations``) or
from ``alembic -x url=...``. Migrations are written by hand (no autogenerate): they are
the schema's single source of truth.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import context

config = context.config


def _url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or use `vledger migrate`")
    return str(url)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
