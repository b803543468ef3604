"""Reconciliation runs say where they read: the primary or a streaming replica.

Three columns on ``recon_runs`` (see ``reconciliation.replica``):

* ``read_source``: ``primary`` or ``replica`` (every run before this revision read the
  primary: the default);
* ``read_lsn``: the WAL position the run's reads include everything up to: on a replica
  its ``pg_last_wal_replay_lsn()`` read just before the job began, on the PostgreSQL
  primary its insert position then; NULL on SQLite and for older runs;
* ``close_lsn``: the primary's position the replica had to pass for this run (read once
  the business date had closed); NULL when no replica was asked.

Text in PostgreSQL's ``X/Y`` form (hex), on both engines. Adding a column rewrites no
row, so the rows stay as they were (the table refuses UPDATE and DELETE).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LSN_TEXT_MAX = 17
"""``FFFFFFFF/FFFFFFFF``."""
CHECKS = {
    "ck_recon_runs_read_source": "read_source IN ('primary', 'replica')",
    "ck_recon_runs_replica_lsn": "read_source = 'primary' OR read_lsn IS NOT NULL",
}


def upgrade() -> None:
    op.add_column(
        "recon_runs",
        sa.Column("read_source", sa.String(8), nullable=False, server_default="primary"),
    )
    op.add_column("recon_runs", sa.Column("read_lsn", sa.String(LSN_TEXT_MAX), nullable=True))
    op.add_column("recon_runs", sa.Column("close_lsn", sa.String(LSN_TEXT_MAX), nullable=True))
    if op.get_context().dialect.name == "postgresql":  # SQLite cannot add a CHECK to a table
        for name, condition in CHECKS.items():
            op.create_check_constraint(name, "recon_runs", condition)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for name in CHECKS:
            op.drop_constraint(name, "recon_runs", type_="check")
    for column in ("close_lsn", "read_lsn", "read_source"):  # SQLite drops them in place
        op.drop_column("recon_runs", column)
