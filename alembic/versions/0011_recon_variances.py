"""Reconciliation, part 3: agents' cash counts and the variances they propose.

* ``recon_cash_counts``: one row per cash count an agent handed in (the ``cash-count``
  job): when it was counted, the cash counted (minor units, and the count per
  denomination as canonical JSON), the cash-on-hand the ledger expected then, the
  comment and the SHA-256 of the file. One count per agent and moment; history: never
  updated or deleted.
* ``recon_variances``: a count that was over or short proposes a variance transfer; an
  operator approves it (the transfer is posted, ``transfer_id``) or rejects it (with a
  reason). ``proposed -> approved | rejected``; a decided row never changes again (a
  trigger refuses it) and no row is ever deleted.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recon_cash_counts",
        sa.Column("id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("counted_at_us", sa.BigInteger(), nullable=False),
        sa.Column("counted_minor", sa.BigInteger(), nullable=False),
        sa.Column("expected_minor", sa.BigInteger(), nullable=False),
        sa.Column("denominations", sa.Text(), nullable=False),
        sa.Column("comment", sa.String(500), nullable=True),
        sa.Column("input_sha256", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recon_cash_counts"),
        sa.UniqueConstraint("agent_id", "counted_at_us", name="uq_recon_cash_counts_agent_at"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_recon_cash_counts_agent_id_parties"
        ),
        sa.CheckConstraint("length(currency) = 3", name="ck_recon_cash_counts_currency_length"),
        sa.CheckConstraint("counted_minor >= 0", name="ck_recon_cash_counts_counted_not_negative"),
        sa.CheckConstraint("length(input_sha256) = 64", name="ck_recon_cash_counts_input_sha256"),
        sa.CheckConstraint(
            "comment IS NULL OR length(comment) > 0", name="ck_recon_cash_counts_comment"
        ),
        sa.CheckConstraint(
            "counted_minor = expected_minor OR comment IS NOT NULL",
            name="ck_recon_cash_counts_variance_has_comment",
        ),
    )
    op.create_table(
        "recon_variances",
        sa.Column("id", UUID, nullable=False),
        sa.Column("count_id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("transfer_id", UUID, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("reject_reason", sa.String(500), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("decided_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recon_variances"),
        sa.UniqueConstraint("count_id", name="uq_recon_variances_count_id"),
        sa.UniqueConstraint("transfer_id", name="uq_recon_variances_transfer_id"),
        sa.ForeignKeyConstraint(
            ["count_id"], ["recon_cash_counts.id"], name="fk_recon_variances_count_id_counts"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_recon_variances_agent_id_parties"
        ),
        sa.CheckConstraint(
            "state IN ('proposed', 'approved', 'rejected')", name="ck_recon_variances_state"
        ),
        sa.CheckConstraint("direction IN ('over', 'short')", name="ck_recon_variances_direction"),
        sa.CheckConstraint("amount_minor > 0", name="ck_recon_variances_amount_positive"),
        sa.CheckConstraint("length(currency) = 3", name="ck_recon_variances_currency_length"),
        sa.CheckConstraint("length(comment) > 0", name="ck_recon_variances_comment"),
        sa.CheckConstraint(
            "(state = 'approved') = (transfer_id IS NOT NULL)",
            name="ck_recon_variances_approved_has_transfer",
        ),
        sa.CheckConstraint(
            "(state = 'proposed') = (decided_at_us IS NULL)",
            name="ck_recon_variances_decided_at",
        ),
        sa.CheckConstraint(
            "(state = 'proposed') = (decided_by IS NULL)", name="ck_recon_variances_decided_by"
        ),
        sa.CheckConstraint(
            "(state = 'rejected') = (reject_reason IS NOT NULL)",
            name="ck_recon_variances_rejected_has_reason",
        ),
    )
    op.create_index(
        "ix_recon_variances_state_created", "recon_variances", ["state", "created_at_us", "id"]
    )
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE TRIGGER recon_cash_counts_immutable BEFORE UPDATE OR DELETE"
            " ON recon_cash_counts FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER recon_variances_no_delete BEFORE DELETE ON recon_variances"
            " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER recon_variances_decided BEFORE UPDATE ON recon_variances"
            " FOR EACH ROW WHEN (OLD.state <> 'proposed')"
            " EXECUTE FUNCTION vledger_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER recon_cash_counts_no_{action.lower()} BEFORE {action}"
            f" ON recon_cash_counts BEGIN SELECT RAISE(ABORT, '{action} on recon_cash_counts"
            " refused: these rows are immutable'); END"
        )
    op.execute(
        "CREATE TRIGGER recon_variances_no_delete BEFORE DELETE ON recon_variances"
        " BEGIN SELECT RAISE(ABORT, 'DELETE on recon_variances refused: these rows are"
        " kept'); END"
    )
    op.execute(
        "CREATE TRIGGER recon_variances_decided BEFORE UPDATE ON recon_variances"
        " WHEN OLD.state <> 'proposed' BEGIN SELECT RAISE(ABORT, 'UPDATE on recon_variances"
        " refused: a decided variance never changes'); END"
    )


def downgrade() -> None:
    op.drop_index("ix_recon_variances_state_created", table_name="recon_variances")
    op.drop_table("recon_variances")
    op.drop_table("recon_cash_counts")
