"""The sealed journal: canonical bytes, Merkle trees, checkpoints, and sealing on both
engines, including PostgreSQL writers racing the sealer (no transfer skipped or sealed
twice, commit order kept)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Account, InvariantViolation, Ledger, Transfer, TransferFlags, open_ledger
from ledger.core.tx import Tx
from ledger.flows import events
from reconciliation import seal
from reconciliation.checkpoint import (
    CHAIN_GENESIS,
    EMPTY_ROOT,
    Checkpoint,
    CheckpointError,
    Frontier,
    key_id,
    leaf_hash,
    merkle_root,
    node_hash,
    open_checkpoint,
    public_key_raw,
    sign_checkpoint,
)
from reconciliation.seal import BLOCK_SIZE_MAX, canonical_bytes, integrity_check, seal_pending
from reconciliation.service_key import (
    ENV_VAR,
    ServiceKey,
    ServiceKeyError,
    default_key_path,
    load_public_key,
    load_service_key,
)
from tests.conftest import Clock

KES = "KES"


@pytest.fixture
def key(tmp_path: Path) -> ServiceKey:
    return load_service_key("sqlite:///unused.db", tmp_path / "keys" / "service-key.pem")


def open_accounts(led: Ledger, count: int = 2) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    results = led.create_accounts([Account(i, KES, 1) for i in ids])
    assert [r.status for r in results] == ["created"] * count
    return ids


def pay(led: Ledger, debit: uuid.UUID, credit: uuid.UUID, amounts: list[int]) -> list[uuid.UUID]:
    ids = []
    for amount in amounts:
        transfer = Transfer(uuid.uuid4(), debit, credit, amount, KES, 1)
        assert [r.status for r in led.create_transfers([transfer])] == ["created"]
        ids.append(transfer.id)
    return ids


def blocks(led: Ledger) -> list[tuple[int, int, int, int, int]]:
    rows = led.transact(
        lambda tx: tx.execute(
            "SELECT number, tree_size_before, tree_size, first_seq, last_seq FROM seal_blocks"
            " ORDER BY number"
        )
    )
    return [tuple(int(v) for v in r) for r in rows]  # type: ignore[misc]


def all_seqs(led: Ledger) -> list[int]:
    return [int(r[0]) for r in led.transact(lambda tx: tx.execute("SELECT seq FROM transfers"))]


def sealed_seqs(led: Ledger) -> list[int]:
    """Every seq each block covers, block by block (a seq twice would show here)."""
    out: list[int] = []
    previous = 0
    for _, before, size, first, last in blocks(led):
        rows = led.transact(
            lambda tx, a=previous, b=last: tx.execute(  # type: ignore[misc]
                "SELECT seq FROM transfers WHERE seq > :a AND seq <= :b ORDER BY seq",
                {"a": a, "b": b},
            )
        )
        seqs = [int(r[0]) for r in rows]
        assert len(seqs) == size - before and seqs[0] == first and seqs[-1] == last
        out.extend(seqs)
        previous = last
    return out


# -- canonical bytes ----------------------------------------------------------------------


GOLDEN_FIELDS = {
    "seq": 7,
    "id": "00000000-0000-4000-8000-000000000001",
    "debit_account_id": "00000000-0000-4000-8000-00000000000a",
    "credit_account_id": "00000000-0000-4000-8000-00000000000b",
    "amount": 1500,
    "amount_requested": None,
    "currency": "KES",
    "code": 1,
    "flags": 0,
    "pending_id": None,
    "timeout_s": 0,
    "expires_at_us": None,
    "reverses_id": None,
    "metadata": {"z": "last", "a": 'ñ\n"q"'},
    "created_at_us": 1780300800000000,
    "debit_account_debits_posted": 1500,
    "debit_account_credits_posted": 0,
    "credit_account_debits_posted": 0,
    "credit_account_credits_posted": 1500,
}


def test_canonical_bytes_are_exactly_the_documented_lines() -> None:
    expected = (
        "vledger-transfer/v1\nseq=7\nid=00000000-0000-4000-8000-000000000001\n"
        "debit_account_id=00000000-0000-4000-8000-00000000000a\n"
        "credit_account_id=00000000-0000-4000-8000-00000000000b\namount=1500\n"
        "amount_requested=\ncurrency=KES\ncode=1\nflags=0\npending_id=\ntimeout_s=0\n"
        'expires_at_us=\nreverses_id=\nmetadata={"a":"ñ\\n\\"q\\"","z":"last"}\n'
        "created_at_us=1780300800000000\ndebit_account_debits_posted=1500\n"
        "debit_account_credits_posted=0\ncredit_account_debits_posted=0\n"
        "credit_account_credits_posted=1500\n"
    ).encode()
    assert canonical_bytes(GOLDEN_FIELDS) == expected


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("amount", "1500", "amount must be an integer"),
        ("amount", True, "amount must be an integer"),
        ("amount", 2**63, "amount is out of the 64-bit range"),
        ("id", "00000000-0000-4000-8000-00000000000A", "id must be a lowercase"),
        ("id", "0000000000004000800000000000000a", "id must be a lowercase"),
        ("currency", "kes", "currency must be three capital letters"),
        ("seq", None, "seq must not be null"),
        ("metadata", {"a": 1}, "metadata must be an object of strings"),
    ],
)
def test_canonical_bytes_refuse_malformed_fields(name: str, value: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        canonical_bytes({**GOLDEN_FIELDS, name: value})


def test_canonical_bytes_refuse_missing_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="amount is missing"):
        canonical_bytes({k: v for k, v in GOLDEN_FIELDS.items() if k != "amount"})
    with pytest.raises(ValueError, match="unknown fields: colour"):
        canonical_bytes({**GOLDEN_FIELDS, "colour": "red"})


# -- Merkle tree and checkpoints ---------------------------------------------------------


def test_rfc6962_hashes_match_known_values() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # RFC 6962 test vector: the leaf hash of the empty leaf.
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    a, b, c = b"a", b"b", b"c"
    assert merkle_root([a, b, c]) == node_hash(node_hash(leaf_hash(a), leaf_hash(b)), leaf_hash(c))


def test_frontier_roots_equal_the_definition_at_every_size() -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest()[: i % 7] for i in range(70)]
    frontier = Frontier()
    assert frontier.root() == EMPTY_ROOT
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == merkle_root(leaves[:n]), n
        again = Frontier.from_text(frontier.size, frontier.to_text())
        assert again.root() == frontier.root()
    with pytest.raises(ValueError):
        Frontier.from_text(5, frontier.to_text())


def test_checkpoint_is_a_signed_note_with_the_spec_key_id() -> None:
    private = Ed25519PrivateKey.generate()
    checkpoint = Checkpoint("vledger/test", 3, b"\x01" * 32, b"\x02" * 32)
    note = sign_checkpoint(checkpoint, private)
    text, signature_line = note.split("\n\n")
    assert text.split("\n") == [
        "vledger/test",
        "3",
        base64.b64encode(b"\x01" * 32).decode(),
        "vledger-chain-head " + base64.b64encode(b"\x02" * 32).decode(),
    ]
    dash, name, blob = signature_line.rstrip("\n").split(" ")
    assert (dash, name) == ("\u2014", "vledger/test")
    raw = base64.b64decode(blob)
    expected_id = hashlib.sha256(
        b"vledger/test\n\x01" + public_key_raw(private.public_key())
    ).digest()[:4]
    assert raw[:4] == expected_id == key_id("vledger/test", private.public_key())
    private.public_key().verify(raw[4:], (text + "\n").encode())
    assert open_checkpoint(note, private.public_key()) == checkpoint


def test_checkpoint_refuses_other_keys_changed_text_and_bad_syntax() -> None:
    private, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint("vledger/test", 3, b"\x01" * 32, b"\x02" * 32), private)
    with pytest.raises(CheckpointError) as unsigned:
        open_checkpoint(note, other.public_key())
    assert unsigned.value.kind == "unsigned"
    with pytest.raises(CheckpointError) as changed:
        open_checkpoint(note.replace("\n3\n", "\n4\n"), private.public_key())
    assert changed.value.kind == "bad_signature"
    for broken in (note.replace("\n\n", "\n"), note[:-1], note.replace("\u2014", "-")):
        with pytest.raises(CheckpointError) as malformed:
            open_checkpoint(broken, private.public_key())
        assert malformed.value.kind == "malformed"


# -- the service key ---------------------------------------------------------------------


def test_service_key_is_generated_once_next_to_a_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    url = f"sqlite:///{tmp_path}/village.db"
    first = load_service_key(url)
    assert first.path == tmp_path / "village.db.keys" / "service-key.pem"
    assert first.path.stat().st_mode & 0o777 == 0o600
    again = load_service_key(url)
    assert public_key_raw(again.public_key) == public_key_raw(first.public_key)
    pem = tmp_path / "public.pem"
    pem.write_bytes(first.public_pem())
    assert public_key_raw(load_public_key(pem)) == public_key_raw(first.public_key)


def test_service_key_from_the_environment_must_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = load_service_key("sqlite:///x.db", tmp_path / "k.pem")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "k.pem"))
    found = load_service_key(f"sqlite:///{tmp_path}/other.db")
    assert public_key_raw(found.public_key) == public_key_raw(made.public_key)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent.pem"))
    with pytest.raises(ServiceKeyError, match="not a file"):
        load_service_key(f"sqlite:///{tmp_path}/other.db")
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ServiceKeyError):
        load_service_key("sqlite:///x.db", tmp_path / "junk.pem")


def test_default_key_path_for_postgres_is_per_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    one = default_key_path("postgresql+psycopg://u@h:5432/a")
    two = default_key_path("postgresql+psycopg://u@h:5432/b")
    assert one != two and one.is_relative_to(tmp_path / "vledger")


# -- sealing on both engines ---------------------------------------------------------------


def test_sealing_makes_blocks_in_seq_order_that_recompute(
    ledger: Ledger, key: ServiceKey, clock: Clock
) -> None:
    a, b = open_accounts(ledger)
    pay(ledger, a, b, list(range(1, 26)))
    assert seal_pending(ledger, key, block_size_max=10) == 3
    seqs = all_seqs(ledger)
    assert [(n, before, size) for n, before, size, *_ in blocks(ledger)] == [
        (1, 0, 10), (2, 10, 20), (3, 20, 25),
    ]  # fmt: skip
    assert sealed_seqs(ledger) == sorted(seqs)
    assert seal_pending(ledger, key, block_size_max=10) == 0
    clock.advance(60)
    pay(ledger, b, a, [5, 6])
    assert seal_pending(ledger, key) == 1
    assert blocks(ledger)[-1][1:3] == (25, 27)
    assert sealed_seqs(ledger) == sorted(all_seqs(ledger))
    assert integrity_check(ledger) == []


def test_each_checkpoint_is_signed_and_commits_to_the_whole_journal(
    ledger: Ledger, key: ServiceKey
) -> None:
    a, b = open_accounts(ledger)
    pay(ledger, a, b, [10, 20, 30])
    seal_pending(ledger, key, block_size_max=2)
    rows = ledger.transact(
        lambda tx: tx.execute(f"SELECT {', '.join(seal.FIELD_NAMES)} FROM transfers ORDER BY seq")
    )
    leaves = [canonical_bytes(seal.transfer_fields(r)) for r in rows]
    notes = ledger.transact(
        lambda tx: [r[0] for r in tx.execute("SELECT checkpoint FROM seal_blocks ORDER BY number")]
    )
    chain = CHAIN_GENESIS
    heads = []
    for leaf in leaves:
        chain = hashlib.sha256(chain + leaf).digest()
        heads.append(chain)
    checkpoints = [open_checkpoint(n, key.public_key) for n in notes]
    assert [c.tree_size for c in checkpoints] == [2, 3]
    assert checkpoints[0].root_hash == merkle_root(leaves[:2])
    assert checkpoints[1].root_hash == merkle_root(leaves)  # cumulative, not per block
    assert [c.chain_head for c in checkpoints] == [heads[1], heads[2]]
    origin = ledger.transact(lambda tx: tx.one("SELECT origin FROM seal_state"))
    assert origin is not None and checkpoints[0].origin == origin[0]
    sealed = ledger.transact(
        lambda tx: [
            e for e in events.read_events(tx, limit=100) if e.type == events.CHECKPOINT_SEALED
        ]
    )
    assert [(e.payload["block"], e.payload["tree_size"]) for e in sealed] == [(1, 2), (2, 3)]
    assert sealed[1].payload["checkpoint"] == notes[1]


def test_pending_posts_voids_and_metadata_are_sealed(ledger: Ledger, key: ServiceKey) -> None:
    a, b = open_accounts(ledger)
    pay(ledger, a, b, [100])
    hold, void_hold = uuid.uuid4(), uuid.uuid4()
    results = ledger.create_transfers(
        [
            Transfer(hold, a, b, 50, KES, 1, TransferFlags.PENDING, metadata={"order": "ñ 1"}),
            Transfer(void_hold, a, b, 20, KES, 1, TransferFlags.PENDING, timeout_s=60),
            Transfer(uuid.uuid4(), None, None, 30, None, 1, TransferFlags.POST_PENDING, hold),
            Transfer(
                uuid.uuid4(), None, None, None, None, 1, TransferFlags.VOID_PENDING, void_hold
            ),
        ]
    )
    assert [r.status for r in results] == ["created"] * 4
    assert seal_pending(ledger, key) == 1
    assert blocks(ledger)[0][2] == 5
    assert integrity_check(ledger) == []


def test_block_size_limit_is_checked_on_both_sides(ledger: Ledger, key: ServiceKey) -> None:
    for bad in (0, BLOCK_SIZE_MAX + 1, True):
        with pytest.raises(ValueError):
            seal_pending(ledger, key, block_size_max=bad)
    a, b = open_accounts(ledger)
    pay(ledger, a, b, [1, 2])
    assert seal_pending(ledger, key, block_size_max=1) == 2
    pay(ledger, a, b, [3])
    assert seal_pending(ledger, key, block_size_max=BLOCK_SIZE_MAX) == 1


def test_an_empty_ledger_seals_nothing(ledger: Ledger, key: ServiceKey) -> None:
    assert seal_pending(ledger, key) == 0
    assert blocks(ledger) == []
    assert integrity_check(ledger) == []


def test_blocks_and_keys_are_immutable_and_must_continue(ledger: Ledger, key: ServiceKey) -> None:
    a, b = open_accounts(ledger)
    pay(ledger, a, b, [1, 2, 3])
    seal_pending(ledger, key, block_size_max=2)
    for statement in (
        "UPDATE seal_blocks SET root_hash = 'x'",
        "DELETE FROM seal_blocks",
        "UPDATE seal_keys SET public_key = 'x'",
        "DELETE FROM seal_keys",
        "UPDATE seal_state SET sealed_seq = 0",
        "DELETE FROM seal_state",
    ):
        with pytest.raises(InvariantViolation):
            ledger.transact(lambda tx, s=statement: tx.execute(s))  # type: ignore[misc]

    def forged_block(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO seal_blocks (number, tree_size_before, tree_size, first_seq, last_seq,"
            " chain_before, chain_head, root_hash, frontier, checkpoint, key_ref,"
            " first_created_at_us, last_created_at_us, sealed_at_us)"
            " SELECT 3, 0, 5, 100, 101, chain_head, chain_head, root_hash, '', '', key_ref,"
            " 0, 0, 0 FROM seal_blocks WHERE number = 2"
        )

    with pytest.raises(InvariantViolation):
        ledger.transact(forged_block)
    assert integrity_check(ledger) == []


def test_integrity_check_finds_a_transfer_changed_behind_the_triggers(
    ledger: Ledger, key: ServiceKey
) -> None:
    a, b = open_accounts(ledger)
    pay(ledger, a, b, [100, 200, 300, 400])
    seal_pending(ledger, key, block_size_max=2)

    def tamper(tx: Tx) -> None:
        if tx.dialect == "postgresql":
            tx.execute("ALTER TABLE transfers DISABLE TRIGGER transfers_immutable")
        else:
            tx.execute("DROP TRIGGER transfers_no_update")
        tx.execute("UPDATE transfers SET amount = 301 WHERE amount = 300")

    ledger.transact(tamper)
    problems = integrity_check(ledger)
    assert problems == [
        "block 2: chain head does not recompute from its transfers",
        "block 2: Merkle root does not recompute from its transfers",
        "block 2: stored frontier does not recompute",
    ]


def test_sealers_from_two_ledgers_take_turns(ledger: Ledger, key: ServiceKey, clock: Clock) -> None:
    a, b = open_accounts(ledger)
    pay(ledger, a, b, list(range(1, 41)))
    counts: list[int] = []
    barrier = threading.Barrier(3)

    def sealer() -> None:
        with open_ledger(ledger.url, clock=clock) as led:
            barrier.wait()
            counts.append(seal_pending(led, key, block_size_max=3))

    threads = [threading.Thread(target=sealer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 14  # ceil(40 / 3), however the three shared the work
    assert sealed_seqs(ledger) == sorted(all_seqs(ledger))
    assert integrity_check(ledger) == []


# -- PostgreSQL: seq is drawn before commit ------------------------------------------------


def test_a_transfer_in_flight_holds_back_later_seqs(
    pg_url: str, key: ServiceKey, clock: Clock
) -> None:
    """Transaction A draws seq 1 and stays open; B draws seq 2 and commits. The sealer
    must not seal seq 2 (sealing it would skip seq 1 for ever); once A commits, both are
    sealed in seq order."""
    with open_ledger(pg_url, migrate=True, clock=clock) as led:
        a1, a2, b1, b2 = open_accounts(led, 4)
        drawn, release = threading.Event(), threading.Event()
        slow = Transfer(uuid.uuid4(), a1, a2, 11, KES, 1)
        fast = Transfer(uuid.uuid4(), b1, b2, 22, KES, 1)

        def slow_work(tx: Tx) -> None:
            assert [r.status for r in tx.create_transfers([slow])] == ["created"]
            drawn.set()
            assert release.wait(30)

        writer = threading.Thread(target=lambda: led.transact(slow_work))
        writer.start()
        assert drawn.wait(30)
        assert [r.status for r in led.create_transfers([fast])] == ["created"]
        assert seal_pending(led, key, settle_wait_s=0.3) == 0
        assert blocks(led) == []
        release.set()
        writer.join()
        # Any open transaction on the server delays sealing: wait long (shared CI server).
        assert seal_pending(led, key, settle_wait_s=60) == 1
        [[slow_seq], [fast_seq]] = led.transact(
            lambda tx: [
                tx.execute("SELECT seq FROM transfers WHERE id = :i", {"i": i})[0]
                for i in (slow.id, fast.id)
            ]
        )
        assert slow_seq < fast_seq
        assert blocks(led) == [(1, 0, 2, slow_seq, fast_seq)]
        assert integrity_check(led) == []


def test_concurrent_writers_and_sealer_seal_every_transfer_exactly_once(
    pg_url: str, key: ServiceKey, clock: Clock
) -> None:
    """Writers commit transfers with their transactions held open for random spells (so
    lower seqs commit after higher ones) while a sealer seals over and over."""
    with open_ledger(pg_url, migrate=True, clock=clock) as led:
        writers, per_writer = 4, 30
        accounts = open_accounts(led, 2 * writers)
        stop = threading.Event()
        errors: list[BaseException] = []
        sealed_blocks: list[int] = []

        def sealer_caught_up() -> None:
            """Wait (30 s at most) until the sealer has sealed 2 blocks: on a loaded
            machine the writers could otherwise finish before it is scheduled at all."""
            deadline = time.monotonic() + 30
            while sum(sealed_blocks) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)

        def writer(w: int) -> None:
            import random

            rng = random.Random(w)
            debit, credit = accounts[2 * w], accounts[2 * w + 1]
            try:
                with open_ledger(pg_url, clock=clock) as mine:
                    for i in range(per_writer):
                        if i == per_writer // 2:
                            sealer_caught_up()  # so the sealer runs while others write
                        transfer = Transfer(uuid.uuid4(), debit, credit, i + 1, KES, 1)
                        pause = rng.uniform(0, 0.01)

                        def work(tx: Tx, t: Transfer = transfer, p: float = pause) -> None:
                            assert [r.status for r in tx.create_transfers([t])] == ["created"]
                            time.sleep(p)  # seq drawn, commit delayed

                        if i % 3 == 0:
                            mine.create_transfers([transfer])
                        else:
                            mine.transact(work)
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)

        def sealer() -> None:
            try:
                with open_ledger(pg_url, clock=clock) as mine:
                    while not stop.is_set():
                        sealed_blocks.append(
                            seal_pending(mine, key, block_size_max=7, settle_wait_s=0.05)
                        )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        sealing = threading.Thread(target=sealer)
        sealing.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        sealing.join()
        assert errors == []
        seal_pending(led, key, block_size_max=7, settle_wait_s=60)
        seqs = all_seqs(led)
        assert len(seqs) == writers * per_writer
        sealed = sealed_seqs(led)
        assert sealed == sorted(seqs)  # each once, none skipped, in seq order
        assert sum(sealed_blocks) >= 2  # the sealer really ran alongside the writers
        assert integrity_check(led) == []
