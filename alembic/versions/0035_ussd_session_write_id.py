"""USSD sessions: a write id (:mod:`ledger.flows.ussd.repository`).

* ``ussd_sessions.write_id``: a random non-negative BIGINT that every write of the row
  replaces, in the same statement. A step computed from a row this process wrote is
  saved only while the stored row still holds the ``write_id`` this process gave it (a
  compare-and-set on one column instead of every column). Rows older than the column
  hold 0.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ussd_sessions") as batch:
        batch.add_column(
            sa.Column("write_id", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
        batch.create_check_constraint("ck_ussd_sessions_write_id", "write_id >= 0")


def downgrade() -> None:
    with op.batch_alter_table("ussd_sessions") as batch:
        batch.drop_constraint("ck_ussd_sessions_write_id", type_="check")
        batch.drop_column("write_id")
