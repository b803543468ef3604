"""Villagers as principals: phone, PIN, activation codes, lockout.

* ``villagers``: one row per villager party (its id is the party's): the registering
  agent, the phone number (E.164, unique), the language, the state
  (``pending_activation`` -> ``active`` <-> ``locked``), the argon2id hash of the PIN
  (absent exactly while pending activation), the count of wrong PIN tries, the last
  unlock (the 30-day rule) and the end of a SIM-swap hold on wallet debits;
* ``villager_activation_codes``: one-time codes that let a villager set a PIN, argon2id
  hashed, each ``open`` -> ``used`` | ``void`` (three wrong tries, expiry, or a newer
  code); at most one open code per villager (a partial unique index).

Times are microseconds since 1970 UTC.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")


def upgrade() -> None:
    op.create_table(
        "villagers",
        sa.Column("party_id", UUID, nullable=False),
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("pin_hash", sa.String(255), nullable=True),
        sa.Column("pin_tries_failed", sa.Integer(), nullable=False),
        # SHA-256 (hex) of the registration request: a replay answers, another is refused.
        sa.Column("registration_sha256", sa.String(64), nullable=False),
        sa.Column("unlocked_at_us", sa.BigInteger(), nullable=True),
        sa.Column("debit_hold_until_us", sa.BigInteger(), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("party_id", name="pk_villagers"),
        sa.UniqueConstraint("phone", name="uq_villagers_phone"),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name="fk_villagers_party_id_parties"),
        sa.ForeignKeyConstraint(["agent_id"], ["parties.id"], name="fk_villagers_agent_id_parties"),
        sa.CheckConstraint(
            "phone LIKE '+%' AND length(phone) BETWEEN 8 AND 16", name="ck_villagers_phone_e164"
        ),
        sa.CheckConstraint("language IN ('en', 'sw')", name="ck_villagers_language"),
        sa.CheckConstraint(
            "state IN ('pending_activation', 'active', 'locked')", name="ck_villagers_state"
        ),
        sa.CheckConstraint(
            "(state = 'pending_activation') = (pin_hash IS NULL)", name="ck_villagers_pin_set"
        ),
        sa.CheckConstraint(
            "pin_tries_failed >= 0", name="ck_villagers_pin_tries_failed_not_negative"
        ),
        sa.CheckConstraint(
            "length(registration_sha256) = 64", name="ck_villagers_registration_sha256_length"
        ),
    )
    op.create_index("ix_villagers_agent_id", "villagers", ["agent_id"])
    op.create_table(
        "villager_activation_codes",
        sa.Column("id", UUID, nullable=False),
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("code_hash", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(24), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("tries_failed", sa.Integer(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_villager_activation_codes"),
        sa.ForeignKeyConstraint(
            ["villager_id"],
            ["villagers.party_id"],
            name="fk_villager_activation_codes_villager_id_villagers",
        ),
        sa.CheckConstraint(
            "reason IN ('registration', 'unlock', 'reset')",
            name="ck_villager_activation_codes_reason",
        ),
        sa.CheckConstraint(
            "state IN ('open', 'used', 'void')", name="ck_villager_activation_codes_state"
        ),
        sa.CheckConstraint(
            "tries_failed >= 0", name="ck_villager_activation_codes_tries_not_negative"
        ),
        sa.CheckConstraint(
            "expires_at_us > created_at_us", name="ck_villager_activation_codes_expiry"
        ),
        sa.CheckConstraint(
            "(state = 'open') = (resolved_at_us IS NULL)",
            name="ck_villager_activation_codes_resolved",
        ),
    )
    op.create_index(
        "uq_villager_activation_codes_open",
        "villager_activation_codes",
        ["villager_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index(
        "ix_villager_activation_codes_villager_id",
        "villager_activation_codes",
        ["villager_id", "created_at_us"],
    )


def downgrade() -> None:
    op.drop_table("villager_activation_codes")
    op.drop_table("villagers")
