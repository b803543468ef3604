"""Consent codes: withdrawal, pay, offline withdrawal codes, and consents given by PIN.

* ``consent_codes``: every consent a villager gave for one debit of the wallet
  (:mod:`ledger.flows.consent`): a one-time code the villager made (``method = 'code'``:
  six digits, kept only as a salted argon2id hash) or a consent given with the PIN
  (``method = 'pin'``, no digits at all). Each is for one purpose, an exact amount in
  minor units, and one agent (withdrawals) or one order (payments); ``open`` ->
  ``used`` | ``voided`` | ``expired``, exactly once. An offline withdrawal code names the
  core hold (wallet -> the agent's float) it made, the fee quote and the UTC day its
  amount was counted in. State rows: ``state``, ``failures`` and ``resolved_at_us``
  change.
* ``consent_failures``: one row per wrong code a caller presented (the per-caller rate
  limit counts them); written in a transaction of its own, so it survives the rollback
  of the money transaction. History: never updated or deleted.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

PURPOSES = ("withdrawal", "payment", "offline_withdrawal")
METHODS = ("code", "pin")
STATES = ("open", "used", "voided", "expired")

IMMUTABLE = ("consent_failures",)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "consent_codes",
        sa.Column("id", UUID, nullable=False),
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("purpose", sa.String(24), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        # Minor units of ``currency``: the exact amount the villager consented to.
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("agent_id", UUID, nullable=True),
        sa.Column("order_id", UUID, nullable=True),
        # argon2id of the six digits with this row's own salt; NULL for a PIN consent.
        sa.Column("code_salt", sa.LargeBinary(16), nullable=True),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        # Wrong codes presented for the villager and purpose while this one was open.
        sa.Column("failures", sa.Integer(), nullable=False),
        # Offline withdrawal codes: the core hold, its fee quote (JSON) and the UTC day
        # (days since 1970-01-01) whose cash-out usage counts the amount.
        sa.Column("hold_id", UUID, nullable=True),
        sa.Column("quote", sa.Text(), nullable=True),
        sa.Column("utc_day", sa.Integer(), nullable=True),
        # The operation the consent was used for (a cash-out, an order).
        sa.Column("used_for", UUID, nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_consent_codes"),
        sa.ForeignKeyConstraint(
            ["villager_id"], ["parties.id"], name="fk_consent_codes_villager_id_parties"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_consent_codes_agent_id_parties"
        ),
        sa.CheckConstraint(_in("purpose", PURPOSES), name="ck_consent_codes_purpose"),
        sa.CheckConstraint(_in("method", METHODS), name="ck_consent_codes_method"),
        sa.CheckConstraint(_in("state", STATES), name="ck_consent_codes_state"),
        sa.CheckConstraint("amount_minor > 0", name="ck_consent_codes_amount_positive"),
        sa.CheckConstraint("length(currency) = 3", name="ck_consent_codes_currency_length"),
        sa.CheckConstraint("failures >= 0", name="ck_consent_codes_failures_not_negative"),
        sa.CheckConstraint(
            "(method = 'code') = (code_hash IS NOT NULL AND code_salt IS NOT NULL)",
            name="ck_consent_codes_hash",
        ),
        sa.CheckConstraint(
            "(purpose = 'payment') = (order_id IS NOT NULL)", name="ck_consent_codes_order"
        ),
        sa.CheckConstraint(
            "(purpose = 'payment') = (agent_id IS NULL)", name="ck_consent_codes_agent"
        ),
        sa.CheckConstraint(
            "(purpose = 'offline_withdrawal') = (hold_id IS NOT NULL)",
            name="ck_consent_codes_hold",
        ),
        sa.CheckConstraint(
            "purpose <> 'offline_withdrawal' OR method = 'code'",
            name="ck_consent_codes_offline_by_code",
        ),
        sa.CheckConstraint(
            "(state = 'open') = (resolved_at_us IS NULL)", name="ck_consent_codes_resolved"
        ),
        sa.CheckConstraint(
            "(state = 'used') = (used_for IS NOT NULL)", name="ck_consent_codes_used_for"
        ),
        sa.CheckConstraint("expires_at_us > created_at_us", name="ck_consent_codes_expiry"),
    )
    op.create_index(
        "ix_consent_codes_villager_purpose_state",
        "consent_codes",
        ["villager_id", "purpose", "state"],
    )
    op.create_table(
        "consent_failures",
        sa.Column("id", UUID, nullable=False),
        sa.Column("caller_id", UUID, nullable=False),
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("purpose", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consent_failures"),
        sa.CheckConstraint(_in("purpose", PURPOSES), name="ck_consent_failures_purpose"),
    )
    op.create_index("ix_consent_failures_caller_at", "consent_failures", ["caller_id", "at_us"])
    _immutable(op.get_context().dialect.name)


def _immutable(dialect: str) -> None:
    for table in IMMUTABLE:
        if dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
            )
            continue
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{action} on {table} refused:"
                " these rows are immutable'); END"
            )


def downgrade() -> None:
    op.drop_table("consent_failures")
    op.drop_table("consent_codes")
