"""Reversals: what the core checks of reverses_id, checked again by the database.

The engine answers ``reversal_*`` statuses and ``exceeds_reversible_amount``
(``ledger/core/engine.py``); this migration makes the database hold the same rules, so
that a raw INSERT (a careless script, a bug) cannot write a reversal the engine would
refuse:

* ``ix_transfers_reverses_id`` (partial: reversals only): the sum of what earlier
  reversals took of a transfer, which every batch that reverses it reads, is an index
  lookup, not a scan;
* a trigger on INSERT into ``transfers`` of a row with ``reverses_id`` refuses it unless
  it is plain (no PENDING, POST_PENDING, VOID_PENDING), its target exists and moved
  posted money (a plain transfer or a post: not a hold, a void or a reversal), its
  accounts are the target's swapped, and its amount is at most the target's less every
  earlier reversal of it. The trigger runs only for reversals (a WHEN clause), so plain
  traffic pays nothing; a reversal pays two index lookups.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_FLAGS = 14
"""PENDING | POST_PENDING | VOID_PENDING: a reversal carries none of them."""
NOT_POSTED_FLAGS = 10
"""PENDING | VOID_PENDING: a target with one of them moved no posted money."""

PG_FUNCTION = f"""
CREATE FUNCTION vledger_check_reversal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target_debit uuid;
    target_credit uuid;
    target_amount bigint;
    target_flags integer;
    target_reverses uuid;
    taken bigint;
BEGIN
    IF (NEW.flags & {KIND_FLAGS}) <> 0 THEN
        RAISE EXCEPTION 'reversal % refused: a reversal is a plain transfer', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT debit_account_id, credit_account_id, amount, flags, reverses_id
        INTO target_debit, target_credit, target_amount, target_flags, target_reverses
        FROM transfers WHERE id = NEW.reverses_id;
    IF NOT FOUND OR (target_flags & {NOT_POSTED_FLAGS}) <> 0 OR target_reverses IS NOT NULL THEN
        RAISE EXCEPTION 'reversal % refused: % is no transfer of posted money', NEW.id,
            NEW.reverses_id USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.debit_account_id <> target_credit OR NEW.credit_account_id <> target_debit THEN
        RAISE EXCEPTION 'reversal % refused: its accounts are not those of % swapped', NEW.id,
            NEW.reverses_id USING ERRCODE = 'check_violation';
    END IF;
    SELECT COALESCE(SUM(amount), 0) INTO taken FROM transfers
        WHERE reverses_id = NEW.reverses_id;
    IF NEW.amount > target_amount - taken THEN
        RAISE EXCEPTION 'reversal % refused: more than is left of % (% of %)', NEW.id,
            NEW.reverses_id, target_amount - taken, target_amount
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$
"""
"""Row-level BEFORE INSERT: its queries see the rows an earlier row of the same INSERT
wrote (the batch's own earlier reversals and targets)."""

SQLITE_TRIGGER = f"""
CREATE TRIGGER transfers_reversal_checked BEFORE INSERT ON transfers
WHEN NEW.reverses_id IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'reversal refused: a reversal is a plain transfer')
        WHERE (NEW.flags & {KIND_FLAGS}) <> 0;
    SELECT RAISE(ABORT, 'reversal refused: its target is no transfer of posted money')
        WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = NEW.reverses_id
                          AND (t.flags & {NOT_POSTED_FLAGS}) = 0 AND t.reverses_id IS NULL);
    SELECT RAISE(ABORT, 'reversal refused: its accounts are not its target''s swapped')
        WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = NEW.reverses_id
                          AND t.debit_account_id = NEW.credit_account_id
                          AND t.credit_account_id = NEW.debit_account_id);
    SELECT RAISE(ABORT, 'reversal refused: more than is left of its target')
        FROM transfers t WHERE t.id = NEW.reverses_id
        AND NEW.amount > t.amount - (SELECT COALESCE(SUM(r.amount), 0) FROM transfers r
                                     WHERE r.reverses_id = NEW.reverses_id);
END
"""


def upgrade() -> None:
    op.create_index(
        "ix_transfers_reverses_id",
        "transfers",
        ["reverses_id"],
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
        sqlite_where=sa.text("reverses_id IS NOT NULL"),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER transfers_reversal_checked BEFORE INSERT ON transfers FOR EACH ROW"
            " WHEN (NEW.reverses_id IS NOT NULL) EXECUTE FUNCTION vledger_check_reversal()"
        )
        return
    op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER transfers_reversal_checked" + _on_transfers())
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION vledger_check_reversal()")
    op.drop_index("ix_transfers_reverses_id", table_name="transfers")


def _on_transfers() -> str:
    return " ON transfers" if op.get_context().dialect.name == "postgresql" else ""
