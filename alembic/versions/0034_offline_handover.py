"""Offline hand-overs: an agent's phone records goods handed over with the villager's
pickup code while offline (``ledger.flows.offline``, record version 3).

* ``offline_records.kind`` may be ``handover`` too;
* ``offline_records.order_id``: the order a hand-over record names (set exactly for a
  hand-over: ``ck_offline_records_order``). A hand-over row's amount, currency and
  villager are the order's as the phone saw them; its ``cash_operation_id`` (when
  applied) is the order's delivery step.

SQLite cannot change a CHECK constraint in place: the table is rebuilt (batch mode), and
its two immutability triggers, dropped with the old table, are made again.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
TABLE = "offline_records"
KINDS_BEFORE = "kind IN ('cash_in', 'cash_out')"
KINDS = "kind IN ('cash_in', 'cash_out', 'handover')"
ORDER_SET = "(kind = 'handover') = (order_id IS NOT NULL)"


def _sqlite_triggers() -> None:
    """0006's triggers: the rows are history, never updated or deleted."""
    for action in ("UPDATE", "DELETE"):
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_{action.lower()}")
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE}"
            f" BEGIN SELECT RAISE(ABORT, '{action} on {TABLE} refused:"
            " these rows are immutable'); END"
        )


def upgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    with op.batch_alter_table(TABLE, recreate="always" if sqlite else "never") as batch:
        batch.add_column(sa.Column("order_id", UUID, nullable=True))
        batch.drop_constraint("ck_offline_records_kind", type_="check")
        batch.create_check_constraint("ck_offline_records_kind", KINDS)
        batch.create_check_constraint("ck_offline_records_order", ORDER_SET)
    if sqlite:
        _sqlite_triggers()


def downgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    with op.batch_alter_table(TABLE, recreate="always" if sqlite else "never") as batch:
        batch.drop_constraint("ck_offline_records_order", type_="check")
        batch.drop_constraint("ck_offline_records_kind", type_="check")
        batch.create_check_constraint("ck_offline_records_kind", KINDS_BEFORE)
        batch.drop_column("order_id")
    if sqlite:
        _sqlite_triggers()
