"""The repositories of the small flows (events, parties, wallets, KYC limits, fees,
proposals, consent, villagers) at their own level: each reads and writes its own tables,
and the flows that used to read ``parties`` or ``transfers`` directly read them through
the parties flow's functions or the published view ``journal_transfers``, on SQLite and
PostgreSQL. The flows' stories are in their ``test_flow_*.py``; the limits they name are
the shared ones of :mod:`ledger.limits`, defined once."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

import pytest

from ledger import Account, AccountFlags, Ledger, Transfer, TransferFlags, limits
from ledger.core.errors import MalformedRequest
from ledger.core.tx import Tx
from ledger.flows import (
    consent,
    events,
    fees,
    parties,
    principals,
    proposals,
    villagers,
    wallets,
)
from ledger.flows import limits as kyc
from ledger.flows.consent import repository as consent_repository
from ledger.flows.events import repository as events_repository
from ledger.flows.fees import repository as fees_repository
from ledger.flows.limits import repository as kyc_repository
from ledger.flows.parties import Kind, Role
from ledger.flows.proposals import repository as proposals_repository
from ledger.flows.villagers import repository as villagers_repository
from ledger.flows.wallets import repository as wallets_repository
from tests.conftest import Clock

KES = "KES"


def onboard(led: Ledger, kind: Kind, name: str, kyc_tier: str | None = None) -> parties.Party:
    return parties.onboard(
        led, party_id=uuid.uuid4(), kind=kind, name=name, currency=KES, kyc_tier=kyc_tier
    )


def operator(led: Ledger, name: str) -> uuid.UUID:
    key = principals.add_key(
        led,
        role=principals.Role.OPERATOR,
        name=f"{name} {uuid.uuid4()}",
        alg=principals.Alg.HMAC_SHA256,
        material=secrets.token_bytes(32),
    )
    return key.principal_id


def test_the_small_flows_limits_are_the_shared_ones() -> None:
    assert events.EVENTS_PAGE_MAX == limits.LIST_PAGE_SIZE_MAX
    assert consent.SWEEP_LIMIT_MAX == limits.SWEEP_BATCH_MAX
    assert kyc.LIMIT_MAX_MINOR == limits.AMOUNT_MAX_MINOR == 2**53 - 1
    assert kyc.DAY_US == 86_400 * limits.US_PER_S
    assert parties.NAME_LENGTH_MAX == limits.NAME_LENGTH_MAX
    assert proposals.REASON_LENGTH_MAX == limits.REASON_LENGTH_MAX


def test_the_transactional_twins_keep_the_inner_functions_docstrings() -> None:
    for outer, inner in (
        (parties.onboard, parties.onboard_in),
        (fees.publish_schedule, fees.publish_schedule_in),
        (kyc.get_tier_limits, kyc.tier_limits_in),
        (kyc.set_kyc_tier, kyc.set_kyc_tier_in),
        (proposals.get, proposals.get_in),
    ):
        assert outer.__doc__ == inner.__doc__
        assert outer.__doc__


def test_an_events_page_is_1_to_events_page_max(ledger: Ledger) -> None:
    max_ = events.EVENTS_PAGE_MAX
    assert ledger.transact(lambda tx: events.read_events(tx, limit=max_)) is not None
    assert ledger.transact(lambda tx: events.read_events(tx, limit=1)) is not None
    for wrong in (0, max_ + 1):
        with pytest.raises(MalformedRequest):
            ledger.transact(lambda tx, wrong=wrong: events.read_events(tx, limit=wrong))
    with pytest.raises(ValueError):  # MalformedRequest is a ValueError, as before
        ledger.transact(lambda tx: events.read_events(tx, limit=0))


def test_events_are_read_back_in_order_by_party_and_subject(ledger: Ledger) -> None:
    party, subject = onboard(ledger, Kind.AGENT, "Wanjiru's shop").id, uuid.uuid4()

    def write(tx: Tx) -> list[events.Event]:
        before = events_repository.select_after(
            tx, after_seq=0, limit=1000, party_id=party, subject_id=None
        )
        assert before == []
        for n in range(3):
            events.emit(tx, "test.story", {"n": n}, party_id=party, subject_id=subject)
        events.emit(tx, "test.other", {"n": 9}, subject_id=uuid.uuid4())
        return events_repository.select_after(
            tx, after_seq=0, limit=2, party_id=party, subject_id=subject
        )

    page = ledger.transact(write)
    assert [(e.type, e.payload) for e in page] == [
        ("test.story", {"n": 0}),
        ("test.story", {"n": 1}),
    ]
    rest = ledger.transact(
        lambda tx: events.read_events(tx, after_seq=page[-1].seq, subject_id=subject)
    )
    assert [e.payload["n"] for e in rest] == [2]


def test_parties_answer_who_holds_an_account_and_lock_a_party(ledger: Ledger) -> None:
    shop = onboard(ledger, Kind.STOREFRONT, "Mama Njeri's shop")
    amina = onboard(ledger, Kind.VILLAGER, "Amina", kyc_tier="tier0")
    foreign = uuid.uuid4()
    ledger.create_accounts([Account(foreign, KES, 1, AccountFlags(0))])
    wanted = [shop.account(Role.ESCROW), amina.account(Role.WALLET), foreign]

    def read(tx: Tx) -> dict[uuid.UUID, parties.AccountOwner]:
        assert parties.find_party(tx, amina.id, lock=True) == amina
        assert parties.find_party(tx, uuid.uuid4(), lock=True) is None
        return parties.account_owners(tx, wanted)

    owners = ledger.transact(read)
    assert set(owners) == {shop.account(Role.ESCROW), amina.account(Role.WALLET)}
    wallet = owners[amina.account(Role.WALLET)]
    assert (wallet.party_id, wallet.role, wallet.kind, wallet.kyc_tier) == (
        amina.id,
        Role.WALLET,
        Kind.VILLAGER,
        "tier0",
    )
    assert ledger.transact(lambda tx: parties.account_owners(tx, [])) == {}


def test_kyc_tier_changes_through_the_parties_flow(ledger: Ledger) -> None:
    amina = onboard(ledger, Kind.VILLAGER, "Amina", kyc_tier="tier0")
    moved = kyc.set_kyc_tier(ledger, villager_id=amina.id, tier="tier1")
    assert moved.kyc_tier == "tier1"
    again = ledger.transact(lambda tx: parties.get_party(tx, amina.id, Kind.VILLAGER))
    assert again.kyc_tier == "tier1"


def test_wallets_read_a_hold_through_the_journal_view(ledger: Ledger) -> None:
    debit, credit, hold = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ledger.create_accounts(
        [Account(debit, KES, 1, AccountFlags(0)), Account(credit, KES, 1, AccountFlags(0))]
    )
    ledger.create_transfers(
        [
            Transfer(
                id=hold,
                debit_account_id=debit,
                credit_account_id=credit,
                amount=1_250,
                currency=KES,
                code=1,
                flags=TransferFlags.PENDING,
                timeout_s=60,
            )
        ]
    )
    found = ledger.transact(lambda tx: wallets_repository.select_holds(tx, [hold, uuid.uuid4()]))
    assert found == {hold: wallets_repository.Hold(hold, debit, credit, 1_250)}
    assert ledger.transact(lambda tx: wallets_repository.select_holds(tx, [])) == {}
    assert wallets.Movement("hold") is wallets.Movement.HOLD


def test_kyc_usage_counts_each_direction_apart_and_gives_back(ledger: Ledger) -> None:
    villager, day = onboard(ledger, Kind.VILLAGER, "Amina", kyc_tier="tier0").id, 20_000

    def story(tx: Tx) -> tuple[int, int]:
        assert kyc_repository.select_usage(tx, villager_id=villager, day=day) == (0, 0)
        assert kyc_repository.locked_usage(tx, villager_id=villager, day=day) == (0, 0)
        kyc_repository.add_usage(
            tx, villager_id=villager, day=day, direction=kyc.Direction.CASH_IN, delta_minor=700
        )
        kyc_repository.add_usage(
            tx, villager_id=villager, day=day, direction=kyc.Direction.CASH_OUT, delta_minor=300
        )
        kyc_repository.add_usage(
            tx, villager_id=villager, day=day, direction=kyc.Direction.CASH_OUT, delta_minor=-100
        )
        assert kyc_repository.locked_usage(tx, villager_id=villager, day=day) == (700, 200)
        return kyc_repository.select_usage(tx, villager_id=villager, day=day + 1)

    assert ledger.transact(story) == (0, 0)
    assert kyc.Direction.CASH_OUT.column == "cash_out_minor"


def test_fee_schedule_versions_take_effect_at_their_moment(ledger: Ledger, clock: Clock) -> None:
    rules = {"bands": [{"up_to_minor": None, "fixed_minor": 100}]}
    assert (
        ledger.transact(
            lambda tx: fees_repository.last_version(tx, product="repo_test", currency=KES)
        )
        == 0
    )
    fees.publish_schedule(
        ledger, product="repo_test", currency=KES, effective_from=clock(), rules=rules
    )
    later = {"bands": [{"up_to_minor": None, "fixed_minor": 200}]}
    fees.publish_schedule(
        ledger,
        product="repo_test",
        currency=KES,
        effective_from=clock() + timedelta(hours=1),
        rules=later,
    )

    def now(tx: Tx) -> fees_repository.ScheduleRow | None:
        return fees_repository.in_effect(tx, product="repo_test", currency=KES)

    assert ledger.transact(now) == fees_repository.ScheduleRow(1, rules)
    clock.advance(3_600)
    assert ledger.transact(now) == fees_repository.ScheduleRow(2, later)
    assert (
        ledger.transact(lambda tx: fees_repository.in_effect(tx, product="none", currency=KES))
        is None
    )


def test_proposals_page_by_state_after_a_cursor(ledger: Ledger) -> None:
    maker, checker = operator(ledger, "ops maker"), operator(ledger, "ops checker")
    made = [
        proposals.propose(
            ledger,
            proposal_id=uuid.uuid4(),
            kind=proposals.TRANSFERS,
            payload={"transfers": []},
            proposed_by=maker,
        )
        for _ in range(3)
    ]
    proposals.reject(ledger, proposal_id=made[1].id, decider=checker, reason="not needed")

    def read(tx: Tx) -> list[proposals.Proposal]:
        first = proposals_repository.seq_of(tx, made[0].id)
        assert first is not None
        assert proposals_repository.seq_of(tx, uuid.uuid4()) is None
        return proposals_repository.select_after(
            tx, after_seq=first, state=proposals.State.PROPOSED, limit=10
        )

    after = [p.id for p in ledger.transact(read)]
    assert made[2].id in after and made[0].id not in after and made[1].id not in after
    assert proposals.get(ledger, made[1].id).state is proposals.State.REJECTED


def test_consent_failures_are_counted_per_caller_within_the_window(ledger: Ledger) -> None:
    caller, villager = uuid.uuid4(), uuid.uuid4()

    def story(tx: Tx) -> int:
        since = tx.now_us - 1
        assert consent_repository.count_failures_since(tx, caller_id=caller, since_us=since) == 0
        for purpose in (consent.Purpose.WITHDRAWAL, consent.Purpose.PAYMENT):
            consent_repository.insert_failure(
                tx, caller_id=caller, villager_id=villager, purpose=purpose
            )
        assert (
            consent_repository.count_failures_since(tx, caller_id=uuid.uuid4(), since_us=since) == 0
        )
        assert consent_repository.select(tx, uuid.uuid4(), lock=True) is None
        return consent_repository.count_failures_since(tx, caller_id=caller, since_us=since)

    assert ledger.transact(story) == 2


def test_a_villager_row_is_found_by_id_and_phone_and_no_other(ledger: Ledger) -> None:
    agent = onboard(ledger, Kind.AGENT, "Wanjiru's shop")
    villager = villagers.register_villager(
        ledger,
        villager_id=uuid.uuid4(),
        agent_id=agent.id,
        phone="+254712000099",
        name="Amina",
        currency=KES,
        language="sw",
    )

    def read(tx: Tx) -> villagers_repository.VillagerRow | None:
        assert villagers_repository.phone_taken(tx, villager.phone)
        assert not villagers_repository.phone_taken(tx, "+254712000098")
        assert villagers_repository.select_by_phone(tx, "+254712000098", lock=False) is None
        assert villagers_repository.debit_hold_until_us(tx, villager.id) is None
        code = villagers_repository.select_open_code(tx, villager.id)
        assert code is not None and code.tries_failed == 0
        return villagers_repository.select_by_id(tx, villager.id, lock=True)

    row = ledger.transact(read)
    assert row is not None
    assert (row.party_id, row.agent_id, row.phone, row.state, row.pin_hash) == (
        villager.id,
        agent.id,
        "+254712000099",
        villagers.State.PENDING_ACTIVATION,
        None,
    )
