"""The order's rules without a database: the legs of each operation (pure functions of
the order's row) and the state changes of the operations that move no money, run on a
fake transaction that only records what it is asked to write."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.tx import Row
from ledger.core.values import Transfer
from ledger.flows import parties
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.orders import legs, service, steps
from ledger.flows.orders.model import (
    DAY_US,
    EXTENSIONS_MAX,
    Group,
    OrderRow,
    ReleasedLeg,
    Source,
    State,
    new_order_row,
)
from ledger.flows.orders.repository import RecordedStep
from ledger.flows.parties import Role
from ledger.limits import AMOUNT_MAX_MINOR

NOW_US = 1_800_000_000 * 1_000_000
amounts = st.integers(min_value=1, max_value=AMOUNT_MAX_MINOR)


def _row(
    *, amount_minor: int = 10_000, source: Source | None = None, agent: bool = True
) -> OrderRow:
    row = new_order_row(
        order_id=uuid.uuid4(),
        storefront_id=uuid.uuid4(),
        villager_id=uuid.uuid4(),
        agent_id=uuid.uuid4() if agent else None,
        currency="KES",
        amount_minor=amount_minor,
        delivery_method="courier",
        now_us=NOW_US,
    )
    if source is None:
        return row
    payment = legs.payment_legs(row, uuid.uuid4(), source)
    return dataclasses.replace(
        row,
        state=State.PAID,
        payment_source=source,
        payment_transfer_id=payment[0].transfer.id,
        paid_minor=amount_minor,
    )


def _net(transfers: list[Transfer], account: uuid.UUID) -> int:
    """What the transfers moved into ``account`` (credits less debits)."""
    return sum(
        (t.amount or 0) * ((t.credit_account_id == account) - (t.debit_account_id == account))
        for t in transfers
    )


def _fee_transfers(parts: list[int]) -> list[Transfer]:
    return [
        Transfer(
            id=uuid.uuid4(),
            debit_account_id=uuid.uuid4(),  # replaced below by the escrow
            credit_account_id=uuid.uuid4(),
            amount=part,
            currency="KES",
            code=1,
        )
        for part in parts
    ]


# -- legs ---------------------------------------------------------------------------------


@given(amount=amounts, data=st.data())
def test_the_legs_of_a_release_add_up_to_the_amount_released(
    amount: int, data: st.DataObject
) -> None:
    row = _row(amount_minor=amount, source=Source.WALLET)
    fee = data.draw(st.integers(0, amount), label="fee_minor")
    cuts = data.draw(st.lists(st.integers(0, fee), max_size=4), label="cuts")
    bounds = sorted({0, fee, *cuts})
    parts = [b - a for a, b in itertools.pairwise(bounds)]
    escrow = legs.escrow_account(row)
    fee_legs = [dataclasses.replace(t, debit_account_id=escrow) for t in _fee_transfers(parts)]
    released = legs.release_legs(row, uuid.uuid4(), amount, fee_minor=fee, fee_transfers=fee_legs)
    transfers = [leg.transfer for leg in released]
    assert {leg.group for leg in released} == {Group.RELEASE}
    assert _net(transfers, escrow) == -amount
    assert _net(transfers, legs.proceeds_account(row)) == amount - fee
    assert legs.release_split(row, released) == (amount - fee, fee)
    assert all((t.amount or 0) > 0 for t in transfers)  # no leg of 0 (a fee of all: no seller)


@given(amount=amounts, over=st.integers(1, 1000))
def test_a_fee_above_the_release_is_refused(amount: int, over: int) -> None:
    row = _row(amount_minor=amount, source=Source.WALLET)
    with pytest.raises(Refused) as refused:
        legs.release_legs(row, uuid.uuid4(), amount, fee_minor=amount + over, fee_transfers=[])
    assert refused.value.code == "fee_exceeds_release"
    legs.check_fee_within(amount, amount)  # all of it is still within


@pytest.mark.parametrize("source", list(Source))
@given(amount=amounts)
def test_a_full_refund_reverses_what_was_paid(source: Source, amount: int) -> None:
    row = _row(amount_minor=amount, source=source)
    step_id = uuid.uuid4()
    paid = [leg.transfer for leg in legs.payment_legs(row, step_id, source)]
    refunded = legs.refund_legs(row, step_id, amount)
    assert {leg.group for leg in refunded} == {Group.REFUND}
    back = [leg.transfer for leg in refunded]
    assert refunded[0].transfer.reverses_id == row.payment_transfer_id
    accounts = {a for t in paid + back for a in (t.debit_account_id, t.credit_account_id)}
    for account in accounts:  # every account ends as it began
        assert account is not None
        assert _net(paid, account) + _net(back, account) == 0
    assert _net(paid, legs.escrow_account(row)) == amount


def test_a_wallet_payment_comes_from_the_villager_and_cash_through_the_agent() -> None:
    row = _row()
    assert row.villager_id is not None and row.agent_id is not None
    wallet = legs.payment_legs(row, uuid.uuid4(), Source.WALLET)
    assert [leg.transfer.debit_account_id for leg in wallet] == [
        parties.account_id(row.villager_id, Role.WALLET)
    ]
    cash = legs.payment_legs(row, uuid.uuid4(), Source.CASH)
    assert cash[0].transfer.debit_account_id == parties.account_id(row.agent_id, Role.FLOAT)
    assert cash[1].transfer.credit_account_id == parties.account_id(row.agent_id, Role.CASH_CONTROL)


@given(parts=st.lists(st.integers(1, 10**12), min_size=1, max_size=8))
def test_a_refund_after_release_gives_every_release_leg_back_to_escrow(parts: list[int]) -> None:
    row = _row(source=Source.WALLET)
    escrow = legs.escrow_account(row)
    released = [ReleasedLeg(uuid.uuid4(), escrow, uuid.uuid4(), part) for part in parts]
    reversals = legs.reversal_legs(row, uuid.uuid4(), released)
    assert [leg.transfer.reverses_id for leg in reversals] == [r.transfer_id for r in released]
    assert _net([leg.transfer for leg in reversals], escrow) == sum(parts)
    assert len({leg.transfer.id for leg in reversals}) == len(parts)


def test_leg_ids_are_the_same_on_a_replay_and_differ_between_steps() -> None:
    row = _row(source=Source.CASH)
    step_id = uuid.uuid4()
    first = legs.refund_legs(row, step_id, 5)
    assert first == legs.refund_legs(row, step_id, 5)
    assert {leg.transfer.id for leg in first}.isdisjoint(
        {leg.transfer.id for leg in legs.refund_legs(row, uuid.uuid4(), 5)}
    )


def test_every_short_account_of_an_order_has_a_code() -> None:
    row = _row(source=Source.CASH)
    short = legs.shortages(row)
    assert short[legs.escrow_account(row)] == "escrow_short"
    assert row.agent_id is not None
    assert short[parties.account_id(row.agent_id, Role.CASH_CONTROL)] == "agent_cash_short"
    assert len(legs.shortages(_row(agent=False))) == len(short) - 4


# -- state changes on a fake transaction ------------------------------------------------------


class FakeTx:
    """The part of :class:`~ledger.core.tx.Tx` the timer operations use: the clock, and
    writes (the outbox's events) kept in a list."""

    dialect = "sqlite"
    for_update = ""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us
        self.written: list[tuple[str, Mapping[str, Any]]] = []

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        assert sql.lstrip().upper().startswith("INSERT INTO EVENTS"), sql
        self.written.append((sql, dict(params or {})))
        return []


def _dispatched(timer_us: int) -> OrderRow:
    return dataclasses.replace(
        _row(source=Source.WALLET), state=State.DISPATCHED, auto_release_at_us=NOW_US + timer_us
    )


@given(timer_us=st.integers(0, 60 * DAY_US), days=st.integers(1, 30))
def test_a_dispute_pauses_the_timer_and_resume_runs_it_on(timer_us: int, days: int) -> None:
    tx = FakeTx(NOW_US)
    disputed, moved = service._dispute(tx, _dispatched(timer_us), reason="broken")  # type: ignore[arg-type]
    assert moved == []
    assert (disputed.state, disputed.disputed_from) == (State.DISPUTED, State.DISPATCHED)
    assert (disputed.auto_release_at_us, disputed.timer_remaining_us) == (None, timer_us)
    extended, _ = service._extend(tx, disputed, days=days)  # type: ignore[arg-type]
    later = FakeTx(NOW_US + 5 * DAY_US)
    resumed = service._resume(later, extended)  # type: ignore[arg-type]
    assert resumed.state is State.DISPATCHED and resumed.disputed_from is None
    assert resumed.auto_release_at_us == later.now_us + timer_us + days * DAY_US
    assert len(tx.written) == 2  # order.disputed, order.extended


def test_only_an_order_holding_money_is_disputed() -> None:
    for state in (State.CREATED, State.RELEASED, State.CANCELLED, State.REFUNDED):
        row = dataclasses.replace(_row(), state=state)
        with pytest.raises(Refused) as refused:
            service._dispute(FakeTx(NOW_US), row, reason="why")  # type: ignore[arg-type]
        assert refused.value.code == "order_not_disputable"


def test_the_timer_is_extended_at_most_extensions_max_times() -> None:
    tx = FakeTx(NOW_US)
    row = _dispatched(DAY_US)
    for _ in range(EXTENSIONS_MAX):
        row, _legs = service._extend(tx, row, days=1)  # type: ignore[arg-type]
    assert row.auto_release_at_us == NOW_US + (1 + EXTENSIONS_MAX) * DAY_US
    with pytest.raises(Refused) as refused:
        service._extend(tx, row, days=1)  # type: ignore[arg-type]
    assert refused.value.code == "extensions_exceeded"
    with pytest.raises(Refused) as refused:
        service._extend(tx, _row(), days=1)  # type: ignore[arg-type]
    assert refused.value.code == "order_timer_not_running"


# -- one operation's step, with the repository in memory ----------------------------------


class FakeRepository:
    """The functions of :mod:`ledger.flows.orders.repository` that a step uses, over
    dicts: the orders by id, and the history by step id."""

    def __init__(self, *rows: OrderRow) -> None:
        self.orders = {row.id: row for row in rows}
        self.steps: dict[uuid.UUID, RecordedStep] = {}

    def read(self, tx: object, order_id: uuid.UUID, *, lock: bool) -> OrderRow | None:
        return self.orders.get(order_id)

    def recorded_step(self, tx: object, step_id: uuid.UUID) -> RecordedStep | None:
        return self.steps.get(step_id)

    def save(self, tx: object, row: OrderRow) -> None:
        assert row.id in self.orders
        self.orders[row.id] = row

    def insert_step(
        self, tx: object, *, step_id: uuid.UUID, row: OrderRow, request: str, **_: object
    ) -> None:
        assert step_id not in self.steps
        self.steps[step_id] = RecordedStep(request, row)


def test_a_step_is_applied_once_saved_and_answered_again_from_its_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = _dispatched(3 * DAY_US)
    fake = FakeRepository(row)
    monkeypatch.setattr(steps, "repository", fake)
    tx = FakeTx(NOW_US)
    step_id = uuid.uuid4()
    disputed = service.dispute_order_in(tx, step_id=step_id, order_id=row.id, reason="late")  # type: ignore[arg-type]
    assert disputed.state is State.DISPUTED and disputed.timer_remaining_us == 3 * DAY_US
    assert fake.orders[row.id].state is State.DISPUTED
    assert fake.orders[row.id].updated_at_us == NOW_US
    later = FakeTx(NOW_US + DAY_US)
    again = service.dispute_order_in(later, step_id=step_id, order_id=row.id, reason="late")  # type: ignore[arg-type]
    assert again == disputed and later.written == [] and len(fake.steps) == 1
    with pytest.raises(Conflict) as conflict:
        service.dispute_order_in(later, step_id=step_id, order_id=row.id, reason="other")  # type: ignore[arg-type]
    assert conflict.value.code == "step_id_reused"
    with pytest.raises(NotFound):
        service.dispute_order_in(later, step_id=uuid.uuid4(), order_id=uuid.uuid4(), reason="x")  # type: ignore[arg-type]
