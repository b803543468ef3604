"""SMS receipts and alerts: the outbox rendered for villagers' and agents' phones.

* ``sms_cursor``: how far the SMS worker has read the outbox (``events.seq``); one row,
  ``outbox``;
* ``sms_contacts``: the phone and language of a party that is not a villager principal
  (an agent), set by an operator; villagers' phones live in ``villagers``;
* ``sms_messages``: one event rendered for one phone (unique per event and phone, so a
  replayed pass queues nothing twice): the text in the recipient's language, its parts
  and encoding (``gsm7``/``ucs2``), ``queued`` with ``next_attempt_at_us`` (also the
  lease: a claimed message is pushed ahead by the lease) until ``sent`` or ``failed``,
  and what the gateway answered for it (message id, status, cost as given). A state row.
  ``text_shown`` is the text with any one-time code masked, for operators;
* ``sms_attempts``: every attempt: the HTTP status, the recipient's status code and
  status as the gateway answered, or the error; history, never updated or deleted.

Times are microseconds since 1970 UTC.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid
TEXT_LENGTH_MAX = 1000
PHONE_LENGTH_MAX = 16  # E.164: '+' and at most 15 digits

IMMUTABLE = ("sms_attempts",)


def _messages() -> None:
    op.create_table(
        "sms_messages",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("party_id", UUID, nullable=False),
        sa.Column("phone", sa.String(PHONE_LENGTH_MAX), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("text", sa.String(TEXT_LENGTH_MAX), nullable=False),
        sa.Column("text_shown", sa.String(TEXT_LENGTH_MAX), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(8), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at_us", sa.BigInteger(), nullable=True),
        sa.Column("last_attempt_at_us", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("gateway_message_id", sa.String(128), nullable=True),
        sa.Column("gateway_status_code", sa.Integer(), nullable=True),
        sa.Column("gateway_status", sa.String(64), nullable=True),
        sa.Column("gateway_cost", sa.String(32), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_sms_messages"),
        sa.UniqueConstraint("id", name="uq_sms_messages_id"),
        sa.UniqueConstraint("event_id", "phone", name="uq_sms_messages_event_phone"),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_sms_messages_event_id_events"
        ),
        sa.CheckConstraint("state IN ('queued', 'sent', 'failed')", name="ck_sms_messages_state"),
        sa.CheckConstraint("encoding IN ('gsm7', 'ucs2')", name="ck_sms_messages_encoding"),
        sa.CheckConstraint("parts >= 1", name="ck_sms_messages_parts_positive"),
        sa.CheckConstraint("attempts >= 0", name="ck_sms_messages_attempts_not_negative"),
        sa.CheckConstraint(
            "(state = 'queued') = (next_attempt_at_us IS NOT NULL)",
            name="ck_sms_messages_queued_has_next_attempt",
        ),
    )
    op.create_index(
        "ix_sms_messages_state_next_attempt", "sms_messages", ["state", "next_attempt_at_us"]
    )


def upgrade() -> None:
    op.create_table(
        "sms_cursor",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_sms_cursor"),
        sa.CheckConstraint("last_seq >= 0", name="ck_sms_cursor_last_seq_not_negative"),
    )
    op.execute("INSERT INTO sms_cursor (name, last_seq, updated_at_us) VALUES ('outbox', 0, 0)")
    op.create_table(
        "sms_contacts",
        sa.Column("party_id", UUID, nullable=False),
        sa.Column("phone", sa.String(PHONE_LENGTH_MAX), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("party_id", name="pk_sms_contacts"),
        sa.ForeignKeyConstraint(
            ["party_id"], ["parties.id"], name="fk_sms_contacts_party_id_parties"
        ),
        sa.CheckConstraint("language IN ('en', 'sw')", name="ck_sms_contacts_language"),
    )
    _messages()
    op.create_table(
        "sms_attempts",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("message_id", UUID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("recipient_status_code", sa.Integer(), nullable=True),
        sa.Column("recipient_status", sa.String(64), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_sms_attempts"),
        sa.UniqueConstraint("message_id", "attempt", name="uq_sms_attempts_message_attempt"),
        sa.ForeignKeyConstraint(
            ["message_id"], ["sms_messages.id"], name="fk_sms_attempts_message_id_sms_messages"
        ),
        sa.CheckConstraint("attempt > 0", name="ck_sms_attempts_attempt_positive"),
        sa.CheckConstraint(
            "http_status IS NOT NULL OR error IS NOT NULL", name="ck_sms_attempts_has_outcome"
        ),
        sa.CheckConstraint("duration_us >= 0", name="ck_sms_attempts_duration_not_negative"),
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
    op.drop_table("sms_attempts")
    op.drop_table("sms_messages")
    op.drop_table("sms_contacts")
    op.drop_table("sms_cursor")
