"""Village flows, part 2: orders in escrow and their timers.

* ``orders``: one row per storefront order, its state and its money counters (minor
  units): ``paid_minor`` went into the storefront's escrow, ``released_minor`` left it
  for the seller (net of releases later reversed), ``refunded_minor`` went back to the
  payer out of escrow, ``reversed_minor`` is released money a refund after release
  brought back. So the order's share of escrow is ``paid - released - refunded``, and the
  CHECKs below keep it from going negative. The auto-release timer is a column
  (``auto_release_at_us``, UTC microseconds); a dispute pauses it into
  ``timer_remaining_us``. State rows: updated in place.
* ``order_steps``: every operation on an order, keyed by the client's step id (its
  idempotency key), with the request it answered, the transfers it made and the order as
  it left it. History: never updated or deleted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

STATES = (
    "created",
    "paid",
    "dispatched",
    "delivered",
    "released",
    "cancelled",
    "disputed",
    "refunded",
)
STEP_KINDS = (
    "create",
    "pay",
    "dispatch",
    "deliver",
    "release",
    "auto_release",
    "dispute",
    "resolve",
    "extend",
    "cancel",
    "refund",
)


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", UUID, nullable=False),
        sa.Column("storefront_id", UUID, nullable=False),
        sa.Column("villager_id", UUID, nullable=True),
        sa.Column("agent_id", UUID, nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("delivery_method", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payment_source", sa.String(8), nullable=True),
        sa.Column("payment_transfer_id", UUID, nullable=True),
        sa.Column("paid_minor", sa.BigInteger(), nullable=False),
        sa.Column("released_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("reversed_minor", sa.BigInteger(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("extensions", sa.Integer(), nullable=False),
        sa.Column("disputed_from", sa.String(16), nullable=True),
        sa.Column("auto_release_at_us", sa.BigInteger(), nullable=True),
        sa.Column("timer_remaining_us", sa.BigInteger(), nullable=True),
        sa.Column("refund_until_us", sa.BigInteger(), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.Column("dispatched_at_us", sa.BigInteger(), nullable=True),
        sa.Column("released_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.ForeignKeyConstraint(
            ["storefront_id"], ["parties.id"], name="fk_orders_storefront_id_parties"
        ),
        sa.ForeignKeyConstraint(
            ["villager_id"], ["parties.id"], name="fk_orders_villager_id_parties"
        ),
        sa.ForeignKeyConstraint(["agent_id"], ["parties.id"], name="fk_orders_agent_id_parties"),
        sa.CheckConstraint(_in("state", STATES), name="ck_orders_state"),
        sa.CheckConstraint(
            "payment_source IS NULL OR payment_source IN ('wallet', 'cash')",
            name="ck_orders_payment_source",
        ),
        sa.CheckConstraint("length(currency) = 3", name="ck_orders_currency_length"),
        sa.CheckConstraint("amount_minor > 0", name="ck_orders_amount_positive"),
        sa.CheckConstraint(
            "paid_minor = 0 OR paid_minor = amount_minor", name="ck_orders_paid_in_full"
        ),
        sa.CheckConstraint(
            "released_minor >= 0 AND refunded_minor >= 0 AND reversed_minor >= 0",
            name="ck_orders_counters_not_negative",
        ),
        sa.CheckConstraint(
            "released_minor + refunded_minor <= paid_minor", name="ck_orders_escrow_not_negative"
        ),
        sa.CheckConstraint("reversed_minor <= refunded_minor", name="ck_orders_reversed_refunded"),
        sa.CheckConstraint(
            "(payment_source IS NULL) = (paid_minor = 0)", name="ck_orders_paid_has_source"
        ),
        sa.CheckConstraint(
            "payment_source IS NULL OR payment_transfer_id IS NOT NULL",
            name="ck_orders_paid_has_transfer",
        ),
        sa.CheckConstraint(
            "payment_source IS NULL OR payment_source <> 'wallet' OR villager_id IS NOT NULL",
            name="ck_orders_wallet_has_villager",
        ),
        sa.CheckConstraint(
            "payment_source IS NULL OR payment_source <> 'cash' OR agent_id IS NOT NULL",
            name="ck_orders_cash_has_agent",
        ),
        sa.CheckConstraint(
            "(state = 'disputed') = (disputed_from IS NOT NULL)",
            name="ck_orders_disputed_from",
        ),
        sa.CheckConstraint(
            "state = 'disputed' OR timer_remaining_us IS NULL", name="ck_orders_timer_paused"
        ),
        sa.CheckConstraint(
            "auto_release_at_us IS NULL OR state IN ('dispatched', 'delivered')",
            name="ck_orders_timer_running",
        ),
        sa.CheckConstraint(
            "timer_remaining_us IS NULL OR timer_remaining_us >= 0",
            name="ck_orders_timer_remaining",
        ),
        sa.CheckConstraint(
            "deliveries >= 0 AND extensions >= 0", name="ck_orders_step_counts_not_negative"
        ),
    )
    op.create_index(
        "ix_orders_storefront_id_created", "orders", ["storefront_id", "created_at_us", "id"]
    )
    op.create_index("ix_orders_auto_release_at_us", "orders", ["auto_release_at_us", "id"])
    op.create_table(
        "order_steps",
        sa.Column("id", UUID, nullable=False),
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("legs", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_steps"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_steps_order_id_orders"),
        sa.CheckConstraint(_in("kind", STEP_KINDS), name="ck_order_steps_kind"),
    )
    op.create_index("ix_order_steps_order_id_created", "order_steps", ["order_id", "created_at_us"])
    _immutable(op.get_context().dialect.name, "order_steps")


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
    op.drop_table("order_steps")
    op.drop_table("orders")
