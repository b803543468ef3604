"""The audit pack, seal, integrity check and schedule publish no view of their own.

They read the core's published views of 0018 (``journal_transfers``, ``ledger_accounts``,
``trial_balance``, ``party_account_roles``), and one another's tables only through the
owners' functions: ``reconciliation.seal`` (``seal_blocks``, ``seal_keys``,
``seal_state``: ``read_blocks``, ``blocks_created_in``, ``sealed_extent``, ...) and
``reconciliation.runs`` (``recon_runs``: ``runs_of_period``, ``dates_with_runs``,
``latest_run_id``). No other package reads those tables. The revision stays, empty, so
that the chain 0019 -> 0020 -> 0021 holds.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from collections.abc import Sequence

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
