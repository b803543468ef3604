"""The one-shot cash-out an offline phone captured (see :mod:`ledger.flows.cash`), posted
at once out of the hold its offline withdrawal code made, and that code's hold."""

from __future__ import annotations

import dataclasses
import json
import uuid

from ledger.core.errors import InvariantViolation
from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer
from ledger.flows import events, fees, wallets
from ledger.flows.agent_float import check_float_low, submit_linked
from ledger.flows.cash.batch import check_device, leg, resolve, shortages, two_parties
from ledger.flows.cash.cash_out import (
    Asked,
    add_in,
    answered,
    checked,
    consented,
    emit,
    price_cash_out,
    replayed_in,
)
from ledger.flows.cash.model import (
    CASH_OUT_CODE,
    CASH_PAID_CODE,
    CashOut,
    CashOutMode,
    CashOutState,
)
from ledger.flows.cash.repository import CashOutRepository
from ledger.flows.consent import Consent, HeldWithdrawal, Purpose, held_withdrawal_in
from ledger.flows.parties import Party, Role

__all__ = [
    "cash_out",
    "cash_out_in",
    "hold_offline_withdrawal_in",
    "void_offline_withdrawal_in",
]


def cash_out(
    led: Ledger,
    *,
    cash_out_id: uuid.UUID,
    agent_id: uuid.UUID,
    villager_id: uuid.UUID,
    amount_minor: int,
    consent_code: str | None,
    device_id: uuid.UUID | None = None,
    caller_id: uuid.UUID | None = None,
) -> CashOut:
    """A one-shot cash-out, posted at once (what an offline capture becomes), with the
    villager's ``offline_withdrawal`` code: the hold the code made on the wallet posts
    ``amount_minor`` to the agent's float, the fee legs are paid at the fee quoted when
    the code was made, and the agent's cash-on-hand shrinks by ``amount_minor``.
    ``caller_id`` (default: the agent) is whose wrong codes are counted."""
    asked = Asked(cash_out_id, agent_id, villager_id, amount_minor, device_id, CashOutMode.ONE_SHOT)
    return answered(
        led,
        asked,
        lambda: checked(
            led,
            asked,
            Purpose.OFFLINE_WITHDRAWAL,
            caller_id=caller_id or agent_id,
            consent_code=consent_code,
        ),
        lambda tx, given: _cash_out_in(tx, asked, given),
    )


def _posted_legs(
    tx: Tx,
    cash_out_id: uuid.UUID,
    agent: Party,
    villager: Party,
    *,
    held: HeldWithdrawal,
    quote: fees.Quote | None,
    amount_minor: int,
) -> list[Transfer]:
    """Post the code's hold for the amount, pay the fee legs, pay the cash out."""
    legs = [
        resolve(cash_out_id, "cash_out:post", held.hold_id, CASH_OUT_CODE, post_minor=amount_minor)
    ]
    if quote is not None:
        legs += fees.fee_transfers(
            tx,
            quote,
            payer_account=villager.account(Role.WALLET),
            agent_id=agent.id,
            currency=agent.currency,
            id_base=uuid.uuid5(cash_out_id, "cash_out:fees"),
        )
    legs.append(
        leg(
            cash_out_id,
            "cash_out:cash_paid",
            debit=agent.account(Role.CASH_CONTROL),
            credit=agent.account(Role.CASH),
            amount_minor=amount_minor,
            currency=agent.currency,
            code=CASH_PAID_CODE,
        )
    )
    return legs


def cash_out_in(
    tx: Tx,
    *,
    cash_out_id: uuid.UUID,
    agent_id: uuid.UUID,
    villager_id: uuid.UUID,
    amount_minor: int,
    consent: Consent | None,
    device_id: uuid.UUID | None = None,
) -> CashOut:
    """:func:`cash_out` inside a transaction someone else opened, with the consent
    :func:`ledger.flows.consent.check_code` gave for the offline withdrawal code."""
    asked = Asked(cash_out_id, agent_id, villager_id, amount_minor, device_id, CashOutMode.ONE_SHOT)
    return _cash_out_in(tx, asked, consent)


def _cash_out_in(tx: Tx, asked: Asked, consent: Consent | None) -> CashOut:
    check_device(asked.device_id)
    repository = CashOutRepository(tx)
    replayed = replayed_in(repository, asked)
    if replayed is not None:
        return replayed
    used = consented(tx, consent, Purpose.OFFLINE_WITHDRAWAL, asked)
    held = held_withdrawal_in(tx, used)
    agent, villager = two_parties(tx, asked.agent_id, asked.villager_id)
    quote = None if held.quote is None else fees.Quote(**json.loads(held.quote))
    legs = _posted_legs(
        tx,
        asked.cash_out_id,
        agent,
        villager,
        held=held,
        quote=quote,
        amount_minor=asked.amount_minor,
    )
    submit_linked(tx, legs, shortages(agent, villager))
    found = add_in(
        repository,
        asked,
        agent,
        state=CashOutState.COMPLETED,
        quote=quote,
        utc_day=held.utc_day,  # counted in the villager's usage when the code was made
    )
    emit(tx, events.CASHOUT_COMPLETED, found)
    check_float_low(tx, agent.id)
    return found


def hold_offline_withdrawal_in(
    tx: Tx,
    *,
    consent_id: uuid.UUID,
    agent: Party,
    villager: Party,
    amount_minor: int,
    timeout_s: int,
) -> HeldWithdrawal:
    """What an offline withdrawal code does when it is made
    (:func:`ledger.flows.consent.make_code`): check the minimum, quote the fee, count the
    amount in the villager's cash-out usage today, and hold ``amount_minor`` + fee of the
    wallet towards the agent's float (core ``PENDING``, ``timeout_s``), as a two-phase
    request holds it. ``wallet_short`` when the wallet cannot."""
    quote, fee, day = price_cash_out(tx, agent, villager, amount_minor)
    hold = leg(
        consent_id,
        "consent:offline_hold",
        debit=villager.account(Role.WALLET),
        credit=agent.account(Role.FLOAT),
        amount_minor=amount_minor + fee,
        currency=agent.currency,
        code=CASH_OUT_CODE,
        pending_s=timeout_s,
    )
    submit_linked(tx, [hold], shortages(agent, villager))
    stored = None if quote is None else json.dumps(dataclasses.asdict(quote))
    return HeldWithdrawal(hold.id, stored, day)


def void_offline_withdrawal_in(tx: Tx, *, consent_id: uuid.UUID, hold_id: uuid.UUID) -> None:
    """Give back the hold of an offline withdrawal code that will not be used (voided);
    a hold the core already expired needs nothing more."""
    void = resolve(consent_id, "consent:offline_void", hold_id, CASH_OUT_CODE, post_minor=None)
    results = tx.create_transfers([void])
    if results[0].status not in (Status.CREATED, Status.PENDING_TRANSFER_EXPIRED):
        raise InvariantViolation(f"void of offline code hold {hold_id}: {results[0].status}")
    wallets.after_transfers_in(tx, [void], results)  # the villager's release receipt
