"""Operators: no schema change. This revision is empty on purpose and stays in the chain.

It was reserved for operators (issue 16's maker-checker) before they were built, and they
turned out to need no table or column of their own:

* an operator is a principal with the role ``operator`` (``principals.role`` allows it
  since 0008) holding Ed25519 keys in ``api_keys`` (0008);
* a new operator, or a new key for one, is a proposal (``proposals``, 0014) of kind
  ``operator`` or ``operator_key`` that another operator approves
  (:mod:`ledger.flows.principals.operators`); the approval writes the principal and key
  rows and an ``operator.added`` / ``operator.key_added`` event in the outbox (0002's
  ``events``).

It cannot be removed: databases are stamped at 0029 or later, and 0030 revises it, so
upgrading and downgrading pass through it and it does nothing either way.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05
"""

from collections.abc import Sequence

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
