"""Published views the flows offer other packages to read.

* ``outbox_events``: every event of the outbox (``ledger.flows.events`` owns ``events``),
  every column: what the webhook delivery reads, and a flow that asks whether an event
  was written already.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


VIEWS: tuple[tuple[str, str], ...] = (("outbox_events", "SELECT * FROM events"),)


def upgrade() -> None:
    for name, query in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {query}")


def downgrade() -> None:
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
