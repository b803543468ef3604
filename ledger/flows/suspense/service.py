"""Suspense's service: park, reassign, return and read items (see the package's
docstring for the rules). The SQL is in :mod:`ledger.flows.suspense.repository`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ledger.core import currency as iso4217
from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer
from ledger.flows import events, parties, proposals, wallets
from ledger.flows.agent_float.checks import check_id
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Role
from ledger.flows.proposals import Proposal
from ledger.flows.settlement.service import check_text
from ledger.flows.suspense import repository
from ledger.flows.suspense.repository import SuspenseItem, SuspenseState
from ledger.limits import AMOUNT_MAX_MINOR, REFERENCE_LENGTH_MAX
from ledger.limits import LIST_PAGE_SIZE_MAX as SUSPENSE_PAGE_MAX
from ledger.limits import REASON_LENGTH_MAX as NOTE_LENGTH_MAX

PARK_CODE = 911
"""Core transfer ``code``: provider clearing into suspense."""
REASSIGN_CODE = 912
"""Suspense to the account it belonged to."""
RETURN_CODE = 913
"""Suspense back to the provider's clearing account."""
SUSPENSE_RETURN = "suspense_return"
"""The proposal kind of a return to the provider (:func:`propose_return`)."""


def _leg_id(suspense_id: uuid.UUID, name: str) -> uuid.UUID:
    return uuid.uuid5(suspense_id, f"suspense:{name}")


def _move(
    tx: Tx,
    item_id: uuid.UUID,
    name: str,
    *,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount_minor: int,
    currency: str,
    code: int,
) -> uuid.UUID:
    transfer = Transfer(
        id=_leg_id(item_id, name),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount_minor,
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


def _found(item: SuspenseItem | None, suspense_id: uuid.UUID) -> SuspenseItem:
    if item is None:
        raise NotFound("suspense_not_found", f"no suspense item {suspense_id}")
    return item


# -- parking ------------------------------------------------------------------------------


def _check_park(
    *,
    currency: object,
    provider: object,
    provider_reference: object,
    amount_minor: object,
    note: object,
) -> str:
    """Refuse a park request that is malformed or out of bounds; the provider reference."""
    if not isinstance(currency, str) or not iso4217.is_supported(currency):
        raise Refused("currency_not_supported", f"{currency!r} is not an active ISO 4217 code")
    if not isinstance(provider, str):
        raise MalformedRequest("provider must be a string")
    parties.provider_role(provider)  # refuses a malformed provider name
    reference = check_text(provider_reference, "provider_reference", REFERENCE_LENGTH_MAX)
    if type(amount_minor) is not int or not 1 <= amount_minor <= AMOUNT_MAX_MINOR:
        raise Refused("amount_invalid", f"amount_minor must be an integer in 1..{AMOUNT_MAX_MINOR}")
    if note is not None:
        check_text(note, "note", NOTE_LENGTH_MAX)
    return reference


def _replay(existing: SuspenseItem, details: tuple[str, str, str, int, str | None]) -> SuspenseItem:
    """A park of an id already parked: the item when the details are the same."""
    parked = (
        existing.currency,
        existing.provider,
        existing.provider_reference,
        existing.amount_minor,
        existing.note,
    )
    if parked != details:
        raise Conflict("suspense_id_reused", f"suspense {existing.id} parked other money")
    return existing


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
    """Park provider money nobody could match: ``provider``'s clearing account ->
    the platform's suspense account; idempotent by ``suspense_id``. (:func:`park` runs it
    in a transaction of its own.)"""
    suspense_id = check_id(suspense_id, "suspense_id")
    reference = _check_park(
        currency=currency,
        provider=provider,
        provider_reference=provider_reference,
        amount_minor=amount_minor,
        note=note,
    )
    existing = repository.read(tx, suspense_id, lock=False)
    if existing is not None:
        return _replay(existing, (currency, provider, reference, amount_minor, note))
    other = repository.id_parked_as(tx, provider=provider, provider_reference=reference)
    if other is not None:
        raise Conflict(
            "provider_reference_parked", f"{provider} {reference!r} is parked as {other}"
        )
    clearing = parties.provider_clearing(tx, currency, provider)
    platform = parties.ensure_platform(tx, currency)
    park_id = _move(
        tx,
        suspense_id,
        "park",
        debit=clearing,
        credit=platform.account(Role.SUSPENSE),
        amount_minor=amount_minor,
        currency=currency,
        code=PARK_CODE,
    )
    repository.insert_parked(
        tx,
        suspense_id=suspense_id,
        currency=currency,
        provider=provider,
        provider_reference=reference,
        amount_minor=amount_minor,
        note=note,
        park_transfer_id=park_id,
    )
    item = repository.reread(tx, suspense_id)
    events.emit(
        tx, events.SUSPENSE_PARKED, _payload(item), party_id=platform.id, subject_id=item.id
    )
    return item


park = transactional(park_in)


# -- resolving ----------------------------------------------------------------------------


def _target(
    to_villager_id: uuid.UUID | None, to_storefront_id: uuid.UUID | None
) -> tuple[uuid.UUID, Kind, Role]:
    """The party a reassignment names, its kind, and the role of the account it gets."""
    if (to_villager_id is None) == (to_storefront_id is None):
        raise Refused("target_invalid", "name exactly one of to_villager_id, to_storefront_id")
    if to_villager_id is not None:
        return check_id(to_villager_id, "to_villager_id"), Kind.VILLAGER, Role.WALLET
    return check_id(to_storefront_id, "to_storefront_id"), Kind.STOREFRONT, Role.PROCEEDS


def reassign_in(
    tx: Tx,
    *,
    suspense_id: uuid.UUID,
    to_villager_id: uuid.UUID | None = None,
    to_storefront_id: uuid.UUID | None = None,
) -> SuspenseItem:
    """Move a parked item to where it belonged: a villager's wallet or a storefront's
    proceeds (name exactly one). Refused while a return of it waits for a second operator
    (``suspense_return_proposed``: reject that proposal first); nothing moves. (:func:`reassign`
    runs it in a transaction of its own.)"""
    suspense_id = check_id(suspense_id, "suspense_id")
    party_id, kind, role = _target(to_villager_id, to_storefront_id)
    item = _found(repository.read(tx, suspense_id, lock=True), suspense_id)
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
    _check_no_return_waiting(tx, item)
    moved = _move(
        tx,
        item.id,
        "reassign",
        debit=parties.account_id(parties.platform_id(item.currency), Role.SUSPENSE),
        credit=account,
        amount_minor=item.amount_minor,
        currency=item.currency,
        code=REASSIGN_CODE,
    )
    repository.mark_reassigned(
        tx, item.id, party_id=party_id, account_id=account, transfer_id=moved
    )
    done = repository.reread(tx, item.id)
    events.emit(
        tx, events.SUSPENSE_REASSIGNED, _payload(done), party_id=party_id, subject_id=done.id
    )
    return done


reassign = transactional(reassign_in)


def return_to_provider_in(tx: Tx, *, suspense_id: uuid.UUID, reason: str) -> SuspenseItem:
    """Send a parked item back through its provider (suspense -> the provider's clearing
    account), with the reason why, at once: for a caller in this process (the signed API
    only proposes a return, :func:`propose_return`). Refused while a return proposal of
    it waits (``suspense_return_proposed``), as a reassignment is. (:func:`return_to_provider`
    runs it in a transaction of its own.)"""
    return _return_in(tx, suspense_id, reason, proposed=False)


def _return_in(tx: Tx, suspense_id: uuid.UUID, reason: str, *, proposed: bool) -> SuspenseItem:
    """The return; ``proposed``: it is an approved proposal's, so the proposal waiting is
    this one (it is marked approved once this is done) and does not refuse it."""
    suspense_id = check_id(suspense_id, "suspense_id")
    reason = check_text(reason, "reason", NOTE_LENGTH_MAX)
    item = _found(repository.read(tx, suspense_id, lock=True), suspense_id)
    if item.state is not SuspenseState.PARKED:
        if item.state is SuspenseState.RETURNED and item.return_reason == reason:
            return item
        raise Conflict("suspense_already_resolved", f"suspense {suspense_id} is {item.state}")
    if not proposed:
        _check_no_return_waiting(tx, item)
    platform = parties.platform_id(item.currency)
    moved = _move(
        tx,
        item.id,
        "return",
        debit=parties.account_id(platform, Role.SUSPENSE),
        credit=parties.provider_clearing(tx, item.currency, item.provider),
        amount_minor=item.amount_minor,
        currency=item.currency,
        code=RETURN_CODE,
    )
    repository.mark_returned(tx, item.id, reason=reason, transfer_id=moved)
    done = repository.reread(tx, item.id)
    events.emit(tx, events.SUSPENSE_RETURNED, _payload(done), party_id=platform, subject_id=done.id)
    return done


return_to_provider = transactional(return_to_provider_in)


# -- maker-checker: one operator proposes a return, another approves it -------------------


def _return_payload(item: SuspenseItem, reason: str) -> dict[str, Any]:
    """What the checker sees: the amount, currency and provider that go back."""
    return {
        "suspense_id": str(item.id),
        "reason": reason,
        "currency": item.currency,
        "amount_minor": item.amount_minor,
        "provider": item.provider,
        "provider_reference": item.provider_reference,
    }


def _check_no_return_waiting(
    tx: Tx, item: SuspenseItem, proposal_id: uuid.UUID | None = None
) -> None:
    """While a return of the item waits for a second operator (other than ``proposal_id``),
    nothing else may move it: not a second return (it would be left waiting once the first
    moved the money), not a reassignment (the checker would approve a return of money that
    is gone). The caller holds the item's row lock, so a proposal cannot slip in between."""
    waiting = proposals.pending_in(tx, kind=SUSPENSE_RETURN, naming={"suspense_id": str(item.id)})
    others = [p.id for p in waiting if p.id != proposal_id]
    if others:
        raise Conflict(
            "suspense_return_proposed",
            f"a return of suspense {item.id} waits for a second operator ({others[0]}):"
            " approve or reject that proposal first",
        )


def propose_return(
    led: Ledger,
    *,
    proposal_id: uuid.UUID,
    suspense_id: uuid.UUID,
    reason: str,
    proposed_by: uuid.UUID,
) -> Proposal:
    """Propose sending a parked item back through its provider; nothing moves until
    another operator approves it (:func:`ledger.flows.proposals.approve`), which runs
    :func:`return_to_provider_in` in the approval's transaction. The item must exist and
    be parked when proposed (``suspense_not_found``, ``suspense_already_resolved``), with
    no other return of it waiting (``suspense_return_proposed``: one pending return per
    item; the item's row is locked while this is checked, so two operators racing make
    one); a replay of a proposal made is answered as it is. It is checked again when
    approved (:func:`_apply_return`). The payload shows the checker what goes back."""
    suspense_id = check_id(suspense_id, "suspense_id")
    reason = check_text(reason, "reason", NOTE_LENGTH_MAX)

    def work(tx: Tx) -> Proposal:
        item = _found(repository.read(tx, suspense_id, lock=True), suspense_id)
        if _proposal_exists(tx, proposal_id):
            # a replay: the proposals flow answers it, or refuses other details
            return _propose(led, proposal_id, item, reason, proposed_by)
        if item.state is not SuspenseState.PARKED:
            raise Conflict("suspense_already_resolved", f"suspense {suspense_id} is {item.state}")
        _check_no_return_waiting(tx, item, proposal_id)
        return _propose(led, proposal_id, item, reason, proposed_by)

    return led.transact(work)


def _proposal_exists(tx: Tx, proposal_id: uuid.UUID) -> bool:
    try:
        proposals.get_in(tx, proposal_id)
    except NotFound:
        return False
    return True


def _propose(
    led: Ledger, proposal_id: uuid.UUID, item: SuspenseItem, reason: str, by: uuid.UUID
) -> Proposal:
    """The proposal (in a savepoint of the caller's transaction)."""
    return proposals.propose(
        led,
        proposal_id=proposal_id,
        kind=SUSPENSE_RETURN,
        payload=_return_payload(item, reason),
        proposed_by=by,
    )


def _apply_return(tx: Tx, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return the item in the approval's transaction; the item as it left. An item no
    longer parked (returned by another proposal, or reassigned since) refuses the
    approval, ``suspense_not_parked`` (422): nothing moves, the proposal stays proposed
    for an operator to reject."""
    suspense_id = uuid.UUID(payload["suspense_id"])
    item = _found(repository.read(tx, suspense_id, lock=True), suspense_id)
    if item.state is not SuspenseState.PARKED:
        raise Refused(
            "suspense_not_parked",
            f"suspense {suspense_id} is {item.state} already: nothing to return;"
            " reject this proposal",
        )
    done = _return_in(tx, suspense_id, payload["reason"], proposed=True)
    return _payload(done)


proposals.register(SUSPENSE_RETURN, _apply_return)


# -- reading ------------------------------------------------------------------------------


def get_suspense_in(tx: Tx, *, suspense_id: uuid.UUID) -> SuspenseItem:
    """The item, or :class:`~ledger.flows.errors.NotFound`. (:func:`get_suspense` runs it
    in a transaction of its own.)"""
    return _found(
        repository.read(tx, check_id(suspense_id, "suspense_id"), lock=False), suspense_id
    )


get_suspense = transactional(get_suspense_in)


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
        check_id(starting_after, "starting_after")
    wanted = None if state is None else SuspenseState(state)
    return led.transact(
        lambda tx: repository.select_page(
            tx,
            state=wanted,
            provider=provider,
            currency=currency,
            limit=limit,
            starting_after=starting_after,
        )
    )
