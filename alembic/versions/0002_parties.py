"""Village flows, part 1: parties and their accounts, the event outbox, fee schedules.

* ``parties``: the platform (one per currency), storefronts, agents and villagers;
* ``party_accounts``: which ledger account plays which role for a party (a storefront's
  escrow, an agent's float ...); an account serves one party in one role;
* ``events``: the outbox, written in the same transaction as the money it reports;
  rows are never updated or deleted (delivery is tracked elsewhere);
* ``fee_schedules``: versioned, effective-dated fee rules held as data; a version is
  never edited (a change is a new version).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid

IMMUTABLE = ("events", "fee_schedules")


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", UUID, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("kyc_tier", sa.String(32), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parties"),
        sa.CheckConstraint(
            "kind IN ('platform', 'storefront', 'agent', 'villager')", name="ck_parties_kind"
        ),
        sa.CheckConstraint("length(currency) = 3", name="ck_parties_currency_length"),
        sa.CheckConstraint(
            "(kind = 'villager') = (kyc_tier IS NOT NULL)", name="ck_parties_kyc_tier_villager"
        ),
    )
    op.create_table(
        "party_accounts",
        sa.Column("party_id", UUID, nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("account_id", UUID, nullable=False),
        sa.PrimaryKeyConstraint("party_id", "role", name="pk_party_accounts"),
        sa.UniqueConstraint("account_id", name="uq_party_accounts_account_id"),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name="fk_party_accounts_party_id_parties"
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_party_accounts_account_id_accounts"
        ),
    )
    op.create_table(
        "events",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("id", UUID, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("party_id", UUID, nullable=True),
        sa.Column("subject_id", UUID, nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name="fk_events_party_id_parties"),
    )
    op.create_index("ix_events_party_id_seq", "events", ["party_id", "seq"])
    op.create_index("ix_events_subject_id_seq", "events", ["subject_id", "seq"])
    op.create_table(
        "fee_schedules",
        sa.Column("id", UUID, nullable=False),
        sa.Column("product", sa.String(48), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from_us", sa.BigInteger(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fee_schedules"),
        sa.UniqueConstraint("product", "currency", "version", name="uq_fee_schedules_version"),
        sa.CheckConstraint("version > 0", name="ck_fee_schedules_version_positive"),
    )
    op.create_index(
        "ix_fee_schedules_product_effective",
        "fee_schedules",
        ["product", "currency", "effective_from_us"],
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
    op.drop_table("fee_schedules")
    op.drop_table("events")
    op.drop_table("party_accounts")
    op.drop_table("parties")
