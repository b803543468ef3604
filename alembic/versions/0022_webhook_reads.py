"""Published views the webhook delivery reads.

* ``principal_roles``: every principal's id and role (``principal_id``, ``role``; the
  principals flow, ``ledger.flows.principals``, owns ``principals``): the fan-out sends
  an event of no party (``checkpoint.sealed``) to the endpoints of every storefront.

The delivery reads the outbox through ``outbox_events`` (0021).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


VIEWS: tuple[tuple[str, str], ...] = (
    ("principal_roles", "SELECT id AS principal_id, role FROM principals"),
)


def upgrade() -> None:
    for name, query in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {query}")


def downgrade() -> None:
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW {name}")
