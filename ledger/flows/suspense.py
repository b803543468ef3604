"""Suspense: provider money nobody could match, parked until an operator places it.

Money that arrives at a provider for an unknown order or wallet (a villager paid to the
wrong account number, a reference nobody recognises) is still the platform's to account
for. :func:`park` records it with the provider's reference (unique per provider: one
statement line parks once) and moves it, in minor units of its currency::

    park       platform provider_clearing:<PROVIDER>  ->  platform suspense
    reassign   platform suspense  ->  a villager's wallet, or a storefront's proceeds
    return     platform suspense  ->  platform provider_clearing:<PROVIDER>  (sent back)

(core ``code`` :data:`PARK_CODE`, :data:`REASSIGN_CODE`, :data:`RETURN_CODE`). An item is
``parked``, then once ``reassigned`` (an operator found whose it is) or ``returned`` (sent
back through the provider), never both.

Idempotent by the item's id: parking again with the same details answers the item; with
other details, or another item's provider reference, :class:`~ledger.flows.errors.Conflict`.
Reassigning or returning a resolved item with the same request answers it unchanged; any
other resolution of a resolved item (reassigning it elsewhere, returning a reassigned
one) is a :class:`~ledger.flows.errors.Conflict` (``suspense_already_resolved``). Every
write locks the item row first, so two operators racing resolve it once.

A reassignment is an operator's correction, not a villager's transaction: it does not
count against the villager's per-transaction or daily limits. It is still a credit of the
wallet, so the tier's maximum balance holds (``limit_exceeded_balance``, nothing moves:
the item stays parked) and the villager gets a ``wallet.receipt``
(:mod:`ledger.flows.wallets`).

Events (outbox, same transaction): ``suspense.parked`` and ``suspense.returned``
(``party_id`` = the platform of the currency), ``suspense.reassigned`` (``party_id`` = the
party it went to).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core import currency as iso4217
from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.store import from_us
from ledger.core.tx import Row, Tx
from ledger.core.values import Status, Transfer
from ledger.flows import events, parties, wallets
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Role

__all__ = [
    "AMOUNT_MAX_MINOR",
    "PARK_CODE",
    "REASSIGN_CODE",
    "RETURN_CODE",
    "SUSPENSE_PAGE_MAX",
    "SuspenseItem",
    "SuspenseState",
    "get_suspense",
    "get_suspense_in",
    "list_suspense",
    "park",
    "park_in",
    "reassign",
    "reassign_in",
    "return_to_provider",
    "return_to_provider_in",
]

PARK_CODE = 911
"""Core transfer ``code``: provider clearing into suspense."""
REASSIGN_CODE = 912
"""Suspense to the account it belonged to."""
RETURN_CODE = 913
"""Suspense back to the provider's clearing account."""

AMOUNT_MAX_MINOR = 2**53 - 1
SUSPENSE_PAGE_MAX = 1000
REFERENCE_LENGTH_MAX = 128
NOTE_LENGTH_MAX = 500


class SuspenseState(StrEnum):
    PARKED = "parked"
    REASSIGNED = "reassigned"
    RETURNED = "returned"


@dataclass(frozen=True, slots=True)
class SuspenseItem:
    """Provider money in suspense; ``amount_minor`` in minor units of ``currency``."""

    id: uuid.UUID
    currency: str
    provider: str
    provider_reference: str
    amount_minor: int
    note: str | None
    state: SuspenseState
    park_transfer_id: uuid.UUID
    target_party_id: uuid.UUID | None
    """Reassigned: the villager or storefront it went to."""
    target_account_id: uuid.UUID | None
    """Reassigned: the wallet or proceeds account it went to."""
    resolve_transfer_id: uuid.UUID | None
    return_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


_COLUMNS = (
    "id, currency, provider, provider_reference, amount_minor, note, state, park_transfer_id,"
    " target_party_id, target_account_id, resolve_transfer_id, return_reason, created_at_us,"
    " resolved_at_us"
)


def _item(row: Row) -> SuspenseItem:
    return SuspenseItem(
        id=row[0],
        currency=row[1],
        provider=row[2],
        provider_reference=row[3],
        amount_minor=row[4],
        note=row[5],
        state=SuspenseState(row[6]),
        park_transfer_id=row[7],
        target_party_id=row[8],
        target_account_id=row[9],
        resolve_transfer_id=row[10],
        return_reason=row[11],
        created_at=from_us(row[12]),
        resolved_at=None if row[13] is None else from_us(row[13]),
    )


def _read(tx: Tx, suspense_id: uuid.UUID, *, lock: bool) -> SuspenseItem | None:
    row = tx.one(
        f"SELECT {_COLUMNS} FROM suspense_items WHERE id = :id{tx.for_update if lock else ''}",
        {"id": suspense_id},
    )
    return None if row is None else _item(row)


def _check_id(value: object, name: str) -> uuid.UUID:
    if not isinstance(value, uuid.UUID):
        raise MalformedRequest(f"{name} must be a UUID")
    return value


def _check_text(value: object, name: str, length_max: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > length_max:
        raise Refused(f"{name}_invalid", f"{name} is 1..{length_max} characters, not blank")
    return value


def _leg_id(suspense_id: uuid.UUID, name: str) -> uuid.UUID:
    return uuid.uuid5(suspense_id, f"suspense:{name}")


def _move(
    tx: Tx,
    item_id: uuid.UUID,
    name: str,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount: int,
    currency: str,
    code: int,
) -> uuid.UUID:
    transfer = Transfer(
        id=_leg_id(item_id, name),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        currency=currency,
        code=code,
        metadata={"suspense_id": str(item_id), "leg": name},
    )
    results = tx.create_transfers([transfer])
    if results[0].status is not Status.CREATED:
        # neither suspense nor a clearing account has a limit, and a credit never breaks one
        raise InvariantViolation(f"suspense {item_id} {name} refused: {results[0].status}")
    # a reassignment into a wallet: the KYC maximum balance, and the villager's receipt
    wallets.after_transfers_in(
        tx, [transfer], results, reference=wallets.Reference("suspense", item_id)
    )
    return transfer.id


def _payload(item: SuspenseItem) -> dict[str, Any]:
    return {
        "suspense_id": str(item.id),
        "currency": item.currency,
        "provider": item.provider,
        "provider_reference": item.provider_reference,
        "amount_minor": item.amount_minor,
        "state": item.state.value,
        "target_party_id": None if item.target_party_id is None else str(item.target_party_id),
        "return_reason": item.return_reason,
    }


# -- parking ------------------------------------------------------------------------------


def park(
    led: Ledger,
    *,
    suspense_id: uuid.UUID,
    currency: str,
    provider: str,
    provider_reference: str,
    amount_minor: int,
    note: str | None = None,
) -> SuspenseItem:
    """Park provider money nobody could match: ``provider``'s clearing account ->
    the platform's suspense account; idempotent by ``suspense_id``."""
    return led.transact(
        lambda tx: park_in(
            tx,
            suspense_id=suspense_id,
            currency=currency,
            provider=provider,
            provider_reference=provider_reference,
            amount_minor=amount_minor,
            note=note,
        )
    )


def park_in(
    tx: Tx,
    *,
    suspense_id: uuid.UUID,
    currency: str,
    provider: str,
    provider_reference: str,
    amount_minor: int,
    note: str | None = None,
) -> SuspenseItem:
    """:func:`park` inside a transaction someone else opened."""
    suspense_id = _check_id(suspense_id, "suspense_id")
    if not isinstance(currency, str) or not iso4217.is_supported(currency):
        raise Refused("currency_not_supported", f"{currency!r} is not an active ISO 4217 code")
    if not isinstance(provider, str):
        raise MalformedRequest("provider must be a string")
    parties.provider_role(provider)  # refuses a malformed provider name
    reference = _check_text(provider_reference, "provider_reference", REFERENCE_LENGTH_MAX)
    if type(amount_minor) is not int or not 1 <= amount_minor <= AMOUNT_MAX_MINOR:
        raise Refused("amount_invalid", f"amount_minor must be an integer in 1..{AMOUNT_MAX_MINOR}")
    if note is not None:
        _check_text(note, "note", NOTE_LENGTH_MAX)
    existing = _read(tx, suspense_id, lock=False)
    if existing is not None:
        if (
            existing.currency,
            existing.provider,
            existing.provider_reference,
            existing.amount_minor,
            existing.note,
        ) != (currency, provider, reference, amount_minor, note):
            raise Conflict("suspense_id_reused", f"suspense {suspense_id} parked other money")
        return existing
    other = tx.one(
        "SELECT id FROM suspense_items WHERE provider = :p AND provider_reference = :r",
        {"p": provider, "r": reference},
    )
    if other is not None:
        raise Conflict(
            "provider_reference_parked", f"{provider} {reference!r} is parked as {other[0]}"
        )
    clearing = parties.provider_clearing(tx, currency, provider)
    platform = parties.ensure_platform(tx, currency)
    park_id = _move(
        tx,
        suspense_id,
        "park",
        clearing,
        platform.account(Role.SUSPENSE),
        amount_minor,
        currency,
        PARK_CODE,
    )
    tx.execute(
        f"INSERT INTO suspense_items ({_COLUMNS}) VALUES (:id, :currency, :provider, :reference,"
        " :amount, :note, 'parked', :park, NULL, NULL, NULL, NULL, :now, NULL)",
        {
            "id": suspense_id,
            "currency": currency,
            "provider": provider,
            "reference": reference,
            "amount": amount_minor,
            "note": note,
            "park": park_id,
            "now": tx.now_us,
        },
    )
    item = _read(tx, suspense_id, lock=False)
    assert item is not None  # just written in this transaction
    events.emit(
        tx, events.SUSPENSE_PARKED, _payload(item), party_id=platform.id, subject_id=item.id
    )
    return item


# -- resolving ----------------------------------------------------------------------------


def reassign(
    led: Ledger,
    *,
    suspense_id: uuid.UUID,
    to_villager_id: uuid.UUID | None = None,
    to_storefront_id: uuid.UUID | None = None,
) -> SuspenseItem:
    """Move a parked item to where it belonged: a villager's wallet or a storefront's
    proceeds (name exactly one)."""
    return led.transact(
        lambda tx: reassign_in(
            tx,
            suspense_id=suspense_id,
            to_villager_id=to_villager_id,
            to_storefront_id=to_storefront_id,
        )
    )


def reassign_in(
    tx: Tx,
    *,
    suspense_id: uuid.UUID,
    to_villager_id: uuid.UUID | None = None,
    to_storefront_id: uuid.UUID | None = None,
) -> SuspenseItem:
    """:func:`reassign` inside a transaction someone else opened."""
    suspense_id = _check_id(suspense_id, "suspense_id")
    if (to_villager_id is None) == (to_storefront_id is None):
        raise Refused("target_invalid", "name exactly one of to_villager_id, to_storefront_id")
    if to_villager_id is not None:
        party_id, kind, role = (
            _check_id(to_villager_id, "to_villager_id"),
            Kind.VILLAGER,
            Role.WALLET,
        )
    else:
        party_id = _check_id(to_storefront_id, "to_storefront_id")
        kind, role = Kind.STOREFRONT, Role.PROCEEDS
    item = _read(tx, suspense_id, lock=True)
    if item is None:
        raise NotFound("suspense_not_found", f"no suspense item {suspense_id}")
    target = parties.get_party(tx, party_id, kind)
    account = target.account(role)
    if item.state is not SuspenseState.PARKED:
        if item.state is SuspenseState.REASSIGNED and item.target_account_id == account:
            return item
        raise Conflict("suspense_already_resolved", f"suspense {suspense_id} is {item.state}")
    if target.currency != item.currency:
        raise Refused(
            "currency_mismatch", f"{kind} {party_id} holds {target.currency}, not {item.currency}"
        )
    suspense = parties.account_id(parties.platform_id(item.currency), Role.SUSPENSE)
    moved = _move(
        tx, item.id, "reassign", suspense, account, item.amount_minor, item.currency, REASSIGN_CODE
    )
    tx.execute(
        "UPDATE suspense_items SET state = 'reassigned', target_party_id = :party,"
        " target_account_id = :account, resolve_transfer_id = :t, resolved_at_us = :now"
        " WHERE id = :id",
        {"party": party_id, "account": account, "t": moved, "now": tx.now_us, "id": item.id},
    )
    done = _read(tx, item.id, lock=False)
    assert done is not None  # locked above
    events.emit(
        tx, events.SUSPENSE_REASSIGNED, _payload(done), party_id=party_id, subject_id=done.id
    )
    return done


def return_to_provider(led: Ledger, *, suspense_id: uuid.UUID, reason: str) -> SuspenseItem:
    """Send a parked item back through its provider (suspense -> the provider's clearing
    account), with the reason why."""
    return led.transact(
        lambda tx: return_to_provider_in(tx, suspense_id=suspense_id, reason=reason)
    )


def return_to_provider_in(tx: Tx, *, suspense_id: uuid.UUID, reason: str) -> SuspenseItem:
    """:func:`return_to_provider` inside a transaction someone else opened."""
    suspense_id = _check_id(suspense_id, "suspense_id")
    reason = _check_text(reason, "reason", NOTE_LENGTH_MAX)
    item = _read(tx, suspense_id, lock=True)
    if item is None:
        raise NotFound("suspense_not_found", f"no suspense item {suspense_id}")
    if item.state is not SuspenseState.PARKED:
        if item.state is SuspenseState.RETURNED and item.return_reason == reason:
            return item
        raise Conflict("suspense_already_resolved", f"suspense {suspense_id} is {item.state}")
    platform = parties.platform_id(item.currency)
    moved = _move(
        tx,
        item.id,
        "return",
        parties.account_id(platform, Role.SUSPENSE),
        parties.provider_clearing(tx, item.currency, item.provider),
        item.amount_minor,
        item.currency,
        RETURN_CODE,
    )
    tx.execute(
        "UPDATE suspense_items SET state = 'returned', return_reason = :reason,"
        " resolve_transfer_id = :t, resolved_at_us = :now WHERE id = :id",
        {"reason": reason, "t": moved, "now": tx.now_us, "id": item.id},
    )
    done = _read(tx, item.id, lock=False)
    assert done is not None  # locked above
    events.emit(tx, events.SUSPENSE_RETURNED, _payload(done), party_id=platform, subject_id=done.id)
    return done


# -- reading ------------------------------------------------------------------------------


def get_suspense(led: Ledger, *, suspense_id: uuid.UUID) -> SuspenseItem:
    """The item, or :class:`~ledger.flows.errors.NotFound`."""
    return led.transact(lambda tx: get_suspense_in(tx, suspense_id=suspense_id))


def get_suspense_in(tx: Tx, *, suspense_id: uuid.UUID) -> SuspenseItem:
    """:func:`get_suspense` inside a transaction someone else opened."""
    item = _read(tx, _check_id(suspense_id, "suspense_id"), lock=False)
    if item is None:
        raise NotFound("suspense_not_found", f"no suspense item {suspense_id}")
    return item


def list_suspense(
    led: Ledger,
    *,
    state: SuspenseState | None = None,
    provider: str | None = None,
    currency: str | None = None,
    limit: int = 100,
    starting_after: uuid.UUID | None = None,
) -> list[SuspenseItem]:
    """Items oldest first, optionally in one state, of one provider and currency, after
    the cursor ``starting_after`` (an item id; an unknown one answers ``[]``), at most
    ``limit`` (1..1000)."""
    if type(limit) is not int or not 1 <= limit <= SUSPENSE_PAGE_MAX:
        raise MalformedRequest(f"limit must be 1..{SUSPENSE_PAGE_MAX}")
    if starting_after is not None:
        _check_id(starting_after, "starting_after")
    wanted = None if state is None else SuspenseState(state)

    def read(tx: Tx) -> list[SuspenseItem]:
        where = ["1 = 1"]
        params: dict[str, Any] = {"limit": limit}
        if wanted is not None:
            where.append("state = :state")
            params["state"] = wanted.value
        if provider is not None:
            where.append("provider = :provider")
            params["provider"] = provider
        if currency is not None:
            where.append("currency = :currency")
            params["currency"] = currency
        if starting_after is not None:
            cursor = tx.one(
                "SELECT created_at_us FROM suspense_items WHERE id = :id", {"id": starting_after}
            )
            if cursor is None:
                return []
            where.append("(created_at_us > :at OR (created_at_us = :at AND id > :after))")
            params.update(at=cursor[0], after=starting_after)
        rows = tx.execute(
            f"SELECT {_COLUMNS} FROM suspense_items WHERE {' AND '.join(where)}"
            " ORDER BY created_at_us, id LIMIT :limit",
            params,
        )
        return [_item(row) for row in rows]

    return led.transact(read)
