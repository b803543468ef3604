"""The repositories of offline capture, suspense and settlement, at their own level: each
reads and writes its own tables (and settlement reads storefronts through the published
view ``party_account_roles``), on SQLite and PostgreSQL. The stories of the flows are in
``test_flow_offline.py``, ``test_flow_suspense.py`` and ``test_flow_settlement.py``; the
limits the flows name are the shared ones of :mod:`ledger.limits`, defined once."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger import Ledger, limits
from ledger.core.errors import InvariantViolation
from ledger.core.tx import Tx
from ledger.flows import offline, parties, settlement, suspense
from ledger.flows.offline import repository as offline_repository
from ledger.flows.parties import Kind
from ledger.flows.settlement import repository as settlement_repository
from ledger.flows.suspense import repository as suspense_repository

KES = "KES"
UGX = "UGX"


def onboard(led: Ledger, kind: Kind, currency: str, name: str) -> uuid.UUID:
    return parties.onboard(led, party_id=uuid.uuid4(), kind=kind, name=name, currency=currency).id


def test_the_flows_limits_are_the_shared_ones() -> None:
    assert suspense.AMOUNT_MAX_MINOR == limits.AMOUNT_MAX_MINOR == 2**53 - 1
    assert suspense.SUSPENSE_PAGE_MAX == limits.LIST_PAGE_SIZE_MAX
    assert suspense.REFERENCE_LENGTH_MAX == limits.REFERENCE_LENGTH_MAX
    assert suspense.NOTE_LENGTH_MAX == limits.REASON_LENGTH_MAX
    assert settlement.WINDOWS_PAGE_MAX == settlement.PAYOUTS_PAGE_MAX == limits.LIST_PAGE_SIZE_MAX
    assert settlement.REFERENCE_LENGTH_MAX == limits.REFERENCE_LENGTH_MAX
    assert settlement.REASON_LENGTH_MAX == limits.REASON_LENGTH_MAX
    assert offline.EXCEPTIONS_PAGE_MAX == limits.LIST_PAGE_SIZE_MAX
    assert offline.JSON_INT_MAX == limits.AMOUNT_MAX_MINOR


def test_settlement_reads_the_storefronts_of_a_currency_through_the_view(
    ledger: Ledger,
) -> None:
    kes = sorted(onboard(ledger, Kind.STOREFRONT, KES, f"shop {n}") for n in range(3))
    onboard(ledger, Kind.STOREFRONT, UGX, "shop abroad")
    onboard(ledger, Kind.AGENT, KES, "agent")
    assert ledger.transact(lambda tx: settlement_repository.storefronts_of(tx, KES)) == kes
    assert ledger.transact(lambda tx: settlement_repository.storefronts_of(tx, "TZS")) == []


def test_a_window_row_is_read_back_as_written_and_a_missing_one_is_none(
    ledger: Ledger,
) -> None:
    window_id = uuid.uuid4()

    def write(tx: Tx) -> settlement.Window:
        assert settlement_repository.open_window_of(tx, KES) is None
        settlement_repository.insert_window(tx, window_id=window_id, currency=KES)
        assert settlement_repository.open_window_of(tx, KES) == window_id
        assert settlement_repository.pending_count(tx, window_id) == 0
        return settlement_repository.reread_window(tx, window_id)

    window = ledger.transact(write)
    assert (window.id, window.currency, window.state) == (window_id, KES, "open")
    assert (window.payouts_count, window.payouts_total_minor, window.closed_at) == (0, 0, None)
    missing = uuid.uuid4()
    assert (
        ledger.transact(lambda tx: settlement_repository.read_window(tx, missing, lock=True))
        is None
    )
    with pytest.raises(InvariantViolation):
        ledger.transact(lambda tx: settlement_repository.reread_payout(tx, missing))


def test_suspense_pages_filter_and_resume_after_a_cursor(ledger: Ledger) -> None:
    items = [
        suspense.park(
            ledger,
            suspense_id=uuid.uuid4(),
            currency=KES,
            provider=provider,
            provider_reference=f"ref-{n}",
            amount_minor=100 + n,
        )
        for n, provider in enumerate(["MPESA", "AIRTEL", "MPESA"])
    ]

    def page(
        *,
        state: suspense.SuspenseState | None = None,
        provider: str | None = None,
        currency: str | None = None,
        starting_after: uuid.UUID | None = None,
    ) -> list[uuid.UUID]:
        found = ledger.transact(
            lambda tx: suspense_repository.select_page(
                tx,
                state=state,
                provider=provider,
                currency=currency,
                limit=10,
                starting_after=starting_after,
            )
        )
        return [item.id for item in found]

    ids = [item.id for item in items]
    assert sorted(page()) == sorted(ids)
    assert sorted(page(provider="MPESA")) == sorted([ids[0], ids[2]])
    assert page(currency=UGX) == []
    assert page(state=suspense.SuspenseState.RETURNED) == []
    everything = page()
    assert page(starting_after=everything[0]) == everything[1:]
    assert page(starting_after=uuid.uuid4()) == []
    assert (
        ledger.transact(
            lambda tx: suspense_repository.id_parked_as(
                tx, provider="AIRTEL", provider_reference="ref-1"
            )
        )
        == ids[1]
    )


def test_each_allowance_hold_of_a_device_gets_the_next_number(ledger: Ledger) -> None:
    agent = onboard(ledger, Kind.AGENT, KES, "agent")
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device = offline.register_device(
        ledger, device_id=uuid.uuid4(), agent_id=agent, public_key=key, allowance_minor=0
    )
    # registering counted one hold (of nothing): the next ones are 2 and 3
    numbers = ledger.transact(
        lambda tx: [offline_repository.count_hold(tx, device.id) for _ in range(2)]
    )
    assert numbers == [2, 3]
    assert ledger.transact(lambda tx: offline_repository.key_in_use(tx, key))
    assert not ledger.transact(lambda tx: offline_repository.key_in_use(tx, bytes(32)))
    found = offline.get_device(ledger, device_id=device.id)
    assert (found.allowance_minor, found.allowance_hold_id, found.last_seq) == (0, None, 0)
