"""Reconciliation, part 1: the sealed journal (blocks, checkpoints, the service key's public half).

* ``seal_keys``: the public half of every service key that signed a checkpoint (raw
  32-byte Ed25519 key as base64, its signed-note key name and 4-byte key ID as hex);
  rows never change;
* ``seal_blocks``: one row per block of sealed transfers. A block covers the transfers
  with ``seq`` in (previous block's ``last_seq``, ``last_seq``], which are log entries
  ``tree_size_before`` .. ``tree_size - 1`` of the journal. Hashes are lowercase hex;
  ``root_hash`` is the RFC 6962 root of the whole journal at ``tree_size`` (cumulative);
  ``frontier`` is the tree's right border after the block (comma-separated hex), from
  which the next block's root is computed; ``checkpoint`` is the signed note. Rows never
  change, and a trigger refuses a block that does not continue the last one (number + 1,
  tree sizes and chain joined, seq past the last block's);
* ``seal_state``: one row (id 1), the sealer's head: ``origin`` (the log's name, fixed at
  migration), ``sealed_seq`` (every transfer with seq <= it is sealed, or never will
  exist), and on PostgreSQL a fence (``fence_seq``, ``fence_xid``) that becomes sealable
  once every transaction older than ``fence_xid`` has ended (see
  ``reconciliation/seal.py``). The row is never deleted; ``sealed_seq`` only grows and
  ``origin`` never changes.

Times are microseconds since 1970 UTC.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid
HASH = sa.String(64)  # SHA-256 as lowercase hex
ZERO_HASH = "0" * 64

IMMUTABLE = ("seal_keys", "seal_blocks")

LAST_BLOCK = "(SELECT {column} FROM seal_blocks ORDER BY number DESC LIMIT 1)"


def upgrade() -> None:
    op.create_table(
        "seal_keys",
        sa.Column("id", SEQ, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("public_key", sa.String(44), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_seal_keys"),
        sa.UniqueConstraint("name", "public_key", name="uq_seal_keys_name_public_key"),
    )
    op.create_table(
        "seal_blocks",
        sa.Column("number", SEQ, nullable=False, autoincrement=False),
        sa.Column("tree_size_before", sa.BigInteger(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("chain_before", HASH, nullable=False),
        sa.Column("chain_head", HASH, nullable=False),
        sa.Column("root_hash", HASH, nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("key_ref", sa.BigInteger(), nullable=False),
        sa.Column("first_created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("last_created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("sealed_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_seal_blocks"),
        sa.UniqueConstraint("tree_size", name="uq_seal_blocks_tree_size"),
        sa.UniqueConstraint("last_seq", name="uq_seal_blocks_last_seq"),
        sa.ForeignKeyConstraint(
            ["key_ref"], ["seal_keys.id"], name="fk_seal_blocks_key_ref_seal_keys"
        ),
        sa.CheckConstraint("number > 0", name="ck_seal_blocks_number_positive"),
        sa.CheckConstraint(
            "tree_size_before >= 0 AND tree_size > tree_size_before",
            name="ck_seal_blocks_not_empty",
        ),
        sa.CheckConstraint(
            "first_seq > 0 AND last_seq >= first_seq", name="ck_seal_blocks_seq_range"
        ),
        sa.CheckConstraint(
            "last_seq - first_seq + 1 >= tree_size - tree_size_before",
            name="ck_seal_blocks_seq_range_holds_block",
        ),
    )
    op.create_index("ix_seal_blocks_last_created_at_us", "seal_blocks", ["last_created_at_us"])
    op.create_table(
        "seal_state",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("sealed_seq", sa.BigInteger(), nullable=False),
        sa.Column("fence_seq", sa.BigInteger(), nullable=True),
        sa.Column("fence_xid", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_seal_state"),
        sa.CheckConstraint("id = 1", name="ck_seal_state_one_row"),
        sa.CheckConstraint("sealed_seq >= 0", name="ck_seal_state_sealed_seq_not_negative"),
        sa.CheckConstraint(
            "(fence_seq IS NULL) = (fence_xid IS NULL)", name="ck_seal_state_fence_whole"
        ),
    )
    origin = f"vledger/{uuid.uuid4().hex}"
    op.execute(
        "INSERT INTO seal_state (id, origin, sealed_seq, updated_at_us)"
        f" VALUES (1, '{origin}', 0, 0)"
    )
    _guards(op.get_context().dialect.name)


def _guards(dialect: str) -> None:
    if dialect == "postgresql":
        for table in IMMUTABLE:
            op.execute(
                f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}"
                " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}"
                " FOR EACH STATEMENT EXECUTE FUNCTION vledger_refuse_change()"
            )
        last = LAST_BLOCK.format
        op.execute(
            f"""
            CREATE FUNCTION vledger_seal_block_continues() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.number <> COALESCE((SELECT max(number) FROM seal_blocks), 0) + 1
                   OR NEW.tree_size_before <> COALESCE({last(column="tree_size")}, 0)
                   OR NEW.first_seq <= COALESCE({last(column="last_seq")}, 0)
                   OR NEW.chain_before <> COALESCE({last(column="chain_head")}, '{ZERO_HASH}')
                THEN
                    RAISE EXCEPTION 'seal block % does not continue the journal', NEW.number
                        USING ERRCODE = 'restrict_violation';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER seal_blocks_continue BEFORE INSERT ON seal_blocks"
            " FOR EACH ROW EXECUTE FUNCTION vledger_seal_block_continues()"
        )
        op.execute(
            "CREATE TRIGGER seal_state_no_delete BEFORE DELETE ON seal_state"
            " FOR EACH ROW EXECUTE FUNCTION vledger_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER seal_state_forward BEFORE UPDATE ON seal_state FOR EACH ROW"
            " WHEN (NEW.sealed_seq < OLD.sealed_seq OR NEW.origin <> OLD.origin"
            " OR NEW.id <> OLD.id)"
            " EXECUTE FUNCTION vledger_refuse_change()"
        )
        return
    for table in IMMUTABLE:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, '{action} on {table} refused:"
                " these rows are immutable'); END"
            )
    last = LAST_BLOCK.format
    op.execute(
        "CREATE TRIGGER seal_blocks_continue BEFORE INSERT ON seal_blocks"
        " WHEN NEW.number <> COALESCE((SELECT max(number) FROM seal_blocks), 0) + 1"
        f" OR NEW.tree_size_before <> COALESCE({last(column='tree_size')}, 0)"
        f" OR NEW.first_seq <= COALESCE({last(column='last_seq')}, 0)"
        f" OR NEW.chain_before <> COALESCE({last(column='chain_head')}, '{ZERO_HASH}')"
        " BEGIN SELECT RAISE(ABORT, 'seal block does not continue the journal'); END"
    )
    op.execute(
        "CREATE TRIGGER seal_state_no_delete BEFORE DELETE ON seal_state"
        " BEGIN SELECT RAISE(ABORT, 'DELETE on seal_state refused'); END"
    )
    op.execute(
        "CREATE TRIGGER seal_state_forward BEFORE UPDATE ON seal_state"
        " WHEN NEW.sealed_seq < OLD.sealed_seq OR NEW.origin IS NOT OLD.origin"
        " OR NEW.id IS NOT OLD.id"
        " BEGIN SELECT RAISE(ABORT, 'seal_state only moves forward'); END"
    )


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    op.drop_table("seal_state")
    op.drop_table("seal_blocks")
    op.drop_table("seal_keys")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION vledger_seal_block_continues()")
