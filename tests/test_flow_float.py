"""An agent's float: top-ups through a provider's clearing account, agent-to-agent
transfers, the low-float alarm (once per crossing) and the guarantee cap."""

from __future__ import annotations

import uuid

import pytest

from ledger import Ledger, Transfer, TransferFlags
from ledger.core.tx import Tx
from ledger.flows import agent_float, cash, events, parties
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Party, Role
from tests.conftest import Clock
from tests.test_flow_cash import KES, Village, new_id, refused


@pytest.fixture
def village(ledger: Ledger, clock: Clock) -> Village:
    return Village(ledger, clock)


def top_up(village: Village, agent: Party, amount_minor: int) -> agent_float.FloatTopUp:
    return agent_float.top_up_float(
        village.led,
        topup_id=new_id(),
        agent_id=agent.id,
        amount_minor=amount_minor,
        provider="BANK",
    )


def move(village: Village, payer: Party, payee: Party, amount_minor: int) -> None:
    agent_float.transfer_float(
        village.led,
        transfer_id=new_id(),
        from_agent_id=payer.id,
        to_agent_id=payee.id,
        amount_minor=amount_minor,
    )


def float_of(village: Village, agent: Party) -> agent_float.FloatStatus:
    return agent_float.get_float(village.led, agent_id=agent.id)


def test_an_agent_deposits_10_000_kes_at_the_bank_and_the_float_grows(village: Village) -> None:
    agent = village.agent()
    topup_id = new_id()
    done = agent_float.top_up_float(
        village.led, topup_id=topup_id, agent_id=agent.id, amount_minor=1_000_000, provider="BANK"
    )
    assert (done.amount_minor, done.provider, done.currency) == (1_000_000, "BANK", KES)
    clearing = village.led.transact(lambda tx: parties.provider_clearing(tx, KES, "BANK"))
    [bank] = village.led.lookup_accounts([clearing])
    assert (bank.debits_posted, bank.credits_posted) == (1_000_000, 0)
    status = float_of(village, agent)
    assert (status.balance_minor, status.available_minor, status.held_minor) == (
        1_000_000,
        1_000_000,
        0,
    )
    [event] = village.events_of(events.FLOAT_TOPPED_UP, topup_id)
    assert event.party_id == agent.id and event.payload["amount_minor"] == 1_000_000
    # A replay answers the same and moves nothing; another request under the id conflicts.
    again = agent_float.top_up_float(
        village.led, topup_id=topup_id, agent_id=agent.id, amount_minor=1_000_000, provider="BANK"
    )
    assert again == done
    assert float_of(village, agent).balance_minor == 1_000_000
    with pytest.raises(Conflict):
        agent_float.top_up_float(
            village.led, topup_id=topup_id, agent_id=agent.id, amount_minor=1, provider="BANK"
        )
    with refused("provider_invalid"):
        top_up_with(village, agent, provider="m-pesa")
    with refused("amount_invalid"):
        agent_float.top_up_float(
            village.led, topup_id=new_id(), agent_id=agent.id, amount_minor=0, provider="BANK"
        )
    with pytest.raises(NotFound):
        agent_float.top_up_float(
            village.led, topup_id=new_id(), agent_id=new_id(), amount_minor=1, provider="BANK"
        )
    assert village.led.check_integrity().ok


def top_up_with(village: Village, agent: Party, *, provider: str) -> None:
    agent_float.top_up_float(
        village.led, topup_id=new_id(), agent_id=agent.id, amount_minor=1, provider=provider
    )


def test_one_agent_passes_3_000_kes_of_float_to_another(village: Village) -> None:
    wanjiru = village.agent(float_minor=500_000, name="Wanjiru")
    juma = village.agent(name="Juma")
    transfer_id = new_id()
    done = agent_float.transfer_float(
        village.led,
        transfer_id=transfer_id,
        from_agent_id=wanjiru.id,
        to_agent_id=juma.id,
        amount_minor=300_000,
    )
    assert float_of(village, wanjiru).balance_minor == 200_000
    assert float_of(village, juma).balance_minor == 300_000
    assert {e.party_id for e in village.events_of(events.FLOAT_TRANSFERRED, transfer_id)} == {
        wanjiru.id,
        juma.id,
    }
    again = agent_float.transfer_float(
        village.led,
        transfer_id=transfer_id,
        from_agent_id=wanjiru.id,
        to_agent_id=juma.id,
        amount_minor=300_000,
    )
    assert again == done
    assert float_of(village, juma).balance_minor == 300_000
    with pytest.raises(Conflict):
        agent_float.transfer_float(
            village.led,
            transfer_id=transfer_id,
            from_agent_id=juma.id,
            to_agent_id=wanjiru.id,
            amount_minor=300_000,
        )
    with refused("float_short"):
        move(village, wanjiru, juma, 200_001)
    with refused("agents_must_differ"):
        move(village, wanjiru, wanjiru, 1)
    okello = parties.onboard(
        village.led, party_id=new_id(), kind=Kind.AGENT, name="Okello", currency="UGX"
    )
    with refused("currency_mismatch"):
        move(village, wanjiru, okello, 1)
    assert float_of(village, wanjiru).balance_minor == 200_000
    assert village.led.check_integrity().ok


def test_the_low_float_alarm_rings_once_per_crossing(village: Village) -> None:
    """Threshold 5,000 KES. Float 10,000: cash-ins of 3,000 (7,000), 3,000 (4,000: rings),
    1,000 (3,000: still low, silent); a top-up of 5,000 (8,000: re-armed); a cash-in of
    4,000 (4,000: rings again); a float transfer out of 500 (silent)."""
    agent = village.agent(float_minor=1_000_000)
    other = village.agent(name="another shop")
    otieno = village.villager(tier="tier2")
    status = agent_float.set_float_threshold(
        village.led, agent_id=agent.id, threshold_minor=500_000
    )
    assert (status.low_threshold_minor, status.low_armed) == (500_000, True)

    def rings() -> int:
        return len(village.events_of(events.FLOAT_LOW, agent.id))

    village.cash_in(agent, otieno, 300_000)
    assert rings() == 0
    village.cash_in(agent, otieno, 300_000)
    assert rings() == 1
    [event] = village.events_of(events.FLOAT_LOW, agent.id)
    assert (event.payload["available_minor"], event.payload["threshold_minor"]) == (
        400_000,
        500_000,
    )
    assert event.party_id == agent.id
    village.cash_in(agent, otieno, 100_000)
    assert rings() == 1
    assert float_of(village, agent).low_armed is False
    top_up(village, agent, 500_000)
    assert float_of(village, agent).low_armed is True
    assert rings() == 1
    village.cash_in(agent, otieno, 400_000)
    assert rings() == 2
    move(village, agent, other, 50_000)
    assert rings() == 2
    # A float transfer can make the crossing too.
    top_up(village, agent, 1_000_000)
    move(village, agent, other, 1_000_000)
    assert rings() == 3
    assert village.led.check_integrity().ok


def test_a_cash_out_brings_the_float_back_and_re_arms_the_alarm(village: Village) -> None:
    agent = village.agent(float_minor=1_000_000)
    otieno = village.villager(tier="tier2")
    agent_float.set_float_threshold(village.led, agent_id=agent.id, threshold_minor=500_000)
    village.cash_in(agent, otieno, 600_000)
    assert float_of(village, agent).low_armed is False
    requested = village.request(agent, otieno, 200_000)
    cash.confirm_cash_out(village.led, cash_out_id=requested.id, agent_id=agent.id)
    assert float_of(village, agent).low_armed is True
    village.cash_in(agent, otieno, 200_000)
    assert len(village.events_of(events.FLOAT_LOW, agent.id)) == 2


def test_setting_a_threshold_above_the_float_rings_nothing_until_the_next_crossing(
    village: Village,
) -> None:
    agent = village.agent(float_minor=100_000)
    otieno = village.villager()
    status = agent_float.set_float_threshold(
        village.led, agent_id=agent.id, threshold_minor=500_000
    )
    assert status.low_armed is False
    village.cash_in(agent, otieno, 10_000)
    assert village.events_of(events.FLOAT_LOW, agent.id) == []
    cleared = agent_float.set_float_threshold(village.led, agent_id=agent.id, threshold_minor=None)
    assert cleared.low_threshold_minor is None
    with refused("amount_invalid"):
        agent_float.set_float_threshold(village.led, agent_id=agent.id, threshold_minor=0)


def test_the_guarantee_cap_bounds_top_ups_and_incoming_transfers(village: Village) -> None:
    agent = village.agent(float_minor=400_000)
    other = village.agent(float_minor=1_000_000, name="another shop")
    status = agent_float.set_guarantee_cap(village.led, agent_id=agent.id, cap_minor=500_000)
    assert status.guarantee_cap_minor == 500_000
    with refused("guarantee_cap_exceeded"):
        top_up(village, agent, 100_001)
    with refused("guarantee_cap_exceeded"):
        move(village, other, agent, 100_001)
    assert float_of(village, agent).balance_minor == 400_000
    top_up(village, agent, 60_000)
    move(village, other, agent, 40_000)
    assert float_of(village, agent).balance_minor == 500_000  # exactly the cap
    # Lowering the cap below the float refuses only what comes next.
    agent_float.set_guarantee_cap(village.led, agent_id=agent.id, cap_minor=100_000)
    with refused("guarantee_cap_exceeded"):
        top_up(village, agent, 1)
    move(village, agent, other, 10_000)
    # Without a cap, anything goes.
    agent_float.set_guarantee_cap(village.led, agent_id=agent.id, cap_minor=None)
    top_up(village, agent, 5_000_000)
    with pytest.raises(Refused):
        agent_float.set_guarantee_cap(village.led, agent_id=agent.id, cap_minor=-1)
    assert village.led.check_integrity().ok


def test_offline_allowance_held_on_the_float_is_not_available(village: Village) -> None:
    agent = village.agent(float_minor=1_000_000)

    def hold(tx: Tx) -> None:
        tx.create_transfers(
            [
                Transfer(
                    uuid.uuid4(),
                    agent.account(Role.FLOAT),
                    agent.account(Role.OFFLINE_ALLOWANCE),
                    300_000,
                    KES,
                    801,
                    TransferFlags.PENDING,
                )
            ]
        )

    village.led.transact(hold)
    status = float_of(village, agent)
    assert (status.balance_minor, status.held_minor, status.available_minor) == (
        1_000_000,
        300_000,
        700_000,
    )


def test_an_order_paid_in_cash_at_the_agent_can_ring_and_its_refund_re_arms(
    village: Village,
) -> None:
    """Float 6,000 KES, threshold 5,000: a 2,000 KES seed order paid in cash at the agent
    moves 2,000 of float into escrow (4,000 left: rings); refunding it brings the float
    back and re-arms the alarm."""
    from ledger.flows import orders

    agent = village.agent(float_minor=600_000)
    agent_float.set_float_threshold(village.led, agent_id=agent.id, threshold_minor=500_000)
    shop = new_id()
    parties.onboard(village.led, party_id=shop, kind=Kind.STOREFRONT, name="Mbegu", currency=KES)
    order_id = new_id()
    orders.create_order(
        village.led,
        order_id=order_id,
        storefront_id=shop,
        currency=KES,
        amount_minor=200_000,
        delivery_method="agent_delivery",
        agent_id=agent.id,
    )
    orders.pay_order(village.led, step_id=new_id(), order_id=order_id, source=orders.Source.CASH)
    assert len(village.events_of(events.FLOAT_LOW, agent.id)) == 1
    assert float_of(village, agent).low_armed is False
    orders.refund_order(village.led, step_id=new_id(), order_id=order_id)
    assert float_of(village, agent).low_armed is True
    assert village.led.check_integrity().ok


def test_registering_a_device_holds_float_and_can_ring(village: Village) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from ledger.flows import offline

    agent = village.agent(float_minor=600_000)
    agent_float.set_float_threshold(village.led, agent_id=agent.id, threshold_minor=500_000)
    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device_id = new_id()
    offline.register_device(
        village.led,
        device_id=device_id,
        agent_id=agent.id,
        public_key=public,
        allowance_minor=200_000,
    )
    assert len(village.events_of(events.FLOAT_LOW, agent.id)) == 1
    offline.set_allowance(village.led, device_id=device_id, allowance_minor=50_000)
    assert float_of(village, agent).low_armed is True  # 5,500 available again
