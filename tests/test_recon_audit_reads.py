"""The audit tools' reads of one another's tables, through the owners' functions, on both
engines: the seal's blocks (``reconciliation.seal``) and the runs (``reconciliation.runs``);
and their exceptions' places in the one error tree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ledger import Account, Ledger, Transfer
from ledger.core.store import to_us
from reconciliation import checkpoint, pack, schedule, seal, service_key, tasks
from reconciliation.errors import InputInvalid, JobFailed, ReconciliationError
from reconciliation.runs import Findings, latest_run_id, record, runs_of_period
from reconciliation.runs import dates_with_runs as run_dates
from reconciliation.service_key import ServiceKey, load_service_key
from tests.conftest import Clock

KES = "KES"
MAY_31, JUNE_1, JUNE_2, JUNE_3 = (
    date(2026, 5, 31),
    date(2026, 6, 1),
    date(2026, 6, 2),
    date(2026, 6, 3),
)


@pytest.fixture
def key(tmp_path: Path) -> ServiceKey:
    return load_service_key("sqlite:///unused.db", tmp_path / "keys" / "service-key.pem")


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _pay_on(led: Ledger, clock: Clock, day: date, count: int, accounts: list[uuid.UUID]) -> None:
    clock.now = _at(day, 9)
    for _ in range(count):
        transfer = Transfer(uuid.uuid4(), accounts[0], accounts[1], 100, KES, 1)
        assert [r.status for r in led.create_transfers([transfer])] == ["created"]


def test_the_seal_answers_which_blocks_hold_a_period(
    ledger: Ledger, clock: Clock, key: ServiceKey
) -> None:
    """Blocks of two transfers: 1 and 2 on 1 June, 3 across 1 and 2 June, 4 on 2 June."""
    empty = ledger.transact(seal.sealed_extent)
    assert (empty.blocks, empty.last_seq) == (0, 0)
    assert ledger.transact(seal.last_block_number) == 0
    assert ledger.transact(lambda tx: seal.first_block_created_from(tx, 0)) == 0
    assert ledger.transact(lambda tx: seal.last_block_created_before(tx, 2**62)) == 0
    accounts = [uuid.uuid4(), uuid.uuid4()]
    assert [r.status for r in ledger.create_accounts([Account(i, KES, 1) for i in accounts])] == [
        "created"
    ] * 2
    _pay_on(ledger, clock, JUNE_1, 5, accounts)
    _pay_on(ledger, clock, JUNE_2, 3, accounts)
    assert seal.seal_pending(ledger, key, block_size_max=2) == 4

    extent = ledger.transact(seal.sealed_extent)
    assert (extent.blocks, extent.last_seq) == (4, 8)
    assert ledger.transact(seal.last_block_number) == 4
    june_2_us, june_3_us = to_us(_at(JUNE_2, 0)), to_us(_at(JUNE_3, 0))
    assert ledger.transact(lambda tx: seal.first_block_created_from(tx, june_2_us)) == 3
    assert ledger.transact(lambda tx: seal.first_block_created_from(tx, june_3_us)) == 0
    assert ledger.transact(lambda tx: seal.last_block_created_before(tx, june_2_us)) == 3
    assert ledger.transact(lambda tx: seal.last_block_created_before(tx, 0)) == 0

    june_2 = ledger.transact(lambda tx: seal.blocks_created_in(tx, june_2_us, june_3_us))
    assert [b.number for b in june_2] == [3, 4]
    assert june_2 == ledger.transact(lambda tx: seal.read_blocks(tx, 3, 4))
    midnight = ledger.transact(lambda tx: seal.blocks_created_in(tx, june_2_us - 1, june_2_us))
    assert [b.number for b in midnight] == [3]  # the one block that spans the night
    origin = ledger.transact(seal.journal_origin)
    assert origin and all(
        b.checkpoint.startswith(origin + "\n") for b in ledger.transact(
            lambda tx: seal.read_blocks(tx, 1, 4)
        )
    )  # fmt: skip


def _findings(job: str, day: date, scope: str = "all") -> Findings:
    return Findings(job, day, scope, 1, "0" * 64, 0, ("kind",), [], {"job": job})


def test_runs_answer_by_period_date_and_latest_attempt(ledger: Ledger) -> None:
    first = record(ledger, _findings("integrity", JUNE_1), started_at_us=0)
    again = record(ledger, _findings("integrity", JUNE_1), started_at_us=0)
    other = record(ledger, _findings("escrow", JUNE_2, "SHOP"), started_at_us=0)
    record(ledger, _findings("integrity", JUNE_3), started_at_us=0)
    assert (first.attempt, again.attempt) == (1, 2)

    period = ledger.transact(lambda tx: runs_of_period(tx, MAY_31, JUNE_2))
    assert [(r.business_date, r.job, r.attempt) for r in period] == [
        ("2026-06-01", "integrity", 1),
        ("2026-06-01", "integrity", 2),
        ("2026-06-02", "escrow", 1),
    ]
    assert [r.id for r in period] == [first.id, again.id, other.id]
    assert ledger.transact(lambda tx: runs_of_period(tx, MAY_31, MAY_31)) == []

    def dates(job: str, scope: str) -> set[str]:
        return ledger.transact(lambda tx: run_dates(tx, job, scope, MAY_31, JUNE_2))

    assert dates("integrity", "all") == {"2026-06-01"}
    assert dates("escrow", "SHOP") == {"2026-06-02"}
    assert dates("escrow", "all") == set()

    def latest(job: str, day: date, scope: str = "all") -> uuid.UUID | None:
        return ledger.transact(lambda tx: latest_run_id(tx, job, day, scope))

    assert latest("integrity", JUNE_1) == again.id
    assert latest("escrow", JUNE_2, "SHOP") == other.id
    assert latest("integrity", JUNE_2) is None


def test_claim_states_are_the_words_stored() -> None:
    assert [s.value for s in schedule.ClaimState] == ["claimed", "done", "failed"]
    assert schedule.STATE_DONE == "done" and schedule.STATE_DONE is schedule.ClaimState.DONE


@pytest.mark.parametrize(
    ("error", "branch", "code"),
    [
        (pack.PackRefused, InputInvalid, "pack_refused"),
        (checkpoint.CheckpointError, InputInvalid, "checkpoint_invalid"),
        (service_key.ServiceKeyError, InputInvalid, "service_key_invalid"),
        (schedule.BackfillFailed, JobFailed, "backfill_failed"),
        (tasks.ScheduledPassFailed, JobFailed, "scheduled_pass_failed"),
    ],
)
def test_each_audit_error_has_its_branch_and_code(
    error: type[ReconciliationError], branch: type[ReconciliationError], code: str
) -> None:
    assert issubclass(error, branch) and error.code == code
    # The API and the CLI catch the refusals as ValueErrors, as before.
    assert issubclass(error, ValueError) == (branch is InputInvalid)


def test_a_backfill_failure_keeps_what_it_says() -> None:
    failed = schedule.BackfillFailed("integrity", "all", JUNE_1, [])
    assert str(failed) == "integrity (all) failed for 2026-06-01"
    assert failed.code == "backfill_failed" and failed.runs == []
    unknown = InputInvalid("x")
    assert isinstance(unknown, ValueError) and unknown.code == "input_invalid"


def test_period_end_is_midnight_after_the_last_day() -> None:
    period = pack.Period(JUNE_1, JUNE_2)
    assert period.end_us - period.start_us == 2 * 86_400 * 1_000_000
    assert period.end_us == to_us(_at(JUNE_3, 0)) and period.days == 2
    assert pack.Period(JUNE_1, JUNE_1).end_us == to_us(_at(JUNE_1, 0) + timedelta(days=1))
