"""Agents' commission payouts: one payout per (month, currency), one line per agent paid.

* ``commission_payouts``: a month's (``YYYY-MM``, UTC) payout in a currency, its id
  derived from the two (unique as well), where it paid (``float`` or ``provider`` with
  the provider's name), how many agents and how much (minor units), who asked (an
  operator principal, or NULL from the command line) and when.
* ``commission_payout_lines``: what the payout moved for one agent (``earned_minor``:
  commission credited in the month less what was taken back in it; ``amount_minor``:
  what was paid, never more), from the agent's commission account to the destination
  account, by the core transfer ``transfer_id`` (unique: one line per transfer).

Lines are written once and never changed; a payout's row is written when it is claimed
and its totals once, in the same transaction, when its lines are written. Times are
microseconds since 1970 UTC.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")


def upgrade() -> None:
    op.create_table(
        "commission_payouts",
        sa.Column("id", UUID, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("destination", sa.String(8), nullable=False),
        sa.Column("provider", sa.String(32), nullable=True),
        sa.Column("lines_count", sa.Integer(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("made_by", UUID, nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_commission_payouts"),
        sa.UniqueConstraint("month", "currency", name="uq_commission_payouts_month_currency"),
        sa.CheckConstraint(
            "destination IN ('float', 'provider')", name="ck_commission_payouts_destination"
        ),
        sa.CheckConstraint(
            "(destination = 'provider') = (provider IS NOT NULL)",
            name="ck_commission_payouts_provider",
        ),
        sa.CheckConstraint("length(month) = 7", name="ck_commission_payouts_month_length"),
        sa.CheckConstraint("length(currency) = 3", name="ck_commission_payouts_currency_length"),
        sa.CheckConstraint(
            "lines_count >= 0 AND total_minor >= 0",
            name="ck_commission_payouts_totals_not_negative",
        ),
    )
    op.create_table(
        "commission_payout_lines",
        sa.Column("id", UUID, nullable=False),
        sa.Column("payout_id", UUID, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("commission_account_id", UUID, nullable=False),
        sa.Column("destination_account_id", UUID, nullable=False),
        sa.Column("earned_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", UUID, nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_commission_payout_lines"),
        sa.UniqueConstraint(
            "payout_id", "agent_id", name="uq_commission_payout_lines_payout_id_agent_id"
        ),
        sa.UniqueConstraint("transfer_id", name="uq_commission_payout_lines_transfer_id"),
        sa.ForeignKeyConstraint(
            ["payout_id"],
            ["commission_payouts.id"],
            name="fk_commission_payout_lines_payout_id_commission_payouts",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_commission_payout_lines_agent_id_parties"
        ),
        sa.CheckConstraint(
            "amount_minor > 0 AND amount_minor <= earned_minor",
            name="ck_commission_payout_lines_amount",
        ),
    )
    # an agent's paid months, newest first (its commission read)
    op.create_index(
        "ix_commission_payout_lines_agent_id_month",
        "commission_payout_lines",
        ["agent_id", "month"],
    )


def downgrade() -> None:
    op.drop_index("ix_commission_payout_lines_agent_id_month", table_name="commission_payout_lines")
    op.drop_table("commission_payout_lines")
    op.drop_table("commission_payouts")
