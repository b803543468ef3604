"""Raw transfers: proposals, the maker-checker table for sensitive operator steps.

* ``proposals``: a step one operator (the maker, ``proposed_by``) asks for and a
  different operator (the checker, ``decided_by``) approves or rejects. Generic: a
  ``kind`` names what is proposed (``transfers``: an operator's raw transfers touching a
  party's account, a correction) and ``payload`` holds it as canonical JSON; ``result``
  is what applying it answered (canonical JSON), written in the approval's transaction.
  ``proposed -> approved | rejected``; the maker never decides its own proposal (a
  CHECK holds it too); a decided row never changes again and no row is ever deleted
  (triggers refuse it).

The rule on raw transfers by storefront and agent keys (a bounded own debit account; a
credit only to accounts of storefront or agent principals) needs no table: it reads
``account_owners``, ``party_accounts`` and the accounts' flags, which never change.

Times are microseconds since 1970 UTC; principals are ``principals.id``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("id", UUID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("proposed_by", UUID, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("decided_by", UUID, nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("decided_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_proposals"),
        sa.UniqueConstraint("id", name="uq_proposals_id"),
        sa.ForeignKeyConstraint(
            ["proposed_by"], ["principals.id"], name="fk_proposals_proposed_by_principals"
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["principals.id"], name="fk_proposals_decided_by_principals"
        ),
        sa.CheckConstraint(
            "state IN ('proposed', 'approved', 'rejected')", name="ck_proposals_state"
        ),
        sa.CheckConstraint("length(kind) > 0", name="ck_proposals_kind_not_empty"),
        sa.CheckConstraint(
            "(state = 'proposed') = (decided_by IS NULL)", name="ck_proposals_decided_by"
        ),
        sa.CheckConstraint(
            "(state = 'proposed') = (decided_at_us IS NULL)", name="ck_proposals_decided_at"
        ),
        sa.CheckConstraint(
            "decided_by IS NULL OR decided_by <> proposed_by",
            name="ck_proposals_checker_is_not_maker",
        ),
        sa.CheckConstraint(
            "(state = 'approved') = (result IS NOT NULL)", name="ck_proposals_approved_has_result"
        ),
        sa.CheckConstraint(
            "(state = 'rejected') = (reason IS NOT NULL)", name="ck_proposals_rejected_has_reason"
        ),
    )
    op.create_index("ix_proposals_state_seq", "proposals", ["state", "seq"])
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER proposals_no_delete BEFORE DELETE ON proposals"
            " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER proposals_decided BEFORE UPDATE ON proposals"
            " FOR EACH ROW WHEN (OLD.state <> 'proposed')"
            " EXECUTE FUNCTION vledger_refuse_change()"
        )
        return
    op.execute(
        "CREATE TRIGGER proposals_no_delete BEFORE DELETE ON proposals"
        " BEGIN SELECT RAISE(ABORT, 'DELETE on proposals refused: these rows are kept'); END"
    )
    op.execute(
        "CREATE TRIGGER proposals_decided BEFORE UPDATE ON proposals"
        " WHEN OLD.state <> 'proposed' BEGIN SELECT RAISE(ABORT, 'UPDATE on proposals"
        " refused: a decided proposal never changes'); END"
    )


def downgrade() -> None:
    op.drop_index("ix_proposals_state_seq", table_name="proposals")
    op.drop_table("proposals")
