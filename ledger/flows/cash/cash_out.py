"""What both kinds of cash-out share (see :mod:`ledger.flows.cash`): the villager's
consent, the price, the event, and reading the stored cash-outs."""

from __future__ import annotations

import uuid
from typing import Any

from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import events, fees, limits
from ledger.flows.agent_float import check_id
from ledger.flows.cash import rules
from ledger.flows.cash.batch import quote_or_none
from ledger.flows.cash.model import CashOut, CashOutMode, CashOutState
from ledger.flows.cash.repository import CashOutRepository
from ledger.flows.consent import Consent, Purpose, check_code, require_in
from ledger.flows.errors import NotFound
from ledger.flows.limits import Direction
from ledger.flows.parties import Party

__all__ = [
    "checked",
    "consented",
    "emit",
    "get_cash_out",
    "list_cash_outs",
    "price_cash_out",
    "replay_first",
]


def price_cash_out(
    tx: Tx, agent: Party, villager: Party, amount_minor: int
) -> tuple[fees.Quote | None, int, int]:
    """Check the minimum, price the fee, count the amount against the villager's limits;
    (quote, fee, the UTC day it was counted in)."""
    rules.check_minimum(agent.currency, amount_minor)
    quote = quote_or_none(tx, "cash_out", agent.currency, amount_minor)
    day = limits.reserve_in(
        tx, villager=villager, direction=Direction.CASH_OUT, amount_minor=amount_minor
    )
    return quote, 0 if quote is None else quote.fee_minor, day


def emit(tx: Tx, event_type: str, found: CashOut, **extra: Any) -> None:
    """A ``cashout.*`` event to the agent about ``found``."""
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


def consented(
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


def replay_first(
    led: Ledger, cash_out_id: uuid.UUID, mode: CashOutMode, request: rules.Request
) -> CashOut | None:
    """The stored cash-out of a replayed request, before any consent is looked at."""
    check_id(cash_out_id, "cash_out_id")
    return led.transact(
        lambda tx: rules.replayed_cash_out(CashOutRepository(tx), cash_out_id, mode, request)
    )


def checked(
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


# -- reading ------------------------------------------------------------------------------


def get_cash_out(led: Ledger, cash_out_id: uuid.UUID) -> CashOut:
    """The cash-out; :class:`NotFound` ``cash_out_not_found``."""
    check_id(cash_out_id, "cash_out_id")

    def work(tx: Tx) -> CashOut:
        stored = CashOutRepository(tx).find(cash_out_id, lock=False)
        if stored is None:
            raise NotFound("cash_out_not_found", f"no cash-out {cash_out_id}")
        return stored.cash_out

    return led.transact(work)


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
    rules.check_page(agent_id=agent_id, after=after, limit=limit)
    return led.transact(
        lambda tx: CashOutRepository(tx).page(
            agent_id=agent_id, state=state, after=after, limit=limit
        )
    )
