"""USSD sessions: one row per aggregator ``sessionId`` (:mod:`ledger.flows.ussd`).

* ``ussd_sessions``: the menu state of one dialled session, so that the callback stays
  stateless across processes. It never holds a PIN: the aggregator repeats every input in
  ``text`` (the PIN included), and the row keeps only the *positions* of the secret inputs
  (``secret_positions``, a JSON list of indexes), the SHA-256 of the inputs with those
  positions blanked (``inputs_sha256``), and whether (and when) the PIN was verified in
  this session. ``screen_text`` / ``screen_end`` are the last answer, repeated to a
  replayed step. Times are UTC microseconds since 1970. State rows: everything but
  ``session_id``, ``phone`` and ``created_at_us`` changes.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")

SESSION_ID_LENGTH_MAX = 100
SCREEN_LENGTH_MAX = 182
LANGUAGES = ("en", "sw")


def upgrade() -> None:
    op.create_table(
        "ussd_sessions",
        sa.Column("session_id", sa.String(SESSION_ID_LENGTH_MAX), nullable=False),
        sa.Column("phone", sa.String(16), nullable=False),
        sa.Column("villager_id", UUID, nullable=False),
        sa.Column("language", sa.String(2), nullable=False),
        # The menu state (JSON): the screen the villager is on, its page, what the PIN
        # step leads to, the position of the current PIN among the inputs. Never a PIN.
        sa.Column("state", sa.Text(), nullable=False),
        # How many inputs of ``text`` the session has taken (the next step brings one more).
        sa.Column("inputs_seen", sa.Integer(), nullable=False),
        # JSON list of the indexes of ``text``'s inputs that were PINs (never their digits).
        sa.Column("secret_positions", sa.Text(), nullable=False),
        # SHA-256 (hex) of the inputs so far with the secret positions blanked.
        sa.Column("inputs_sha256", sa.String(64), nullable=False),
        # When the PIN was verified in this session; NULL: not (yet) verified.
        sa.Column("pin_verified_at_us", sa.BigInteger(), nullable=True),
        sa.Column("screen_text", sa.String(SCREEN_LENGTH_MAX), nullable=False),
        sa.Column("screen_end", sa.Boolean(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_ussd_sessions"),
        sa.ForeignKeyConstraint(
            ["villager_id"], ["parties.id"], name="fk_ussd_sessions_villager_id_parties"
        ),
        sa.CheckConstraint(
            "language IN ('" + "', '".join(LANGUAGES) + "')", name="ck_ussd_sessions_language"
        ),
        sa.CheckConstraint("inputs_seen >= 0", name="ck_ussd_sessions_inputs_seen"),
        sa.CheckConstraint("length(inputs_sha256) = 64", name="ck_ussd_sessions_sha256"),
        sa.CheckConstraint(
            f"length(screen_text) <= {SCREEN_LENGTH_MAX}", name="ck_ussd_sessions_screen_length"
        ),
        sa.CheckConstraint("updated_at_us >= created_at_us", name="ck_ussd_sessions_times"),
    )
    op.create_index("ix_ussd_sessions_updated_at_us", "ussd_sessions", ["updated_at_us"])


def downgrade() -> None:
    op.drop_index("ix_ussd_sessions_updated_at_us", table_name="ussd_sessions")
    op.drop_table("ussd_sessions")
