"""The commission flow's service: pay a month's commission, read payouts and an agent's
commission (the package docstring, :mod:`ledger.flows.commission`, says what they
guarantee; the SQL is in its repository)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ledger.core import currency as iso4217
from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer
from ledger.flows import events, parties, proposals
from ledger.flows.agent_float.checks import check_id
from ledger.flows.commission import repository
from ledger.flows.commission.model import (
    COMMISSION_PAYOUT_CODE,
    PAID_MONTHS_SHOWN,
    AgentCommission,
    CommissionPayout,
    Destination,
    Earning,
    Month,
    PayoutLine,
    line_id_of,
    payout_id_of,
    transfer_id_of,
)
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Role
from ledger.flows.proposals import Proposal
from ledger.limits import LIST_PAGE_SIZE_MAX as PAYOUTS_PAGE_MAX

PAY_CHUNK = 1000
COMMISSION_PAYOUT = "commission_payout"
"""The proposal kind of a payout to a provider (money leaving the platform):
:func:`request_payout`."""
"""Agents read and paid per core call while a month is paid (all in one transaction)."""


# -- checks -------------------------------------------------------------------------------


def _check_currency(value: object) -> str:
    if not isinstance(value, str) or not iso4217.is_supported(value):
        raise Refused("currency_not_supported", f"{value!r} is not an active ISO 4217 code")
    return value


def _check_destination(to: object, provider: object) -> tuple[Destination, str | None]:
    """``float`` without a provider, or ``provider`` with a well-formed one."""
    if to not in (Destination.FLOAT.value, Destination.PROVIDER.value):
        raise Refused("destination_invalid", "to is float or provider")
    destination = Destination(str(to))
    if destination is Destination.FLOAT:
        if provider is not None:
            raise Refused("destination_invalid", "a provider is named only with to=provider")
        return destination, None
    if not isinstance(provider, str):
        raise Refused("provider_required", "to=provider names the provider that pays")
    parties.provider_role(provider)  # refuses a malformed provider name
    return destination, provider


def _check_limit(value: object, limit_max: int) -> int:
    if type(value) is not int or not 1 <= value <= limit_max:
        raise MalformedRequest(f"limit must be 1..{limit_max}")
    return value


def _payout_payload(payout: CommissionPayout) -> dict[str, Any]:
    return {
        "payout_id": str(payout.id),
        "month": payout.month,
        "currency": payout.currency,
        "to": payout.destination.value,
        "provider": payout.provider,
        "lines_count": payout.lines_count,
        "total_minor": payout.total_minor,
    }


def _line_payload(line: PayoutLine, payout: CommissionPayout) -> dict[str, Any]:
    return {
        "payout_id": str(line.payout_id),
        "month": line.month,
        "agent_id": str(line.agent_id),
        "currency": line.currency,
        "to": payout.destination.value,
        "provider": payout.provider,
        "earned_minor": line.earned_minor,
        "amount_minor": line.amount_minor,
        "transfer_id": str(line.transfer_id),
    }


# -- paying a month -----------------------------------------------------------------------


def pay_month_in(
    tx: Tx,
    *,
    month: str,
    currency: str,
    to: Destination | str,
    provider: str | None = None,
    made_by: uuid.UUID | None = None,
) -> CommissionPayout:
    """Pay every agent of ``currency`` the commission it earned in ``month`` (UTC), to its
    float or to ``provider``'s clearing account. Once per (month, currency): asking again,
    with any destination, answers the first payout unchanged. A month not over yet is
    refused (``month_not_over``). (:func:`pay_month` runs it in a transaction of its own.)"""
    period = Month.parse(month)
    currency = _check_currency(currency)
    destination, provider = _check_destination(to, provider)
    payout_id = payout_id_of(period.text, currency)
    existing = repository.read_payout(tx, payout_id)
    if existing is not None:
        return existing
    if tx.now < period.end:
        raise Refused("month_not_over", f"{period.text} ends at {period.end.isoformat()} (UTC)")
    parties.ensure_platform(tx, currency)
    clearing = None if provider is None else parties.provider_clearing(tx, currency, provider)
    claimed = repository.claim_payout(
        tx,
        payout_id=payout_id,
        month=period.text,
        currency=currency,
        destination=destination,
        provider=provider,
        made_by=made_by,
    )
    if not claimed:  # another transaction paid this month meanwhile: answer its payout
        return repository.reread_payout(tx, payout_id)
    earned = _month_earnings(tx, period, currency)
    made: list[PayoutLine] = []
    for start in range(0, len(earned), PAY_CHUNK):
        made += _pay_chunk(
            tx, payout_id, period, currency, clearing, earned[start : start + PAY_CHUNK]
        )
    repository.set_totals(
        tx, payout_id, lines_count=len(made), total_minor=sum(x.amount_minor for x in made)
    )
    return _emit_paid(tx, payout_id, made)


pay_month = transactional(pay_month_in)


def pay_month_report(
    led: Ledger,
    *,
    month: str,
    currency: str,
    to: Destination | str,
    provider: str | None = None,
    made_by: uuid.UUID | None = None,
    lines_limit: int = PAYOUTS_PAGE_MAX,
) -> tuple[CommissionPayout, list[PayoutLine]]:
    """:func:`pay_month_in` and the first ``lines_limit`` (1..1000) lines of the payout
    (in agent id order), in one transaction: who got what."""
    _check_limit(lines_limit, PAYOUTS_PAGE_MAX)

    def work(tx: Tx) -> tuple[CommissionPayout, list[PayoutLine]]:
        payout = pay_month_in(
            tx, month=month, currency=currency, to=to, provider=provider, made_by=made_by
        )
        lines = repository.select_lines(
            tx, payout_id=payout.id, limit=lines_limit, after_agent=None
        )
        return payout, lines

    return led.transact(work)


def _line_of(
    payout_id: uuid.UUID,
    period: Month,
    currency: str,
    earning: Earning,
    amount_minor: int,
    destination_account_id: uuid.UUID,
    now: datetime,
) -> PayoutLine:
    line_id = line_id_of(payout_id, earning.agent_id)
    return PayoutLine(
        id=line_id,
        payout_id=payout_id,
        month=period.text,
        agent_id=earning.agent_id,
        currency=currency,
        commission_account_id=earning.commission_account_id,
        destination_account_id=destination_account_id,
        earned_minor=earning.earned_minor,
        amount_minor=amount_minor,
        transfer_id=transfer_id_of(line_id),
        created_at=now,
    )


def _owed(tx: Tx, earned: Sequence[Earning]) -> list[tuple[Earning, int]]:
    """Each agent that earned something and holds it, with what it is paid: the month's
    earnings, or what its commission account still holds when that is less."""
    owing = [e for e in earned if e.earned_minor > 0]
    accounts = {a.id: a for a in tx.lookup_accounts([e.commission_account_id for e in owing])}
    paid: list[tuple[Earning, int]] = []
    for earning in owing:
        account = accounts.get(earning.commission_account_id)
        if account is None:
            raise InvariantViolation(f"agent {earning.agent_id} has no commission account")
        held = account.credits_posted - account.debits_posted - account.debits_pending
        amount = min(earning.earned_minor, held)
        if amount > 0:
            paid.append((earning, amount))
    return paid


def _lines_of(
    tx: Tx,
    payout_id: uuid.UUID,
    period: Month,
    currency: str,
    clearing: uuid.UUID | None,
    earned: Sequence[Earning],
) -> list[PayoutLine]:
    """A line for each agent :func:`_owed` pays."""
    return [
        _line_of(
            payout_id,
            period,
            currency,
            earning,
            amount,
            clearing or parties.account_id(earning.agent_id, Role.FLOAT),
            tx.now,
        )
        for earning, amount in _owed(tx, earned)
    ]


def _pay_chunk(
    tx: Tx,
    payout_id: uuid.UUID,
    period: Month,
    currency: str,
    clearing: uuid.UUID | None,
    earned: Sequence[Earning],
) -> list[PayoutLine]:
    """Pay these agents; the lines written."""
    lines = _lines_of(tx, payout_id, period, currency, clearing, earned)
    if not lines:
        return []
    transfers = [
        Transfer(
            id=line.transfer_id,
            debit_account_id=line.commission_account_id,
            credit_account_id=line.destination_account_id,
            amount=line.amount_minor,
            currency=currency,
            code=COMMISSION_PAYOUT_CODE,
            metadata={"commission_payout_id": str(payout_id), "month": period.text},
        )
        for line in lines
    ]
    made: list[PayoutLine] = []
    for line, result in zip(lines, tx.create_transfers(transfers), strict=True):
        if result.status is Status.EXCEEDS_CREDITS:
            continue  # the commission shrank since we read it (a refund racing the payout)
        if result.status is not Status.CREATED:
            raise InvariantViolation(f"commission payout {line.transfer_id}: {result.status}")
        repository.insert_line(tx, line)
        made.append(line)
    return made


def _emit_paid(tx: Tx, payout_id: uuid.UUID, made: Sequence[PayoutLine]) -> CommissionPayout:
    """The events of a payout: each agent's ``commission.paid``, then the payout's."""
    payout = repository.reread_payout(tx, payout_id)
    for line in made:
        events.emit(
            tx,
            events.COMMISSION_PAID,
            _line_payload(line, payout),
            party_id=line.agent_id,
            subject_id=line.id,
        )
    events.emit(
        tx,
        events.COMMISSION_PAYOUT_MADE,
        _payout_payload(payout),
        party_id=parties.platform_id(payout.currency),
        subject_id=payout.id,
    )
    return payout


# -- maker-checker: a payout to a provider is proposed, another operator approves it --------


def _month_earnings(tx: Tx, period: Month, currency: str) -> list[Earning]:
    return repository.earnings(
        tx,
        currency=currency,
        start_us=to_us(period.start),
        end_us=to_us(period.end),
        payout_code=COMMISSION_PAYOUT_CODE,
    )


def _proposal_payload(tx: Tx, period: Month, currency: str, provider: str) -> dict[str, Any]:
    """What the checker sees: the month, where the money goes, and what would be paid
    if approved now (the payout pays what is owed when it is approved)."""
    owed = _owed(tx, _month_earnings(tx, period, currency))
    return {
        "month": period.text,
        "currency": currency,
        "to": Destination.PROVIDER.value,
        "provider": provider,
        "agents_count": len(owed),
        "total_minor": sum(amount for _, amount in owed),
    }


def _check_none_waiting(tx: Tx, period: Month, currency: str, proposal_id: uuid.UUID) -> None:
    naming = {"month": period.text, "currency": currency}
    waiting = proposals.pending_in(tx, kind=COMMISSION_PAYOUT, naming=naming)
    others = [p.id for p in waiting if p.id != proposal_id]
    if others:
        raise Conflict(
            "commission_payout_proposed",
            f"a payout of {period.text} {currency} is proposed already ({others[0]}):"
            " approve or reject that proposal",
        )


def _replayed(tx: Tx, proposal_id: uuid.UUID) -> Proposal | None:
    try:
        return proposals.get_in(tx, proposal_id)
    except NotFound:
        return None


def _propose_payout(
    led: Ledger,
    tx: Tx,
    *,
    proposal_id: uuid.UUID,
    period: Month,
    currency: str,
    provider: str,
    operator_id: uuid.UUID,
) -> Proposal:
    """A proposal to pay the month through ``provider`` (a replay answers it as made)."""
    made = _replayed(tx, proposal_id)
    if made is not None:
        asked = (COMMISSION_PAYOUT, period.text, currency, provider, operator_id)
        found = made.payload
        if (made.kind, found.get("month"), found.get("currency"), found.get("provider"),
                made.proposed_by) != asked:  # fmt: skip
            raise Conflict("proposal_exists_different", f"proposal {proposal_id} differs")
        return made
    if tx.now < period.end:
        raise Refused("month_not_over", f"{period.text} ends at {period.end.isoformat()} (UTC)")
    _check_none_waiting(tx, period, currency, proposal_id)
    return proposals.propose(
        led,
        proposal_id=proposal_id,
        kind=COMMISSION_PAYOUT,
        payload=_proposal_payload(tx, period, currency, provider),
        proposed_by=operator_id,
    )


def request_payout(
    led: Ledger,
    *,
    proposal_id: uuid.UUID,
    month: str,
    currency: str,
    to: Destination | str,
    provider: str | None = None,
    operator_id: uuid.UUID,
    lines_limit: int = PAYOUTS_PAGE_MAX,
) -> tuple[CommissionPayout, list[PayoutLine]] | Proposal:
    """An operator asks to pay ``month``'s commission in ``currency`` (one transaction):

    - the month was paid already: that payout and its first ``lines_limit`` lines, as
      :func:`pay_month_report` answers it (nothing moves);
    - ``to=float``: paid at once by this operator (:func:`pay_month_report`): the money
      moves between two accounts of each agent and stays inside the platform;
    - ``to=provider``: money leaves the platform, so a proposal (``proposal_id``, kind
      :data:`COMMISSION_PAYOUT`) that another operator approves
      (:func:`ledger.flows.proposals.approve`); the payout is made in the approval's
      transaction with ``made_by`` the approver (the maker is the proposal's).

    While a payout of the month waits for approval, another request for it (to a float
    or a provider, by anyone) is a :class:`Conflict` ``commission_payout_proposed``."""
    period = Month.parse(month)
    currency = _check_currency(currency)
    destination, provider = _check_destination(to, provider)
    _check_limit(lines_limit, PAYOUTS_PAGE_MAX)

    def work(tx: Tx) -> tuple[CommissionPayout, list[PayoutLine]] | Proposal:
        existing = repository.read_payout(tx, payout_id_of(period.text, currency))
        if existing is not None:
            lines = repository.select_lines(
                tx, payout_id=existing.id, limit=lines_limit, after_agent=None
            )
            return existing, lines
        if provider is not None:
            return _propose_payout(
                led, tx, proposal_id=proposal_id, period=period, currency=currency,
                provider=provider, operator_id=operator_id,
            )  # fmt: skip
        _check_none_waiting(tx, period, currency, proposal_id)
        return pay_month_report(
            led, month=period.text, currency=currency, to=destination, made_by=operator_id,
            lines_limit=lines_limit,
        )  # fmt: skip

    return led.transact(work)


def _apply_payout(tx: Tx, payload: Mapping[str, Any], approver: uuid.UUID) -> dict[str, Any]:
    """Pay the month in the approval's transaction, as the approver; the payout as made.
    A month paid meanwhile (to the floats, say) refuses the approval,
    ``commission_month_paid`` (422): nothing moves, the proposal stays proposed for an
    operator to reject."""
    month, currency = payload["month"], payload["currency"]
    if repository.read_payout(tx, payout_id_of(month, currency)) is not None:
        raise Refused(
            "commission_month_paid",
            f"{month} {currency} was paid already: nothing to pay; reject this proposal",
        )
    payout = pay_month_in(
        tx,
        month=month,
        currency=currency,
        to=Destination.PROVIDER,
        provider=payload["provider"],
        made_by=approver,
    )
    return _payout_payload(payout) | {"made_by": str(approver)}


proposals.register_as(COMMISSION_PAYOUT, _apply_payout)


# -- reading ------------------------------------------------------------------------------


def get_payout_in(tx: Tx, *, payout_id: uuid.UUID) -> CommissionPayout:
    """The payout, or :class:`~ledger.flows.errors.NotFound`. (:func:`get_payout` runs it
    in a transaction of its own.)"""
    payout = repository.read_payout(tx, check_id(payout_id, "payout_id"))
    if payout is None:
        raise NotFound("commission_payout_not_found", f"no commission payout {payout_id}")
    return payout


get_payout = transactional(get_payout_in)


def list_payouts(
    led: Ledger,
    *,
    currency: str | None = None,
    limit: int = PAYOUTS_PAGE_MAX,
    starting_after: uuid.UUID | None = None,
) -> list[CommissionPayout]:
    """Payouts by month (then currency), optionally of one currency, after the cursor
    ``starting_after`` (a payout id; an unknown one answers ``[]``), at most ``limit``
    (1..1000)."""
    _check_limit(limit, PAYOUTS_PAGE_MAX)
    if starting_after is not None:
        check_id(starting_after, "starting_after")
    return led.transact(
        lambda tx: repository.select_payouts(
            tx, currency=currency, limit=limit, starting_after=starting_after
        )
    )


def payout_lines(
    led: Ledger,
    *,
    payout_id: uuid.UUID,
    limit: int = PAYOUTS_PAGE_MAX,
    after_agent: uuid.UUID | None = None,
) -> tuple[CommissionPayout, list[PayoutLine]]:
    """The payout and at most ``limit`` (1..1000) of its lines in agent id order, after
    the agent ``after_agent``; an unknown payout answers :class:`NotFound`."""
    _check_limit(limit, PAYOUTS_PAGE_MAX)
    if after_agent is not None:
        check_id(after_agent, "after_agent")

    def read(tx: Tx) -> tuple[CommissionPayout, list[PayoutLine]]:
        payout = get_payout_in(tx, payout_id=payout_id)
        found = repository.select_lines(
            tx, payout_id=payout.id, limit=limit, after_agent=after_agent
        )
        return payout, found

    return led.transact(read)


def agent_commission_in(tx: Tx, *, agent_id: uuid.UUID) -> AgentCommission:
    """What the agent earned this month so far (UTC), what it holds unpaid, and its paid
    months, newest first; :class:`NotFound` ``agent_not_found`` for no such agent.
    (:func:`agent_commission` runs it in a transaction of its own.)"""
    agent = parties.get_party(tx, check_id(agent_id, "agent_id"), Kind.AGENT)
    period = Month.of(tx.now)
    [earned] = repository.earnings(
        tx,
        currency=agent.currency,
        start_us=to_us(period.start),
        end_us=tx.now_us + 1,
        payout_code=COMMISSION_PAYOUT_CODE,
        agent_id=agent.id,
    )
    [account] = tx.lookup_accounts([agent.account(Role.COMMISSION)])
    return AgentCommission(
        agent_id=agent.id,
        currency=agent.currency,
        month=period.text,
        earned_this_month_minor=earned.earned_minor,
        unpaid_minor=account.credits_posted - account.debits_posted - account.debits_pending,
        paid=tuple(repository.lines_of_agent(tx, agent.id, limit=PAID_MONTHS_SHOWN)),
    )


agent_commission = transactional(agent_commission_in)
