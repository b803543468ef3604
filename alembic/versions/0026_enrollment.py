"""Enrollment codes: one-time codes that register a key generated on a phone or browser.

* ``enrollment_codes``: one row per code an operator issued for one principal. The code
  itself is never stored: ``lookup`` (its first 4 characters, not secret) finds the row
  and ``code_hash`` (SHA-256 of the whole normalised code) checks it. ``state`` moves
  ``open`` -> ``used`` | ``void`` once; ``tries_wrong`` counts wrong codes with this
  row's lookup (5 void it). When used, the key it registered (``key_id``, the raw
  ``public_key`` base64) and, for an agent, the offline ``device_id``.

Times are microseconds since 1970 UTC.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")


def upgrade() -> None:
    op.create_table(
        "enrollment_codes",
        sa.Column("id", UUID, nullable=False),
        sa.Column("principal_id", UUID, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("lookup", sa.String(4), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("tries_wrong", sa.Integer(), nullable=False),
        sa.Column("issued_by", UUID, nullable=True),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("public_key", sa.String(64), nullable=True),
        sa.Column("device_id", UUID, nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_enrollment_codes"),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name="fk_enrollment_codes_principal_id_principals"
        ),
        sa.CheckConstraint("state IN ('open', 'used', 'void')", name="ck_enrollment_codes_state"),
        sa.CheckConstraint(
            "tries_wrong >= 0 AND tries_wrong <= 5", name="ck_enrollment_codes_tries_wrong"
        ),
        sa.CheckConstraint(
            "(state = 'used') = (key_id IS NOT NULL)", name="ck_enrollment_codes_used_has_key"
        ),
    )
    op.create_index("ix_enrollment_codes_lookup", "enrollment_codes", ["lookup", "state"])
    op.create_index(
        "ix_enrollment_codes_principal_id", "enrollment_codes", ["principal_id", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_enrollment_codes_principal_id", table_name="enrollment_codes")
    op.drop_index("ix_enrollment_codes_lookup", table_name="enrollment_codes")
    op.drop_table("enrollment_codes")
