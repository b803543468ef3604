"""Cash-in: the villager hands the agent cash, the agent's float pays the wallet (see
:mod:`ledger.flows.cash`)."""

from __future__ import annotations

import uuid

from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.core.values import Transfer
from ledger.flows import events, fees, limits
from ledger.flows.agent_float import check_amount, check_float_low, check_id, submit_linked
from ledger.flows.cash import rules
from ledger.flows.cash.batch import check_device, leg, quote_or_none, shortages, two_parties
from ledger.flows.cash.model import CASH_IN_CODE, CASH_RECEIVED_CODE, CashIn
from ledger.flows.cash.repository import CashInRepository
from ledger.flows.errors import NotFound
from ledger.flows.limits import Direction
from ledger.flows.parties import Party, Role

__all__ = ["cash_in", "cash_in_in", "get_cash_in", "list_cash_ins"]


def _fee_legs(
    tx: Tx, cash_in_id: uuid.UUID, agent: Party, villager: Party, quote: fees.Quote | None
) -> list[Transfer]:
    """The quote's legs: the platform pays the agent's commission, the villager any fee."""
    if quote is None:
        return []
    return fees.fee_transfers(
        tx,
        quote,
        payer_account=villager.account(Role.WALLET),
        agent_id=agent.id,
        currency=agent.currency,
        id_base=uuid.uuid5(cash_in_id, "cash_in:fees"),
    )


def _money_legs(
    cash_in_id: uuid.UUID, agent: Party, villager: Party, amount_minor: int
) -> list[Transfer]:
    return [
        leg(
            cash_in_id,
            "cash_in:credit",
            debit=agent.account(Role.FLOAT),
            credit=villager.account(Role.WALLET),
            amount_minor=amount_minor,
            currency=agent.currency,
            code=CASH_IN_CODE,
        ),
        leg(
            cash_in_id,
            "cash_in:cash_received",
            debit=agent.account(Role.CASH),
            credit=agent.account(Role.CASH_CONTROL),
            amount_minor=amount_minor,
            currency=agent.currency,
            code=CASH_RECEIVED_CODE,
        ),
    ]


def _emit_completed(tx: Tx, done: CashIn) -> None:
    events.emit(
        tx,
        events.CASHIN_COMPLETED,
        {
            "cash_in_id": str(done.id),
            "agent_id": str(done.agent_id),
            "villager_id": str(done.villager_id),
            "device_id": None if done.device_id is None else str(done.device_id),
            "currency": done.currency,
            "amount_minor": done.amount_minor,
            "fee_minor": done.fee_minor,
            "commission_minor": done.commission_minor,
        },
        party_id=done.agent_id,
        subject_id=done.id,
    )


def cash_in_in(
    tx: Tx,
    *,
    cash_in_id: uuid.UUID,
    agent_id: uuid.UUID,
    villager_id: uuid.UUID,
    amount_minor: int,
    device_id: uuid.UUID | None = None,
) -> CashIn:
    """The villager hands the agent ``amount_minor`` of cash; the agent's float pays it
    into the villager's wallet (see the module docstring)."""
    check_id(cash_in_id, "cash_in_id")
    check_id(agent_id, "agent_id")
    check_id(villager_id, "villager_id")
    check_device(device_id)
    check_amount(amount_minor)
    repository = CashInRepository(tx)
    request = (agent_id, villager_id, amount_minor, device_id)
    replayed = rules.replayed_cash_in(repository.find(cash_in_id), request)
    if replayed is not None:
        return replayed
    agent, villager = two_parties(tx, agent_id, villager_id)
    quote = quote_or_none(tx, "cash_in", agent.currency, amount_minor)
    fee_minor = rules.cash_in_fee_minor(quote, amount_minor)
    day = limits.reserve_in(
        tx, villager=villager, direction=Direction.CASH_IN, amount_minor=amount_minor
    )
    legs = _money_legs(cash_in_id, agent, villager, amount_minor)
    legs += _fee_legs(tx, cash_in_id, agent, villager, quote)
    submit_linked(tx, legs, shortages(agent, villager))  # checks the wallet's KYC maximum
    done = CashIn(
        cash_in_id,
        agent_id,
        villager_id,
        device_id,
        agent.currency,
        amount_minor,
        fee_minor,
        0 if quote is None else quote.agent_commission_minor + quote.platform_commission_minor,
        None if quote is None else quote.version,
        tx.now,
    )
    repository.add(done, utc_day=day)
    _emit_completed(tx, done)
    if device_id is None:
        # A device's cash-in spends float its allowance already held, so the float
        # available ends where it began; the caller re-holds the rest of the allowance
        # after this returns, and a check here, in between, would see too much.
        check_float_low(tx, agent_id)
    return done


cash_in = transactional(cash_in_in)


def get_cash_in(led: Ledger, cash_in_id: uuid.UUID) -> CashIn:
    """The cash-in; :class:`NotFound` ``cash_in_not_found``."""
    check_id(cash_in_id, "cash_in_id")

    def work(tx: Tx) -> CashIn:
        found = CashInRepository(tx).find(cash_in_id)
        if found is None:
            raise NotFound("cash_in_not_found", f"no cash-in {cash_in_id}")
        return found

    return led.transact(work)


def list_cash_ins(
    led: Ledger, *, agent_id: uuid.UUID, after: uuid.UUID | None = None, limit: int = 100
) -> list[CashIn]:
    """An agent's cash-ins, oldest first, paged like
    :func:`~ledger.flows.cash.list_cash_outs`."""
    rules.check_page(agent_id=agent_id, after=after, limit=limit)
    return led.transact(
        lambda tx: CashInRepository(tx).page(agent_id=agent_id, after=after, limit=limit)
    )
