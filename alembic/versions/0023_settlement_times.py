"""Reconciliation, ageing: how long each provider takes to settle.

* ``recon_settlement_times``: per provider (the name in ``provider_clearing:<P>``), the
  time an item may stay open in its clearing account before the ageing job calls it a
  break (``settlement_time_s``, whole seconds). An item open no longer than that is in
  transit: shown, not a break; exactly at the time it is still in transit. The row
  ``*`` is the default for a provider without a row of its own. Owned by
  ``reconciliation.ageing``; an operator changes a row with
  ``reconciliation.ageing.set_settlement_time``.

Seeded defaults per kind of provider: mobile money (MPESA, AIRTEL, MTN, TKASH, HALOPESA,
TIGOPESA) settles the same day: one day; banks (BANK, KCB, EQUITY, COOP, NCBA, STANBIC,
ABSA) clear in two business days, over a weekend four calendar days; the default one day.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DAY_S = 86_400
SETTLEMENT_TIME_MAX_S = 90 * DAY_S
MOBILE_MONEY = ("MPESA", "AIRTEL", "MTN", "TKASH", "HALOPESA", "TIGOPESA")
BANKS = ("BANK", "KCB", "EQUITY", "COOP", "NCBA", "STANBIC", "ABSA")
SEED: tuple[tuple[str, int, str], ...] = (
    ("*", DAY_S, "default: a provider without a row of its own"),
    *((p, DAY_S, "mobile money: settles the same day") for p in MOBILE_MONEY),
    *((p, 4 * DAY_S, "bank: two business days, four calendar days over a weekend") for p in BANKS),
)


def upgrade() -> None:
    table = op.create_table(
        "recon_settlement_times",
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("settlement_time_s", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("provider", name="pk_recon_settlement_times"),
        sa.CheckConstraint(
            f"settlement_time_s >= 0 AND settlement_time_s <= {SETTLEMENT_TIME_MAX_S}",
            name="ck_recon_settlement_times_settlement_time_s",
        ),
    )
    op.bulk_insert(
        table,
        [{"provider": p, "settlement_time_s": s, "note": n} for p, s, n in SEED],
    )


def downgrade() -> None:
    op.drop_table("recon_settlement_times")
