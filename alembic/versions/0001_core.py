"""The ledger core: accounts, transfers, spent ids, open holds.

The database guards the money as well as the code does:

* amounts and counters are BIGINT minor units; CHECKs keep counters >= 0, amounts > 0,
  the two accounts of a transfer different, and each account inside its limit flags
  counting pending amounts;
* a hold resolves at most once: a unique index on ``transfers.pending_id``;
* ``transfers`` and ``transfer_failures`` refuse UPDATE, DELETE (and TRUNCATE on
  PostgreSQL); an account's identity (id, currency, code, flags) never changes and an
  account is never deleted.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid

DEBITS_MUST_NOT_EXCEED_CREDITS = 2
CREDITS_MUST_NOT_EXCEED_DEBITS = 4


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("debits_pending", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("debits_posted", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("credits_pending", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("credits_posted", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("timestamp_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.CheckConstraint("length(currency) = 3", name="ck_accounts_currency_length"),
        sa.CheckConstraint("code > 0", name="ck_accounts_code_positive"),
        sa.CheckConstraint(
            f"(flags & {DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS})"
            f" <> {DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS}",
            name="ck_accounts_limit_flags_exclusive",
        ),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0"
            " AND credits_pending >= 0 AND credits_posted >= 0",
            name="ck_accounts_counters_not_negative",
        ),
        sa.CheckConstraint(
            f"(flags & {DEBITS_MUST_NOT_EXCEED_CREDITS}) = 0"
            " OR debits_pending + debits_posted <= credits_posted",
            name="ck_accounts_debits_within_credits",
        ),
        sa.CheckConstraint(
            f"(flags & {CREDITS_MUST_NOT_EXCEED_DEBITS}) = 0"
            " OR credits_pending + credits_posted <= debits_posted",
            name="ck_accounts_credits_within_debits",
        ),
    )
    op.create_table(
        "transfers",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("id", UUID, nullable=False),
        sa.Column("debit_account_id", UUID, nullable=False),
        sa.Column("credit_account_id", UUID, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("amount_requested", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.Column("pending_id", UUID, nullable=True),
        sa.Column("timeout_s", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.Column("reverses_id", UUID, nullable=True),
        sa.Column("metadata", sa.Text(), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("debit_account_debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("debit_account_credits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credit_account_debits_posted", sa.BigInteger(), nullable=False),
        sa.Column("credit_account_credits_posted", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_transfers"),
        sa.UniqueConstraint("id", name="uq_transfers_id"),
        sa.ForeignKeyConstraint(
            ["debit_account_id"], ["accounts.id"], name="fk_transfers_debit_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["accounts.id"],
            name="fk_transfers_credit_account_id_accounts",
        ),
        sa.ForeignKeyConstraint(
            ["pending_id"], ["transfers.id"], name="fk_transfers_pending_id_transfers"
        ),
        sa.CheckConstraint("amount > 0", name="ck_transfers_amount_positive"),
        sa.CheckConstraint(
            "amount_requested IS NULL OR amount_requested > 0",
            name="ck_transfers_amount_requested_positive",
        ),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name="ck_transfers_accounts_different"
        ),
        sa.CheckConstraint("code > 0", name="ck_transfers_code_positive"),
        sa.CheckConstraint("timeout_s >= 0", name="ck_transfers_timeout_not_negative"),
        sa.CheckConstraint(
            "(flags & 12) = 0 OR pending_id IS NOT NULL", name="ck_transfers_resolution_names_hold"
        ),
    )
    op.create_index(
        "uq_transfers_pending_id",
        "transfers",
        ["pending_id"],
        unique=True,
        postgresql_where=sa.text("pending_id IS NOT NULL"),
        sqlite_where=sa.text("pending_id IS NOT NULL"),
    )
    op.create_index(
        "ix_transfers_debit_account_id_created_at_us",
        "transfers",
        ["debit_account_id", "created_at_us", "seq"],
    )
    op.create_index(
        "ix_transfers_credit_account_id_created_at_us",
        "transfers",
        ["credit_account_id", "created_at_us", "seq"],
    )
    op.create_table(
        "transfer_failures",
        sa.Column("id", UUID, nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transfer_failures"),
    )
    op.create_table(
        "pending_holds",
        sa.Column("hold_id", UUID, nullable=False),
        sa.Column("debit_account_id", UUID, nullable=False),
        sa.Column("credit_account_id", UUID, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("hold_id", name="pk_pending_holds"),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["transfers.id"], name="fk_pending_holds_hold_id_transfers"
        ),
        sa.CheckConstraint("amount > 0", name="ck_pending_holds_amount_positive"),
    )
    op.create_index(
        "ix_pending_holds_expires_at_us",
        "pending_holds",
        ["expires_at_us"],
        postgresql_where=sa.text("expires_at_us IS NOT NULL"),
        sqlite_where=sa.text("expires_at_us IS NOT NULL"),
    )
    _create_guards(op.get_context().dialect.name)


def _create_guards(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION vledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% on % refused: ledger rows are immutable', TG_OP, TG_TABLE_NAME
                    USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        op.execute(
            """
            CREATE FUNCTION vledger_assert(ok boolean, message text) RETURNS boolean
            LANGUAGE plpgsql AS $$
            BEGIN
                IF ok IS NOT TRUE THEN
                    RAISE EXCEPTION 'ledger invariant broken: %', message USING ERRCODE = 'VL001';
                END IF;
                RETURN true;
            END $$
            """
        )
        for table in ("transfers", "transfer_failures"):
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION vledger_refuse_change()"
            )
        op.execute(
            "CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts"
            " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts"
            " FOR EACH STATEMENT EXECUTE FUNCTION vledger_refuse_change()"
        )
        # The WHEN clause is checked in C on every update; the function runs only to refuse.
        op.execute(
            "CREATE TRIGGER accounts_identity_fixed BEFORE UPDATE ON accounts FOR EACH ROW"
            " WHEN (NEW.id <> OLD.id OR NEW.currency <> OLD.currency OR NEW.code <> OLD.code"
            " OR NEW.flags <> OLD.flags OR NEW.created_at_us <> OLD.created_at_us)"
            " EXECUTE FUNCTION vledger_refuse_change()"
        )
        return
    for table in ("transfers", "transfer_failures"):
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{action} on {table} refused:"
                " ledger rows are immutable'); END"
            )
    op.execute(
        "CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts"
        " BEGIN SELECT RAISE(ABORT, 'DELETE on accounts refused: ledger rows are immutable');"
        " END"
    )
    op.execute(
        "CREATE TRIGGER accounts_identity_fixed BEFORE UPDATE OF id, currency, code, flags,"
        " created_at_us ON accounts WHEN NEW.id IS NOT OLD.id OR NEW.currency IS NOT"
        " OLD.currency OR NEW.code IS NOT OLD.code OR NEW.flags IS NOT OLD.flags OR"
        " NEW.created_at_us IS NOT OLD.created_at_us"
        " BEGIN SELECT RAISE(ABORT, 'UPDATE of an account''s id, currency, code or flags refused');"
        " END"
    )


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    op.drop_table("pending_holds")
    op.drop_table("transfer_failures")
    op.drop_table("transfers")
    op.drop_table("accounts")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION vledger_refuse_change()")
        op.execute("DROP FUNCTION vledger_assert(boolean, text)")
