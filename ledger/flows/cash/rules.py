"""The cash rules that need no database: checks of a request, which stored operation a
replay answers, and which step still applies to a stored cash-out. They read rows through
the repository's ``find`` (any object with that method), so tests can hand them a fake."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Protocol

from ledger.core.errors import MalformedRequest
from ledger.flows import fees
from ledger.flows.agent_float import check_id
from ledger.flows.cash.model import (
    CASH_OUT_TIMEOUT_MAX_S,
    CASH_OUT_TIMEOUT_MIN_S,
    CashIn,
    CashOut,
    CashOutMode,
    CashOutState,
    minimum_cash_out_minor,
)
from ledger.flows.cash.repository import StoredCashOut
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.limits import LIST_PAGE_SIZE_MAX, REASON_LENGTH_MAX

__all__ = [
    "CancelStep",
    "CashOutRows",
    "Request",
    "cancel_step",
    "cash_in_fee_minor",
    "check_confirmable",
    "check_minimum",
    "check_page",
    "check_reason",
    "check_timeout",
    "is_due",
    "locked_two_phase",
    "replayed_cash_in",
    "replayed_cash_out",
]

Request = tuple[uuid.UUID, uuid.UUID, int, uuid.UUID | None]
"""What makes two requests of one id the same: (agent, villager, amount_minor, device)."""


class CashOutRows(Protocol):
    """The part of :class:`~ledger.flows.cash.repository.CashOutRepository` the rules read."""

    def find(self, cash_out_id: uuid.UUID, *, lock: bool) -> StoredCashOut | None: ...


# -- checks of a request ------------------------------------------------------------------


def check_timeout(timeout_s: object) -> int:
    if (
        type(timeout_s) is not int
        or not CASH_OUT_TIMEOUT_MIN_S <= timeout_s <= CASH_OUT_TIMEOUT_MAX_S
    ):
        raise MalformedRequest(
            f"timeout_s must be an integer in {CASH_OUT_TIMEOUT_MIN_S}..{CASH_OUT_TIMEOUT_MAX_S}"
        )
    return timeout_s


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not 1 <= len(reason) <= REASON_LENGTH_MAX:
        raise Refused("reason_invalid", f"a reason is 1-{REASON_LENGTH_MAX} characters")
    return reason


def check_page(*, agent_id: uuid.UUID, after: uuid.UUID | None, limit: int) -> None:
    """The checks of a page request: an agent, a cursor, ``limit`` 1..1000."""
    check_id(agent_id, "agent_id")
    if after is not None:
        check_id(after, "after")
    if type(limit) is not int or not 1 <= limit <= LIST_PAGE_SIZE_MAX:
        raise MalformedRequest(f"limit must be 1..{LIST_PAGE_SIZE_MAX}")


def check_minimum(currency: str, amount_minor: int) -> None:
    minimum = minimum_cash_out_minor(currency)
    if amount_minor < minimum:
        raise Refused("below_minimum", f"the smallest cash-out is {minimum}, not {amount_minor}")


def cash_in_fee_minor(quote: fees.Quote | None, amount_minor: int) -> int:
    """The villager's fee on a cash-in (0 without a schedule); it must leave something."""
    fee = 0 if quote is None else quote.fee_minor
    if fee >= amount_minor:
        raise Refused("fee_exceeds_amount", f"a fee of {fee} takes all of {amount_minor}")
    return fee


# -- replays ------------------------------------------------------------------------------


def replayed_cash_in(found: CashIn | None, request: Request) -> CashIn | None:
    """The stored cash-in a replay of ``request`` answers; ``cash_in_id_reused``."""
    if found is None:
        return None
    if (found.agent_id, found.villager_id, found.amount_minor, found.device_id) != request:
        raise Conflict("cash_in_id_reused", f"cash-in {found.id} was another request")
    return found


def replayed_cash_out(
    rows: CashOutRows, cash_out_id: uuid.UUID, mode: CashOutMode, request: Request
) -> CashOut | None:
    """The stored cash-out a replay of ``request`` answers; ``cash_out_id_reused``."""
    stored = rows.find(cash_out_id, lock=False)
    if stored is None:
        return None
    found = stored.cash_out
    if (found.agent_id, found.villager_id, found.amount_minor, found.device_id) != request or (
        found.mode is not mode
    ):
        raise Conflict("cash_out_id_reused", f"cash-out {cash_out_id} was another request")
    return found


# -- the steps of a two-phase cash-out ----------------------------------------------------


def locked_two_phase(rows: CashOutRows, cash_out_id: uuid.UUID) -> StoredCashOut:
    """The two-phase cash-out, locked; ``cash_out_not_found``, or ``cash_out_completed``
    for a one-shot (posted at once: no step applies)."""
    check_id(cash_out_id, "cash_out_id")
    stored = rows.find(cash_out_id, lock=True)
    if stored is None:
        raise NotFound("cash_out_not_found", f"no cash-out {cash_out_id}")
    if stored.cash_out.mode is not CashOutMode.TWO_PHASE:
        raise Refused("cash_out_completed", f"cash-out {cash_out_id} was posted at once")
    return stored


def is_due(stored: StoredCashOut, now_us: int) -> bool:
    """Whether a requested cash-out's timeout has passed (as the core's holds see it)."""
    if stored.cash_out.state is not CashOutState.REQUESTED:
        return False
    assert stored.expires_at_us is not None  # a requested cash-out always expires
    return now_us >= stored.expires_at_us


def check_confirmable(stored: StoredCashOut, agent_id: uuid.UUID, now_us: int) -> bool:
    """Whether the agent's confirmation posts the holds now (``False``: it was completed,
    answer it unchanged); ``agent_mismatch``, ``cash_out_cancelled``, ``..._expired``."""
    found = stored.cash_out
    if found.agent_id != agent_id:
        raise Refused("agent_mismatch", f"cash-out {found.id} is another agent's")
    if found.state is CashOutState.COMPLETED:
        return False
    if found.state is not CashOutState.REQUESTED or is_due(stored, now_us):
        state = CashOutState.EXPIRED if is_due(stored, now_us) else found.state
        raise Refused(f"cash_out_{state.value}", f"cash-out {found.id} is {state.value}")
    return True


class CancelStep(StrEnum):
    """What cancelling a stored cash-out does."""

    ANSWER = "answer"
    """It was cancelled or expired: answer it unchanged."""
    EXPIRE = "expire"
    """Its timeout has passed: expire it instead."""
    CANCEL = "cancel"


def cancel_step(stored: StoredCashOut, now_us: int) -> CancelStep:
    """The step a cancellation takes; ``cash_out_completed`` for a completed one."""
    found = stored.cash_out
    if found.state in (CashOutState.CANCELLED, CashOutState.EXPIRED):
        return CancelStep.ANSWER
    if found.state is CashOutState.COMPLETED:
        raise Refused("cash_out_completed", f"cash-out {found.id} was completed")
    if is_due(stored, now_us):
        return CancelStep.EXPIRE
    return CancelStep.CANCEL
