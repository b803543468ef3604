"""The signed API, part 2: webhook endpoints, deliveries and their attempts.

* ``webhook_endpoints``: where a principal (a storefront or an agent, whose party id is
  its principal id) wants its events POSTed, for which event types, signed with which
  secret. The secret is stored as given to the principal (``whsec_<base64>``): the
  server must recompute the HMAC, like an HMAC API key. While a secret rotates, the
  previous one signs beside it until ``previous_secret_expires_at_us``. A 410 from the
  target disables the endpoint (``disabled_reason``). A state row;
* ``webhook_deliveries``: one outbox event to one endpoint, at least once: ``pending``
  with ``next_attempt_at_us`` until ``succeeded`` or, after the last attempt (or the
  endpoint disabled), ``failed``; one row per (endpoint, event). A state row;
* ``webhook_attempts``: every attempt, its HTTP status or error and how long it took;
  history, never updated or deleted;
* ``webhook_cursor``: how far the worker has fanned the outbox (``events.seq``) out
  into deliveries; one row, ``outbox``.

Times are microseconds since 1970 UTC.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid

IMMUTABLE = ("webhook_attempts",)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("id", UUID, nullable=False),
        sa.Column("principal_id", UUID, nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.Text(), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_secret_expires_at_us", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("disabled_reason", sa.String(64), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_webhook_endpoints"),
        sa.UniqueConstraint("id", name="uq_webhook_endpoints_id"),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name="fk_webhook_endpoints_principal_id_principals"
        ),
        sa.CheckConstraint("state IN ('enabled', 'disabled')", name="ck_webhook_endpoints_state"),
        sa.CheckConstraint(
            "(state = 'disabled') = (disabled_reason IS NOT NULL)",
            name="ck_webhook_endpoints_disabled_reason",
        ),
        sa.CheckConstraint(
            "(previous_secret IS NULL) = (previous_secret_expires_at_us IS NULL)",
            name="ck_webhook_endpoints_previous_secret_expires",
        ),
        sa.CheckConstraint("secret LIKE 'whsec_%'", name="ck_webhook_endpoints_secret_prefix"),
    )
    op.create_index(
        "ix_webhook_endpoints_principal_id_seq", "webhook_endpoints", ["principal_id", "seq"]
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("id", UUID, nullable=False),
        sa.Column("endpoint_id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at_us", sa.BigInteger(), nullable=True),
        sa.Column("last_attempt_at_us", sa.BigInteger(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("id", name="uq_webhook_deliveries_id"),
        sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name="fk_webhook_deliveries_endpoint_id_webhook_endpoints",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_webhook_deliveries_event_id_events"
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'succeeded', 'failed')", name="ck_webhook_deliveries_state"
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_webhook_deliveries_attempts_not_negative"),
        sa.CheckConstraint(
            "(state = 'pending') = (next_attempt_at_us IS NOT NULL)",
            name="ck_webhook_deliveries_pending_has_next_attempt",
        ),
    )
    op.create_index(
        "ix_webhook_deliveries_state_next_attempt",
        "webhook_deliveries",
        ["state", "next_attempt_at_us"],
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_seq", "webhook_deliveries", ["endpoint_id", "seq"]
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("seq", SEQ, nullable=False, autoincrement=True),
        sa.Column("delivery_id", UUID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("duration_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_webhook_attempts"),
        sa.UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_delivery_attempt"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name="fk_webhook_attempts_delivery_id_webhook_deliveries",
        ),
        sa.CheckConstraint("attempt > 0", name="ck_webhook_attempts_attempt_positive"),
        sa.CheckConstraint(
            "status_code IS NOT NULL OR error IS NOT NULL",
            name="ck_webhook_attempts_has_outcome",
        ),
        sa.CheckConstraint("duration_us >= 0", name="ck_webhook_attempts_duration_not_negative"),
    )
    op.create_table(
        "webhook_cursor",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_webhook_cursor"),
        sa.CheckConstraint("last_seq >= 0", name="ck_webhook_cursor_last_seq_not_negative"),
    )
    op.execute("INSERT INTO webhook_cursor (name, last_seq, updated_at_us) VALUES ('outbox', 0, 0)")
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
    op.drop_table("webhook_cursor")
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
