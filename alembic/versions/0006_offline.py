"""Village flows, part 5: agents' devices and offline capture.

* ``devices``: an agent's phone, its Ed25519 public key and its offline allowance (the
  amount of the agent's float held for it, pending, towards ``offline_allowance``); a
  state row (the allowance, the hold and the last synced ``seq`` change);
* ``offline_records``: every record a device synced, exactly once per record id and per
  ``(device_id, seq)``, with the bytes it signed, its signature and its outcome
  (``applied`` with the cash operation it became, or ``exception`` with a reason);
  rows are history: never updated or deleted.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

IMMUTABLE = ("offline_records",)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        # Minor units of the agent's currency: the allowance asked for at registration.
        sa.Column("allowance_registered_minor", sa.BigInteger(), nullable=False),
        # Minor units still held for the device (what its offline cash-ins may spend).
        sa.Column("allowance_minor", sa.BigInteger(), nullable=False),
        sa.Column("allowance_hold_id", UUID, nullable=True),
        sa.Column("holds_made", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("public_key", name="uq_devices_public_key"),
        sa.ForeignKeyConstraint(["agent_id"], ["parties.id"], name="fk_devices_agent_id_parties"),
        sa.CheckConstraint("state IN ('active', 'revoked')", name="ck_devices_state"),
        sa.CheckConstraint("length(public_key) = 32", name="ck_devices_public_key_length"),
        sa.CheckConstraint(
            "allowance_registered_minor >= 0", name="ck_devices_allowance_registered_not_negative"
        ),
        sa.CheckConstraint("allowance_minor >= 0", name="ck_devices_allowance_not_negative"),
        sa.CheckConstraint(
            "(allowance_minor = 0) = (allowance_hold_id IS NULL)",
            name="ck_devices_allowance_held",
        ),
        sa.CheckConstraint(
            "state = 'active' OR allowance_minor = 0", name="ck_devices_revoked_holds_nothing"
        ),
        sa.CheckConstraint("holds_made >= 0", name="ck_devices_holds_made_not_negative"),
        sa.CheckConstraint("last_seq >= 0", name="ck_devices_last_seq_not_negative"),
    )
    op.create_index("ix_devices_agent_id", "devices", ["agent_id"])
    op.create_table(
        "offline_records",
        sa.Column("id", UUID, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        # Minor units of ``currency``.
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("cash_operation_id", UUID, nullable=True),
        sa.Column("captured_at_us", sa.BigInteger(), nullable=False),
        sa.Column("synced_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_offline_records"),
        sa.UniqueConstraint("device_id", "seq", name="uq_offline_records_device_seq"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name="fk_offline_records_device_id_devices"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_offline_records_agent_id_parties"
        ),
        sa.CheckConstraint("seq > 0", name="ck_offline_records_seq_positive"),
        sa.CheckConstraint("kind IN ('cash_in', 'cash_out')", name="ck_offline_records_kind"),
        sa.CheckConstraint("amount_minor > 0", name="ck_offline_records_amount_positive"),
        sa.CheckConstraint("length(currency) = 3", name="ck_offline_records_currency_length"),
        sa.CheckConstraint("length(signature) = 64", name="ck_offline_records_signature_length"),
        sa.CheckConstraint("state IN ('applied', 'exception')", name="ck_offline_records_state"),
        sa.CheckConstraint(
            "(state = 'exception') = (reason IS NOT NULL)", name="ck_offline_records_reason"
        ),
        sa.CheckConstraint(
            "(state = 'applied') = (cash_operation_id IS NOT NULL)",
            name="ck_offline_records_cash_operation",
        ),
    )
    op.create_index(
        "ix_offline_records_state_agent",
        "offline_records",
        ["state", "agent_id", "synced_at_us", "device_id", "seq"],
    )
    op.create_index(
        "ix_offline_records_state_synced",
        "offline_records",
        ["state", "synced_at_us", "device_id", "seq"],
    )
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
    op.drop_table("offline_records")
    op.drop_table("devices")
