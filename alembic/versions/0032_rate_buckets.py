"""The per-key rate limit lives in the database, shared by every API process.

* ``rate_buckets``: one row per API key that made a request, ``tat_us`` its bucket's
  theoretical arrival time (GCRA), UTC microseconds since 1970
  (:mod:`ledger.flows.rate_buckets` owns it and says how it is read). Rows change with
  every request; nothing else refers to them, so losing them only refills buckets.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("tat_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_rate_buckets"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.key_id"], name="fk_rate_buckets_key_id_api_keys"
        ),
        sa.CheckConstraint("tat_us > 0", name="ck_rate_buckets_tat_positive"),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
