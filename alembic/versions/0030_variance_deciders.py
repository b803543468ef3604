"""Cash-count variances are decided by signed callers, not by a name someone typed.

Until now ``recon_variances.decided_by`` held whatever name ``vledger variance approve
--operator NAME`` was given; nothing checked it. From here:

* ``decided_by`` is the deciding operator's principal (``principals.id``): for an
  approval, the signed caller who approved the ``variance_approval`` proposal (never its
  maker: ``proposals`` holds both); for a rejection, the signed operator who rejected it.
* ``decided_by_name`` is the old column, renamed: the typed, unchecked name of a
  variance decided before this revision. No new row gets one.

A decided variance has exactly one of the two; a proposed one has neither. Existing
rows keep their name in ``decided_by_name`` and have no principal: nothing pretends to
know who typed it. PostgreSQL alters the table in place; SQLite cannot change a CHECK
constraint, so the table is rebuilt with the same rows, index and triggers.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

DECIDED = (
    "(state = 'proposed') = (decided_by IS NULL AND decided_by_name IS NULL)"
    " AND (decided_by IS NULL OR decided_by_name IS NULL)"
)
"""Proposed: no decider; decided: a principal (since 0030) or a typed name (before)."""
OLD_DECIDED = "(state = 'proposed') = (decided_by IS NULL)"
KEPT_COLUMNS = (
    "id, count_id, agent_id, currency, direction, amount_minor, comment, state,"
    " transfer_id, reject_reason, created_at_us, decided_at_us"
)
SQLITE_TRIGGERS = (
    "CREATE TRIGGER recon_variances_no_delete BEFORE DELETE ON recon_variances"
    " BEGIN SELECT RAISE(ABORT, 'DELETE on recon_variances refused: these rows are"
    " kept'); END",
    "CREATE TRIGGER recon_variances_decided BEFORE UPDATE ON recon_variances"
    " WHEN OLD.state <> 'proposed' BEGIN SELECT RAISE(ABORT, 'UPDATE on recon_variances"
    " refused: a decided variance never changes'); END",
)


def _variances_table(name: str, *, principal: bool) -> None:
    """``recon_variances`` as 0011 made it, with the decider as :data:`DECIDED` says
    (``principal``) or as it was."""
    decider = (
        [
            sa.Column("decided_by", UUID, nullable=True),
            sa.Column("decided_by_name", sa.String(200), nullable=True),
        ]
        if principal
        else [sa.Column("decided_by", sa.String(200), nullable=True)]
    )
    extra: list[sa.schema.SchemaItem] = (
        [
            sa.ForeignKeyConstraint(
                ["decided_by"], ["principals.id"], name="fk_recon_variances_decided_by_principals"
            )
        ]
        if principal
        else []
    )
    op.create_table(
        name,
        sa.Column("id", UUID, nullable=False),
        sa.Column("count_id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("comment", sa.String(500), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("transfer_id", UUID, nullable=True),
        *decider,
        sa.Column("reject_reason", sa.String(500), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("decided_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recon_variances"),
        sa.UniqueConstraint("count_id", name="uq_recon_variances_count_id"),
        sa.UniqueConstraint("transfer_id", name="uq_recon_variances_transfer_id"),
        sa.ForeignKeyConstraint(
            ["count_id"], ["recon_cash_counts.id"], name="fk_recon_variances_count_id_counts"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_recon_variances_agent_id_parties"
        ),
        *extra,
        sa.CheckConstraint(
            "state IN ('proposed', 'approved', 'rejected')", name="ck_recon_variances_state"
        ),
        sa.CheckConstraint("direction IN ('over', 'short')", name="ck_recon_variances_direction"),
        sa.CheckConstraint("amount_minor > 0", name="ck_recon_variances_amount_positive"),
        sa.CheckConstraint("length(currency) = 3", name="ck_recon_variances_currency_length"),
        sa.CheckConstraint("length(comment) > 0", name="ck_recon_variances_comment"),
        sa.CheckConstraint(
            "(state = 'approved') = (transfer_id IS NOT NULL)",
            name="ck_recon_variances_approved_has_transfer",
        ),
        sa.CheckConstraint(
            "(state = 'proposed') = (decided_at_us IS NULL)",
            name="ck_recon_variances_decided_at",
        ),
        sa.CheckConstraint(
            DECIDED if principal else OLD_DECIDED, name="ck_recon_variances_decided_by"
        ),
        sa.CheckConstraint(
            "(state = 'rejected') = (reject_reason IS NOT NULL)",
            name="ck_recon_variances_rejected_has_reason",
        ),
    )


def _sqlite_rebuild(*, principal: bool) -> None:
    """Copy the rows into the table as it is to be, then put back its index and triggers."""
    _variances_table("recon_variances_next", principal=principal)
    if principal:
        copy = f"{KEPT_COLUMNS}, decided_by_name) SELECT {KEPT_COLUMNS}, decided_by"
    else:
        copy = f"{KEPT_COLUMNS}, decided_by) SELECT {KEPT_COLUMNS}, decided_by_name"
    op.execute(f"INSERT INTO recon_variances_next ({copy} FROM recon_variances")
    op.drop_index("ix_recon_variances_state_created", table_name="recon_variances")
    op.drop_table("recon_variances")
    op.rename_table("recon_variances_next", "recon_variances")
    op.create_index(
        "ix_recon_variances_state_created", "recon_variances", ["state", "created_at_us", "id"]
    )
    for trigger in SQLITE_TRIGGERS:
        op.execute(trigger)


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        _sqlite_rebuild(principal=True)
        return
    op.execute("ALTER TABLE recon_variances RENAME COLUMN decided_by TO decided_by_name")
    op.drop_constraint("ck_recon_variances_decided_by", "recon_variances", type_="check")
    op.add_column("recon_variances", sa.Column("decided_by", UUID, nullable=True))
    op.create_foreign_key(
        "fk_recon_variances_decided_by_principals",
        "recon_variances",
        "principals",
        ["decided_by"],
        ["id"],
    )
    op.create_check_constraint("ck_recon_variances_decided_by", "recon_variances", DECIDED)


def downgrade() -> None:
    """Only while no variance was decided by a principal (their names were never typed)."""
    if op.get_context().dialect.name != "postgresql":
        _sqlite_rebuild(principal=False)
        return
    op.drop_constraint("ck_recon_variances_decided_by", "recon_variances", type_="check")
    op.drop_constraint(
        "fk_recon_variances_decided_by_principals", "recon_variances", type_="foreignkey"
    )
    op.drop_column("recon_variances", "decided_by")
    op.execute("ALTER TABLE recon_variances RENAME COLUMN decided_by_name TO decided_by")
    op.create_check_constraint("ck_recon_variances_decided_by", "recon_variances", OLD_DECIDED)
