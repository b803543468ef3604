"""The auditor's commands say what they did and what to do next (issue 13): ``vledger
seal``, ``vledger audit export`` (refused before any seal), ``vledger verify`` on an
export or a pack (with or without a trusted key; a private key given as the public one
exits 2), and the progress the long ones report. On both engines."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Account, Ledger, Transfer
from reconciliation import pack
from reconciliation.errors import InputInvalid
from reconciliation.export import NothingSealed, export
from reconciliation.seal import (
    blocks_page,
    canonical_bytes,
    read_blocks,
    seal_pending,
    seal_status,
)
from reconciliation.service_key import (
    ENV_VAR,
    ServiceKey,
    load_service_key,
    public_key_pem,
)
from reconciliation.verify import FolderKind, NotAuditFolder, check_folder, folder_kind
from tests.conftest import Clock
from vledger.cli import main

KES = "KES"


class Recorded:
    """A Progress that keeps what it was told."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.advances: list[tuple[str, int, int | None]] = []

    def step(self, description: str) -> None:
        self.steps.append(description)

    def advance(self, done: int, total: int | None = None) -> None:
        self.advances.append((self.steps[-1], done, total))


@pytest.fixture
def key(tmp_path: Path) -> ServiceKey:
    return load_service_key("sqlite:///unused.db", tmp_path / "keys" / "service-key.pem")


def pay(led: Ledger, clock: Clock, count: int) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    led.create_accounts([Account(a, KES, 1), Account(b, KES, 1)])
    for i in range(count):
        clock.advance(60)
        done = led.create_transfers([Transfer(uuid.uuid4(), a, b, 100 + i, KES, 1)])
        assert [r.status for r in done] == ["created"]


def err_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# -- vledger seal and vledger audit export say what they did -------------------------------


def test_seal_and_export_say_what_they_did_and_what_comes_next(
    ledger: Ledger,
    clock: Clock,
    key: ServiceKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, out = ledger.url, tmp_path / "export"
    seal = ["seal", "--key", str(key.path), "--database", url]
    assert main(seal) == 0
    assert capsys.readouterr().out == "nothing to seal: no transfers yet\n"

    # Before any seal: one line, exit 2, nothing written.
    assert main(["audit", "export", "--out", str(out), "--database", url]) == 2
    [line] = err_lines(capsys)
    assert line == ("vledger audit: nothing is sealed yet: run `vledger seal` first, then export")
    assert not out.exists()

    pay(ledger, clock, 3)
    assert main(seal) == 0
    done, after = capsys.readouterr().out.splitlines()
    assert done.startswith("sealed 1 new block (1..1, transfers seq 1..3);")
    assert "the journal is sealed up to block 1 (transfers created until" in done
    assert after.startswith("next: vledger audit export --out DIR")
    assert main(seal) == 0
    nothing = capsys.readouterr().out.splitlines()[0]
    assert nothing.startswith("nothing new to seal: the journal is sealed up to block 1")

    pay(ledger, clock, 2)
    assert main(seal) == 0
    assert capsys.readouterr().out.startswith("sealed 1 new block (2..2, transfers seq 4..5);")

    assert main(["audit", "export", "--out", str(out), "--database", url]) == 0
    exported, next_step = capsys.readouterr().out.splitlines()
    assert exported == f"exported blocks 1..2 (2 blocks, 5 transfers, tree size 5) to {out}"
    assert next_step.startswith(f"next: vledger verify {out} --public-key FILE")

    # A range past the sealed blocks: said so, not "None..None".
    empty = tmp_path / "empty"
    assert main(["audit", "export", "--out", str(empty), "--from", "9", "--database", url]) == 0
    said = capsys.readouterr().out
    assert said.startswith("no sealed block is in that range") and "None" not in said


def test_export_before_any_seal_is_refused_by_the_function_too(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    pay(ledger, clock, 1)
    with pytest.raises(NothingSealed, match="run `vledger seal` first"):
        export(ledger, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- vledger verify: an export ---------------------------------------------------------------


@pytest.fixture
def exported(ledger: Ledger, clock: Clock, key: ServiceKey, tmp_path: Path) -> Path:
    pay(ledger, clock, 4)
    assert seal_pending(ledger, key, block_size_max=2) == 2
    out = tmp_path / "export"
    export(ledger, out)
    return out


def test_verify_an_export_with_and_without_a_trusted_key(
    exported: Path, key: ServiceKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(key.public_pem())
    assert main(["verify", str(exported), "--public-key", str(trusted)]) == 0
    assert capsys.readouterr().out == "OK: 2 blocks, 4 transfers, tree size 4\n"

    assert main(["verify", str(exported)]) == 0
    verdict, note = capsys.readouterr().out.splitlines()
    assert verdict.startswith("OK: 2 blocks")
    assert note.startswith("note: checked against public-key.pem, the key inside the folder")
    assert "not who made them" in note

    # A stranger's key: every checkpoint is unsigned by it, exit 1.
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    assert main(["verify", str(exported), "--public-key", str(stranger)]) == 1
    report = capsys.readouterr().out.splitlines()
    assert report[0].startswith("FAILED")
    assert sum(line.startswith("checkpoint_unsigned") for line in report) == 2


def test_an_extra_file_in_an_export_is_a_fault(
    exported: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (exported / "notes.txt").write_text("<script>alert(1)</script>")
    (exported / "checkpoints" / "0000000009.txt.bak").write_text("x")
    assert main(["verify", str(exported)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "FAILED, 2 faults: 2 blocks, 4 transfers, tree size 4"
    assert "extra_file: checkpoints/0000000009.txt.bak: no export writes this file" in lines
    assert "extra_file: notes.txt: no export writes this file" in lines


def test_verify_refuses_a_private_key_a_non_key_and_a_folder_of_neither_kind(
    exported: Path, key: ServiceKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", str(exported), "--public-key", str(key.path)]) == 2
    [line] = err_lines(capsys)
    assert line.startswith(f"vledger verify: {key.path} is a private key: give the public key")
    assert capsys.readouterr().out == ""

    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"\x00" * 20_000)  # not a key, and over the size limit
    assert main(["verify", str(exported), "--public-key", str(junk)]) == 2
    [line] = err_lines(capsys)
    assert "larger than" in line

    text = tmp_path / "text.pem"
    text.write_text("hello")
    assert main(["verify", str(exported), "--public-key", str(text)]) == 2
    [line] = err_lines(capsys)
    assert "is not a PEM public key" in line

    neither = tmp_path / "neither"
    neither.mkdir()
    assert main(["verify", str(neither)]) == 2
    [line] = err_lines(capsys)
    assert "holds neither an audit export" in line
    with pytest.raises(NotAuditFolder):
        folder_kind(tmp_path / "absent")

    (exported / "public-key.pem").unlink()
    assert main(["verify", str(exported)]) == 2
    [line] = err_lines(capsys)
    assert "carries no public-key.pem: give the service's public key with --public-key" in line


# -- vledger verify: a pack -------------------------------------------------------------------


@pytest.fixture
def packed(
    ledger: Ledger,
    clock: Clock,
    key: ServiceKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """A pack run's folder, made by ``vledger reconcile pack``."""
    pay(ledger, clock, 3)
    seal_pending(ledger, key)
    monkeypatch.setenv(ENV_VAR, str(key.path))
    out = tmp_path / "reports"
    day = clock.now.date().isoformat()
    argv = ["reconcile", "pack", "--date", day, "--out", str(out), "--database", ledger.url]
    assert main(argv) == 0
    capsys.readouterr()
    [folder] = (out / "pack" / day).iterdir()
    return folder


def test_verify_a_pack_by_its_run_folder_or_its_pack_folder(
    packed: Path, key: ServiceKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(key.public_pem())
    assert folder_kind(packed) == (FolderKind.PACK, packed / "pack")
    for folder in (packed, packed / "pack"):
        assert main(["verify", str(folder), "--public-key", str(trusted)]) == 0
        [line] = capsys.readouterr().out.splitlines()
        assert line.startswith(f"OK: audit pack {packed / 'pack'}: the manifest's signature,")
        assert line.endswith("files' SHA-256, no file unlisted")

    assert main(["verify", str(packed)]) == 0
    verdict, note = capsys.readouterr().out.splitlines()
    assert verdict.startswith("OK: audit pack")
    assert note.startswith("note: checked against service-key.pem, the key inside the folder")


def test_a_tampered_pack_gives_one_line_per_fault_and_exit_1(
    packed: Path, key: ServiceKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(key.public_pem())
    folder = packed / "pack"
    transfers = folder / "transfers.csv"
    transfers.write_bytes(transfers.read_bytes().replace(b",100,", b",900,", 1))
    (folder / "extra.csv").write_text("a\n")
    assert main(["verify", str(packed), "--public-key", str(trusted)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAILED, 2 faults: audit pack")
    assert lines[1:] == [
        "transfers.csv: SHA-256 differs from the manifest",
        "extra.csv: not in the manifest",
    ]

    # Re-signed by a forger with the forger's key inside: the integrity-only check passes,
    # the trusted key does not.
    forger = Ed25519PrivateKey.generate()
    (folder / "extra.csv").unlink()
    manifest = pack.manifest_bytes(
        {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in folder.rglob("*")
            if p.is_file() and p.name not in pack.UNLISTED
        }
    )
    (folder / pack.MANIFEST).write_bytes(manifest)
    (folder / pack.SIGNATURE).write_bytes(base64.b64encode(forger.sign(manifest)))
    (folder / pack.PUBLIC_KEY).write_bytes(public_key_pem(forger.public_key()))
    assert main(["verify", str(packed)]) == 0
    assert "not who made them" in capsys.readouterr().out
    assert main(["verify", str(packed), "--public-key", str(trusted)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "MANIFEST.sha256: the signature does not verify with the key given" in lines
    assert "service-key.pem: not the key given" in lines


# -- progress ----------------------------------------------------------------------------------


def test_seal_export_and_verify_report_their_progress(
    ledger: Ledger, clock: Clock, key: ServiceKey, tmp_path: Path
) -> None:
    pay(ledger, clock, 5)
    sealing = Recorded()
    assert seal_pending(ledger, key, block_size_max=2, progress=sealing) == 3
    assert sealing.steps == ["sealing transfers"]
    total = 5 if ledger.dialect == "sqlite" else None  # PostgreSQL: not known at the start
    assert sealing.advances == [
        ("sealing transfers", 2, total),
        ("sealing transfers", 4, total),
        ("sealing transfers", 5, total),
    ]
    exporting = Recorded()
    export(ledger, tmp_path / "out", progress=exporting)
    assert exporting.steps == ["exporting blocks"]
    assert [(d, t) for _, d, t in exporting.advances] == [(1, 3), (2, 3), (3, 3)]
    checking = Recorded()
    assert check_folder(tmp_path / "out", progress=checking).ok
    assert checking.steps == ["reading the export", "checking blocks"]
    assert checking.advances[-1] == ("checking blocks", 3, 3)
    assert seal_status(ledger).blocks == 3


def test_a_pack_check_reports_its_progress(packed: Path) -> None:
    checking = Recorded()
    found = check_folder(packed, progress=checking)
    assert found.ok and found.kind is FolderKind.PACK
    assert checking.steps == ["checking the pack's signature and SHA-256 digests"]
    [(_, done, total)] = checking.advances
    assert done == total and done > 5


# -- errors of the tree; the edge's one call ---------------------------------------------------


def test_seal_errors_belong_to_the_error_tree(ledger: Ledger, key: ServiceKey) -> None:
    with pytest.raises(InputInvalid, match="block_size_max must be within"):
        seal_pending(ledger, key, block_size_max=0)
    with pytest.raises(InputInvalid, match="settle_wait_s"):
        seal_pending(ledger, key, settle_wait_s=61)
    with pytest.raises(InputInvalid, match="id is missing"):
        canonical_bytes({"seq": 1})
    with pytest.raises(ValueError, match="unknown fields"):  # still a ValueError for callers
        canonical_bytes({"colour": "red"})
    assert seal_status(ledger).blocks == 0


def test_blocks_page_reads_in_its_own_transaction(
    ledger: Ledger, clock: Clock, key: ServiceKey
) -> None:
    pay(ledger, clock, 3)
    seal_pending(ledger, key, block_size_max=1)
    page = blocks_page(ledger, 2, 9)
    assert [b.number for b in page] == [2, 3]
    assert page == ledger.transact(lambda tx: read_blocks(tx, 2, 9))


def test_a_narrower_export_into_the_same_folder_still_verifies(
    exported: Path, ledger: Ledger, clock: Clock, key: ServiceKey
) -> None:
    pay(ledger, clock, 2)
    assert seal_pending(ledger, key) == 1  # block 3
    (exported / "checkpoints" / "notes.txt").write_text("kept: not a name export writes")
    narrower = export(ledger, exported, from_=3)
    assert (narrower.first_block, narrower.last_block) == (3, 3)
    names = sorted(p.name for p in (exported / "checkpoints").iterdir())
    assert names == ["0000000002.txt", "0000000003.txt", "notes.txt"]  # anchor, block 3
    (exported / "checkpoints" / "notes.txt").unlink()
    found = check_folder(exported)
    assert found.ok, found.lines
