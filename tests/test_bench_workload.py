"""Workload W1 is the same list on every machine, its plain-Python model is sound, and the
checks ``bench.w1`` runs after each run catch a ledger that got it wrong."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import cast

import pytest

from bench import workload
from bench.workload import (
    AMOUNT_MAX_MINOR,
    AMOUNT_MIN_MINOR,
    ESCROW_ACCOUNT,
    FUNDING_ACCOUNT,
    TRANSFER_COUNT,
    WALLET_COUNT,
    WALLET_FUNDING_MINOR,
    W1Transfer,
)
from ledger import Account, Ledger, Status


@pytest.fixture(scope="module")
def rows() -> list[W1Transfer]:
    return workload.generate()


def test_data_rows_match_the_published_fingerprint(rows: list[W1Transfer]) -> None:
    assert len(rows) == TRANSFER_COUNT
    assert workload.sha256_hex(workload.csv_rows(rows)) == workload.DATA_ROWS_SHA256


def test_csv_file_has_header_and_unix_line_ends(rows: list[W1Transfer], tmp_path: Path) -> None:
    path = tmp_path / "w1.csv"
    digest = workload.write_csv(path, rows)
    data = path.read_bytes()
    assert data.startswith(b"seq,src,dst,amount\n")
    assert b"\r" not in data
    assert data.endswith(b"\n")
    assert data.count(b"\n") == TRANSFER_COUNT + 1
    assert digest == workload.CSV_FILE_SHA256
    assert data.removeprefix(b"seq,src,dst,amount\n").decode() == workload.csv_rows(rows)


def test_seqs_run_one_to_n(rows: list[W1Transfer]) -> None:
    assert [t.seq for t in rows] == list(range(1, TRANSFER_COUNT + 1))


def test_a_shorter_run_is_a_prefix(rows: list[W1Transfer]) -> None:
    assert workload.generate(5000) == rows[:5000]
    assert workload.generate(0) == []


@pytest.mark.parametrize("count", [-1, TRANSFER_COUNT + 1])
def test_count_outside_the_workload_is_refused(count: int) -> None:
    with pytest.raises(ValueError):
        workload.generate(count)


def test_amounts_are_within_bounds(rows: list[W1Transfer]) -> None:
    amounts = [t.amount for t in rows]
    assert min(amounts) == AMOUNT_MIN_MINOR
    assert max(amounts) == AMOUNT_MAX_MINOR


def test_accounts_differ_and_exist(rows: list[W1Transfer]) -> None:
    known = set(range(1, ESCROW_ACCOUNT + 1))
    for t in rows:
        assert t.src != t.dst
        assert t.src in known
        assert t.dst in known


def test_escrow_is_one_side_of_about_a_fifth(rows: list[W1Transfer]) -> None:
    into = sum(1 for t in rows if t.dst == ESCROW_ACCOUNT)
    out_of = sum(1 for t in rows if t.src == ESCROW_ACCOUNT)
    tolerance = 0.01 * TRANSFER_COUNT
    assert abs(into - 0.10 * TRANSFER_COUNT) < tolerance
    assert abs(out_of - 0.10 * TRANSFER_COUNT) < tolerance
    assert abs(into + out_of - 0.20 * TRANSFER_COUNT) < tolerance


def test_wallet_to_wallet_reaches_every_pair_shape(rows: list[W1Transfer]) -> None:
    plain = [t for t in rows if ESCROW_ACCOUNT not in (t.src, t.dst)]
    # The "dst += 1 if dst >= src" step must reach both the top wallet and lower ones.
    assert any(t.dst == WALLET_COUNT for t in plain)
    assert any(t.dst < t.src for t in plain)
    assert any(t.dst > t.src for t in plain)


def test_replay_conserves_money_and_never_goes_negative(rows: list[W1Transfer]) -> None:
    result = workload.replay(rows)
    assert sum(result.balances.values()) == WALLET_COUNT * WALLET_FUNDING_MINOR
    assert min(result.balances.values()) >= 0
    assert set(result.balances) == set(range(1, ESCROW_ACCOUNT + 1))


def test_replay_refuses_an_overdraw_and_applies_the_rest() -> None:
    rows = [
        W1Transfer(1, ESCROW_ACCOUNT, 1, 1),  # escrow starts at 0: refused
        W1Transfer(2, 1, ESCROW_ACCOUNT, 400),
        W1Transfer(3, ESCROW_ACCOUNT, 2, 401),  # one more than the escrow holds: refused
        W1Transfer(4, ESCROW_ACCOUNT, 2, 400),  # exactly what it holds: applied
    ]
    result = workload.replay(rows)
    assert result.refused_seqs == {1, 3}
    assert result.balances[1] == WALLET_FUNDING_MINOR - 400
    assert result.balances[2] == WALLET_FUNDING_MINOR + 400
    assert result.balances[ESCROW_ACCOUNT] == 0


def test_applying_the_created_set_in_any_order_gives_the_replay(rows: list[W1Transfer]) -> None:
    prefix = rows[:20_000]
    result = workload.replay(prefix)
    created = [t.seq for t in prefix if t.seq not in result.refused_seqs]
    assert workload.apply_created(prefix, reversed(created)) == result.balances


# -- the checks bench.w1 runs after every run must catch a ledger that got it wrong ------


class FakeLedger:
    """Answers ``lookup_accounts`` from a table of balances (all the checks read)."""

    def __init__(self, balances: dict[int, int]) -> None:
        self.balances = balances

    def lookup_accounts(self, ids: list[uuid.UUID]) -> list[Account]:
        found = []
        for i in ids:
            n = i.int
            balance = self.balances[n]
            found.append(
                Account(
                    id=i,
                    currency="KES",
                    code=1,
                    debits_posted=max(0, -balance),
                    credits_posted=max(0, balance),
                )
            )
        return found


def honest_run(rows: list[W1Transfer]) -> tuple[dict[int, int], dict[int, Status]]:
    model = workload.replay(rows)
    balances = {**model.balances, FUNDING_ACCOUNT: -WALLET_COUNT * WALLET_FUNDING_MINOR}
    statuses = {
        t.seq: Status.EXCEEDS_CREDITS if t.seq in model.refused_seqs else Status.CREATED
        for t in rows
    }
    return balances, statuses


def problems(mode: str, balances: dict[int, int], statuses: dict[int, Status]) -> list[str]:
    from bench import w1

    fake = cast("Ledger", FakeLedger(balances))
    return w1.check_run(fake, w1.MODES[mode], ROWS_CHECKED, statuses)


ROWS_CHECKED = workload.generate(3000)


@pytest.mark.parametrize("mode", ["a", "b", "c"])
def test_checks_pass_an_honest_run(mode: str) -> None:
    assert workload.replay(ROWS_CHECKED).refused_seqs  # the prefix does refuse some
    assert problems(mode, *honest_run(ROWS_CHECKED)) == []


@pytest.mark.parametrize("mode", ["a", "b", "c"])
def test_checks_catch_money_moved_between_accounts(mode: str) -> None:
    balances, statuses = honest_run(ROWS_CHECKED)
    balances[1] -= 5
    balances[2] += 5  # conserved, so only the per-account checks can see it
    assert problems(mode, balances, statuses)


@pytest.mark.parametrize("mode", ["a", "b", "c"])
def test_checks_catch_money_created(mode: str) -> None:
    balances, statuses = honest_run(ROWS_CHECKED)
    balances[ESCROW_ACCOUNT] += 1
    assert any("wallets + escrow hold" in p for p in problems(mode, balances, statuses))


@pytest.mark.parametrize("mode", ["a", "b", "c"])
def test_checks_catch_an_unexpected_status(mode: str) -> None:
    balances, statuses = honest_run(ROWS_CHECKED)
    statuses[1] = Status.EXCEEDS_DEBITS
    assert any("unexpected statuses" in p for p in problems(mode, balances, statuses))


def test_checks_catch_a_refusal_the_replay_does_not_make() -> None:
    balances, statuses = honest_run(ROWS_CHECKED)
    refused = next(seq for seq, s in statuses.items() if s == Status.EXCEEDS_CREDITS)
    statuses[refused] = Status.CREATED  # answered created, but balances do not show it
    assert problems("a", balances, statuses)
    assert problems("b", balances, statuses)


def test_checks_catch_a_negative_balance_in_mode_b() -> None:
    balances, statuses = honest_run(ROWS_CHECKED)
    moved = balances[ESCROW_ACCOUNT] + 1
    balances[ESCROW_ACCOUNT] -= moved  # one below zero
    balances[3] += moved  # the total is unchanged
    found = problems("b", balances, statuses)
    assert any("negative" in p for p in found)
    assert not any("wallets + escrow hold" in p for p in found)
