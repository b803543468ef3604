"""The lookups' functions (the package docstring, :mod:`ledger.flows.lookup`, says what
they guarantee). Each reads through the owning flow's functions or a published view."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ledger.core.errors import MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.core.values import Account, Transfer
from ledger.flows import agent_float, events, orders, parties, proposals, settlement, suspense
from ledger.flows.agent_float import FloatStatus
from ledger.flows.agent_float import repository as float_rows
from ledger.flows.errors import NotFound, Refused
from ledger.flows.events import Event
from ledger.flows.lookup import repository
from ledger.flows.orders import Order
from ledger.flows.parties import AccountOwner
from ledger.flows.settlement import repository as settlement_rows
from ledger.flows.suspense import repository as suspense_rows
from ledger.flows.villagers import find_villager_by_phone
from ledger.limits import API_PAGE_SIZE_MAX

T = TypeVar("T")

QUERY_LENGTH_MAX = 128
"""The longest text a search takes (an id, a phone number, a provider's reference)."""
HITS_PER_KIND_MAX = 20
"""The most objects of one kind a search by reference answers."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One object a search found: its ``kind`` (party, account, transfer, order,
    proposal, payout, suspense_item), its id, and how it matched (id, phone, reference)."""

    kind: str
    id: uuid.UUID
    matched: str
    label: str
    currency: str | None = None
    amount_minor: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """A transfer touching the account and the account's posted counters right after it
    (minor units); a hold moves no posted money, so its counters are the ones before."""

    transfer: Transfer
    debits_posted_after: int
    credits_posted_after: int


@dataclass(frozen=True, slots=True)
class AccountHistory:
    account: Account
    owner: AccountOwner | None
    lines: list[HistoryLine]
    has_more: bool


@dataclass(frozen=True, slots=True)
class OrderTimeline:
    order: Order
    events: list[Event]
    has_more: bool


def _or_none(read: Callable[[], T]) -> T | None:
    try:
        return read()
    except NotFound:
        return None


def _by_id(tx: Tx, found_id: uuid.UUID) -> list[Hit]:
    hits: list[Hit] = []
    party = parties.find_party(tx, found_id)
    if party is not None:
        hits.append(
            Hit("party", party.id, "id", f"{party.kind.value} {party.name}", party.currency)
        )
    for account in tx.lookup_accounts([found_id]):
        hits.append(Hit("account", account.id, "id", f"code {account.code}", account.currency))
    order = _or_none(lambda: orders.get_order_in(tx, order_id=found_id))
    if order is not None:
        hits.append(
            Hit("order", order.id, "id", order.state.value, order.currency, order.amount_minor)
        )
    proposal = _or_none(lambda: proposals.get_in(tx, found_id))
    if proposal is not None:
        hits.append(Hit("proposal", proposal.id, "id", f"{proposal.kind} {proposal.state.value}"))
    payout = _or_none(lambda: settlement.get_payout_in(tx, payout_id=found_id))
    if payout is not None:
        hits.append(_payout_hit(payout, "id"))
    item = _or_none(lambda: suspense.get_suspense_in(tx, suspense_id=found_id))
    if item is not None:
        hits.append(_suspense_hit(item, "id"))
    return hits


def _payout_hit(payout: settlement.Payout, matched: str) -> Hit:
    label = f"{payout.provider} {payout.state.value}"
    return Hit("payout", payout.id, matched, label, payout.currency, payout.amount_minor)


def _suspense_hit(item: suspense_rows.SuspenseItem, matched: str) -> Hit:
    label = f"{item.provider} {item.provider_reference} {item.state.value}"
    return Hit("suspense_item", item.id, matched, label, item.currency, item.amount_minor)


def _by_reference(tx: Tx, text: str) -> list[Hit]:
    payouts = settlement_rows.payouts_with_reference(tx, text, limit=HITS_PER_KIND_MAX)
    items = suspense_rows.with_reference(tx, text, limit=HITS_PER_KIND_MAX)
    return [_payout_hit(p, "reference") for p in payouts] + [
        _suspense_hit(i, "reference") for i in items
    ]


def _by_phone(led: Ledger, text: str) -> list[Hit]:
    try:
        villager = find_villager_by_phone(led, text)
    except Refused:
        return []
    if villager is None:
        return []
    label = f"villager {villager.name} {villager.phone}"
    return [Hit("party", villager.id, "phone", label, villager.currency)]


def search(led: Ledger, text: str) -> list[Hit]:
    """The objects ``text`` names exactly: by id (a party, an account, a transfer, an
    order, a proposal, a payout, a suspense item), a villager by phone number (any
    spelling :func:`~ledger.flows.villagers.normalise_phone` takes), payouts and suspense
    items by the provider's reference. For the back office (auditors and operators, who
    read everything); :class:`MalformedRequest` for empty text or text over
    :data:`QUERY_LENGTH_MAX` characters."""
    text = text.strip() if isinstance(text, str) else ""
    if not 1 <= len(text) <= QUERY_LENGTH_MAX:
        raise MalformedRequest(f"a search is 1..{QUERY_LENGTH_MAX} characters")
    hits: list[Hit] = []
    found_id = _uuid_or_none(text)
    if found_id is not None:
        hits += led.transact(lambda tx: _by_id(tx, found_id))
        hits += [
            Hit("transfer", t.id, "id", f"code {t.code}", t.currency, t.amount)
            for t in led.lookup_transfers([found_id])
        ]
        return hits
    if text.startswith("+"):
        hits += _by_phone(led, text)
    return hits + led.transact(lambda tx: _by_reference(tx, text))


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def account_history(
    led: Ledger, *, account_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> AccountHistory | None:
    """The account, who holds it, and a page of its transfers in the order applied (after
    the transfer ``after``) each with the account's posted counters right after it.
    :class:`NotFound` ``account_not_found``; ``None`` when ``after`` names no transfer of
    the account (a caller's bad cursor, as :func:`ledger.flows.proposals.page` answers)."""
    _check_limit(limit)
    found = led.lookup_accounts([account_id])
    if not found:
        raise NotFound("account_not_found", f"no account {account_id}")
    page = led.account_transfers(account_id, after=after, limit=limit + 1)
    if after is not None and not page and not _touches(led, account_id, after):
        return None
    shown = page[:limit]

    def work(tx: Tx) -> tuple[AccountOwner | None, dict[uuid.UUID, tuple[int, int]]]:
        owner = parties.account_owners(tx, [account_id]).get(account_id)
        return owner, repository.counters_after(tx, account_id, [t.id for t in shown])

    owner, after_each = led.transact(work)
    lines = [HistoryLine(t, *after_each[t.id]) for t in shown]
    return AccountHistory(found[0], owner, lines, len(page) > limit)


def _touches(led: Ledger, account_id: uuid.UUID, transfer_id: uuid.UUID) -> bool:
    return any(
        account_id in (t.debit_account_id, t.credit_account_id)
        for t in led.lookup_transfers([transfer_id])
    )


def _check_limit(limit: int) -> None:
    if type(limit) is not int or not 1 <= limit <= API_PAGE_SIZE_MAX:
        raise MalformedRequest(f"limit must be 1..{API_PAGE_SIZE_MAX}")


def order_timeline(
    led: Ledger, *, order_id: uuid.UUID, after_seq: int, limit: int
) -> OrderTimeline:
    """The order and a page of its events (``order.paid``, ``order.dispatched`` ...) in
    the order they happened, after the event ``after_seq``. :class:`NotFound`
    ``order_not_found``."""
    _check_limit(limit)

    def work(tx: Tx) -> OrderTimeline:
        order = orders.get_order_in(tx, order_id=order_id)
        found = events.read_events(tx, after_seq=after_seq, limit=limit + 1, subject_id=order_id)
        return OrderTimeline(order, found[:limit], len(found) > limit)

    return led.transact(work)


def float_alarms(
    led: Ledger, *, after: uuid.UUID | None, limit: int
) -> tuple[list[FloatStatus], bool]:
    """Agents whose float available fell below their threshold and has not come back
    (their ``float.low`` rang and is not re-armed), in agent id order after ``after``, with
    their float now; and whether more follow."""
    _check_limit(limit)

    def work(tx: Tx) -> tuple[list[FloatStatus], bool]:
        low = float_rows.select_low(tx, after=after, limit=limit + 1)
        shown = [agent_float.get_float_in(tx, agent_id=a) for a in low[:limit]]
        return shown, len(low) > limit

    return led.transact(work)


__all__ = [
    "HITS_PER_KIND_MAX",
    "QUERY_LENGTH_MAX",
    "AccountHistory",
    "HistoryLine",
    "Hit",
    "OrderTimeline",
    "account_history",
    "float_alarms",
    "order_timeline",
    "search",
]
