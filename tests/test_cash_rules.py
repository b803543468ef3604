"""The cash rules on their own, without a database: the two-phase cash-out's steps read
through a fake repository (a dict of stored rows), and each limit a cash request checks,
on both sides of it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.errors import MalformedRequest
from ledger.core.store import from_us
from ledger.flows import fees
from ledger.flows.cash import rules
from ledger.flows.cash.model import (
    CASH_OUT_TIMEOUT_MAX_S,
    CASH_OUT_TIMEOUT_MIN_S,
    CashIn,
    CashOut,
    CashOutMode,
    CashOutState,
    minimum_cash_out_minor,
)
from ledger.flows.cash.repository import StoredCashOut
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.limits import AMOUNT_MAX_MINOR, LIST_PAGE_SIZE_MAX, REASON_LENGTH_MAX

AGENT = uuid.UUID(int=1)
VILLAGER = uuid.UUID(int=2)
NOW_US = 1_800_000_000_000_000
EXPIRES_US = NOW_US + 900_000_000


class FakeCashOuts:
    """The repository's ``find`` over a dict, remembering which ids it locked."""

    def __init__(self, *stored: StoredCashOut) -> None:
        self.rows = {s.cash_out.id: s for s in stored}
        self.locked: list[uuid.UUID] = []

    def find(self, cash_out_id: uuid.UUID, *, lock: bool) -> StoredCashOut | None:
        if lock:
            self.locked.append(cash_out_id)
        return self.rows.get(cash_out_id)


def stored(
    *,
    state: CashOutState = CashOutState.REQUESTED,
    mode: CashOutMode = CashOutMode.TWO_PHASE,
    amount_minor: int = 20_000,
) -> StoredCashOut:
    two_phase = mode is CashOutMode.TWO_PHASE
    cash_out = CashOut(
        id=uuid.uuid4(),
        agent_id=AGENT,
        villager_id=VILLAGER,
        device_id=None,
        currency="KES",
        amount_minor=amount_minor,
        fee_minor=0,
        fee_version=None,
        mode=mode,
        state=state,
        reason=None,
        created_at=from_us(NOW_US),
        expires_at=from_us(EXPIRES_US) if two_phase else None,
        resolved_at=None,
    )
    return StoredCashOut(cash_out, EXPIRES_US if two_phase else None, 20_000, None)


@contextlib.contextmanager
def refused(code: str) -> Iterator[None]:
    """``with refused("below_minimum"):`` expects that refusal, by its code."""
    with pytest.raises(Refused) as caught:
        yield
    assert caught.value.code == code


# -- the two-phase cash-out's steps, through a fake repository ------------------------------


def test_a_replay_answers_the_stored_cash_out_and_another_request_is_a_conflict() -> None:
    held = stored()
    rows = FakeCashOuts(held)
    same = (AGENT, VILLAGER, 20_000, None)
    assert rules.replayed_cash_out(rows, uuid.uuid4(), CashOutMode.TWO_PHASE, same) is None
    found = rules.replayed_cash_out(rows, held.cash_out.id, CashOutMode.TWO_PHASE, same)
    assert found == held.cash_out
    for mode, request in (
        (CashOutMode.TWO_PHASE, (AGENT, VILLAGER, 20_001, None)),
        (CashOutMode.TWO_PHASE, (AGENT, VILLAGER, 20_000, uuid.uuid4())),
        (CashOutMode.ONE_SHOT, same),
    ):
        with pytest.raises(Conflict) as caught:
            rules.replayed_cash_out(rows, held.cash_out.id, mode, request)
        assert caught.value.code == "cash_out_id_reused"
    assert rows.locked == []  # a replay reads without locking


def test_a_step_locks_its_two_phase_cash_out_and_refuses_a_one_shot_or_none() -> None:
    held, posted = stored(), stored(mode=CashOutMode.ONE_SHOT, state=CashOutState.COMPLETED)
    rows = FakeCashOuts(held, posted)
    assert rules.locked_two_phase(rows, held.cash_out.id) == held
    assert rows.locked == [held.cash_out.id]
    with refused("cash_out_completed"):
        rules.locked_two_phase(rows, posted.cash_out.id)
    with pytest.raises(NotFound) as caught:
        rules.locked_two_phase(rows, uuid.uuid4())
    assert caught.value.code == "cash_out_not_found"
    with pytest.raises(MalformedRequest):
        rules.locked_two_phase(rows, "not a uuid")  # type: ignore[arg-type]


def test_the_agent_confirms_before_the_timeout_and_not_at_it() -> None:
    held = stored()
    assert rules.check_confirmable(held, AGENT, EXPIRES_US - 1) is True
    with refused("cash_out_expired"):
        rules.check_confirmable(held, AGENT, EXPIRES_US)
    with refused("agent_mismatch"):
        rules.check_confirmable(held, uuid.uuid4(), NOW_US)
    assert rules.check_confirmable(stored(state=CashOutState.COMPLETED), AGENT, NOW_US) is False
    for state in (CashOutState.CANCELLED, CashOutState.EXPIRED):
        with refused(f"cash_out_{state.value}"):
            rules.check_confirmable(stored(state=state), AGENT, NOW_US)


def test_cancelling_cancels_expires_answers_or_refuses_by_state_and_time() -> None:
    held = stored()
    assert rules.cancel_step(held, EXPIRES_US - 1) is rules.CancelStep.CANCEL
    assert rules.cancel_step(held, EXPIRES_US) is rules.CancelStep.EXPIRE
    for state in (CashOutState.CANCELLED, CashOutState.EXPIRED):
        assert rules.cancel_step(stored(state=state), EXPIRES_US) is rules.CancelStep.ANSWER
    with refused("cash_out_completed"):
        rules.cancel_step(stored(state=CashOutState.COMPLETED), NOW_US)
    assert not rules.is_due(stored(state=CashOutState.CANCELLED), EXPIRES_US + 1)


# -- replays of a cash-in -----------------------------------------------------------------


def test_a_cash_in_replay_answers_the_stored_one_and_another_request_is_a_conflict() -> None:
    done = CashIn(uuid.uuid4(), AGENT, VILLAGER, None, "KES", 500, 0, 0, None, datetime.now(UTC))
    assert rules.replayed_cash_in(None, (AGENT, VILLAGER, 500, None)) is None
    assert rules.replayed_cash_in(done, (AGENT, VILLAGER, 500, None)) is done
    with pytest.raises(Conflict) as caught:
        rules.replayed_cash_in(done, (AGENT, VILLAGER, 501, None))
    assert caught.value.code == "cash_in_id_reused"


# -- each limit, on both sides ------------------------------------------------------------


def test_the_timeout_of_a_requested_cash_out_has_bounds() -> None:
    for timeout_s in (CASH_OUT_TIMEOUT_MIN_S, CASH_OUT_TIMEOUT_MAX_S):
        assert rules.check_timeout(timeout_s) == timeout_s
    for bad in (CASH_OUT_TIMEOUT_MIN_S - 1, CASH_OUT_TIMEOUT_MAX_S + 1, 60.0, True):
        with pytest.raises(MalformedRequest):
            rules.check_timeout(bad)


def test_a_reason_is_one_to_the_most_characters() -> None:
    for reason in ("x", "x" * REASON_LENGTH_MAX):
        assert rules.check_reason(reason) == reason
    for bad in ("", "x" * (REASON_LENGTH_MAX + 1), None):
        with refused("reason_invalid"):
            rules.check_reason(bad)


def test_a_page_is_one_to_the_most_rows() -> None:
    for limit in (1, LIST_PAGE_SIZE_MAX):
        rules.check_page(agent_id=AGENT, after=None, limit=limit)
    for bad in (0, LIST_PAGE_SIZE_MAX + 1):
        with pytest.raises(MalformedRequest):
            rules.check_page(agent_id=AGENT, after=None, limit=bad)
    with pytest.raises(MalformedRequest):
        rules.check_page(agent_id=AGENT, after="x", limit=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["KES", "UGX", "TZS", "USD"])
def test_the_smallest_cash_out_is_allowed_and_one_less_is_refused(currency: str) -> None:
    minimum = minimum_cash_out_minor(currency)
    rules.check_minimum(currency, minimum)
    with refused("below_minimum"):
        rules.check_minimum(currency, minimum - 1)


def _quote(amount_minor: int, fee_minor: int) -> fees.Quote:
    return fees.Quote("cash_in", "KES", 1, amount_minor, fee_minor, 0, 0, fee_minor, 0, 0)


@given(
    amount_minor=st.integers(1, AMOUNT_MAX_MINOR),
    fee_minor=st.integers(0, AMOUNT_MAX_MINOR),
)
def test_a_cash_in_fee_must_leave_the_villager_something(amount_minor: int, fee_minor: int) -> None:
    if fee_minor < amount_minor:
        assert rules.cash_in_fee_minor(_quote(amount_minor, fee_minor), amount_minor) == fee_minor
    else:
        with refused("fee_exceeds_amount"):
            rules.cash_in_fee_minor(_quote(amount_minor, fee_minor), amount_minor)
    assert rules.cash_in_fee_minor(None, amount_minor) == 0  # no schedule, no fee
