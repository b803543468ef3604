"""Published views the reconciliation jobs read (escrow, matching, settlement, ageing).

The flows own these tables; the reconciliation reads them through these views, each with
only the columns its jobs need (the core's ``transfers`` and ``accounts`` and the parties'
tables are read through 0018's ``posted_transfers``, ``journal_transfers``,
``ledger_accounts`` and ``party_account_roles``):

* ``order_escrow_counters``: every order with what its escrow counters say (owner: the
  orders flow): ``id``, ``storefront_id``, ``state``, ``amount_minor``, ``paid_minor``,
  ``released_minor``, ``refunded_minor``, ``reversed_minor``, ``dispatched_at_us``,
  ``created_at_us``.
* ``order_escrow_steps``: every step of an order with the legs it recorded (a JSON array
  of ``[group, transfer id, debit, credit, amount]``) and its order's storefront:
  ``order_id``, ``storefront_id``, ``kind``, ``legs``, ``created_at_us``.
* ``suspense_items_view``: every suspense item (owner: the suspense flow): ``id``,
  ``provider``, ``provider_reference``, ``currency``, ``amount_minor``, ``state``,
  ``park_transfer_id`` (the transfer that parked it), ``created_at_us``,
  ``resolved_at_us``.
* ``settlement_payouts``: every payout of a settlement window (owner: the settlement
  flow): ``id``, ``window_id``, ``provider``, ``currency``, ``amount_minor``, ``state``,
  ``provider_reference``, ``resolve_transfer_id`` (the transfer that posted or voided
  it), ``resolved_at_us``.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS: tuple[tuple[str, str], ...] = (
    (
        "order_escrow_counters",
        "SELECT id, storefront_id, state, amount_minor, paid_minor, released_minor,"
        " refunded_minor, reversed_minor, dispatched_at_us, created_at_us FROM orders",
    ),
    (
        "order_escrow_steps",
        "SELECT s.order_id AS order_id, o.storefront_id AS storefront_id, s.kind AS kind,"
        " s.legs AS legs, s.created_at_us AS created_at_us"
        " FROM order_steps s JOIN orders o ON o.id = s.order_id",
    ),
    (
        "suspense_items_view",
        "SELECT id, provider, provider_reference, currency, amount_minor, state,"
        " park_transfer_id, created_at_us, resolved_at_us FROM suspense_items",
    ),
    (
        "settlement_payouts",
        "SELECT id, window_id, provider, currency, amount_minor, state, provider_reference,"
        " resolve_transfer_id, resolved_at_us FROM payouts",
    ),
)


def upgrade() -> None:
    for name, query in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {query}")


def downgrade() -> None:
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
