"""Goods handed over offline: Juma's phone records that Amina collected her seeds, with
the pickup code she typed, while the station has no network; at sync the code is checked
as the online hand-over checks it (a wrong one counted, the third voiding her code), the
order delivered once per record, and every refusal a visible exception with its reason.
Both engines (``ledger`` fixture)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Ledger, Transfer
from ledger.flows import offline, orders, parties, pickup
from ledger.flows.errors import Refused
from ledger.flows.offline import (
    OfflineRecord,
    RecordKind,
    RecordState,
    SignedRecord,
    SyncedRecord,
    canonical_bytes,
    handover_step_id,
    record_from_canonical,
    sign_record,
)
from ledger.flows.orders import State
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.test_flow_offline import raw_public
from tests.test_flow_order_consent import SEEDS_MINOR, Station, make_station, pickup_code_sent

KES = "KES"
ALLOWANCE_MINOR = 50_000
CAPTURED_AT = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def wrong(code: str) -> str:
    """A six-digit code that is not ``code``."""
    return f"{(int(code) + 1) % 10**6:06d}"


@dataclass
class Phone:
    """Juma's enrolled phone at the station."""

    station: Station
    key: Ed25519PrivateKey
    device_id: uuid.UUID

    @property
    def led(self) -> Ledger:
        return self.station.led

    def handover(self, seq: int, order_id: uuid.UUID, code: str, **changes: object) -> SignedRecord:
        order = self.station.get(order_id)
        record = OfflineRecord(
            record_id=uuid.uuid4(),
            device_id=self.device_id,
            agent_id=self.station.agent,
            villager_id=order.villager_id or uuid.uuid4(),
            kind=RecordKind.HANDOVER,
            amount_minor=order.amount_minor,
            currency=order.currency,
            seq=seq,
            captured_at=CAPTURED_AT + timedelta(minutes=seq),
            version=3,
            order_id=order_id,
            pickup_code=code,
        )
        return sign_record(self.key, replace(record, **changes))  # type: ignore[arg-type]

    def sync(self, *records: SignedRecord) -> list[SyncedRecord]:
        report = offline.sync(self.led, device_id=self.device_id, records=records)
        return list(report.records)

    def allowance_minor(self) -> int:
        return offline.get_device(self.led, device_id=self.device_id).allowance_minor


@pytest.fixture
def phone(ledger: Ledger, clock: Clock) -> Phone:
    station = make_station(ledger, clock)
    key = Ed25519PrivateKey.generate()
    device_id = uuid.uuid4()
    offline.register_device(
        ledger,
        device_id=device_id,
        agent_id=station.agent,
        public_key=raw_public(key),
        allowance_minor=ALLOWANCE_MINOR,
    )
    return Phone(station, key, device_id)


def dispatched(station: Station, *, method: str = "pickup_point") -> tuple[uuid.UUID, str]:
    """An order of Amina's paid in cash at Juma's and dispatched: its id and her code."""
    order_id = station.order(method=method)
    station.pay_cash(order_id)
    station.dispatch(order_id)
    return order_id, pickup_code_sent(station.led, station.amina, order_id)


# -- the record ---------------------------------------------------------------------------


def test_a_handover_record_is_version_3_with_its_order_and_code(phone: Phone) -> None:
    order_id, code = dispatched(phone.station)
    signed = phone.handover(1, order_id, code)
    payload = canonical_bytes(signed.record)
    assert f'"order_id":"{order_id}","pickup_code":"{code}"'.encode() in payload
    assert payload.endswith(f',"version":3,"villager_id":"{phone.station.amina}"}}'.encode())
    assert b'"kind":"handover"' in payload and b"consent_code" not in payload
    assert record_from_canonical(payload) == signed.record


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 2},  # a handover is version 3
        {"kind": RecordKind.CASH_IN},  # version 3 is a handover
        {"pickup_code": "12345"},
        {"pickup_code": "\uff11\uff12\uff13\uff14\uff15\uff16"},  # not ASCII digits
        {"pickup_code": None},
        {"order_id": None},
        {"consent_code": "123456"},
    ],
)
def test_a_malformed_handover_has_no_canonical_bytes(
    phone: Phone, changes: dict[str, object]
) -> None:
    order_id, code = dispatched(phone.station)
    record = replace(phone.handover(1, order_id, code).record, **changes)  # type: ignore[arg-type]
    with pytest.raises(Refused, match=r"^record_invalid:"):
        canonical_bytes(record)


def test_a_cash_record_carries_no_order(phone: Phone) -> None:
    order_id, code = dispatched(phone.station)
    record = replace(
        phone.handover(1, order_id, code).record,
        kind=RecordKind.CASH_IN,
        version=1,
        pickup_code=None,
    )
    with pytest.raises(Refused, match="only a handover carries order_id"):
        canonical_bytes(record)


def test_the_record_and_the_pickup_flow_agree_on_the_code_length() -> None:
    assert offline.PICKUP_CODE_DIGITS == pickup.CODE_DIGITS


# -- sync -------------------------------------------------------------------------------


def test_her_code_delivers_the_order_once_and_a_replay_answers_the_same(phone: Phone) -> None:
    station = phone.station
    order_id, code = dispatched(station)
    float_before = station.balance(station.agent, Role.FLOAT)
    signed = phone.handover(1, order_id, code)

    [first] = phone.sync(signed)
    assert (first.state, first.reason, first.kind) == (RecordState.APPLIED, None, "handover")
    assert first.order_id == order_id
    assert first.cash_operation_id == handover_step_id(signed.record.record_id)
    order = station.get(order_id)
    assert order.state is State.DELIVERED and order.escrow_minor == SEEDS_MINOR
    assert station.wrong_tries(order_id) == [("used", 0)]

    [again] = phone.sync(signed)  # the answer was lost: the phone sends it again
    assert again == first
    assert station.get(order_id) == order
    # a hand-over moves no float and spends none of the allowance
    assert station.balance(station.agent, Role.FLOAT) == float_before
    assert phone.allowance_minor() == ALLOWANCE_MINOR
    assert offline.get_record(phone.led, record_id=signed.record.record_id) == first


def test_a_wrong_code_is_counted_once_per_record_and_the_third_voids_it(phone: Phone) -> None:
    station = phone.station
    order_id, code = dispatched(station)
    tries = [phone.handover(seq, order_id, wrong(code)) for seq in (1, 2)]
    reasons = [r.reason for r in phone.sync(*tries)]
    assert reasons == ["pickup_code_invalid", "pickup_code_invalid"]
    assert station.wrong_tries(order_id) == [("open", 2)]

    phone.sync(*tries)  # replayed: answered as stored, not tried again
    assert station.wrong_tries(order_id) == [("open", 2)]

    third, right = phone.handover(3, order_id, wrong(code)), phone.handover(4, order_id, code)
    outcomes = phone.sync(third, right)
    assert [(r.state, r.reason) for r in outcomes] == [
        (RecordState.EXCEPTION, "pickup_code_void"),
        (RecordState.EXCEPTION, "pickup_code_void"),
    ]
    assert station.wrong_tries(order_id) == [("void", 3)]
    assert station.get(order_id).state is State.DISPATCHED
    # as online: the villager needs a new code from the shop
    with pytest.raises(Refused, match=r"^pickup_code_invalid:"):
        station.deliver(order_id, code)
    exceptions = offline.list_exceptions(phone.led, agent_id=station.agent)
    assert [e.reason for e in exceptions] == ["pickup_code_invalid"] * 2 + ["pickup_code_void"] * 2


def test_another_agents_order_is_not_found_and_her_code_is_not_tried(phone: Phone) -> None:
    station = phone.station
    other_agent = uuid.uuid4()
    parties.onboard(station.led, party_id=other_agent, kind=Kind.AGENT, name="Neema", currency=KES)
    neema_float = parties.account_id(other_agent, Role.FLOAT)
    [made] = station.led.create_transfers(
        [Transfer(uuid.uuid4(), station.bank, neema_float, SEEDS_MINOR, KES, 1)]
    )
    assert made.status == "created"
    order_id = uuid.uuid4()
    orders.create_order(
        station.led,
        order_id=order_id,
        storefront_id=station.storefront,
        currency=KES,
        amount_minor=SEEDS_MINOR,
        delivery_method="pickup_point",
        villager_id=station.amina,
        agent_id=other_agent,
    )
    orders.pay_order(
        station.led, step_id=uuid.uuid4(), order_id=order_id, source=orders.Source.CASH
    )
    station.dispatch(order_id)
    code = pickup_code_sent(station.led, station.amina, order_id)

    theirs = phone.handover(1, order_id, code)
    missing = sign_record(phone.key, replace(theirs.record, seq=2, order_id=uuid.uuid4()))
    outcomes = phone.sync(theirs, missing)
    assert [(r.state, r.reason) for r in outcomes] == [
        (RecordState.EXCEPTION, "order_not_found"),
        (RecordState.EXCEPTION, "order_not_found"),
    ]
    assert station.wrong_tries(order_id) == [("open", 0)]
    assert station.get(order_id).state is State.DISPATCHED


def test_a_record_that_describes_another_order_tries_no_code(phone: Phone) -> None:
    station = phone.station
    order_id, code = dispatched(station)
    changed: list[dict[str, object]] = [
        {"amount_minor": SEEDS_MINOR + 1},
        {"villager_id": station.baraka},
    ]
    records = [phone.handover(seq, order_id, wrong(code), **c) for seq, c in enumerate(changed, 1)]
    outcomes = phone.sync(*records)
    assert {r.reason for r in outcomes} == {"record_order_mismatch"}
    assert station.wrong_tries(order_id) == [("open", 0)]


def test_an_order_not_dispatched_is_not_deliverable(phone: Phone) -> None:
    station = phone.station
    order_id = station.order()
    station.pay_cash(order_id)
    [outcome] = phone.sync(phone.handover(1, order_id, "123456"))
    assert (outcome.state, outcome.reason) == (RecordState.EXCEPTION, "order_not_deliverable")
    assert station.get(order_id).state is State.PAID


def test_the_code_checked_offline_is_the_one_the_shop_sent_last(phone: Phone) -> None:
    """The shop re-sent the code: the old one is void, the new one delivers."""
    station = phone.station
    order_id, old = dispatched(station)
    station.dispatch(order_id)  # a new step: a new code, the old one void
    new = pickup_code_sent(station.led, station.amina, order_id)
    outcomes = phone.sync(phone.handover(1, order_id, old), phone.handover(2, order_id, new))
    if old == new:  # one chance in a million
        pytest.skip("the shop's new code happened to be the old one")
    assert [r.state for r in outcomes] == [RecordState.EXCEPTION, RecordState.APPLIED]
    assert station.get(order_id).state is State.DELIVERED


def test_handovers_and_cash_records_share_one_sequence(phone: Phone) -> None:
    station = phone.station
    order_id, code = dispatched(station)
    cash_in = phone.handover(1, order_id, code)
    cash_in = sign_record(
        phone.key,
        replace(
            cash_in.record,
            kind=RecordKind.CASH_IN,
            version=1,
            order_id=None,
            pickup_code=None,
            amount_minor=1_000,
        ),
    )
    outcomes = phone.sync(cash_in, phone.handover(2, order_id, code))
    assert [r.state for r in outcomes] == [RecordState.APPLIED, RecordState.APPLIED]
    assert phone.allowance_minor() == ALLOWANCE_MINOR - 1_000
    with pytest.raises(Refused, match=r"^record_gap:"):
        phone.sync(phone.handover(4, order_id, code))
