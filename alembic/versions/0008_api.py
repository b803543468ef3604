"""The signed API, part 1: principals, keys, account owners, idempotency records.

* ``principals``: who calls the API, with one role (storefront, agent, auditor,
  operator); a principal is named by its role and name (``keys create`` finds it again);
* ``api_keys``: the keys a principal signs requests with. An Ed25519 key stores its raw
  32-byte public key; an HMAC-SHA256 key stores the shared secret itself, because the
  server must recompute the MAC: anyone who reads this table can sign as that principal,
  which is the tradeoff HMAC buys its simplicity with (prefer Ed25519; agents must).
  Key material is base64 text. A key goes active -> revoked once and never back;
* ``account_owners``: which principal an account created through the API belongs to
  (rows never change: ownership is set when the account is created);
* ``idempotency_records``: the stored answer of each POST by (principal, method, path,
  Idempotency-Key), kept until ``expires_at_us`` (24 h by default), then purged.

Times are microseconds since 1970 UTC.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid

IMMUTABLE = ("account_owners",)


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("id", UUID, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_principals"),
        sa.UniqueConstraint("role", "name", name="uq_principals_role_name"),
        sa.CheckConstraint(
            "role IN ('storefront', 'agent', 'auditor', 'operator')", name="ck_principals_role"
        ),
        sa.CheckConstraint("length(name) > 0", name="ck_principals_name_not_empty"),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("principal_id", UUID, nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("key_material", sa.Text(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_api_keys"),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name="fk_api_keys_principal_id_principals"
        ),
        sa.CheckConstraint("alg IN ('ed25519', 'hmac-sha256')", name="ck_api_keys_alg"),
        sa.CheckConstraint("state IN ('active', 'revoked')", name="ck_api_keys_state"),
        sa.CheckConstraint(
            "(state = 'revoked') = (revoked_at_us IS NOT NULL)", name="ck_api_keys_revoked_at"
        ),
    )
    op.create_index("ix_api_keys_principal_id", "api_keys", ["principal_id"])
    op.create_table(
        "account_owners",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("principal_id", UUID, nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_account_owners"),
        sa.UniqueConstraint("account_id", name="uq_account_owners_account_id"),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_account_owners_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name="fk_account_owners_principal_id_principals"
        ),
    )
    op.create_index("ix_account_owners_principal_id_seq", "account_owners", ["principal_id", "seq"])
    op.create_table(
        "idempotency_records",
        sa.Column("principal_id", UUID, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(512), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("locked_until_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "principal_id", "method", "path", "idempotency_key", name="pk_idempotency_records"
        ),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name="fk_idempotency_records_principal_id_principals",
        ),
        sa.CheckConstraint("state IN ('in_progress', 'done')", name="ck_idempotency_records_state"),
        sa.CheckConstraint(
            "(state = 'done') = (status_code IS NOT NULL)",
            name="ck_idempotency_records_done_has_answer",
        ),
    )
    op.create_index(
        "ix_idempotency_records_expires_at_us", "idempotency_records", ["expires_at_us"]
    )
    _immutable(op.get_context().dialect.name)


def _immutable(dialect: str) -> None:
    for table in IMMUTABLE:
        if dialect == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
            )
            continue
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{action} on {table} refused:"
                " these rows are immutable'); END"
            )


def downgrade() -> None:
    op.drop_table("idempotency_records")
    op.drop_table("account_owners")
    op.drop_table("api_keys")
    op.drop_table("principals")
