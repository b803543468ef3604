"""The two-phase cash-out (see :mod:`ledger.flows.cash`): requested with the villager's
consent and held, then confirmed by the agent, cancelled, or expired."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer
from ledger.flows import events, fees, limits, wallets
from ledger.flows.agent_float import check_float_low, check_id, submit_linked
from ledger.flows.cash import rules
from ledger.flows.cash.batch import hold_ids, leg, resolve, shortages, two_parties
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
    CASH_OUT_TIMEOUT_S,
    CASH_PAID_CODE,
    CashOut,
    CashOutMode,
    CashOutState,
)
from ledger.flows.cash.repository import CashOutRepository, StoredCashOut
from ledger.flows.consent import Consent, Purpose, by_pin
from ledger.flows.limits import Direction
from ledger.flows.parties import Party, Role
from ledger.limits import SWEEP_BATCH_MAX, US_PER_S

__all__ = [
    "cancel_cash_out",
    "cancel_cash_out_in",
    "confirm_cash_out",
    "confirm_cash_out_in",
    "request_cash_out",
    "request_cash_out_in",
    "start_withdrawal",
    "sweep_cash_outs",
]

# -- request ------------------------------------------------------------------------------


def request_cash_out(
    led: Ledger,
    *,
    cash_out_id: uuid.UUID,
    agent_id: uuid.UUID,
    villager_id: uuid.UUID,
    amount_minor: int,
    consent_code: str | None,
    timeout_s: int = CASH_OUT_TIMEOUT_S,
    caller_id: uuid.UUID | None = None,
) -> CashOut:
    """Reserve a cash-out with the villager's withdrawal code for this agent and amount:
    hold ``amount_minor`` + fee of the wallet and ``amount_minor`` of the agent's
    cash-on-hand until the agent confirms, the villager cancels, or ``timeout_s`` passes
    (see the module docstring). ``caller_id`` (default: the agent) is whose wrong codes
    are counted. No code: ``consent_required``, nothing held."""
    asked = _asked(cash_out_id, agent_id, villager_id, amount_minor)
    return answered(
        led,
        asked,
        lambda: checked(
            led,
            asked,
            Purpose.WITHDRAWAL,
            caller_id=caller_id or agent_id,
            consent_code=consent_code,
        ),
        lambda tx, given: _request_in(tx, asked, given, timeout_s),
    )


def start_withdrawal(
    led: Ledger,
    *,
    cash_out_id: uuid.UUID,
    villager_id: uuid.UUID,
    pin: str,
    agent_id: uuid.UUID,
    amount_minor: int,
    timeout_s: int = CASH_OUT_TIMEOUT_S,
) -> CashOut:
    """The villager starts a withdrawal at ``agent_id`` with the PIN (USSD later; M-Pesa's
    model): the same hold as :func:`request_cash_out`, and the agent confirms the
    hand-over with :func:`confirm_cash_out`. A wrong PIN holds nothing."""
    asked = _asked(cash_out_id, agent_id, villager_id, amount_minor)
    return answered(
        led,
        asked,
        lambda: by_pin(led, pin=pin, **asked.consent_terms(Purpose.WITHDRAWAL)),
        lambda tx, given: _request_in(tx, asked, given, timeout_s),
    )


def _asked(
    cash_out_id: uuid.UUID, agent_id: uuid.UUID, villager_id: uuid.UUID, amount_minor: int
) -> Asked:
    return Asked(cash_out_id, agent_id, villager_id, amount_minor, None, CashOutMode.TWO_PHASE)


def _hold_legs(
    cash_out_id: uuid.UUID,
    agent: Party,
    villager: Party,
    *,
    total_minor: int,
    cash_minor: int,
    timeout_s: int,
) -> list[Transfer]:
    """The wallet's hold (amount and fee, to the agent's float) and the agent's cash hold
    (the amount, out of its cash-on-hand), both timing out after ``timeout_s``."""
    return [
        leg(
            cash_out_id,
            "cash_out:hold",
            debit=villager.account(Role.WALLET),
            credit=agent.account(Role.FLOAT),
            amount_minor=total_minor,
            currency=agent.currency,
            code=CASH_OUT_CODE,
            pending_s=timeout_s,
        ),
        leg(
            cash_out_id,
            "cash_out:cash_hold",
            debit=agent.account(Role.CASH_CONTROL),
            credit=agent.account(Role.CASH),
            amount_minor=cash_minor,
            currency=agent.currency,
            code=CASH_PAID_CODE,
            pending_s=timeout_s,
        ),
    ]


def request_cash_out_in(
    tx: Tx,
    *,
    cash_out_id: uuid.UUID,
    agent_id: uuid.UUID,
    villager_id: uuid.UUID,
    amount_minor: int,
    consent: Consent | None,
    timeout_s: int = CASH_OUT_TIMEOUT_S,
) -> CashOut:
    """:func:`request_cash_out` inside a transaction someone else opened, with the
    villager's ``withdrawal`` consent for this agent and amount."""
    asked = _asked(cash_out_id, agent_id, villager_id, amount_minor)
    return _request_in(tx, asked, consent, timeout_s)


def _request_in(tx: Tx, asked: Asked, consent: Consent | None, timeout_s: int) -> CashOut:
    rules.check_timeout(timeout_s)
    repository = CashOutRepository(tx)
    replayed = replayed_in(repository, asked)
    if replayed is not None:
        return replayed
    consented(tx, consent, Purpose.WITHDRAWAL, asked)
    agent, villager = two_parties(tx, asked.agent_id, asked.villager_id)
    amount_minor = asked.amount_minor
    quote, fee_minor, day = price_cash_out(tx, agent, villager, amount_minor)
    legs = _hold_legs(
        asked.cash_out_id,
        agent,
        villager,
        total_minor=amount_minor + fee_minor,
        cash_minor=amount_minor,
        timeout_s=timeout_s,
    )
    submit_linked(tx, legs, shortages(agent, villager))
    found = add_in(
        repository,
        asked,
        agent,
        state=CashOutState.REQUESTED,
        quote=quote,
        utc_day=day,
        expires_at_us=tx.now_us + timeout_s * US_PER_S,
    )
    assert found.expires_at is not None  # a two-phase cash-out always expires
    emit(tx, events.CASHOUT_RESERVED, found, expires_at=found.expires_at.isoformat())
    return found


# -- confirm ------------------------------------------------------------------------------


def _post_legs(tx: Tx, stored: StoredCashOut, agent: Party, villager: Party) -> list[Transfer]:
    """Post the wallet's hold for the amount only (which releases the fee part), pay the
    fee legs at the quoted fee, and post the agent's cash hold."""
    found = stored.cash_out
    hold_id, cash_hold_id = hold_ids(found.id)
    legs = [
        resolve(found.id, "cash_out:post", hold_id, CASH_OUT_CODE, post_minor=found.amount_minor)
    ]
    if stored.quote is not None:
        legs += fees.fee_transfers(
            tx,
            stored.quote,
            payer_account=villager.account(Role.WALLET),
            agent_id=agent.id,
            currency=found.currency,
            id_base=uuid.uuid5(found.id, "cash_out:fees"),
        )
    legs.append(
        resolve(
            found.id,
            "cash_out:cash_post",
            cash_hold_id,
            CASH_PAID_CODE,
            post_minor=found.amount_minor,
        )
    )
    return legs


def confirm_cash_out_in(tx: Tx, *, cash_out_id: uuid.UUID, agent_id: uuid.UUID) -> CashOut:
    """The agent handed the cash over: post the holds and pay the fee legs, at the fee
    quoted at request time. Confirming a completed cash-out answers it unchanged."""
    check_id(agent_id, "agent_id")
    repository = CashOutRepository(tx)
    stored = rules.locked_two_phase(repository, cash_out_id)
    if not rules.check_confirmable(stored, agent_id, tx.now_us):
        return stored.cash_out
    agent, villager = two_parties(tx, stored.cash_out.agent_id, stored.cash_out.villager_id)
    submit_linked(tx, _post_legs(tx, stored, agent, villager), shortages(agent, villager))
    done = repository.resolve(cash_out_id, CashOutState.COMPLETED).cash_out
    emit(tx, events.CASHOUT_COMPLETED, done)
    check_float_low(tx, agent.id)
    return done


confirm_cash_out = transactional(confirm_cash_out_in)


# -- cancel and expire --------------------------------------------------------------------


def _void_holds(tx: Tx, cash_out_id: uuid.UUID, step: str) -> None:
    """Void both holds; a hold the core already expired needs nothing more."""
    hold_id, cash_hold_id = hold_ids(cash_out_id)
    voids = [
        resolve(cash_out_id, f"cash_out:{step}", hold_id, CASH_OUT_CODE, post_minor=None),
        resolve(
            cash_out_id, f"cash_out:{step}_cash", cash_hold_id, CASH_PAID_CODE, post_minor=None
        ),
    ]
    results = tx.create_transfers(voids)
    for result in results:
        if result.status not in (Status.CREATED, Status.PENDING_TRANSFER_EXPIRED):
            raise InvariantViolation(
                f"void of cash-out {cash_out_id} hold {voids[result.index].pending_id}:"
                f" {result.status}"
            )
    wallets.after_transfers_in(tx, voids, results)  # the villager's release receipt


def _give_back(tx: Tx, stored: StoredCashOut) -> None:
    """Give the amount back to the villager's cash-out usage of the day it counted in."""
    limits.release_in(
        tx,
        villager_id=stored.cash_out.villager_id,
        day=stored.utc_day,
        direction=Direction.CASH_OUT,
        amount_minor=stored.cash_out.amount_minor,
    )


def _expire(tx: Tx, stored: StoredCashOut) -> CashOut:
    _void_holds(tx, stored.cash_out.id, "expire")
    _give_back(tx, stored)
    done = CashOutRepository(tx).resolve(stored.cash_out.id, CashOutState.EXPIRED).cash_out
    emit(tx, events.CASHOUT_EXPIRED, done)
    return done


def cancel_cash_out_in(tx: Tx, *, cash_out_id: uuid.UUID, reason: str = "cancelled") -> CashOut:
    """Cancel a requested cash-out: void its holds and give its amount back to the
    villager's daily limit. Cancelling a cancelled one answers it unchanged; one whose
    timeout has passed is expired instead (and answered so); a completed one is refused
    (``cash_out_completed``)."""
    rules.check_reason(reason)
    repository = CashOutRepository(tx)
    stored = rules.locked_two_phase(repository, cash_out_id)
    step = rules.cancel_step(stored, tx.now_us)
    if step is rules.CancelStep.ANSWER:
        return stored.cash_out
    if step is rules.CancelStep.EXPIRE:
        return _expire(tx, stored)
    _void_holds(tx, cash_out_id, "void")
    _give_back(tx, stored)
    done = repository.resolve(cash_out_id, CashOutState.CANCELLED, reason).cash_out
    emit(tx, events.CASHOUT_CANCELLED, done, reason=reason)
    return done


cancel_cash_out = transactional(cancel_cash_out_in)


def _expire_if_due(tx: Tx, *, cash_out_id: uuid.UUID, now_us: int) -> bool:
    """Expire the cash-out if it is still requested and due at ``now_us``; whether it did."""
    stored = rules.locked_two_phase(CashOutRepository(tx), cash_out_id)
    if not rules.is_due(stored, now_us):
        return False
    _expire(tx, stored)
    return True


def sweep_cash_outs(led: Ledger, now: datetime | None = None, limit: int = 1000) -> int:
    """Expire every requested cash-out whose timeout has passed at ``now`` (default: the
    ledger's clock), each in its own transaction, at most ``limit`` of them: void its
    holds, give its amount back to the villager's daily limit, ``cashout.expired``. How
    many this call expired (one confirmed or cancelled meanwhile is left alone)."""
    if type(limit) is not int or not 1 <= limit <= SWEEP_BATCH_MAX:
        raise MalformedRequest(f"limit must be 1..{SWEEP_BATCH_MAX}")
    now_us = to_us(led.now() if now is None else now)
    due = led.transact(lambda tx: CashOutRepository(tx).due_ids(now_us=now_us, limit=limit))
    expired = 0
    for cash_out_id in due:
        if led.transact(functools.partial(_expire_if_due, cash_out_id=cash_out_id, now_us=now_us)):
            expired += 1
    return expired
