"""Published views: what the core offers other packages to read.

* ``posted_transfers``: the transfers that moved posted balances, every column of
  ``transfers``: single-phase transfers and the posts of holds, never a hold itself nor a
  void (``flags & (PENDING | VOID_PENDING) = 0``). Reconciliation, audit packs and reports
  read this view, not the table with the predicate restated in each.
* ``journal_transfers``: every transfer, holds and voids included, every column: the
  journal the seal hashes and the audit pack exports.
* ``ledger_accounts``: every account, every column (balances are the account's counters).
* ``trial_balance``: per currency, the number of accounts and the sums of their four
  counters (``accounts``, ``debits_posted``, ``credits_posted``, ``debits_pending``,
  ``credits_pending``): debits equal credits in each currency, posted and pending alike.
* ``party_account_roles``: who holds each account that belongs to a party, and in which
  role: ``account_id``, ``party_id``, ``role``, ``party_kind``, ``party_name``,
  ``currency`` (the party's). Accounts of no party (a tenant's own) are absent.

The core (``ledger.core``) owns ``transfers`` and ``accounts``, and the parties flow owns
``parties`` and ``party_accounts``; any other package reads them through these views.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = 2
VOID_PENDING = 8


VIEWS: tuple[tuple[str, str], ...] = (
    (
        "posted_transfers",
        f"SELECT * FROM transfers WHERE (flags & {PENDING | VOID_PENDING}) = 0",
    ),
    ("journal_transfers", "SELECT * FROM transfers"),
    ("ledger_accounts", "SELECT * FROM accounts"),
    (
        "trial_balance",
        "SELECT currency, COUNT(*) AS accounts, SUM(debits_posted) AS debits_posted,"
        " SUM(credits_posted) AS credits_posted, SUM(debits_pending) AS debits_pending,"
        " SUM(credits_pending) AS credits_pending FROM accounts GROUP BY currency",
    ),
    (
        "party_account_roles",
        "SELECT pa.account_id AS account_id, pa.party_id AS party_id, pa.role AS role,"
        " p.kind AS party_kind, p.name AS party_name, p.currency AS currency"
        " FROM party_accounts pa JOIN parties p ON p.id = pa.party_id",
    ),
)


def upgrade() -> None:
    for name, query in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {query}")


def downgrade() -> None:
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
