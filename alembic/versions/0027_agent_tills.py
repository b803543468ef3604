"""Agents' till numbers: the 6-digit number a villager types to name an agent over USSD.

* ``agent_tills``: one row per agent party, ``till_number`` (6 ASCII digits, the first
  not ``0``) unique. Allotted at random by :mod:`ledger.flows.parties.tills` when an
  agent is onboarded (or on first need); agents that exist already get one here.
* ``ix_orders_villager_id_created``: a villager's latest orders (her USSD menu).

Times are microseconds since 1970 UTC.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05
"""

import secrets
import time
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.Uuid(as_uuid=True).with_variant(sa.LargeBinary(16), "sqlite")


def upgrade() -> None:
    tills = op.create_table(
        "agent_tills",
        sa.Column("agent_id", UUID, nullable=False),
        sa.Column("till_number", sa.String(6), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name="pk_agent_tills"),
        sa.UniqueConstraint("till_number", name="uq_agent_tills_till_number"),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["parties.id"], name="fk_agent_tills_agent_id_parties"
        ),
        sa.CheckConstraint("length(till_number) = 6", name="ck_agent_tills_till_number"),
    )
    # a villager's orders, newest first (her USSD menu "My orders")
    op.create_index("ix_orders_villager_id_created", "orders", ["villager_id", "created_at_us"])
    parties = sa.table("parties", sa.column("id", UUID), sa.column("kind", sa.String()))
    bind = op.get_bind()
    agents = [
        row[0] for row in bind.execute(sa.select(parties.c.id).where(parties.c.kind == "agent"))
    ]
    taken: set[str] = set()
    now_us = time.time_ns() // 1000
    rows = []
    for agent_id in agents:
        till = f"{100_000 + secrets.randbelow(900_000)}"
        while till in taken:
            till = f"{100_000 + secrets.randbelow(900_000)}"
        taken.add(till)
        rows.append({"agent_id": agent_id, "till_number": till, "created_at_us": now_us})
    if rows:
        op.bulk_insert(tills, rows)


def downgrade() -> None:
    op.drop_index("ix_orders_villager_id_created", table_name="orders")
    op.drop_table("agent_tills")
