"""Receipts: every movement of a villager's wallet writes a ``wallet.receipt`` event to the
villager, with the amount, the counterparty, the wallet's new balance and a reference.

Amina (tier0) banks with Juma's station; Mbegu Seeds sells her seeds. Every story runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from ledger import Account, Ledger, Transfer
from ledger.core.tx import Tx
from ledger.flows import (
    agent_float,
    cash,
    consent,
    events,
    fees,
    orders,
    parties,
    proposals,
    suspense,
)
from ledger.flows.errors import Refused
from ledger.flows.orders import State
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.villager_helpers import active_villager

KES = "KES"
AMINA_PIN = "2580"
TIER0_BALANCE_MAX_MINOR = 2_000_000  # KES 20,000.00
CASH_OUT_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "bps": 150, "min_minor": 1_500, "max_minor": 20_000}],
    "split_bps": {"tax": 1_500, "agent_commission": 3_333},
}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def refused(code: str) -> Any:
    return pytest.raises(Refused, match=f"^{code}:")


@dataclass
class Station:
    led: Ledger
    clock: Clock
    agent: uuid.UUID
    storefront: uuid.UUID
    amina: uuid.UUID

    @property
    def wallet(self) -> uuid.UUID:
        return parties.account_id(self.amina, Role.WALLET)

    def balance(self) -> tuple[int, int]:
        """Amina's wallet: (posted balance, held)."""
        [a] = self.led.lookup_accounts([self.wallet])
        return a.credits_posted - a.debits_posted, a.debits_pending

    def receipts(self) -> list[events.Event]:
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=self.amina, limit=events.EVENTS_PAGE_MAX)
        )
        return [e for e in found if e.type == events.WALLET_RECEIPT]

    def cash_in(self, amount_minor: int, cash_in_id: uuid.UUID | None = None) -> cash.CashIn:
        return cash.cash_in(
            self.led,
            cash_in_id=cash_in_id or new_id(),
            agent_id=self.agent,
            villager_id=self.amina,
            amount_minor=amount_minor,
        )

    def withdrawal_code(self, amount_minor: int) -> str:
        return consent.make_code(
            self.led,
            villager_id=self.amina,
            pin=AMINA_PIN,
            purpose=consent.Purpose.WITHDRAWAL,
            amount_minor=amount_minor,
            agent_id=self.agent,
        ).code

    def request_cash_out(self, amount_minor: int, cash_out_id: uuid.UUID) -> cash.CashOut:
        return cash.request_cash_out(
            self.led,
            cash_out_id=cash_out_id,
            agent_id=self.agent,
            villager_id=self.amina,
            amount_minor=amount_minor,
            consent_code=self.withdrawal_code(amount_minor),
        )

    def order(self, amount_minor: int) -> uuid.UUID:
        order_id = new_id()
        orders.create_order(
            self.led,
            order_id=order_id,
            storefront_id=self.storefront,
            currency=KES,
            amount_minor=amount_minor,
            delivery_method="courier",
            villager_id=self.amina,
        )
        return order_id

    def pay_by_pin(self, order_id: uuid.UUID) -> orders.Order:
        return orders.pay_order_by_pin(
            self.led, step_id=new_id(), order_id=order_id, villager_id=self.amina, pin=AMINA_PIN
        )


@pytest.fixture
def station(ledger: Ledger, clock: Clock) -> Station:
    agent = parties.onboard(
        ledger, party_id=new_id(), kind=Kind.AGENT, name="Juma's station", currency=KES
    )
    agent_float.top_up_float(
        ledger, topup_id=new_id(), agent_id=agent.id, amount_minor=5_000_000, provider="BANK"
    )
    storefront = parties.onboard(
        ledger, party_id=new_id(), kind=Kind.STOREFRONT, name="Mbegu Seeds", currency=KES
    )
    amina = active_villager(
        ledger, agent_id=agent.id, phone="+254712000101", pin=AMINA_PIN, name="Amina"
    )
    return Station(ledger, clock, agent.id, storefront.id, amina.id)


def counterparty(party_id: uuid.UUID, kind: str, name: str, role: str) -> dict[str, Any]:
    return {
        "account_id": str(parties.account_id(party_id, role)),
        "party_id": str(party_id),
        "kind": kind,
        "name": name,
        "role": role,
    }


def test_a_cash_in_sends_amina_a_receipt_with_the_agent_and_her_new_balance(
    station: Station,
) -> None:
    cash_in_id = new_id()
    station.cash_in(120_000, cash_in_id)
    [receipt] = station.receipts()
    credit = uuid.uuid5(cash_in_id, "cash_in:credit")
    assert receipt.party_id == station.amina and receipt.subject_id == credit
    assert receipt.payload == {
        "villager_id": str(station.amina),
        "account_id": str(station.wallet),
        "movement": "credit",
        "side": "credit",
        "amount_minor": 120_000,
        "released_minor": 0,
        "expired": False,
        "currency": KES,
        "counterparty": counterparty(station.agent, "agent", "Juma's station", Role.FLOAT),
        "balance_minor": 120_000,
        "available_minor": 120_000,
        "reference": {
            "transfer_id": str(credit),
            "operation": "cash_in",
            "operation_id": str(cash_in_id),
        },
    }
    station.cash_in(30_000)
    assert [r.payload["balance_minor"] for r in station.receipts()] == [120_000, 150_000]
    assert station.led.check_integrity().ok


def test_a_two_phase_cash_out_sends_a_hold_then_a_debit_and_its_fee(station: Station) -> None:
    fees.publish_schedule(
        station.led,
        product="cash_out",
        currency=KES,
        effective_from=station.clock.now,
        rules=CASH_OUT_RULES,
    )
    station.cash_in(300_000)
    cash_out_id = new_id()
    requested = station.request_cash_out(100_000, cash_out_id)
    assert requested.fee_minor == 1_500
    hold = station.receipts()[-1]
    assert hold.subject_id == uuid.uuid5(cash_out_id, "cash_out:hold")
    assert hold.payload["movement"] == "hold" and hold.payload["amount_minor"] == 101_500
    assert (hold.payload["balance_minor"], hold.payload["available_minor"]) == (300_000, 198_500)
    assert hold.payload["counterparty"]["party_id"] == str(station.agent)
    assert hold.payload["reference"]["operation"] == "cash_out"
    assert hold.payload["reference"]["operation_id"] == str(cash_out_id)

    cash.confirm_cash_out(station.led, cash_out_id=cash_out_id, agent_id=station.agent)
    after = station.receipts()[2:]
    post, *fee_legs = after
    assert post.subject_id == uuid.uuid5(cash_out_id, "cash_out:post")
    assert (post.payload["movement"], post.payload["amount_minor"]) == ("debit", 100_000)
    assert post.payload["released_minor"] == 1_500  # the fee part of the hold, then paid
    assert (post.payload["balance_minor"], post.payload["available_minor"]) == (200_000, 200_000)
    assert sum(r.payload["amount_minor"] for r in fee_legs) == 1_500
    assert {r.payload["counterparty"]["kind"] for r in fee_legs} <= {"platform", "agent"}
    balance = 200_000
    for receipt in fee_legs:  # each receipt's balance is the one right after its transfer
        balance -= receipt.payload["amount_minor"]
        assert receipt.payload["movement"] == "debit"
        assert receipt.payload["balance_minor"] == receipt.payload["available_minor"] == balance
    assert balance == 198_500 and station.balance() == (198_500, 0)
    assert station.led.check_integrity().ok


def test_a_cancelled_cash_out_gives_back_its_hold_with_a_release_receipt(
    station: Station,
) -> None:
    station.cash_in(300_000)
    cash_out_id = new_id()
    station.request_cash_out(50_000, cash_out_id)
    cash.cancel_cash_out(station.led, cash_out_id=cash_out_id)
    release = station.receipts()[-1]
    assert release.payload["movement"] == "release" and release.payload["amount_minor"] == 50_000
    assert (release.payload["balance_minor"], release.payload["available_minor"]) == (
        300_000,
        300_000,
    )
    assert release.payload["expired"] is False


def test_an_expired_cash_out_gives_back_its_hold_with_a_release_receipt(
    station: Station,
) -> None:
    station.cash_in(300_000)
    cash_out_id = new_id()
    station.request_cash_out(50_000, cash_out_id)
    station.clock.advance(cash.CASH_OUT_TIMEOUT_S)
    assert cash.sweep_cash_outs(station.led) == 1
    release = station.receipts()[-1]
    hold_id = uuid.uuid5(cash_out_id, "cash_out:hold")
    assert release.subject_id == hold_id and release.payload["expired"] is True
    assert release.payload["movement"] == "release" and release.payload["amount_minor"] == 50_000
    assert release.payload["available_minor"] == 300_000


def test_an_order_paid_from_the_wallet_and_cancelled_sends_a_debit_then_a_credit(
    station: Station,
) -> None:
    station.cash_in(200_000)
    order_id = station.order(120_000)
    paid = station.pay_by_pin(order_id)
    payment = station.receipts()[-1]
    escrow = counterparty(station.storefront, "storefront", "Mbegu Seeds", Role.ESCROW)
    assert payment.subject_id == paid_transfer(station, order_id)
    assert payment.payload["movement"] == "debit" and payment.payload["amount_minor"] == 120_000
    assert payment.payload["counterparty"] == escrow
    assert payment.payload["balance_minor"] == 80_000
    assert payment.payload["reference"] == {
        "transfer_id": str(payment.subject_id),
        "operation": "order",
        "operation_id": str(order_id),
    }
    assert paid.state is State.PAID

    orders.cancel_order(station.led, step_id=new_id(), order_id=order_id)
    refund = station.receipts()[-1]
    assert refund.payload["movement"] == "credit" and refund.payload["amount_minor"] == 120_000
    assert refund.payload["counterparty"] == escrow
    assert refund.payload["balance_minor"] == refund.payload["available_minor"] == 200_000
    assert refund.payload["reference"]["operation_id"] == str(order_id)
    assert station.led.check_integrity().ok


def paid_transfer(station: Station, order_id: uuid.UUID) -> uuid.UUID:
    row = station.led.transact(
        lambda tx: tx.one("SELECT payment_transfer_id FROM orders WHERE id = :id", {"id": order_id})
    )
    assert row is not None
    found: uuid.UUID = row[0]
    return found


def test_money_reassigned_from_suspense_to_amina_sends_her_a_receipt(station: Station) -> None:
    item_id = new_id()
    suspense.park(
        station.led,
        suspense_id=item_id,
        currency=KES,
        provider="MPESA",
        provider_reference="QK7X2 AMINA",
        amount_minor=45_000,
    )
    assert station.receipts() == []  # parked: not hers yet
    suspense.reassign(station.led, suspense_id=item_id, to_villager_id=station.amina)
    [receipt] = station.receipts()
    platform = parties.platform_id(KES)
    assert receipt.subject_id == uuid.uuid5(item_id, "suspense:reassign")
    assert receipt.payload["movement"] == "credit" and receipt.payload["amount_minor"] == 45_000
    assert receipt.payload["counterparty"] == counterparty(
        platform, "platform", "platform KES", Role.SUSPENSE
    )
    assert receipt.payload["balance_minor"] == 45_000
    assert receipt.payload["reference"]["operation"] == "suspense"
    assert receipt.payload["reference"]["operation_id"] == str(item_id)


def test_a_refused_operation_sends_no_receipt(station: Station) -> None:
    with refused("limit_exceeded_per_transaction"):
        station.cash_in(500_001)  # tier0: 5,000.00 at most per cash-in
    poor = parties.onboard(
        station.led, party_id=new_id(), kind=Kind.AGENT, name="Empty till", currency=KES
    )
    with refused("float_short"):
        cash.cash_in(
            station.led,
            cash_in_id=new_id(),
            agent_id=poor.id,
            villager_id=station.amina,
            amount_minor=10_000,
        )
    order_id = station.order(10_000)
    with refused("wallet_short"):
        station.pay_by_pin(order_id)
    assert station.receipts() == [] and station.balance() == (0, 0)
    assert orders.get_order(station.led, order_id=order_id).state is State.CREATED


def test_a_flow_that_touches_no_wallet_sends_no_receipt(station: Station) -> None:
    agent_float.top_up_float(
        station.led, topup_id=new_id(), agent_id=station.agent, amount_minor=1, provider="BANK"
    )
    everything = station.led.transact(
        lambda tx: events.read_events(tx, limit=events.EVENTS_PAGE_MAX)
    )
    assert not [e for e in everything if e.type == events.WALLET_RECEIPT]


def operators(led: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    maker, checker = new_id(), new_id()

    def add(tx: Tx) -> None:
        for principal, name in ((maker, "Otieno (operator)"), (checker, "Njeri (operator)")):
            tx.execute(
                "INSERT INTO principals (id, role, name, created_at_us)"
                " VALUES (:id, 'operator', :name, :now)",
                {"id": principal, "name": name, "now": tx.now_us},
            )

    led.transact(add)
    return maker, checker


def test_an_approved_correction_into_the_wallet_sends_a_receipt_within_the_maximum(
    station: Station,
) -> None:
    maker, checker = operators(station.led)
    bank = new_id()
    station.led.create_accounts([Account(bank, KES, code=7)])

    def correction(amount_minor: int) -> proposals.Proposal:
        transfer = Transfer(new_id(), bank, station.wallet, amount_minor, KES, code=1)
        return proposals.propose_transfers(station.led, transfers=[transfer], proposed_by=maker)

    too_much = correction(TIER0_BALANCE_MAX_MINOR + 1)
    with refused("limit_exceeded_balance"):
        proposals.approve(station.led, proposal_id=too_much.id, approver=checker)
    assert station.balance() == (0, 0) and station.receipts() == []
    assert proposals.get(station.led, too_much.id).state is proposals.State.PROPOSED

    exactly = correction(TIER0_BALANCE_MAX_MINOR)
    proposals.approve(station.led, proposal_id=exactly.id, approver=checker)
    [receipt] = station.receipts()
    assert receipt.payload["movement"] == "credit"
    assert receipt.payload["amount_minor"] == receipt.payload["balance_minor"] == 2_000_000
    assert receipt.payload["counterparty"] == {
        "account_id": str(bank),
        "party_id": None,
        "kind": None,
        "name": None,
        "role": None,
    }
    assert receipt.payload["reference"]["operation"] == "correction"
    assert receipt.payload["reference"]["operation_id"] == str(exactly.id)
