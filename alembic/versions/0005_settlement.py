"""Village flows, part 4: settlement windows, payouts, suspense.

* ``settlement_windows``: one row per window, ``open -> closed -> settled``; at most one
  window of a currency is open at a time (a partial unique index). Closing records the
  provider and the count and total of the payouts it made. State rows: updated in place.
* ``payouts``: what a closed window owes each storefront (minor units): the storefront's
  available proceeds when the window closed (``proceeds_before_minor``) and the payout
  (``amount_minor``, all of it), held on the ledger by ``hold_transfer_id`` until the
  provider confirms (``paid``, with its reference, unique per provider) or reports a
  failure (``failed``, with a reason); ``resolve_transfer_id`` is the post or the void.
* ``suspense_items``: provider money nobody could match, parked in the platform's
  ``suspense`` account with the provider's reference (unique per provider), until an
  operator reassigns it to an account or returns it to the provider.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")


def upgrade() -> None:
    op.create_table(
        "settlement_windows",
        sa.Column("id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("provider", sa.String(32), nullable=True),
        sa.Column("payouts_count", sa.Integer(), nullable=False),
        sa.Column("payouts_total_minor", sa.BigInteger(), nullable=False),
        sa.Column("opened_at_us", sa.BigInteger(), nullable=False),
        sa.Column("closed_at_us", sa.BigInteger(), nullable=True),
        sa.Column("settled_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_settlement_windows"),
        sa.CheckConstraint(
            "state IN ('open', 'closed', 'settled')", name="ck_settlement_windows_state"
        ),
        sa.CheckConstraint("length(currency) = 3", name="ck_settlement_windows_currency_length"),
        sa.CheckConstraint(
            "(state = 'open') = (closed_at_us IS NULL)", name="ck_settlement_windows_closed_at"
        ),
        sa.CheckConstraint(
            "(state = 'open') = (provider IS NULL)", name="ck_settlement_windows_provider"
        ),
        sa.CheckConstraint(
            "(state = 'settled') = (settled_at_us IS NOT NULL)",
            name="ck_settlement_windows_settled_at",
        ),
        sa.CheckConstraint(
            "closed_at_us IS NULL OR closed_at_us >= opened_at_us",
            name="ck_settlement_windows_closed_after_opened",
        ),
        sa.CheckConstraint(
            "payouts_count >= 0 AND payouts_total_minor >= 0",
            name="ck_settlement_windows_totals_not_negative",
        ),
        sa.CheckConstraint(
            "state <> 'open' OR (payouts_count = 0 AND payouts_total_minor = 0)",
            name="ck_settlement_windows_open_has_no_payouts",
        ),
    )
    op.create_index(
        "uq_settlement_windows_one_open",
        "settlement_windows",
        ["currency"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index(
        "ix_settlement_windows_currency_opened",
        "settlement_windows",
        ["currency", "opened_at_us", "id"],
    )
    op.create_table(
        "payouts",
        sa.Column("id", UUID, nullable=False),
        sa.Column("window_id", UUID, nullable=False),
        sa.Column("storefront_id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("proceeds_account_id", UUID, nullable=False),
        sa.Column("clearing_account_id", UUID, nullable=False),
        sa.Column("proceeds_before_minor", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("hold_transfer_id", UUID, nullable=False),
        sa.Column("resolve_transfer_id", UUID, nullable=True),
        sa.Column("provider_reference", sa.String(128), nullable=True),
        sa.Column("failure_reason", sa.String(500), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_payouts"),
        sa.UniqueConstraint("window_id", "storefront_id", name="uq_payouts_window_storefront"),
        sa.UniqueConstraint("hold_transfer_id", name="uq_payouts_hold_transfer_id"),
        sa.UniqueConstraint("provider", "provider_reference", name="uq_payouts_provider_reference"),
        sa.ForeignKeyConstraint(
            ["window_id"], ["settlement_windows.id"], name="fk_payouts_window_id_settlement_windows"
        ),
        sa.ForeignKeyConstraint(
            ["storefront_id"], ["parties.id"], name="fk_payouts_storefront_id_parties"
        ),
        sa.CheckConstraint("state IN ('pending', 'paid', 'failed')", name="ck_payouts_state"),
        sa.CheckConstraint("amount_minor > 0", name="ck_payouts_amount_positive"),
        sa.CheckConstraint(
            "amount_minor <= proceeds_before_minor", name="ck_payouts_amount_within_proceeds"
        ),
        sa.CheckConstraint(
            "(state = 'pending') = (resolved_at_us IS NULL)", name="ck_payouts_resolved_at"
        ),
        sa.CheckConstraint(
            "(state = 'pending') = (resolve_transfer_id IS NULL)",
            name="ck_payouts_resolve_transfer",
        ),
        sa.CheckConstraint(
            "(state = 'paid') = (provider_reference IS NOT NULL)",
            name="ck_payouts_paid_has_reference",
        ),
        sa.CheckConstraint(
            "(state = 'failed') = (failure_reason IS NOT NULL)",
            name="ck_payouts_failed_has_reason",
        ),
    )
    op.create_index("ix_payouts_window_id", "payouts", ["window_id", "storefront_id"])
    op.create_index("ix_payouts_storefront_id", "payouts", ["storefront_id", "created_at_us"])
    op.create_table(
        "suspense_items",
        sa.Column("id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_reference", sa.String(128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("park_transfer_id", UUID, nullable=False),
        sa.Column("target_party_id", UUID, nullable=True),
        sa.Column("target_account_id", UUID, nullable=True),
        sa.Column("resolve_transfer_id", UUID, nullable=True),
        sa.Column("return_reason", sa.String(500), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_suspense_items"),
        sa.UniqueConstraint(
            "provider", "provider_reference", name="uq_suspense_items_provider_reference"
        ),
        sa.UniqueConstraint("park_transfer_id", name="uq_suspense_items_park_transfer_id"),
        sa.ForeignKeyConstraint(
            ["target_party_id"], ["parties.id"], name="fk_suspense_items_target_party_id_parties"
        ),
        sa.CheckConstraint(
            "state IN ('parked', 'reassigned', 'returned')", name="ck_suspense_items_state"
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_suspense_items_amount_positive"),
        sa.CheckConstraint("length(currency) = 3", name="ck_suspense_items_currency_length"),
        sa.CheckConstraint(
            "(state = 'parked') = (resolved_at_us IS NULL)", name="ck_suspense_items_resolved_at"
        ),
        sa.CheckConstraint(
            "(state = 'parked') = (resolve_transfer_id IS NULL)",
            name="ck_suspense_items_resolve_transfer",
        ),
        sa.CheckConstraint(
            "(state = 'reassigned') = (target_account_id IS NOT NULL)",
            name="ck_suspense_items_reassigned_has_target",
        ),
        sa.CheckConstraint(
            "target_party_id IS NULL OR target_account_id IS NOT NULL",
            name="ck_suspense_items_target_party_account",
        ),
        sa.CheckConstraint(
            "(state = 'returned') = (return_reason IS NOT NULL)",
            name="ck_suspense_items_returned_has_reason",
        ),
    )
    op.create_index(
        "ix_suspense_items_state_created", "suspense_items", ["state", "created_at_us", "id"]
    )
    op.create_index("ix_suspense_items_created", "suspense_items", ["created_at_us", "id"])


def downgrade() -> None:
    op.drop_table("suspense_items")
    op.drop_table("payouts")
    op.drop_index("ix_settlement_windows_currency_opened", table_name="settlement_windows")
    op.drop_index("uq_settlement_windows_one_open", table_name="settlement_windows")
    op.drop_table("settlement_windows")
