"""``audit export`` and the offline verifier: a clean export verifies on both engines;
each kind of tampering is reported precisely (which transfer, row, block, and what)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Account, Ledger, Transfer, TransferFlags, open_ledger
from reconciliation.checkpoint import open_checkpoint, read_checkpoint_unverified, sign_checkpoint
from reconciliation.export import export
from reconciliation.seal import seal_pending
from reconciliation.service_key import ServiceKey, load_service_key, public_key_pem
from reconciliation.verify import Fault, VerifyReport, verify
from tests.conftest import Clock

KES = "KES"
BLOCK_SIZE = 5
TRANSFERS = 14  # blocks of 5, 5, 4


@pytest.fixture
def key(tmp_path: Path) -> ServiceKey:
    return load_service_key("sqlite:///unused.db", tmp_path / "keys" / "service-key.pem")


def fill(led: Ledger, clock: Clock, count: int = TRANSFERS) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    led.create_accounts([Account(a, KES, 1), Account(b, KES, 1)])
    hold = uuid.uuid4()
    for i in range(count):
        clock.advance(3600)
        if i == 4:
            transfer = Transfer(hold, a, b, 900, KES, 1, TransferFlags.PENDING)
        elif i == 5:
            transfer = Transfer(uuid.uuid4(), None, None, 600, None, 1,
                                TransferFlags.POST_PENDING, hold)  # fmt: skip
        else:
            meta = {"note": f"ñ order {i}"} if i % 4 == 0 else None
            transfer = Transfer(uuid.uuid4(), a, b, 1000 + 7 * i, KES, 1, metadata=meta)
        assert [r.status for r in led.create_transfers([transfer])] == ["created"]


def sealed_export(led: Ledger, key: ServiceKey, clock: Clock, out: Path) -> Path:
    fill(led, clock)
    assert seal_pending(led, key, block_size_max=BLOCK_SIZE) == 3
    summary = export(led, out)
    assert (summary.blocks, summary.transfers, summary.tree_size) == (3, TRANSFERS, TRANSFERS)
    return out


@pytest.fixture
def exported(
    sqlite_url: str, key: ServiceKey, clock: Clock, tmp_path: Path
) -> Iterator[tuple[Path, Path]]:
    """An export of a sealed SQLite ledger, and the trusted public key file."""
    with open_ledger(sqlite_url, migrate=True, clock=clock) as led:
        out = sealed_export(led, key, clock, tmp_path / "export")
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(key.public_pem())
    yield out, trusted


def rows(out: Path) -> list[str]:
    return (out / "transfers.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


def write_rows(out: Path, lines: list[str]) -> None:
    (out / "transfers.jsonl").write_text("".join(lines), encoding="utf-8")


def row(line: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(line)
    return value


def kinds(report: VerifyReport) -> list[str]:
    return [f.kind for f in report.faults]


def only(report: VerifyReport, kind: str) -> list[Fault]:
    return [f for f in report.faults if f.kind == kind]


# -- clean ---------------------------------------------------------------------------------


def test_a_clean_export_verifies_on_both_engines(
    ledger: Ledger, key: ServiceKey, clock: Clock, tmp_path: Path
) -> None:
    out = sealed_export(ledger, key, clock, tmp_path / "export")
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(key.public_pem())
    report = verify(out, trusted)
    assert report.ok, report.lines()
    assert (report.blocks, report.transfers, report.tree_size) == (3, TRANSFERS, TRANSFERS)
    assert report.lines()[0].startswith("OK: 3 blocks")
    assert (out / "public-key.pem").read_bytes() == key.public_pem()
    files = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert files == ["0000000001.txt", "0000000002.txt", "0000000003.txt"]
    first = row(rows(out)[0])
    assert list(first)[:3] == ["index", "block", "seq"] and list(first)[-1] == "chain"
    assert isinstance(first["amount"], int)


def test_a_partial_export_verifies_from_its_anchor(
    sqlite_url: str, key: ServiceKey, clock: Clock, tmp_path: Path
) -> None:
    start = clock.now
    with open_ledger(sqlite_url, migrate=True, clock=clock) as led:
        sealed_export(led, key, clock, tmp_path / "all")
        by_number = export(led, tmp_path / "middle", from_=2, to=2)
        by_time = export(led, tmp_path / "late", from_=start + timedelta(hours=7))
        nothing = export(led, tmp_path / "none", from_=4)
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(key.public_pem())
    assert (by_number.first_block, by_number.last_block, by_number.transfers) == (2, 2, 5)
    assert (by_time.first_block, by_time.last_block) == (2, 3)
    assert nothing.blocks == 0
    for folder in ("middle", "late", "none"):
        report = verify(tmp_path / folder, trusted)
        assert report.ok, (folder, report.lines())
    anchors = sorted(p.name for p in (tmp_path / "middle" / "checkpoints").iterdir())
    assert anchors == ["0000000001.txt", "0000000002.txt"]


def test_an_export_by_url_matches_one_by_ledger(
    sqlite_url: str, key: ServiceKey, clock: Clock, tmp_path: Path
) -> None:
    with open_ledger(sqlite_url, migrate=True, clock=clock) as led:
        sealed_export(led, key, clock, tmp_path / "a")
    export(sqlite_url, tmp_path / "b")
    assert rows(tmp_path / "a") == rows(tmp_path / "b")


# -- tampering -----------------------------------------------------------------------------


def test_one_changed_byte_of_an_amount_is_reported_at_that_transfer(
    exported: tuple[Path, Path],
) -> None:
    out, trusted = exported
    lines = rows(out)
    target = row(lines[7])
    assert target["amount"] == 1049
    lines[7] = lines[7].replace('"amount": 1049', '"amount": 1048')
    write_rows(out, lines)
    report = verify(out, trusted)
    assert not report.ok
    [changed] = only(report, "changed_transfer")
    assert (changed.block, changed.index, changed.line) == (2, 7, 8)
    assert changed.transfer_id == target["id"] and changed.seq == target["seq"]
    assert "amount 1048 disagrees with the recorded balances" in changed.message
    assert kinds(report) == ["changed_transfer", "block_mismatch"]


def test_a_changed_metadata_byte_is_reported_at_that_transfer(
    exported: tuple[Path, Path],
) -> None:
    out, trusted = exported
    lines = rows(out)
    lines[8] = lines[8].replace("ñ order 8", "ñ order 9")
    write_rows(out, lines)
    report = verify(out, trusted)
    [changed] = only(report, "changed_transfer")
    assert changed.index == 8 and changed.transfer_id == row(lines[8])["id"]


def test_a_dropped_row_is_reported_with_its_place(exported: tuple[Path, Path]) -> None:
    out, trusted = exported
    lines = rows(out)
    before, after = row(lines[2]), row(lines[4])
    write_rows(out, lines[:3] + lines[4:])
    report = verify(out, trusted)
    [missing] = only(report, "missing_transfer")
    assert (missing.block, missing.index) == (1, 3)
    assert f"after transfer {before['id']}" in missing.message
    assert f"before transfer {after['id']}" in missing.message
    assert kinds(report) == ["missing_transfer", "block_mismatch"]  # block 2 and 3 stay clean


def test_a_dropped_last_row_of_a_block_is_reported(exported: tuple[Path, Path]) -> None:
    out, trusted = exported
    lines = rows(out)
    write_rows(out, lines[:9] + lines[10:])
    [missing] = only(verify(out, trusted), "missing_transfer")
    assert (missing.block, missing.index) == (2, 9)


def test_two_swapped_rows_are_reported_as_reordered(exported: tuple[Path, Path]) -> None:
    out, trusted = exported
    lines = rows(out)
    lines[5], lines[6] = lines[6], lines[5]
    write_rows(out, lines)
    report = verify(out, trusted)
    [reordered] = report.faults
    assert reordered.kind == "reordered_transfer"
    assert reordered.line == 6 and reordered.index == 6
    assert str(row(lines[5])["id"]) in reordered.message
    assert str(row(lines[6])["id"]) in reordered.message


def test_swapped_contents_under_renumbered_indexes_are_reported_as_reordered(
    exported: tuple[Path, Path],
) -> None:
    out, trusted = exported
    lines = rows(out)
    first, second = row(lines[1]), row(lines[2])
    first["index"], second["index"] = 2, 1
    lines[1] = json.dumps(second, ensure_ascii=False) + "\n"
    lines[2] = json.dumps(first, ensure_ascii=False) + "\n"
    write_rows(out, lines)
    report = verify(out, trusted)
    [reordered] = only(report, "reordered_transfer")
    assert reordered.block == 1 and reordered.index == 1
    assert str(first["id"]) in reordered.message and str(second["id"]) in reordered.message
    assert "changed_transfer" not in kinds(report)


def test_an_altered_chain_value_is_told_apart_from_altered_fields(
    exported: tuple[Path, Path],
) -> None:
    out, trusted = exported
    lines = rows(out)
    value = row(lines[11])
    value["chain"] = "0" * 64
    lines[11] = json.dumps(value, ensure_ascii=False) + "\n"
    write_rows(out, lines)
    report = verify(out, trusted)
    assert kinds(report) == ["changed_chain_value"]
    assert report.faults[0].index == 11 and report.faults[0].block == 3


def test_a_checkpoint_re_signed_with_another_key_is_refused(
    exported: tuple[Path, Path],
) -> None:
    out, trusted = exported
    path = out / "checkpoints" / "0000000002.txt"
    checkpoint = read_checkpoint_unverified(path.read_text(encoding="utf-8"))
    path.write_text(sign_checkpoint(checkpoint, Ed25519PrivateKey.generate()), encoding="utf-8")
    report = verify(out, trusted)
    [unsigned] = report.faults
    assert (unsigned.kind, unsigned.block) == ("checkpoint_unsigned", 2)
    assert "not signed by the trusted key" in unsigned.message


def test_a_checkpoint_with_a_changed_root_is_refused(exported: tuple[Path, Path]) -> None:
    out, trusted = exported
    path = out / "checkpoints" / "0000000003.txt"
    note = path.read_text(encoding="utf-8")
    root_line = note.split("\n")[2]
    forged_root = ("A" if root_line[0] != "A" else "B") + root_line[1:]
    path.write_text(note.replace(root_line, forged_root), encoding="utf-8")
    report = verify(out, trusted)
    assert kinds(report) == ["checkpoint_bad_signature", "checkpoint_mismatch"]
    assert all(f.block == 3 for f in report.faults)
    assert "root hash" in report.faults[1].message


def test_a_forged_root_re_signed_with_another_key_is_refused(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    out, trusted = exported
    path = out / "checkpoints" / "0000000001.txt"
    checkpoint = read_checkpoint_unverified(path.read_text(encoding="utf-8"))
    forger = Ed25519PrivateKey.generate()
    forged = type(checkpoint)(checkpoint.origin, checkpoint.tree_size, b"\x07" * 32,
                              checkpoint.chain_head)  # fmt: skip
    path.write_text(sign_checkpoint(forged, forger), encoding="utf-8")
    # The forger also ships their key as public-key.pem; the auditor's trusted key decides.
    (out / "public-key.pem").write_bytes(public_key_pem(forger.public_key()))
    report = verify(out, trusted)
    assert set(kinds(report)) >= {"checkpoint_unsigned", "checkpoint_mismatch", "public_key"}
    assert [f.block for f in only(report, "checkpoint_unsigned")] == [1]
    # With the forger's key the forgery is still caught: the root does not recompute.
    forger_pem = tmp_path / "forger.pem"
    forger_pem.write_bytes(public_key_pem(forger.public_key()))
    against_forger = verify(out, forger_pem)
    assert [f.block for f in only(against_forger, "checkpoint_mismatch")] == [1]
    assert open_checkpoint(path.read_text(encoding="utf-8"), forger.public_key()) == forged


def test_the_wrong_trusted_key_fails_every_checkpoint(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    out, _ = exported
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    report = verify(out, stranger)
    assert [f.block for f in only(report, "checkpoint_unsigned")] == [1, 2, 3]


def test_a_row_that_is_not_json_is_reported_with_its_line(exported: tuple[Path, Path]) -> None:
    out, trusted = exported
    lines = rows(out)
    lines[3] = lines[3].replace('"amount": ', '"amount": x', 1)
    write_rows(out, lines)
    report = verify(out, trusted)
    [malformed] = only(report, "malformed")
    assert (malformed.line, malformed.index) == (4, 3)
    assert malformed.transfer_id == row(rows_clean(lines, 3))["id"]


def rows_clean(lines: list[str], at: int) -> str:
    return lines[at].replace('"amount": x', '"amount": ', 1)


def test_a_dropped_block_record_and_an_unreadable_key_are_reported(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    out, trusted = exported
    records = (out / "blocks.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "blocks.jsonl").write_text("".join(records[:2]), encoding="utf-8")
    report = verify(out, trusted)
    assert "block_record" in kinds(report) and "extra_transfer" in kinds(report)
    missing_key = verify(out, tmp_path / "absent.pem")
    assert kinds(missing_key) == ["public_key"]
