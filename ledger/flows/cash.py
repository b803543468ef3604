"""Cash at the agent's counter: a villager's cash-in (cash for e-money) and cash-out
(e-money for cash).

Money (each operation one linked batch, all or nothing, idempotent by the client's id):

- **cash-in** of ``amount``: the agent's ``float`` pays the villager's ``wallet``
  ``amount``, and the agent's cash-on-hand grows by the cash taken (agent ``cash`` debit /
  ``cash_control`` credit). Commission: if a ``cash_in`` fee schedule is in effect
  (:mod:`ledger.flows.fees`), its legs are paid in the same batch: the platform pays the
  agent its ``platform_commission`` out of ``commission_expense``, and if the schedule
  also charges a fee (normally it does not), the villager pays it out of the wallet just
  credited (a fee of the whole amount or more is refused, ``fee_exceeds_amount``). **No
  schedule in effect means no commission and no fee**: a cash-in is never refused for
  want of a schedule.
- **cash-out**, two-phase. :func:`request_cash_out` prices the fee by the ``cash_out``
  schedule (none in effect: no fee) and reserves, as core holds that expire after
  :data:`CASH_OUT_TIMEOUT_S`: ``amount + fee`` of the wallet (wallet -> agent float,
  pending) and ``amount`` of the agent's cash-on-hand (``cash_control`` -> ``cash``,
  pending). The second hold is what makes "the agent's expected cash-on-hand" exact: the
  ``cash`` account's limit counts its posted balance less every open cash-out's promise,
  so a request the agent could not pay is refused (``agent_cash_short``) and two racing
  requests cannot both take the last cash. :func:`confirm_cash_out` (the agent handed the
  cash over) posts both holds (the wallet hold for ``amount`` only, which releases the
  fee part) and pays the fee legs out of the wallet (platform income, tax, rounding, the
  agent's commission: :func:`ledger.flows.fees.fee_transfers`) in one batch, at the fee
  quoted at request time. :func:`cancel_cash_out` voids both holds;
  :func:`sweep_cash_outs` voids the timed-out ones (``expired``).
  :func:`cash_out_in` is the **one-shot** cash-out an offline phone captured: the same
  transfers, posted at once (the wallet's side by posting the hold its offline withdrawal
  code made: :func:`hold_offline_withdrawal_in`).

Consent (:mod:`ledger.flows.consent`): no cash-out without the villager's. A two-phase
cash-out needs a ``withdrawal`` consent for that agent and exact amount: either the
villager starts it with the PIN (:func:`start_withdrawal`; the agent then confirms the
hand-over with :func:`confirm_cash_out`, M-Pesa's model) or the agent's request carries a
code the villager made (:func:`request_cash_out` with ``consent_code``). A one-shot cash-out
needs an ``offline_withdrawal`` code, whose hold it posts. Without consent:
``consent_required`` and nothing held; a wrong code ``consent_invalid`` (counted, see
:func:`ledger.flows.consent.check_code`), ``consent_expired``, ``consent_rate_limited``.
A replayed request (same id, same request) answers the stored cash-out before any consent
is looked at, so a spent code does not refuse its own replay.

States of a cash-out: ``requested`` -> ``completed`` | ``cancelled`` | ``expired``; a
one-shot cash-out is born ``completed``. Refusals (:class:`~ledger.flows.errors.Refused`
codes): ``float_short``, ``wallet_short`` (the wallet cannot pay amount + fee),
``agent_cash_short``, ``below_minimum`` (:data:`CASH_OUT_MINIMUM_MINOR`),
``limit_exceeded_per_transaction``, ``limit_exceeded_daily``, ``limit_exceeded_balance``
(:mod:`ledger.flows.limits`), ``kyc_tier_unknown``, ``currency_mismatch``,
``amount_invalid``, ``fee_exceeds_amount``; ``cash_out_cancelled``,
``cash_out_expired``, ``cash_out_completed``, ``agent_mismatch`` for a step that no
longer applies. A refusal writes nothing; a caller of an ``..._in`` function that catches
one must roll its transaction back.

Idempotency: the same id with the same request answers the same operation (a two-phase
cash-out as it is now) and changes nothing; the same id with another request is a
:class:`~ledger.flows.errors.Conflict` (``cash_in_id_reused``, ``cash_out_id_reused``).
Confirming a completed cash-out (by its agent) and cancelling a cancelled one answer it
unchanged. Transfer ids derive from the operation id (``uuid5(id, "cash_out:hold")``).

Events (``party_id`` = the agent, ``subject_id`` = the operation): ``cashin.completed``,
``cashout.reserved``, ``cashout.completed``, ``cashout.cancelled``, ``cashout.expired``;
and ``float.low`` through :func:`ledger.flows.agent_float.check_float_low`.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core import currency as iso4217
from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import events, fees, limits, parties, wallets
from ledger.flows.agent_float import check_amount, check_float_low, check_id, submit_linked
from ledger.flows.consent import (
    Consent,
    HeldWithdrawal,
    Purpose,
    by_pin,
    check_code,
    held_withdrawal_in,
    require_in,
)
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.limits import Direction
from ledger.flows.parties import Kind, Party, Role

__all__ = [
    "CASH_IN_CODE",
    "CASH_OUT_CODE",
    "CASH_OUT_MINIMUM_MINOR",
    "CASH_OUT_TIMEOUT_MAX_S",
    "CASH_OUT_TIMEOUT_MIN_S",
    "CASH_OUT_TIMEOUT_S",
    "CASH_PAID_CODE",
    "CASH_RECEIVED_CODE",
    "PAGE_MAX",
    "REASON_LENGTH_MAX",
    "SWEEP_LIMIT_MAX",
    "CashIn",
    "CashOut",
    "CashOutMode",
    "CashOutState",
    "cancel_cash_out",
    "cancel_cash_out_in",
    "cash_in",
    "cash_in_in",
    "cash_out",
    "cash_out_in",
    "confirm_cash_out",
    "confirm_cash_out_in",
    "get_cash_in",
    "get_cash_out",
    "hold_offline_withdrawal_in",
    "list_cash_ins",
    "list_cash_outs",
    "minimum_cash_out_minor",
    "request_cash_out",
    "request_cash_out_in",
    "start_withdrawal",
    "sweep_cash_outs",
    "void_offline_withdrawal_in",
]

CASH_IN_CODE = 701
"""Core transfer ``code``: the agent's float pays a villager's wallet (cash-in)."""
CASH_RECEIVED_CODE = 702
"""The agent's cash-on-hand grows by the cash a villager handed over."""
CASH_OUT_CODE = 703
"""The villager's wallet pays the agent's float (cash-out; its hold, post and void)."""
CASH_PAID_CODE = 704
"""The agent's cash-on-hand shrinks by the cash handed to a villager (its hold too)."""

CASH_OUT_TIMEOUT_S = 15 * 60
"""How long a requested cash-out waits for the agent's confirmation before it expires."""
CASH_OUT_TIMEOUT_MIN_S = 60
CASH_OUT_TIMEOUT_MAX_S = 24 * 3600

CASH_OUT_MINIMUM_MINOR: Mapping[str, int] = {"KES": 5_000, "UGX": 500, "TZS": 100_000}
"""The smallest cash-out per currency, minor units: KES 50.00, UGX 500, TZS 1,000.00.
Any other currency: one major unit (:func:`minimum_cash_out_minor`)."""

PAGE_MAX = 1000
SWEEP_LIMIT_MAX = 10_000
REASON_LENGTH_MAX = 500
_US = 1_000_000


def minimum_cash_out_minor(currency: str) -> int:
    """The smallest cash-out in ``currency`` (minor units)."""
    return CASH_OUT_MINIMUM_MINOR.get(currency, 10 ** iso4217.minor_digits(currency))


class CashOutState(StrEnum):
    REQUESTED = "requested"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class CashOutMode(StrEnum):
    TWO_PHASE = "two_phase"
    """Requested, held, then confirmed by the agent (or cancelled, or expired)."""
    ONE_SHOT = "one_shot"
    """Posted at once (an offline capture synced later)."""


@dataclass(frozen=True, slots=True)
class CashIn:
    """Cash a villager handed an agent for e-money (minor units of ``currency``)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    device_id: uuid.UUID | None
    """The agent's phone that captured it offline, if it did."""
    currency: str
    amount_minor: int
    """Cash handed over, and e-money credited to the wallet."""
    fee_minor: int
    """Paid by the villager out of the wallet (0 unless the schedule charges one)."""
    commission_minor: int
    """What the agent earned (the platform's commission and the agent's share of the fee)."""
    fee_version: int | None
    """The ``cash_in`` schedule version that priced it (``None``: none in effect)."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CashOut:
    """E-money a villager turns into cash at an agent (minor units of ``currency``)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    device_id: uuid.UUID | None
    currency: str
    amount_minor: int
    """Cash the agent hands over."""
    fee_minor: int
    """Paid by the villager on top of the amount."""
    fee_version: int | None
    mode: CashOutMode
    state: CashOutState
    reason: str | None
    """Why it was cancelled."""
    created_at: datetime
    expires_at: datetime | None
    """When a requested cash-out expires (``None`` for a one-shot)."""
    resolved_at: datetime | None

    @property
    def total_minor(self) -> int:
        """What leaves the wallet: amount and fee."""
        return self.amount_minor + self.fee_minor


# -- shared -------------------------------------------------------------------------------


def _parties(tx: Tx, agent_id: uuid.UUID, villager_id: uuid.UUID) -> tuple[Party, Party]:
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    villager = parties.get_party(tx, villager_id, Kind.VILLAGER)
    if agent.currency != villager.currency:
        raise Refused(
            "currency_mismatch",
            f"the agent holds {agent.currency}, the villager {villager.currency}",
        )
    return agent, villager


def _shortages(agent: Party, villager: Party) -> dict[uuid.UUID, str]:
    return {
        agent.account(Role.FLOAT): "float_short",
        agent.account(Role.CASH): "agent_cash_short",
        agent.account(Role.CASH_CONTROL): "agent_cash_short",
        villager.account(Role.WALLET): "wallet_short",
    }


def _quote(tx: Tx, product: str, currency: str, amount_minor: int) -> fees.Quote | None:
    """The fee quote in effect, or ``None`` when no schedule is."""
    try:
        return fees.quote(tx, product=product, currency=currency, amount_minor=amount_minor)
    except Refused as refusal:
        if refusal.code == "fee_schedule_missing":
            return None
        raise


def _leg(
    op_id: uuid.UUID,
    name: str,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount: int,
    currency: str,
    code: int,
    *,
    pending_s: int = 0,
) -> Transfer:
    return Transfer(
        id=uuid.uuid5(op_id, name),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        currency=currency,
        code=code,
        flags=TransferFlags.PENDING if pending_s else TransferFlags(0),
        timeout_s=pending_s,
        metadata={"operation_id": str(op_id), "leg": name},
    )


def _resolve(
    op_id: uuid.UUID, name: str, hold_id: uuid.UUID, code: int, *, post: int | None
) -> Transfer:
    """A post (of ``post`` minor units) or, with ``post=None``, a void of a hold."""
    return Transfer(
        id=uuid.uuid5(op_id, name),
        debit_account_id=None,
        credit_account_id=None,
        amount=post,
        currency=None,
        code=code,
        flags=TransferFlags.POST_PENDING if post is not None else TransferFlags.VOID_PENDING,
        pending_id=hold_id,
        metadata={"operation_id": str(op_id), "leg": name},
    )


def _check_device(device_id: object) -> uuid.UUID | None:
    return None if device_id is None else check_id(device_id, "device_id")


# -- cash-in ------------------------------------------------------------------------------

_CASH_IN_COLUMNS = (
    "id, agent_id, villager_id, device_id, currency, amount_minor, fee_minor,"
    " commission_minor, fee_version, created_at_us"
)


def _cash_in(row: Row) -> CashIn:
    return CashIn(
        id=row[0],
        agent_id=row[1],
        villager_id=row[2],
        device_id=row[3],
        currency=row[4],
        amount_minor=row[5],
        fee_minor=row[6],
        commission_minor=row[7],
        fee_version=row[8],
        created_at=from_us(row[9]),
    )


def cash_in(
    led: Ledger,
    *,
    cash_in_id: uuid.UUID,
    agent_id: uuid.UUID,
    villager_id: uuid.UUID,
    amount_minor: int,
    device_id: uuid.UUID | None = None,
) -> CashIn:
    """The villager hands the agent ``amount_minor`` of cash; the agent's float pays it
    into the villager's wallet (see the module docstring)."""
    return led.transact(
        lambda tx: cash_in_in(
            tx,
            cash_in_id=cash_in_id,
            agent_id=agent_id,
            villager_id=villager_id,
            amount_minor=amount_minor,
            device_id=device_id,
        )
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
    """:func:`cash_in` inside a transaction someone else opened."""
    check_id(cash_in_id, "cash_in_id")
    check_id(agent_id, "agent_id")
    check_id(villager_id, "villager_id")
    _check_device(device_id)
    check_amount(amount_minor)
    row = tx.one(f"SELECT {_CASH_IN_COLUMNS} FROM cash_ins WHERE id = :id", {"id": cash_in_id})
    if row is not None:
        found = _cash_in(row)
        if (found.agent_id, found.villager_id, found.amount_minor, found.device_id) != (
            agent_id,
            villager_id,
            amount_minor,
            device_id,
        ):
            raise Conflict("cash_in_id_reused", f"cash-in {cash_in_id} was another request")
        return found
    agent, villager = _parties(tx, agent_id, villager_id)
    currency = agent.currency
    quote = _quote(tx, "cash_in", currency, amount_minor)
    fee = 0 if quote is None else quote.fee_minor
    if fee >= amount_minor:
        raise Refused("fee_exceeds_amount", f"a fee of {fee} takes all of {amount_minor}")
    day = limits.reserve_in(
        tx, villager=villager, direction=Direction.CASH_IN, amount_minor=amount_minor
    )
    legs = [
        _leg(
            cash_in_id,
            "cash_in:credit",
            agent.account(Role.FLOAT),
            villager.account(Role.WALLET),
            amount_minor,
            currency,
            CASH_IN_CODE,
        ),
        _leg(
            cash_in_id,
            "cash_in:cash_received",
            agent.account(Role.CASH),
            agent.account(Role.CASH_CONTROL),
            amount_minor,
            currency,
            CASH_RECEIVED_CODE,
        ),
    ]
    if quote is not None:
        legs += fees.fee_transfers(
            tx,
            quote,
            payer_account=villager.account(Role.WALLET),
            agent_id=agent.id,
            currency=currency,
            id_base=uuid.uuid5(cash_in_id, "cash_in:fees"),
        )
    submit_linked(tx, legs, _shortages(agent, villager))  # checks the wallet's KYC maximum
    commission = (
        0 if quote is None else quote.agent_commission_minor + quote.platform_commission_minor
    )
    values: dict[str, Any] = {
        "id": cash_in_id,
        "agent": agent_id,
        "villager": villager_id,
        "device": device_id,
        "currency": currency,
        "amount": amount_minor,
        "fee": fee,
        "commission": commission,
        "version": None if quote is None else quote.version,
        "day": day,
        "now": tx.now_us,
    }
    tx.execute(
        f"INSERT INTO cash_ins ({_CASH_IN_COLUMNS}, utc_day) VALUES (:id, :agent, :villager,"
        " :device, :currency, :amount, :fee, :commission, :version, :now, :day)",
        values,
    )
    events.emit(
        tx,
        events.CASHIN_COMPLETED,
        {
            "cash_in_id": str(cash_in_id),
            "agent_id": str(agent_id),
            "villager_id": str(villager_id),
            "device_id": None if device_id is None else str(device_id),
            "currency": currency,
            "amount_minor": amount_minor,
            "fee_minor": fee,
            "commission_minor": commission,
        },
        party_id=agent_id,
        subject_id=cash_in_id,
    )
    if device_id is None:
        # A device's cash-in spends float its allowance already held, so the float
        # available ends where it began; the caller re-holds the rest of the allowance
        # after this returns, and a check here, in between, would see too much.
        check_float_low(tx, agent_id)
    return CashIn(
        cash_in_id,
        agent_id,
        villager_id,
        device_id,
        currency,
        amount_minor,
        fee,
        commission,
        values["version"],
        from_us(tx.now_us),
    )


def get_cash_in(led: Ledger, cash_in_id: uuid.UUID) -> CashIn:
    """The cash-in; :class:`NotFound` ``cash_in_not_found``."""
    check_id(cash_in_id, "cash_in_id")

    def work(tx: Tx) -> CashIn:
        row = tx.one(f"SELECT {_CASH_IN_COLUMNS} FROM cash_ins WHERE id = :id", {"id": cash_in_id})
        if row is None:
            raise NotFound("cash_in_not_found", f"no cash-in {cash_in_id}")
        return _cash_in(row)

    return led.transact(work)


# -- cash-out: rows -----------------------------------------------------------------------

_CASH_OUT_COLUMNS = (
    "id, agent_id, villager_id, device_id, currency, amount_minor, fee_minor, fee_version,"
    " mode, state, reason, created_at_us, expires_at_us, resolved_at_us, utc_day, quote"
)


def _cash_out(row: Row) -> CashOut:
    return CashOut(
        id=row[0],
        agent_id=row[1],
        villager_id=row[2],
        device_id=row[3],
        currency=row[4],
        amount_minor=row[5],
        fee_minor=row[6],
        fee_version=row[7],
        mode=CashOutMode(row[8]),
        state=CashOutState(row[9]),
        reason=row[10],
        created_at=from_us(row[11]),
        expires_at=None if row[12] is None else from_us(row[12]),
        resolved_at=None if row[13] is None else from_us(row[13]),
    )


def _read_cash_out(tx: Tx, cash_out_id: uuid.UUID, *, lock: bool) -> Row | None:
    return tx.one(
        f"SELECT {_CASH_OUT_COLUMNS} FROM cash_outs WHERE id = :id{tx.for_update if lock else ''}",
        {"id": cash_out_id},
    )


def _replayed_cash_out(
    tx: Tx,
    cash_out_id: uuid.UUID,
    mode: CashOutMode,
    request: tuple[uuid.UUID, uuid.UUID, int, uuid.UUID | None],
) -> CashOut | None:
    row = _read_cash_out(tx, cash_out_id, lock=False)
    if row is None:
        return None
    found = _cash_out(row)
    if (found.agent_id, found.villager_id, found.amount_minor, found.device_id) != request or (
        found.mode is not mode
    ):
        raise Conflict("cash_out_id_reused", f"cash-out {cash_out_id} was another request")
    return found


def _price_cash_out(
    tx: Tx, agent: Party, villager: Party, amount_minor: int
) -> tuple[fees.Quote | None, int, int]:
    """Check the minimum, price the fee, count the amount against the villager's limits;
    (quote, fee, the UTC day it was counted in)."""
    minimum = minimum_cash_out_minor(agent.currency)
    if amount_minor < minimum:
        raise Refused("below_minimum", f"the smallest cash-out is {minimum}, not {amount_minor}")
    quote = _quote(tx, "cash_out", agent.currency, amount_minor)
    day = limits.reserve_in(
        tx, villager=villager, direction=Direction.CASH_OUT, amount_minor=amount_minor
    )
    return quote, 0 if quote is None else quote.fee_minor, day


def _insert_cash_out(
    tx: Tx,
    *,
    cash_out_id: uuid.UUID,
    agent: Party,
    villager: Party,
    device_id: uuid.UUID | None,
    amount_minor: int,
    quote: fees.Quote | None,
    mode: CashOutMode,
    state: CashOutState,
    day: int,
    expires_at_us: int | None,
) -> CashOut:
    tx.execute(
        f"INSERT INTO cash_outs ({_CASH_OUT_COLUMNS}) VALUES (:id, :agent, :villager, :device,"
        " :currency, :amount, :fee, :version, :mode, :state, NULL, :now, :expires, :resolved,"
        " :day, :quote)",
        {
            "id": cash_out_id,
            "agent": agent.id,
            "villager": villager.id,
            "device": device_id,
            "currency": agent.currency,
            "amount": amount_minor,
            "fee": 0 if quote is None else quote.fee_minor,
            "version": None if quote is None else quote.version,
            "mode": mode.value,
            "state": state.value,
            "now": tx.now_us,
            "expires": expires_at_us,
            "resolved": None if state is CashOutState.REQUESTED else tx.now_us,
            "day": day,
            "quote": None if quote is None else json.dumps(dataclasses.asdict(quote)),
        },
    )
    row = _read_cash_out(tx, cash_out_id, lock=False)
    assert row is not None  # just written
    return _cash_out(row)


def _emit(tx: Tx, event_type: str, found: CashOut, **extra: Any) -> None:
    payload: dict[str, Any] = {
        "cash_out_id": str(found.id),
        "agent_id": str(found.agent_id),
        "villager_id": str(found.villager_id),
        "device_id": None if found.device_id is None else str(found.device_id),
        "currency": found.currency,
        "amount_minor": found.amount_minor,
        "fee_minor": found.fee_minor,
        "state": found.state.value,
        "mode": found.mode.value,
    }
    payload.update(extra)
    events.emit(tx, event_type, payload, party_id=found.agent_id, subject_id=found.id)


def _set_state(
    tx: Tx, cash_out_id: uuid.UUID, state: CashOutState, reason: str | None = None
) -> CashOut:
    tx.execute(
        "UPDATE cash_outs SET state = :state, reason = :reason, resolved_at_us = :now"
        " WHERE id = :id",
        {"state": state.value, "reason": reason, "now": tx.now_us, "id": cash_out_id},
    )
    row = _read_cash_out(tx, cash_out_id, lock=False)
    assert row is not None  # locked by the caller
    return _cash_out(row)


def _hold_ids(cash_out_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """(the wallet's hold, the agent's cash hold) of a two-phase cash-out."""
    return uuid.uuid5(cash_out_id, "cash_out:hold"), uuid.uuid5(cash_out_id, "cash_out:cash_hold")


# -- cash-out: one shot (offline) -----------------------------------------------------------


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
    request = (agent_id, villager_id, amount_minor, device_id)
    replayed = _replay_first(led, cash_out_id, CashOutMode.ONE_SHOT, request)
    if replayed is not None:
        return replayed
    given = _checked(
        led,
        caller_id=caller_id or agent_id,
        villager_id=villager_id,
        consent_code=consent_code,
        purpose=Purpose.OFFLINE_WITHDRAWAL,
        amount_minor=amount_minor,
        agent_id=agent_id,
    )
    return led.transact(
        lambda tx: cash_out_in(
            tx,
            cash_out_id=cash_out_id,
            agent_id=agent_id,
            villager_id=villager_id,
            amount_minor=amount_minor,
            consent=given,
            device_id=device_id,
        )
    )


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
    check_id(cash_out_id, "cash_out_id")
    check_id(agent_id, "agent_id")
    check_id(villager_id, "villager_id")
    _check_device(device_id)
    check_amount(amount_minor)
    replayed = _replayed_cash_out(
        tx, cash_out_id, CashOutMode.ONE_SHOT, (agent_id, villager_id, amount_minor, device_id)
    )
    if replayed is not None:
        return replayed
    who = (agent_id, villager_id)
    used = _consented(tx, consent, Purpose.OFFLINE_WITHDRAWAL, cash_out_id, who, amount_minor)
    held = held_withdrawal_in(tx, used)
    agent, villager = _parties(tx, agent_id, villager_id)
    currency = agent.currency
    quote = None if held.quote is None else fees.Quote(**json.loads(held.quote))
    day = held.utc_day  # counted in the villager's usage when the code was made
    wallet = villager.account(Role.WALLET)
    legs = [_resolve(cash_out_id, "cash_out:post", held.hold_id, CASH_OUT_CODE, post=amount_minor)]
    if quote is not None:
        legs += fees.fee_transfers(
            tx,
            quote,
            payer_account=wallet,
            agent_id=agent.id,
            currency=currency,
            id_base=uuid.uuid5(cash_out_id, "cash_out:fees"),
        )
    legs.append(
        _leg(
            cash_out_id,
            "cash_out:cash_paid",
            agent.account(Role.CASH_CONTROL),
            agent.account(Role.CASH),
            amount_minor,
            currency,
            CASH_PAID_CODE,
        )
    )
    submit_linked(tx, legs, _shortages(agent, villager))
    found = _insert_cash_out(
        tx,
        cash_out_id=cash_out_id,
        agent=agent,
        villager=villager,
        device_id=device_id,
        amount_minor=amount_minor,
        quote=quote,
        mode=CashOutMode.ONE_SHOT,
        state=CashOutState.COMPLETED,
        day=day,
        expires_at_us=None,
    )
    _emit(tx, events.CASHOUT_COMPLETED, found)
    check_float_low(tx, agent_id)
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
    quote, fee, day = _price_cash_out(tx, agent, villager, amount_minor)
    hold = _leg(
        consent_id,
        "consent:offline_hold",
        villager.account(Role.WALLET),
        agent.account(Role.FLOAT),
        amount_minor + fee,
        agent.currency,
        CASH_OUT_CODE,
        pending_s=timeout_s,
    )
    submit_linked(tx, [hold], _shortages(agent, villager))
    stored = None if quote is None else json.dumps(dataclasses.asdict(quote))
    return HeldWithdrawal(hold.id, stored, day)


def void_offline_withdrawal_in(tx: Tx, *, consent_id: uuid.UUID, hold_id: uuid.UUID) -> None:
    """Give back the hold of an offline withdrawal code that will not be used (voided);
    a hold the core already expired needs nothing more."""
    void = _resolve(consent_id, "consent:offline_void", hold_id, CASH_OUT_CODE, post=None)
    results = tx.create_transfers([void])
    if results[0].status not in (Status.CREATED, Status.PENDING_TRANSFER_EXPIRED):
        raise InvariantViolation(f"void of offline code hold {hold_id}: {results[0].status}")
    wallets.after_transfers_in(tx, [void], results)  # the villager's release receipt


# -- cash-out: two-phase ------------------------------------------------------------------


def _consented(
    tx: Tx,
    consent: Consent | None,
    purpose: Purpose,
    cash_out_id: uuid.UUID,
    who: tuple[uuid.UUID, uuid.UUID],
    amount_minor: int,
) -> Consent:
    """Use the villager's consent for this cash-out at agent ``who[0]`` (once; see
    :func:`ledger.flows.consent.require_in`)."""
    require_in(
        tx,
        consent,
        villager_id=who[1],
        purpose=purpose,
        amount_minor=amount_minor,
        agent_id=who[0],
        used_for=cash_out_id,
    )
    assert consent is not None  # require_in refuses None
    return consent


def _replay_first(
    led: Ledger,
    cash_out_id: uuid.UUID,
    mode: CashOutMode,
    request: tuple[uuid.UUID, uuid.UUID, int, uuid.UUID | None],
) -> CashOut | None:
    """The stored cash-out of a replayed request, before any consent is looked at."""
    check_id(cash_out_id, "cash_out_id")
    return led.transact(lambda tx: _replayed_cash_out(tx, cash_out_id, mode, request))


def _checked(
    led: Ledger,
    *,
    caller_id: uuid.UUID,
    villager_id: uuid.UUID,
    consent_code: str | None,
    purpose: Purpose,
    amount_minor: int,
    agent_id: uuid.UUID,
) -> Consent | None:
    """The consent ``consent_code`` gives (its own transaction), ``None`` for no code."""
    if consent_code is None:
        return None
    return check_code(
        led,
        caller_id=caller_id,
        villager_id=villager_id,
        code=consent_code,
        purpose=purpose,
        amount_minor=amount_minor,
        agent_id=agent_id,
    )


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
    return _two_phase(
        led,
        cash_out_id=cash_out_id,
        agent_id=agent_id,
        villager_id=villager_id,
        amount_minor=amount_minor,
        timeout_s=timeout_s,
        consent_of=lambda: _checked(
            led,
            caller_id=caller_id or agent_id,
            villager_id=villager_id,
            consent_code=consent_code,
            purpose=Purpose.WITHDRAWAL,
            amount_minor=amount_minor,
            agent_id=agent_id,
        ),
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
    return _two_phase(
        led,
        cash_out_id=cash_out_id,
        agent_id=agent_id,
        villager_id=villager_id,
        amount_minor=amount_minor,
        timeout_s=timeout_s,
        consent_of=lambda: by_pin(
            led,
            villager_id=villager_id,
            pin=pin,
            purpose=Purpose.WITHDRAWAL,
            amount_minor=amount_minor,
            agent_id=agent_id,
        ),
    )


def _two_phase(
    led: Ledger,
    *,
    cash_out_id: uuid.UUID,
    agent_id: uuid.UUID,
    villager_id: uuid.UUID,
    amount_minor: int,
    timeout_s: int,
    consent_of: Callable[[], Consent | None],
) -> CashOut:
    """A two-phase cash-out: a replay answers as before without asking for consent again
    (its code is spent); else ``consent_of()`` (its own transaction), then the holds."""
    request = (agent_id, villager_id, amount_minor, None)
    replayed = _replay_first(led, cash_out_id, CashOutMode.TWO_PHASE, request)
    if replayed is not None:
        return replayed
    given = consent_of()
    return led.transact(
        lambda tx: request_cash_out_in(
            tx,
            cash_out_id=cash_out_id,
            agent_id=agent_id,
            villager_id=villager_id,
            amount_minor=amount_minor,
            consent=given,
            timeout_s=timeout_s,
        )
    )


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
    check_id(cash_out_id, "cash_out_id")
    check_id(agent_id, "agent_id")
    check_id(villager_id, "villager_id")
    check_amount(amount_minor)
    if (
        type(timeout_s) is not int
        or not CASH_OUT_TIMEOUT_MIN_S <= timeout_s <= CASH_OUT_TIMEOUT_MAX_S
    ):
        raise MalformedRequest(
            f"timeout_s must be an integer in {CASH_OUT_TIMEOUT_MIN_S}..{CASH_OUT_TIMEOUT_MAX_S}"
        )
    replayed = _replayed_cash_out(
        tx, cash_out_id, CashOutMode.TWO_PHASE, (agent_id, villager_id, amount_minor, None)
    )
    if replayed is not None:
        return replayed
    who = (agent_id, villager_id)
    _consented(tx, consent, Purpose.WITHDRAWAL, cash_out_id, who, amount_minor)
    agent, villager = _parties(tx, agent_id, villager_id)
    currency = agent.currency
    quote, fee, day = _price_cash_out(tx, agent, villager, amount_minor)
    legs = [
        _leg(
            cash_out_id,
            "cash_out:hold",
            villager.account(Role.WALLET),
            agent.account(Role.FLOAT),
            amount_minor + fee,
            currency,
            CASH_OUT_CODE,
            pending_s=timeout_s,
        ),
        _leg(
            cash_out_id,
            "cash_out:cash_hold",
            agent.account(Role.CASH_CONTROL),
            agent.account(Role.CASH),
            amount_minor,
            currency,
            CASH_PAID_CODE,
            pending_s=timeout_s,
        ),
    ]
    submit_linked(tx, legs, _shortages(agent, villager))
    found = _insert_cash_out(
        tx,
        cash_out_id=cash_out_id,
        agent=agent,
        villager=villager,
        device_id=None,
        amount_minor=amount_minor,
        quote=quote,
        mode=CashOutMode.TWO_PHASE,
        state=CashOutState.REQUESTED,
        day=day,
        expires_at_us=tx.now_us + timeout_s * _US,
    )
    assert found.expires_at is not None  # a two-phase cash-out always expires
    _emit(tx, events.CASHOUT_RESERVED, found, expires_at=found.expires_at.isoformat())
    return found


def _locked_two_phase(tx: Tx, cash_out_id: uuid.UUID) -> tuple[CashOut, Row]:
    check_id(cash_out_id, "cash_out_id")
    row = _read_cash_out(tx, cash_out_id, lock=True)
    if row is None:
        raise NotFound("cash_out_not_found", f"no cash-out {cash_out_id}")
    found = _cash_out(row)
    if found.mode is not CashOutMode.TWO_PHASE:
        raise Refused("cash_out_completed", f"cash-out {cash_out_id} was posted at once")
    return found, row


def _due(tx: Tx, row: Row) -> bool:
    """Whether a requested cash-out's timeout has passed (as the core's holds see it)."""
    expires_at_us: int = row[12]
    return row[9] == CashOutState.REQUESTED and tx.now_us >= expires_at_us


def confirm_cash_out(led: Ledger, *, cash_out_id: uuid.UUID, agent_id: uuid.UUID) -> CashOut:
    """The agent handed the cash over: post the holds and pay the fee legs, at the fee
    quoted at request time. Confirming a completed cash-out answers it unchanged."""
    return led.transact(
        lambda tx: confirm_cash_out_in(tx, cash_out_id=cash_out_id, agent_id=agent_id)
    )


def confirm_cash_out_in(tx: Tx, *, cash_out_id: uuid.UUID, agent_id: uuid.UUID) -> CashOut:
    """:func:`confirm_cash_out` inside a transaction someone else opened."""
    check_id(agent_id, "agent_id")
    found, row = _locked_two_phase(tx, cash_out_id)
    if found.agent_id != agent_id:
        raise Refused("agent_mismatch", f"cash-out {cash_out_id} is another agent's")
    if found.state is CashOutState.COMPLETED:
        return found
    if found.state is not CashOutState.REQUESTED or _due(tx, row):
        state = CashOutState.EXPIRED if _due(tx, row) else found.state
        raise Refused(f"cash_out_{state.value}", f"cash-out {cash_out_id} is {state.value}")
    agent, villager = _parties(tx, found.agent_id, found.villager_id)
    hold_id, cash_hold_id = _hold_ids(cash_out_id)
    legs = [_resolve(cash_out_id, "cash_out:post", hold_id, CASH_OUT_CODE, post=found.amount_minor)]
    if row[15] is not None:
        quote = fees.Quote(**json.loads(row[15]))
        legs += fees.fee_transfers(
            tx,
            quote,
            payer_account=villager.account(Role.WALLET),
            agent_id=agent.id,
            currency=found.currency,
            id_base=uuid.uuid5(cash_out_id, "cash_out:fees"),
        )
    legs.append(
        _resolve(
            cash_out_id, "cash_out:cash_post", cash_hold_id, CASH_PAID_CODE, post=found.amount_minor
        )
    )
    submit_linked(tx, legs, _shortages(agent, villager))
    done = _set_state(tx, cash_out_id, CashOutState.COMPLETED)
    _emit(tx, events.CASHOUT_COMPLETED, done)
    check_float_low(tx, agent.id)
    return done


def _void_holds(tx: Tx, cash_out_id: uuid.UUID, step: str) -> None:
    """Void both holds; a hold the core already expired needs nothing more."""
    hold_id, cash_hold_id = _hold_ids(cash_out_id)
    voids = [
        _resolve(cash_out_id, f"cash_out:{step}", hold_id, CASH_OUT_CODE, post=None),
        _resolve(cash_out_id, f"cash_out:{step}_cash", cash_hold_id, CASH_PAID_CODE, post=None),
    ]
    results = tx.create_transfers(voids)
    for result in results:
        if result.status not in (Status.CREATED, Status.PENDING_TRANSFER_EXPIRED):
            raise InvariantViolation(
                f"void of cash-out {cash_out_id} hold {voids[result.index].pending_id}:"
                f" {result.status}"
            )
    wallets.after_transfers_in(tx, voids, results)  # the villager's release receipt


def _give_back(tx: Tx, found: CashOut, row: Row) -> None:
    limits.release_in(
        tx,
        villager_id=found.villager_id,
        day=row[14],
        direction=Direction.CASH_OUT,
        amount_minor=found.amount_minor,
    )


def _expire(tx: Tx, found: CashOut, row: Row) -> CashOut:
    _void_holds(tx, found.id, "expire")
    _give_back(tx, found, row)
    done = _set_state(tx, found.id, CashOutState.EXPIRED)
    _emit(tx, events.CASHOUT_EXPIRED, done)
    return done


def cancel_cash_out(led: Ledger, *, cash_out_id: uuid.UUID, reason: str = "cancelled") -> CashOut:
    """Cancel a requested cash-out: void its holds and give its amount back to the
    villager's daily limit. Cancelling a cancelled one answers it unchanged; one whose
    timeout has passed is expired instead (and answered so); a completed one is refused
    (``cash_out_completed``)."""
    return led.transact(lambda tx: cancel_cash_out_in(tx, cash_out_id=cash_out_id, reason=reason))


def cancel_cash_out_in(tx: Tx, *, cash_out_id: uuid.UUID, reason: str = "cancelled") -> CashOut:
    """:func:`cancel_cash_out` inside a transaction someone else opened."""
    if not isinstance(reason, str) or not 1 <= len(reason) <= REASON_LENGTH_MAX:
        raise Refused("reason_invalid", f"a reason is 1-{REASON_LENGTH_MAX} characters")
    found, row = _locked_two_phase(tx, cash_out_id)
    if found.state in (CashOutState.CANCELLED, CashOutState.EXPIRED):
        return found
    if found.state is CashOutState.COMPLETED:
        raise Refused("cash_out_completed", f"cash-out {cash_out_id} was completed")
    if _due(tx, row):
        return _expire(tx, found, row)
    _void_holds(tx, cash_out_id, "void")
    _give_back(tx, found, row)
    done = _set_state(tx, cash_out_id, CashOutState.CANCELLED, reason)
    _emit(tx, events.CASHOUT_CANCELLED, done, reason=reason)
    return done


def sweep_cash_outs(led: Ledger, now: datetime | None = None, limit: int = 1000) -> int:
    """Expire every requested cash-out whose timeout has passed at ``now`` (default: the
    ledger's clock), each in its own transaction, at most ``limit`` of them: void its
    holds, give its amount back to the villager's daily limit, ``cashout.expired``. How
    many this call expired (one confirmed or cancelled meanwhile is left alone)."""
    if type(limit) is not int or not 1 <= limit <= SWEEP_LIMIT_MAX:
        raise MalformedRequest(f"limit must be 1..{SWEEP_LIMIT_MAX}")
    now_us = to_us(led.now() if now is None else now)
    due = led.transact(
        lambda tx: tx.execute(
            "SELECT id FROM cash_outs WHERE state = 'requested' AND expires_at_us <= :now"
            " ORDER BY expires_at_us, id LIMIT :limit",
            {"now": now_us, "limit": limit},
        )
    )
    expired = 0
    for (cash_out_id,) in due:

        def one(tx: Tx, cash_out_id: uuid.UUID = cash_out_id) -> bool:
            found, row = _locked_two_phase(tx, cash_out_id)
            if found.state is not CashOutState.REQUESTED or row[12] > now_us:
                return False
            _expire(tx, found, row)
            return True

        if led.transact(one):
            expired += 1
    return expired


# -- reading ------------------------------------------------------------------------------


def get_cash_out(led: Ledger, cash_out_id: uuid.UUID) -> CashOut:
    """The cash-out; :class:`NotFound` ``cash_out_not_found``."""
    check_id(cash_out_id, "cash_out_id")

    def work(tx: Tx) -> CashOut:
        row = _read_cash_out(tx, cash_out_id, lock=False)
        if row is None:
            raise NotFound("cash_out_not_found", f"no cash-out {cash_out_id}")
        return _cash_out(row)

    return led.transact(work)


def _page(
    led: Ledger,
    table: str,
    columns: str,
    *,
    agent_id: uuid.UUID,
    after: uuid.UUID | None,
    limit: int,
    state: CashOutState | None = None,
) -> list[Row]:
    check_id(agent_id, "agent_id")
    if after is not None:
        check_id(after, "after")
    if type(limit) is not int or not 1 <= limit <= PAGE_MAX:
        raise MalformedRequest(f"limit must be 1..{PAGE_MAX}")

    def read(tx: Tx) -> list[Row]:
        where = "agent_id = :agent"
        params: dict[str, Any] = {"agent": agent_id, "limit": limit}
        if state is not None:
            where += " AND state = :state"
            params["state"] = CashOutState(state).value
        if after is not None:
            cursor = tx.one(
                f"SELECT created_at_us FROM {table} WHERE id = :id AND agent_id = :agent",
                {"id": after, "agent": agent_id},
            )
            if cursor is None:
                return []
            where += " AND (created_at_us > :at OR (created_at_us = :at AND id > :after))"
            params.update(at=cursor[0], after=after)
        return tx.execute(
            f"SELECT {columns} FROM {table} WHERE {where} ORDER BY created_at_us, id LIMIT :limit",
            params,
        )

    return led.transact(read)


def list_cash_outs(
    led: Ledger,
    *,
    agent_id: uuid.UUID,
    state: CashOutState | None = None,
    after: uuid.UUID | None = None,
    limit: int = 100,
) -> list[CashOut]:
    """An agent's cash-outs (of one state, if given), oldest first, after the cursor
    ``after`` (a cash-out id of that agent; another answers ``[]``), at most ``limit``
    (1..1000)."""
    rows = _page(
        led,
        "cash_outs",
        _CASH_OUT_COLUMNS,
        agent_id=agent_id,
        after=after,
        limit=limit,
        state=state,
    )
    return [_cash_out(row) for row in rows]


def list_cash_ins(
    led: Ledger, *, agent_id: uuid.UUID, after: uuid.UUID | None = None, limit: int = 100
) -> list[CashIn]:
    """An agent's cash-ins, oldest first, paged like :func:`list_cash_outs`."""
    rows = _page(led, "cash_ins", _CASH_IN_COLUMNS, agent_id=agent_id, after=after, limit=limit)
    return [_cash_in(row) for row in rows]
