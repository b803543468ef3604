"""Suspense: provider money nobody could match is parked with its provider reference, and
an operator reassigns it to the wallet or storefront it was meant for, or returns it to
the provider. Every story runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Account, Ledger, open_ledger
from ledger.flows import events, parties, principals, proposals, settlement, suspense
from ledger.flows.errors import Conflict, FlowError, NotFound, Refused
from ledger.flows.parties import Kind, Role
from ledger.flows.suspense import SuspenseItem, SuspenseState
from tests.conftest import Clock

KES = "KES"
MPESA = "MPESA"


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass
class Office:
    """The platform's back office of one currency, a villager and a storefront."""

    led: Ledger
    villager: uuid.UUID
    neighbour: uuid.UUID
    storefront: uuid.UUID

    def account(self, account_id: uuid.UUID) -> Account:
        [found] = self.led.lookup_accounts([account_id])
        return found

    def credit_balance(self, account_id: uuid.UUID) -> int:
        a = self.account(account_id)
        return a.credits_posted - a.debits_posted

    @property
    def suspense(self) -> int:
        return self.credit_balance(parties.account_id(parties.platform_id(KES), Role.SUSPENSE))

    def clearing(self, provider: str = MPESA) -> int:
        """The platform's money at the provider (a debit balance)."""
        role = parties.provider_role(provider)
        found = self.led.lookup_accounts([parties.account_id(parties.platform_id(KES), role)])
        return found[0].debits_posted - found[0].credits_posted if found else 0

    def wallet(self, villager: uuid.UUID) -> int:
        return self.credit_balance(parties.account_id(villager, Role.WALLET))

    @property
    def proceeds(self) -> int:
        return self.credit_balance(parties.account_id(self.storefront, Role.PROCEEDS))

    def balances(self) -> tuple[int, ...]:
        return (
            self.suspense,
            self.clearing(),
            self.wallet(self.villager),
            self.wallet(self.neighbour),
            self.proceeds,
        )

    def snapshot(self) -> tuple[Any, ...]:
        items = suspense.list_suspense(self.led, limit=1000)
        count = self.led.transact(lambda tx: tx.one("SELECT COUNT(*) FROM events"))
        return self.balances(), items, count

    def event_types(self, subject_id: uuid.UUID) -> list[str]:
        found = self.led.transact(lambda tx: events.read_events(tx, subject_id=subject_id))
        return [e.type for e in found]

    def park(self, amount: int = 50_000, reference: str | None = None) -> SuspenseItem:
        return suspense.park(
            self.led,
            suspense_id=new_id(),
            currency=KES,
            provider=MPESA,
            provider_reference=reference or f"QK{new_id().hex[:8].upper()}",
            amount_minor=amount,
        )


@pytest.fixture
def office(ledger: Ledger) -> Office:
    villager, neighbour, storefront = new_id(), new_id(), new_id()
    for party_id, kind, name in (
        (villager, Kind.VILLAGER, "Amina"),
        (neighbour, Kind.VILLAGER, "Baraka"),
        (storefront, Kind.STOREFRONT, "Mbegu Seeds"),
    ):
        parties.onboard(
            ledger,
            party_id=party_id,
            kind=kind,
            name=name,
            currency=KES,
            kyc_tier="tier1" if kind is Kind.VILLAGER else None,  # a credit checks its maximum
        )
    return Office(ledger, villager, neighbour, storefront)


# -- stories ----------------------------------------------------------------------------------


def test_mpesa_money_for_an_unknown_account_is_parked_then_reassigned_to_aminas_wallet(
    office: Office,
) -> None:
    led = office.led
    item_id = new_id()
    parked = suspense.park(
        led,
        suspense_id=item_id,
        currency=KES,
        provider=MPESA,
        provider_reference="QKT4R2X9",
        amount_minor=50_000,
        note="paybill account 0712 not found",
    )
    assert parked.state is SuspenseState.PARKED and parked.provider_reference == "QKT4R2X9"
    assert office.suspense == 50_000 and office.clearing() == 50_000
    assert office.wallet(office.villager) == 0

    done = suspense.reassign(led, suspense_id=item_id, to_villager_id=office.villager)
    assert done.state is SuspenseState.REASSIGNED and done.target_party_id == office.villager
    assert done.target_account_id == parties.account_id(office.villager, Role.WALLET)
    assert office.suspense == 0 and office.wallet(office.villager) == 50_000
    assert office.clearing() == 50_000  # the money is still at M-Pesa, now Amina's
    assert office.event_types(item_id) == ["suspense.parked", "suspense.reassigned"]
    assert done.resolve_transfer_id is not None
    [transfer] = led.lookup_transfers([done.resolve_transfer_id])
    assert transfer.amount == 50_000 and transfer.code == suspense.REASSIGN_CODE
    assert led.check_integrity().ok


def test_money_nobody_claims_is_returned_to_the_provider(office: Office) -> None:
    item = office.park(30_000)
    done = suspense.return_to_provider(
        office.led, suspense_id=item.id, reason="sender asked for a reversal"
    )
    assert done.state is SuspenseState.RETURNED and done.return_reason is not None
    assert office.suspense == 0 and office.clearing() == 0
    assert office.event_types(item.id) == ["suspense.parked", "suspense.returned"]
    assert office.led.check_integrity().ok


def test_a_storefront_payment_found_in_suspense_is_paid_out_by_the_next_window(
    office: Office,
) -> None:
    led = office.led
    item = office.park(12_500)
    suspense.reassign(led, suspense_id=item.id, to_storefront_id=office.storefront)
    assert office.proceeds == 12_500
    window_id = new_id()
    settlement.open_window(led, window_id=window_id, currency=KES)
    closed = settlement.close_window(led, window_id=window_id, provider=MPESA)
    assert closed.payouts_total_minor == 12_500
    [payout] = settlement.list_payouts(led, window_id=window_id)
    settlement.confirm_payout(led, payout_id=payout.id, provider_reference="B2C-1")
    assert office.proceeds == 0 and office.clearing() == 0
    assert led.check_integrity().ok


# -- idempotency and refusals -----------------------------------------------------------------


def test_replays_answer_the_same_and_change_nothing(office: Office) -> None:
    led = office.led
    item_id = new_id()

    def park() -> SuspenseItem:
        return suspense.park(
            led,
            suspense_id=item_id,
            currency=KES,
            provider=MPESA,
            provider_reference="QK1",
            amount_minor=9_000,
        )

    parked = park()
    before = office.snapshot()
    assert park() == parked
    assert office.snapshot() == before
    done = suspense.reassign(led, suspense_id=item_id, to_villager_id=office.villager)
    before = office.snapshot()
    assert suspense.reassign(led, suspense_id=item_id, to_villager_id=office.villager) == done
    assert park() == done  # parking again answers the item as it is now
    assert office.snapshot() == before

    other = office.park(1_000)
    returned = suspense.return_to_provider(led, suspense_id=other.id, reason="unknown sender")
    before = office.snapshot()
    assert (
        suspense.return_to_provider(led, suspense_id=other.id, reason="unknown sender") == returned
    )
    assert office.snapshot() == before


def test_resolving_twice_or_reusing_an_id_is_a_conflict_and_changes_nothing(
    office: Office,
) -> None:
    led = office.led
    reassigned = office.park(9_000, reference="QK-A")
    suspense.reassign(led, suspense_id=reassigned.id, to_villager_id=office.villager)
    returned = office.park(4_000, reference="QK-B")
    suspense.return_to_provider(led, suspense_id=returned.id, reason="reversal")
    before = office.snapshot()
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "suspense_already_resolved",
            lambda: suspense.reassign(
                led, suspense_id=reassigned.id, to_villager_id=office.neighbour
            ),
        ),
        (
            "suspense_already_resolved",
            lambda: suspense.reassign(
                led, suspense_id=reassigned.id, to_storefront_id=office.storefront
            ),
        ),
        (
            "suspense_already_resolved",
            lambda: suspense.return_to_provider(led, suspense_id=reassigned.id, reason="x"),
        ),
        (
            "suspense_already_resolved",
            lambda: suspense.reassign(led, suspense_id=returned.id, to_villager_id=office.villager),
        ),
        (
            "suspense_already_resolved",
            lambda: suspense.return_to_provider(led, suspense_id=returned.id, reason="other"),
        ),
        (
            "suspense_id_reused",
            lambda: suspense.park(
                led,
                suspense_id=reassigned.id,
                currency=KES,
                provider=MPESA,
                provider_reference="QK-A",
                amount_minor=9_001,
            ),
        ),
        (
            "provider_reference_parked",
            lambda: suspense.park(
                led,
                suspense_id=new_id(),
                currency=KES,
                provider=MPESA,
                provider_reference="QK-A",
                amount_minor=9_000,
            ),
        ),
    ]
    for code, call in cases:
        with pytest.raises(Conflict, match=f"^{code}:"):
            call()
        assert office.snapshot() == before, code


def test_refusals_change_nothing(office: Office, ledger: Ledger) -> None:
    item = office.park(7_000)
    ugx_villager = new_id()
    parties.onboard(
        ledger,
        party_id=ugx_villager,
        kind=Kind.VILLAGER,
        name="Okello",
        currency="UGX",
        kyc_tier="b",
    )
    before = office.snapshot()

    def park(**changes: Any) -> object:
        request: dict[str, Any] = {
            "suspense_id": new_id(),
            "currency": KES,
            "provider": MPESA,
            "provider_reference": "QK-NEW",
            "amount_minor": 1_000,
        }
        request.update(changes)
        return suspense.park(ledger, **request)

    refusals: list[tuple[type[FlowError], str, Callable[[], object]]] = [
        (Refused, "amount_invalid", lambda: park(amount_minor=0)),
        (Refused, "amount_invalid", lambda: park(amount_minor=2**53)),
        (Refused, "provider_invalid", lambda: park(provider="m-pesa")),
        (Refused, "currency_not_supported", lambda: park(currency="XYZ")),
        (Refused, "provider_reference_invalid", lambda: park(provider_reference="")),
        (Refused, "provider_reference_invalid", lambda: park(provider_reference="R" * 129)),
        (Refused, "note_invalid", lambda: park(note="n" * 501)),
        (Refused, "target_invalid", lambda: suspense.reassign(ledger, suspense_id=item.id)),
        (
            Refused,
            "target_invalid",
            lambda: suspense.reassign(
                ledger,
                suspense_id=item.id,
                to_villager_id=office.villager,
                to_storefront_id=office.storefront,
            ),
        ),
        (
            Refused,
            "currency_mismatch",
            lambda: suspense.reassign(ledger, suspense_id=item.id, to_villager_id=ugx_villager),
        ),
        (
            NotFound,
            "villager_not_found",
            lambda: suspense.reassign(ledger, suspense_id=item.id, to_villager_id=new_id()),
        ),
        (
            NotFound,
            "villager_not_found",  # a storefront is not a villager
            lambda: suspense.reassign(
                ledger, suspense_id=item.id, to_villager_id=office.storefront
            ),
        ),
        (
            NotFound,
            "suspense_not_found",
            lambda: suspense.reassign(ledger, suspense_id=new_id(), to_villager_id=office.villager),
        ),
        (
            Refused,
            "reason_invalid",
            lambda: suspense.return_to_provider(ledger, suspense_id=item.id, reason=" "),
        ),
    ]
    for kind, code, call in refusals:
        with pytest.raises(kind, match=f"^{code}:"):
            call()
        assert office.snapshot() == before, code
    # Longest values allowed pass.
    longest = park(provider_reference="R" * 128, note="n" * 500, amount_minor=2**53 - 1)
    assert isinstance(longest, SuspenseItem)
    assert ledger.check_integrity().ok


def operator_pair(led: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    """Two operator principals: a maker and a checker."""
    made = [
        principals.add_key(
            led,
            role=principals.Role.OPERATOR,
            name=f"operator {new_id().hex[:8]}",
            alg=principals.Alg.ED25519,
            material=Ed25519PrivateKey.generate().public_key().public_bytes_raw(),
        )
        for _ in range(2)
    ]
    return made[0].principal_id, made[1].principal_id


def test_nothing_moves_an_item_while_its_return_waits_until_the_return_is_rejected(
    office: Office,
) -> None:
    """Operator Otieno proposes returning a deposit to the bank. While it waits for a
    second operator, nobody may move the item elsewhere (a checker would otherwise approve
    the return of money already in a wallet): reassigning it to Amina's wallet or to the
    storefront, or returning it directly, is 409 suspense_return_proposed and changes
    nothing. Njeri rejects the return; the item is Amina's after all, and moves."""
    led = office.led
    otieno, njeri = operator_pair(led)
    item = office.park(6_500)
    waiting = suspense.propose_return(
        led, proposal_id=new_id(), suspense_id=item.id, reason="sender asked", proposed_by=otieno
    )
    before = office.snapshot()
    moves: list[Callable[[], object]] = [
        lambda: suspense.reassign(led, suspense_id=item.id, to_villager_id=office.villager),
        lambda: suspense.reassign(led, suspense_id=item.id, to_storefront_id=office.storefront),
        lambda: suspense.return_to_provider(led, suspense_id=item.id, reason="by hand"),
    ]
    for move in moves:
        with pytest.raises(Conflict, match=r"^suspense_return_proposed:") as refused:
            move()
        assert str(waiting.id) in str(refused.value)  # which proposal waits, in words
        assert office.snapshot() == before
    assert suspense.get_suspense(led, suspense_id=item.id).state is SuspenseState.PARKED

    proposals.reject(led, proposal_id=waiting.id, decider=njeri, reason="it is Amina's")
    moved = suspense.reassign(led, suspense_id=item.id, to_villager_id=office.villager)
    assert (moved.state, moved.target_party_id) == (SuspenseState.REASSIGNED, office.villager)
    assert office.wallet(office.villager) == 6_500 and office.suspense == 0
    assert office.event_types(item.id) == ["suspense.parked", "suspense.reassigned"]
    with pytest.raises(Refused, match=r"^proposal_not_pending:"):
        proposals.approve(led, proposal_id=waiting.id, approver=njeri)
    assert office.clearing() == 6_500  # never returned
    assert led.check_integrity().ok


def test_an_approved_return_moves_its_item_though_it_waited(office: Office) -> None:
    """The waiting return does not refuse itself: approved, it is the move."""
    led = office.led
    otieno, njeri = operator_pair(led)
    item = office.park(2_000)
    made = suspense.propose_return(
        led, proposal_id=new_id(), suspense_id=item.id, reason="sender asked", proposed_by=otieno
    )
    approved = proposals.approve(led, proposal_id=made.id, approver=njeri)
    assert approved.result["state"] == SuspenseState.RETURNED
    assert office.suspense == 0 and office.clearing() == 0
    with pytest.raises(Conflict, match=r"^suspense_already_resolved:"):
        suspense.reassign(led, suspense_id=item.id, to_villager_id=office.villager)


def test_the_database_keeps_the_suspense_rules(office: Office) -> None:
    from ledger import InvariantViolation

    item = office.park(1_000)
    for sql in (
        "UPDATE suspense_items SET state = 'reassigned' WHERE id = :id",  # no target
        "UPDATE suspense_items SET amount_minor = 0 WHERE id = :id",
        "UPDATE suspense_items SET state = 'lost' WHERE id = :id",
    ):
        with pytest.raises(InvariantViolation):
            office.led.transact(lambda tx, sql=sql: tx.execute(sql, {"id": item.id}))


def test_suspense_is_listed_by_state_and_provider_in_pages(office: Office, clock: Clock) -> None:
    led = office.led
    items = []
    for _ in range(4):
        clock.advance(60)
        items.append(office.park(1_000))
    clock.advance(60)
    airtel = suspense.park(
        led,
        suspense_id=new_id(),
        currency=KES,
        provider="AIRTEL",
        provider_reference="QK1",  # the same reference at another provider is another line
        amount_minor=2_000,
    )
    suspense.reassign(led, suspense_id=items[1].id, to_villager_id=office.villager)
    everything = suspense.list_suspense(led)
    assert [i.id for i in everything] == [*(i.id for i in items), airtel.id]
    parked = suspense.list_suspense(led, state=SuspenseState.PARKED, provider=MPESA)
    assert [i.id for i in parked] == [items[0].id, items[2].id, items[3].id]
    assert [i.id for i in suspense.list_suspense(led, provider="AIRTEL")] == [airtel.id]
    page = suspense.list_suspense(led, limit=2, starting_after=items[0].id)
    assert [i.id for i in page] == [items[1].id, items[2].id]
    assert suspense.list_suspense(led, starting_after=new_id()) == []
    assert suspense.list_suspense(led, currency="UGX") == []
    with pytest.raises(ValueError):
        suspense.list_suspense(led, limit=suspense.SUSPENSE_PAGE_MAX + 1)
    assert suspense.get_suspense(led, suspense_id=airtel.id) == airtel
    with pytest.raises(NotFound):
        suspense.get_suspense(led, suspense_id=new_id())


# -- concurrency ------------------------------------------------------------------------------


def test_two_operators_reassigning_one_item_at_once_move_it_once(
    office: Office, clock: Clock
) -> None:
    """Four operators at once, two for Amina and two for Baraka: the item's row lock puts
    them in a line; the first moves it, the one asking the same answers the same, the
    other two are told it is already resolved."""
    item = office.park(20_000)
    barrier = threading.Barrier(4)
    answers: list[object] = []
    lock = threading.Lock()

    def racer(villager: uuid.UUID) -> None:
        led = open_ledger(office.led.url, clock=clock)
        try:
            barrier.wait()
            answer: object = suspense.reassign(led, suspense_id=item.id, to_villager_id=villager)
        except Exception as exc:  # collected, then asserted below
            answer = exc
        finally:
            led.close()
        with lock:
            answers.append(answer)

    who = [office.villager, office.neighbour] * 2
    threads = [threading.Thread(target=racer, args=(v,)) for v in who]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    moved = [a for a in answers if isinstance(a, SuspenseItem)]
    conflicts = [a for a in answers if isinstance(a, Conflict)]
    assert len(moved) == 2 and len(conflicts) == 2, answers
    assert {a.code for a in conflicts} == {"suspense_already_resolved"}
    winner = moved[0].target_party_id
    assert all(m == moved[0] for m in moved) and winner is not None
    loser = office.neighbour if winner == office.villager else office.villager
    assert office.wallet(winner) == 20_000 and office.wallet(loser) == 0
    assert office.suspense == 0
    assert office.event_types(item.id) == ["suspense.parked", "suspense.reassigned"]
    assert office.led.check_integrity().ok
