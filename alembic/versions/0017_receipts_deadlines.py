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


def downgrade() -> None:
    _receipts_deadlines_downgrade()
