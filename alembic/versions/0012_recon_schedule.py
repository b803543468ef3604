"""Reconciliation, part 3: scheduling by business date.

* ``recon_claims``: one row per (job, business date, scope) that a scheduler has taken
  on. The key is the table's primary key, so ``INSERT ... ON CONFLICT DO NOTHING``
  decides which of two racing workers runs a date. ``state`` is ``claimed`` while a
  worker runs it (since ``claimed_at_us``; a claim older than the lease may be retaken),
  ``done`` once its run row is written (``run_id``), ``failed`` when the job raised
  (``error``; retried while ``attempts`` is below the limit). Unlike ``recon_runs``
  these rows are work in progress and change state; the record of a run stays in
  ``recon_runs``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

STATES = "('claimed', 'done', 'failed')"


def upgrade() -> None:
    op.create_table(
        "recon_claims",
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("token", UUID, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_us", sa.BigInteger(), nullable=True),
        sa.Column("run_id", UUID, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("job", "business_date", "scope", name="pk_recon_claims"),
        sa.ForeignKeyConstraint(["run_id"], ["recon_runs.id"], name="fk_recon_claims_run_id"),
        sa.CheckConstraint(f"state IN {STATES}", name="ck_recon_claims_state"),
        sa.CheckConstraint("attempts >= 1", name="ck_recon_claims_attempts"),
        sa.CheckConstraint("length(business_date) = 10", name="ck_recon_claims_business_date"),
        sa.CheckConstraint(
            "(state = 'claimed') = (finished_at_us IS NULL)", name="ck_recon_claims_finished"
        ),
        sa.CheckConstraint("(state = 'done') = (run_id IS NOT NULL)", name="ck_recon_claims_run"),
        sa.CheckConstraint(
            "(state = 'failed') = (error IS NOT NULL)", name="ck_recon_claims_error"
        ),
        sa.CheckConstraint(
            "finished_at_us IS NULL OR finished_at_us >= claimed_at_us",
            name="ck_recon_claims_times",
        ),
    )


def downgrade() -> None:
    op.drop_table("recon_claims")
