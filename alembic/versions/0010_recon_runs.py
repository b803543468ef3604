"""Reconciliation, part 2: runs are records.

* ``recon_runs``: one row per run of a reconciliation job: the job, the business date
  and scope it reconciled, the version of the rules it applied, the SHA-256 of its input,
  its counts and status, and its JSON summary. Rows are never updated or deleted; a
  run again is a new row (``attempt`` counts them per job, date and scope).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

STATUSES = "('ok', 'breaks')"


def upgrade() -> None:
    op.create_table(
        "recon_runs",
        sa.Column("id", UUID, nullable=False),
        sa.Column("job", sa.String(32), nullable=False),
        sa.Column("business_date", sa.String(10), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.Column("breaks", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("started_at_us", sa.BigInteger(), nullable=False),
        sa.Column("finished_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recon_runs"),
        sa.UniqueConstraint(
            "job", "business_date", "scope", "attempt", name="uq_recon_runs_job_date_scope"
        ),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_recon_runs_status"),
        sa.CheckConstraint("attempt >= 1", name="ck_recon_runs_attempt"),
        sa.CheckConstraint("checked >= 0 AND breaks >= 0", name="ck_recon_runs_counts"),
        sa.CheckConstraint("(status = 'ok') = (breaks = 0)", name="ck_recon_runs_status_breaks"),
        sa.CheckConstraint("length(input_sha256) = 64", name="ck_recon_runs_input_sha256"),
        sa.CheckConstraint("length(business_date) = 10", name="ck_recon_runs_business_date"),
        sa.CheckConstraint("finished_at_us >= started_at_us", name="ck_recon_runs_times"),
    )
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE TRIGGER recon_runs_immutable BEFORE UPDATE OR DELETE ON recon_runs"
            " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER recon_runs_no_{action.lower()} BEFORE {action} ON recon_runs"
            f" BEGIN SELECT RAISE(ABORT, '{action} on recon_runs refused:"
            " these rows are immutable'); END"
        )


def downgrade() -> None:
    op.drop_table("recon_runs")
