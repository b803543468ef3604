"""Plain transfers decided inside PostgreSQL: one round trip for the common batch.

``vledger_create_plain_transfers`` runs what :class:`ledger.core.engine.TransferBatch`
does for a batch of plain transfers only (no flags, no ``pending_id``, no
``reverses_id``), statement by statement in the database, so that a batch costs one round
trip and its commit (``ledger.core.postgres_store`` calls it; every other batch, and
SQLite, keep the Python engine):

1. lock the batch's accounts in one ``SELECT ... ORDER BY id FOR UPDATE`` (the engine
   path's order, so the two paths never deadlock each other); read their latest
   ``timestamp_us``;
2. if a hold past its timeout touches a locked account, answer ``statuses`` NULL having
   written nothing: the engine path voids it first, so the caller runs that path;
3. per transfer, in batch order, the statuses in CORE_API's precedence (an id that exists,
   then a spent id, the shape, the accounts, overflow, the limit flags): a created
   transfer updates its two accounts and inserts its row with the balances after it; a
   refusal that could change later spends the id in ``transfer_failures``.

Every row is stamped ``batch_us`` = the later of ``now_us`` and the locked accounts'
latest change, as the engine does. The guards of 0001 and 0013 check the writes as
they check the engine's. SQLite has no function: nothing to do there.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTER_MAX = 2**63 - 1
DEBITS_MUST_NOT_EXCEED_CREDITS = 2
CREDITS_MUST_NOT_EXCEED_DEBITS = 4

SIGNATURE = (
    "vledger_create_plain_transfers(uuid[], uuid[], uuid[], int8[], text[], int4[], int8[],"
    " text[], int8)"
)

PG_FUNCTION = f"""
CREATE FUNCTION vledger_create_plain_transfers(
    transfer_ids uuid[], debit_ids uuid[], credit_ids uuid[], amounts int8[],
    currencies text[], codes int4[], timeouts int8[], metadata_texts text[], now_us int8,
    OUT batch_us int8, OUT statuses text[]
) LANGUAGE plpgsql AS $$
DECLARE
    locked uuid[] := ARRAY(SELECT DISTINCT u.id FROM unnest(debit_ids || credit_ids) AS u(id));
    found_transfer record;
    dr record;
    cr record;
    status text;
    amount_i int8;
    dr_debits_posted int8;
    dr_credits_posted int8;
    cr_debits_posted int8;
    cr_credits_posted int8;
BEGIN
    SELECT max(a.timestamp_us) INTO batch_us FROM (
        SELECT timestamp_us FROM accounts WHERE id = ANY(locked) ORDER BY id FOR UPDATE
    ) AS a;
    IF EXISTS (SELECT 1 FROM pending_holds p WHERE p.expires_at_us <= now_us
               AND (p.debit_account_id = ANY(locked) OR p.credit_account_id = ANY(locked)))
    THEN
        statuses := NULL;  -- a due hold to void first: the engine path's work
        RETURN;
    END IF;
    batch_us := greatest(batch_us, now_us);
    statuses := '{{}}';
    FOR i IN 1 .. cardinality(transfer_ids) LOOP
        amount_i := amounts[i];
        SELECT t.flags, t.pending_id, t.timeout_s, t.debit_account_id, t.credit_account_id,
               t.amount, t.code, t.reverses_id
            INTO found_transfer FROM transfers t WHERE t.id = transfer_ids[i];
        IF FOUND THEN
            status := CASE
                WHEN found_transfer.flags <> 0 THEN 'exists_with_different_flags'
                WHEN found_transfer.pending_id IS NOT NULL THEN 'exists_with_different_pending_id'
                WHEN found_transfer.timeout_s <> timeouts[i] THEN 'exists_with_different_timeout'
                WHEN found_transfer.debit_account_id <> debit_ids[i]
                    THEN 'exists_with_different_debit_account_id'
                WHEN found_transfer.credit_account_id <> credit_ids[i]
                    THEN 'exists_with_different_credit_account_id'
                WHEN found_transfer.amount <> amount_i THEN 'exists_with_different_amount'
                WHEN found_transfer.code <> codes[i] THEN 'exists_with_different_code'
                WHEN found_transfer.reverses_id IS NOT NULL
                    THEN 'exists_with_different_reverses_id'
                ELSE 'exists'
            END;
        ELSIF EXISTS (SELECT 1 FROM transfer_failures f WHERE f.id = transfer_ids[i]) THEN
            status := 'id_already_failed';
        ELSIF debit_ids[i] = credit_ids[i] THEN
            status := 'accounts_must_be_different';
        ELSIF timeouts[i] <> 0 THEN
            status := 'timeout_reserved_for_pending_transfer';
        ELSIF amount_i = 0 THEN
            status := 'amount_must_not_be_zero';
        ELSIF codes[i] = 0 THEN
            status := 'code_must_not_be_zero';
        ELSE
            SELECT a.id, a.currency, a.flags, a.debits_pending, a.debits_posted,
                   a.credits_pending, a.credits_posted
                INTO dr FROM accounts a WHERE a.id = debit_ids[i];
            IF NOT FOUND THEN
                status := 'debit_account_not_found';
            ELSE
                SELECT a.id, a.currency, a.flags, a.debits_pending, a.debits_posted,
                       a.credits_pending, a.credits_posted
                    INTO cr FROM accounts a WHERE a.id = credit_ids[i];
                -- Counters are never negative (CHECK), so these subtractions cannot
                -- overflow, and past the overflow tests neither can the sums.
                status := CASE
                    WHEN NOT FOUND THEN 'credit_account_not_found'
                    WHEN dr.currency <> cr.currency THEN 'accounts_must_have_the_same_currency'
                    WHEN currencies[i] <> dr.currency THEN 'currency_must_match_accounts'
                    WHEN amount_i > {COUNTER_MAX} - dr.debits_pending - dr.debits_posted
                        THEN 'overflows_debits'
                    WHEN amount_i > {COUNTER_MAX} - cr.credits_pending - cr.credits_posted
                        THEN 'overflows_credits'
                    WHEN (dr.flags & {DEBITS_MUST_NOT_EXCEED_CREDITS}) <> 0
                         AND dr.debits_pending + dr.debits_posted + amount_i > dr.credits_posted
                        THEN 'exceeds_credits'
                    WHEN (cr.flags & {CREDITS_MUST_NOT_EXCEED_DEBITS}) <> 0
                         AND cr.credits_pending + cr.credits_posted + amount_i > cr.debits_posted
                        THEN 'exceeds_debits'
                    ELSE 'created'
                END;
            END IF;
            IF status = 'created' THEN
                UPDATE accounts SET debits_posted = debits_posted + amount_i,
                                    timestamp_us = batch_us
                    WHERE id = dr.id RETURNING debits_posted, credits_posted
                    INTO dr_debits_posted, dr_credits_posted;
                UPDATE accounts SET credits_posted = credits_posted + amount_i,
                                    timestamp_us = batch_us
                    WHERE id = cr.id RETURNING debits_posted, credits_posted
                    INTO cr_debits_posted, cr_credits_posted;
                INSERT INTO transfers (id, debit_account_id, credit_account_id, amount,
                    amount_requested, currency, code, flags, pending_id, timeout_s,
                    expires_at_us, reverses_id, metadata, created_at_us,
                    debit_account_debits_posted, debit_account_credits_posted,
                    credit_account_debits_posted, credit_account_credits_posted)
                VALUES (transfer_ids[i], dr.id, cr.id, amount_i, NULL, dr.currency,
                    codes[i], 0, NULL, 0, NULL, NULL, metadata_texts[i], batch_us,
                    dr_debits_posted, dr_credits_posted, cr_debits_posted, cr_credits_posted);
            ELSIF status IN ('debit_account_not_found', 'credit_account_not_found',
                             'exceeds_credits', 'exceeds_debits') THEN
                INSERT INTO transfer_failures (id, status, created_at_us)
                    VALUES (transfer_ids[i], status, batch_us);
            END IF;
        END IF;
        statuses := statuses || status;
    END LOOP;
END $$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {SIGNATURE}")
