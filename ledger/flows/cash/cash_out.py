"""What both kinds of cash-out share (see :mod:`ledger.flows.cash`): the villager's
consent, the price, the event, and reading the stored cash-outs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import events, fees, limits
from ledger.flows.agent_float import check_amount, check_id
from ledger.flows.cash import rules
from ledger.flows.cash.batch import quote_or_none
from ledger.flows.cash.model import CashOut, CashOutMode, CashOutState
from ledger.flows.cash.repository import CashOutRepository, NewCashOut
from ledger.flows.consent import Consent, Purpose, check_code, require_in
from ledger.flows.errors import NotFound
from ledger.flows.limits import Direction
from ledger.flows.parties import Party

__all__ = [
    "Asked",
    "add_in",
    "answered",
    "checked",
    "consented",
    "emit",
    "get_cash_out",
    "list_cash_outs",
    "price_cash_out",
    "replay_first",
    "replayed_in",
]


@dataclass(frozen=True, slots=True)
class Asked:
    """A cash-out as its caller asked for it: what a replay of its id must repeat."""

    cash_out_id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    amount_minor: int
    device_id: uuid.UUID | None
    mode: CashOutMode

    @property
    def request(self) -> rules.Request:
        return (self.agent_id, self.villager_id, self.amount_minor, self.device_id)

    def consent_terms(self, purpose: Purpose) -> dict[str, Any]:
        """What the villager's consent must name, as keyword arguments."""
        return {
            "villager_id": self.villager_id,
            "purpose": purpose,
            "amount_minor": self.amount_minor,
            "agent_id": self.agent_id,
        }


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


def consented(tx: Tx, consent: Consent | None, purpose: Purpose, asked: Asked) -> Consent:
    """Use the villager's consent for this cash-out at its agent (once; see
    :func:`ledger.flows.consent.require_in`)."""
    require_in(tx, consent, used_for=asked.cash_out_id, **asked.consent_terms(purpose))
    assert consent is not None  # require_in refuses None
    return consent


def replay_first(led: Ledger, asked: Asked) -> CashOut | None:
    """The stored cash-out of a replayed request, before any consent is looked at."""
    check_id(asked.cash_out_id, "cash_out_id")
    return led.transact(
        lambda tx: rules.replayed_cash_out(
            CashOutRepository(tx), asked.cash_out_id, asked.mode, asked.request
        )
    )


def answered(
    led: Ledger,
    asked: Asked,
    consent_of: Callable[[], Consent | None],
    work_in: Callable[[Tx, Consent | None], CashOut],
) -> CashOut:
    """A cash-out at the ledger level: a replay answers as before without asking for
    consent again (its code is spent); else ``consent_of()`` (its own transaction), then
    ``work_in`` with that consent in one transaction."""
    replayed = replay_first(led, asked)
    if replayed is not None:
        return replayed
    given = consent_of()
    return led.transact(lambda tx: work_in(tx, given))


def replayed_in(repository: CashOutRepository, asked: Asked) -> CashOut | None:
    """Check the request's ids and amount; the stored cash-out a replay answers, if any
    (``cash_out_id_reused`` when the id was another request)."""
    check_id(asked.cash_out_id, "cash_out_id")
    check_id(asked.agent_id, "agent_id")
    check_id(asked.villager_id, "villager_id")
    check_amount(asked.amount_minor)
    return rules.replayed_cash_out(repository, asked.cash_out_id, asked.mode, asked.request)


def add_in(
    repository: CashOutRepository,
    asked: Asked,
    agent: Party,
    *,
    state: CashOutState,
    quote: fees.Quote | None,
    utc_day: int,
    expires_at_us: int | None = None,
) -> CashOut:
    """Store the cash-out the legs just moved, in the agent's currency."""
    new = NewCashOut(
        id=asked.cash_out_id,
        agent_id=asked.agent_id,
        villager_id=asked.villager_id,
        device_id=asked.device_id,
        currency=agent.currency,
        amount_minor=asked.amount_minor,
        quote=quote,
        mode=asked.mode,
        state=state,
        utc_day=utc_day,
        expires_at_us=expires_at_us,
    )
    return repository.add(new).cash_out


def checked(
    led: Ledger,
    asked: Asked,
    purpose: Purpose,
    *,
    caller_id: uuid.UUID,
    consent_code: str | None,
) -> Consent | None:
    """The consent ``consent_code`` gives (its own transaction), ``None`` for no code."""
    if consent_code is None:
        return None
    return check_code(led, caller_id=caller_id, code=consent_code, **asked.consent_terms(purpose))


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
