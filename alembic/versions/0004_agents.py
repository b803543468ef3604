"""Village flows, part 3: cash-in, cash-out, float, KYC limits.

* ``kyc_tiers``: the limits of each KYC tier in each currency (minor units): the most one
  cash-in or cash-out may move, the most a villager may cash in (and, apart, cash out) in
  one UTC day, and the most a wallet may hold. Seeded below for KES, UGX and TZS (the
  figures are in :data:`TIERS`); an operator changes or adds rows with
  :func:`ledger.flows.limits.set_tier_limits`. State rows: updated in place.
* ``kyc_usage``: what a villager cashed in and cashed out on one UTC day (minor units),
  the row that is locked to keep the daily limit under concurrency. State rows.
* ``agent_float``: an agent's low-float threshold (and whether its ``float.low`` event is
  armed) and optional guarantee cap. State rows.
* ``float_topups``, ``float_transfers``, ``cash_ins``: each operation once, keyed by the
  client's id (its idempotency key), with the request it answered. History: never
  updated or deleted.
* ``cash_outs``: two-phase cash-outs (``requested`` -> ``completed`` | ``cancelled`` |
  ``expired``) and one-shot ones (offline, born ``completed``). State rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

CASH_OUT_STATES = ("requested", "completed", "cancelled", "expired")
CASH_OUT_MODES = ("two_phase", "one_shot")

# (currency, tier, per transaction, per UTC day and direction, wallet balance): minor units.
TIERS: tuple[tuple[str, str, int, int, int], ...] = (
    # KES (2 digits): 5,000 / 10,000 / 20,000; 70,000 / 150,000 / 300,000;
    # 250,000 / 500,000 / 1,000,000 shillings.
    ("KES", "tier0", 500_000, 1_000_000, 2_000_000),
    ("KES", "tier1", 7_000_000, 15_000_000, 30_000_000),
    ("KES", "tier2", 25_000_000, 50_000_000, 100_000_000),
    # UGX (0 digits)
    ("UGX", "tier0", 150_000, 300_000, 600_000),
    ("UGX", "tier1", 2_000_000, 4_000_000, 8_000_000),
    ("UGX", "tier2", 7_000_000, 15_000_000, 30_000_000),
    # TZS (2 digits): 100,000 / 200,000 / 400,000; 1.5m / 3m / 6m; 5m / 10m / 20m shillings.
    ("TZS", "tier0", 10_000_000, 20_000_000, 40_000_000),
    ("TZS", "tier1", 150_000_000, 300_000_000, 600_000_000),
    ("TZS", "tier2", 500_000_000, 1_000_000_000, 2_000_000_000),
)

SEEDED_AT_US = 1_795_824_000_000_000  # 2026-11-28T00:00:00Z


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    tiers = op.create_table(
        "kyc_tiers",
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("per_transaction_max_minor", sa.BigInteger(), nullable=False),
        sa.Column("daily_max_minor", sa.BigInteger(), nullable=False),
        sa.Column("balance_max_minor", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("currency", "tier", name="pk_kyc_tiers"),
        sa.CheckConstraint("length(currency) = 3", name="ck_kyc_tiers_currency_length"),
        sa.CheckConstraint(
            "per_transaction_max_minor > 0 AND daily_max_minor > 0 AND balance_max_minor > 0",
            name="ck_kyc_tiers_limits_positive",
        ),
        sa.CheckConstraint(
            "per_transaction_max_minor <= daily_max_minor",
            name="ck_kyc_tiers_per_transaction_within_daily",
        ),
    )
    op.bulk_insert(
        tiers,
        [
            {
                "currency": currency,
                "tier": tier,
                "per_transaction_max_minor": per_transaction,
                "daily_max_minor": daily,
                "balance_max_minor": balance,
                "updated_at_us": SEEDED_AT_US,
            }
            for currency, tier, per_transaction, daily, balance in TIERS
        ],
    )
    op.create_table(
        "kyc_usage",
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("utc_day", sa.Integer(), nullable=False),
        sa.Column("cash_in_minor", sa.BigInteger(), nullable=False),
        sa.Column("cash_out_minor", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("villager_id", "utc_day", name="pk_kyc_usage"),
        sa.ForeignKeyConstraint(
            ["villager_id"], ["parties.id"], name="fk_kyc_usage_villager_id_parties"
        ),
        sa.CheckConstraint(
            "cash_in_minor >= 0 AND cash_out_minor >= 0", name="ck_kyc_usage_not_negative"
        ),
        sa.CheckConstraint("utc_day >= 0", name="ck_kyc_usage_utc_day"),
    )
    op.create_table(
        "agent_float",
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("low_threshold_minor", sa.BigInteger(), nullable=True),
        sa.Column("low_armed", sa.Boolean(), nullable=False),
        sa.Column("guarantee_cap_minor", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agent_float"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_agent_float_agent_id_parties"
        ),
        sa.CheckConstraint(
            "low_threshold_minor IS NULL OR low_threshold_minor > 0",
            name="ck_agent_float_threshold_positive",
        ),
        sa.CheckConstraint(
            "guarantee_cap_minor IS NULL OR guarantee_cap_minor >= 0",
            name="ck_agent_float_cap_not_negative",
        ),
    )
    op.create_table(
        "float_topups",
        sa.Column("id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", UUID, nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_float_topups"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_float_topups_agent_id_parties"
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_float_topups_amount_positive"),
    )
    op.create_index(
        "ix_float_topups_agent_id_created", "float_topups", ["agent_id", "created_at_us"]
    )
    op.create_table(
        "float_transfers",
        sa.Column("id", UUID, nullable=False),
        sa.Column("from_agent_id", UUID, nullable=False),
        sa.Column("to_agent_id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("transfer_id", UUID, nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_float_transfers"),
        sa.ForeignKeyConstraint(
            ["from_agent_id"], ["parties.id"], name="fk_float_transfers_from_agent_id_parties"
        ),
        sa.ForeignKeyConstraint(
            ["to_agent_id"], ["parties.id"], name="fk_float_transfers_to_agent_id_parties"
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_float_transfers_amount_positive"),
        sa.CheckConstraint("from_agent_id <> to_agent_id", name="ck_float_transfers_two_agents"),
    )
    op.create_table(
        "cash_ins",
        sa.Column("id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("device_id", UUID, nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("commission_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_version", sa.Integer(), nullable=True),
        sa.Column("utc_day", sa.Integer(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cash_ins"),
        sa.ForeignKeyConstraint(["agent_id"], ["parties.id"], name="fk_cash_ins_agent_id_parties"),
        sa.ForeignKeyConstraint(
            ["villager_id"], ["parties.id"], name="fk_cash_ins_villager_id_parties"
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_cash_ins_amount_positive"),
        sa.CheckConstraint(
            "fee_minor >= 0 AND fee_minor < amount_minor", name="ck_cash_ins_fee_below_amount"
        ),
        sa.CheckConstraint("commission_minor >= 0", name="ck_cash_ins_commission_not_negative"),
    )
    op.create_index("ix_cash_ins_agent_id_created", "cash_ins", ["agent_id", "created_at_us", "id"])
    op.create_index("ix_cash_ins_villager_id_created", "cash_ins", ["villager_id", "created_at_us"])
    op.create_table(
        "cash_outs",
        sa.Column("id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("device_id", UUID, nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("fee_version", sa.Integer(), nullable=True),
        sa.Column("quote", sa.Text(), nullable=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("utc_day", sa.Integer(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cash_outs"),
        sa.ForeignKeyConstraint(["agent_id"], ["parties.id"], name="fk_cash_outs_agent_id_parties"),
        sa.ForeignKeyConstraint(
            ["villager_id"], ["parties.id"], name="fk_cash_outs_villager_id_parties"
        ),
        sa.CheckConstraint(_in("state", CASH_OUT_STATES), name="ck_cash_outs_state"),
        sa.CheckConstraint(_in("mode", CASH_OUT_MODES), name="ck_cash_outs_mode"),
        sa.CheckConstraint("amount_minor > 0", name="ck_cash_outs_amount_positive"),
        sa.CheckConstraint("fee_minor >= 0", name="ck_cash_outs_fee_not_negative"),
        sa.CheckConstraint(
            "(quote IS NULL) = (fee_version IS NULL) AND (quote IS NOT NULL OR fee_minor = 0)",
            name="ck_cash_outs_fee_has_quote",
        ),
        sa.CheckConstraint(
            "mode = 'two_phase' OR (state = 'completed' AND expires_at_us IS NULL)",
            name="ck_cash_outs_one_shot_completed",
        ),
        sa.CheckConstraint(
            "mode = 'one_shot' OR (expires_at_us IS NOT NULL AND expires_at_us > created_at_us)",
            name="ck_cash_outs_two_phase_expires",
        ),
        sa.CheckConstraint(
            "(state = 'requested') = (resolved_at_us IS NULL)", name="ck_cash_outs_resolved_at"
        ),
    )
    op.create_index(
        "ix_cash_outs_agent_id_created", "cash_outs", ["agent_id", "created_at_us", "id"]
    )
    op.create_index("ix_cash_outs_state_expires", "cash_outs", ["state", "expires_at_us"])
    dialect = op.get_context().dialect.name
    for table in ("float_topups", "float_transfers", "cash_ins"):
        _immutable(dialect, table)


def _immutable(dialect: str, table: str) -> None:
    if dialect == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
            f" BEGIN SELECT RAISE(ABORT, '{action} on {table} refused:"
            " these rows are immutable'); END"
        )


def downgrade() -> None:
    op.drop_table("cash_outs")
    op.drop_table("cash_ins")
    op.drop_table("float_transfers")
    op.drop_table("float_topups")
    op.drop_table("agent_float")
    op.drop_table("kyc_usage")
    op.drop_table("kyc_tiers")
