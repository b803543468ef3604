"""Receipts and dispatch deadlines.

* ``delivery_methods``: the terms of each delivery method, in data so that an operator can
  change them (:func:`ledger.flows.orders.set_delivery_method`): days from dispatch until
  an undisputed order releases by itself, days after a release during which it can still
  be refunded, and hours from payment by which a paid order must be dispatched (else the
  sweeper cancels and refunds it). Seeded below (:data:`DELIVERY_METHODS`). State rows:
  updated in place.
* ``orders.dispatch_deadline_at_us``: when a paid order must have been dispatched by (UTC
  microseconds), stamped at payment from its method's ``dispatch_deadline_hours``; orders
  paid before this revision have none (they were paid without that term), and the
  sweeper leaves them alone. Indexed with the state for the sweep.

Wallet receipts (``wallet.receipt`` events) need no table: they are outbox rows.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# (name, auto_release_days, refund_window_days, dispatch_deadline_hours): the figures the
# code held before (7/14, 5/14, 3/7 days) and a dispatch deadline of three days for what a
# storefront sends by courier or to a pickup point, two for what the order's own agent
# carries to the village.
DELIVERY_METHODS: tuple[tuple[str, int, int, int], ...] = (
    ("courier", 7, 14, 72),
    ("pickup_point", 5, 14, 72),
    ("agent_delivery", 3, 7, 48),
)
SEEDED_AT_US = 1_796_342_400_000_000  # 2026-12-04T00:00:00Z


def _receipts_deadlines_upgrade() -> None:
    methods = op.create_table(
        "delivery_methods",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("auto_release_days", sa.Integer(), nullable=False),
        sa.Column("refund_window_days", sa.Integer(), nullable=False),
        sa.Column("dispatch_deadline_hours", sa.Integer(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_delivery_methods"),
        # the same bounds as ledger.flows.orders' *_MAX constants
        sa.CheckConstraint(
            "auto_release_days BETWEEN 1 AND 60", name="ck_delivery_methods_auto_release_days"
        ),
        sa.CheckConstraint(
            "refund_window_days BETWEEN 0 AND 90", name="ck_delivery_methods_refund_window_days"
        ),
        sa.CheckConstraint(
            "dispatch_deadline_hours BETWEEN 1 AND 720",
            name="ck_delivery_methods_dispatch_deadline_hours",
        ),
    )
    op.bulk_insert(
        methods,
        [
            {
                "name": name,
                "auto_release_days": auto_release,
                "refund_window_days": refund_window,
                "dispatch_deadline_hours": deadline,
                "updated_at_us": SEEDED_AT_US,
            }
            for name, auto_release, refund_window, deadline in DELIVERY_METHODS
        ],
    )
    op.add_column("orders", sa.Column("dispatch_deadline_at_us", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_orders_state_dispatch_deadline",
        "orders",
        ["state", "dispatch_deadline_at_us", "id"],
    )


def _receipts_deadlines_downgrade() -> None:
    op.drop_index("ix_orders_state_dispatch_deadline", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("dispatch_deadline_at_us")
    op.drop_table("delivery_methods")


def upgrade() -> None:
    _receipts_deadlines_upgrade()
    # -- pickup codes (see _pickup_codes_upgrade below) --
    _pickup_codes_upgrade()


def downgrade() -> None:
    # -- pickup codes --
    _pickup_codes_downgrade()
    _receipts_deadlines_downgrade()


# -- pickup codes ---------------------------------------------------------------------------
# ``pickup_codes``: the code a villager shows at the station to collect an order dispatched
# to a hand-over point (``ledger.flows.pickup``). The code itself is never stored: only a
# salted SHA-256 of it. One open code per order (a partial unique index); a state row:
# ``open`` -> ``used`` (the order was delivered in full) or ``void`` (3 wrong tries, or a
# new code replaced it); ``tries_wrong`` counts wrong codes.


def _pickup_codes_upgrade() -> None:
    uuid_type = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
    op.create_table(
        "pickup_codes",
        sa.Column("id", uuid_type, nullable=False),
        sa.Column("order_id", uuid_type, nullable=False),
        sa.Column("villager_id", uuid_type, nullable=False),
        sa.Column("salt", sa.LargeBinary(32), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("tries_wrong", sa.Integer(), nullable=False),
        # UTC microseconds: the order's auto-release time when the code was issued.
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pickup_codes"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_pickup_codes_order_id_orders"
        ),
        sa.ForeignKeyConstraint(
            ["villager_id"], ["parties.id"], name="fk_pickup_codes_villager_id_parties"
        ),
        sa.CheckConstraint("state IN ('open', 'used', 'void')", name="ck_pickup_codes_state"),
        sa.CheckConstraint("tries_wrong >= 0", name="ck_pickup_codes_tries_not_negative"),
        sa.CheckConstraint("length(salt) = 32", name="ck_pickup_codes_salt_length"),
        sa.CheckConstraint("length(code_hash) = 32", name="ck_pickup_codes_hash_length"),
    )
    op.create_index("ix_pickup_codes_order_id", "pickup_codes", ["order_id", "created_at_us"])
    op.create_index(
        "uq_pickup_codes_open_order",
        "pickup_codes",
        ["order_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )


def _pickup_codes_downgrade() -> None:
    op.drop_table("pickup_codes")
