"""Settlement's service: open and close windows, confirm and fail payouts, read them
(see the package's docstring for the rules). The SQL is in
:mod:`ledger.flows.settlement.repository`; the report in
:mod:`ledger.flows.settlement.report`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.core import currency as iso4217
from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import events, parties
from ledger.flows.agent_float.checks import check_id
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Role
from ledger.flows.settlement import repository
from ledger.flows.settlement.model import (
    PAYOUT_CODE,
    Payout,
    PayoutState,
    Window,
    WindowState,
    leg_id,
    payout_id_of,
)
from ledger.limits import LIST_PAGE_SIZE_MAX as PAYOUTS_PAGE_MAX
from ledger.limits import LIST_PAGE_SIZE_MAX as WINDOWS_PAGE_MAX
from ledger.limits import REASON_LENGTH_MAX, REFERENCE_LENGTH_MAX

CLOSE_CHUNK = 1000
"""Storefronts read and held per core call while a window closes (all in one transaction)."""


# -- checks -------------------------------------------------------------------------------


def check_text(value: object, name: str, length_max: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > length_max:
        raise Refused(f"{name}_invalid", f"{name} is 1..{length_max} characters, not blank")
    return value


def _check_limit(value: object, limit_max: int) -> int:
    if type(value) is not int or not 1 <= value <= limit_max:
        raise MalformedRequest(f"limit must be 1..{limit_max}")
    return value


def _check_currency(value: object) -> str:
    if not isinstance(value, str) or not iso4217.is_supported(value):
        raise Refused("currency_not_supported", f"{value!r} is not an active ISO 4217 code")
    return value


def _window_payload(window: Window) -> dict[str, Any]:
    return {
        "window_id": str(window.id),
        "currency": window.currency,
        "state": window.state.value,
        "provider": window.provider,
        "payouts_count": window.payouts_count,
        "payouts_total_minor": window.payouts_total_minor,
    }


def _payout_payload(payout: Payout) -> dict[str, Any]:
    return {
        "payout_id": str(payout.id),
        "window_id": str(payout.window_id),
        "storefront_id": str(payout.storefront_id),
        "currency": payout.currency,
        "provider": payout.provider,
        "amount_minor": payout.amount_minor,
        "state": payout.state.value,
        "provider_reference": payout.provider_reference,
        "failure_reason": payout.failure_reason,
    }


# -- opening ------------------------------------------------------------------------------


def open_window_in(tx: Tx, *, window_id: uuid.UUID, currency: str) -> Window:
    """Open a settlement window for ``currency`` (its period starts now); idempotent by
    ``window_id``. Refused (``window_already_open``) while another window of the currency
    is open. (:func:`open_window` runs it in a transaction of its own.)"""
    window_id = check_id(window_id, "window_id")
    currency = _check_currency(currency)
    existing = repository.read_window(tx, window_id, lock=False)
    if existing is not None:
        if existing.currency != currency:
            raise Conflict("window_id_reused", f"window {window_id} is a {existing.currency} one")
        return existing
    other = repository.open_window_of(tx, currency)
    if other is not None:
        raise Refused("window_already_open", f"window {other} of {currency} is open")
    platform = parties.ensure_platform(tx, currency)
    repository.insert_window(tx, window_id=window_id, currency=currency)
    window = repository.reread_window(tx, window_id)
    events.emit(
        tx,
        events.WINDOW_OPENED,
        _window_payload(window),
        party_id=platform.id,
        subject_id=window.id,
    )
    return window


open_window = transactional(open_window_in)


# -- closing ------------------------------------------------------------------------------


def close_window_in(tx: Tx, *, window_id: uuid.UUID, provider: str) -> Window:
    """Close the window: each storefront of its currency with proceeds available gets a
    payout of all of them, held towards ``provider``'s clearing account. Idempotent by
    ``window_id``: closing a closed window through the same provider answers it as it is;
    through another, :class:`~ledger.flows.errors.Conflict`. (:func:`close_window` runs
    it in a transaction of its own.)"""
    window_id = check_id(window_id, "window_id")
    if not isinstance(provider, str):
        raise MalformedRequest("provider must be a string")
    parties.provider_role(provider)  # refuses a malformed provider name
    window = repository.read_window(tx, window_id, lock=True)
    if window is None:
        raise NotFound("window_not_found", f"no settlement window {window_id}")
    if window.state is not WindowState.OPEN:
        if window.provider != provider:
            raise Conflict(
                "window_closed_differently", f"window {window_id} closed through {window.provider}"
            )
        return window
    clearing = parties.provider_clearing(tx, window.currency, provider)
    storefronts = repository.storefronts_of(tx, window.currency)
    made: list[Payout] = []
    for start in range(0, len(storefronts), CLOSE_CHUNK):
        made += _hold_chunk(
            tx, window, provider, clearing, storefronts[start : start + CLOSE_CHUNK]
        )
    state = WindowState.CLOSED if made else WindowState.SETTLED
    repository.mark_closed(
        tx,
        window_id,
        state=state,
        provider=provider,
        payouts_count=len(made),
        payouts_total_minor=sum(p.amount_minor for p in made),
    )
    return _emit_closed(tx, window_id, made)


close_window = transactional(close_window_in)


def _emit_closed(tx: Tx, window_id: uuid.UUID, made: Sequence[Payout]) -> Window:
    """The events of a close: each payout created, the window closed (and settled when
    it made no payout); the closed window."""
    for payout in made:
        events.emit(
            tx,
            events.PAYOUT_CREATED,
            _payout_payload(payout),
            party_id=payout.storefront_id,
            subject_id=payout.id,
        )
    closed = repository.reread_window(tx, window_id)
    platform = parties.platform_id(closed.currency)
    payload = _window_payload(closed)
    events.emit(tx, events.WINDOW_CLOSED, payload, party_id=platform, subject_id=window_id)
    if closed.state is WindowState.SETTLED:
        events.emit(tx, events.WINDOW_SETTLED, payload, party_id=platform, subject_id=window_id)
    return closed


@dataclass(frozen=True, slots=True)
class _Hold:
    """A storefront's available proceeds, and the core hold that reserves them."""

    storefront_id: uuid.UUID
    proceeds_account_id: uuid.UUID
    available_minor: int
    transfer: Transfer


def _holds_of(
    tx: Tx, window: Window, clearing: uuid.UUID, storefronts: Sequence[uuid.UUID]
) -> list[_Hold]:
    """The hold of each storefront's available proceeds (none for nothing available)."""
    by_account = {parties.account_id(sf, Role.PROCEEDS): sf for sf in storefronts}
    holds: list[_Hold] = []
    for account in tx.lookup_accounts(list(by_account)):
        available = account.credits_posted - account.debits_posted - account.debits_pending
        if available <= 0:
            continue
        storefront = by_account[account.id]
        payout_id = payout_id_of(window.id, storefront)
        hold = Transfer(
            id=leg_id(payout_id, "hold"),
            debit_account_id=account.id,
            credit_account_id=clearing,
            amount=available,
            currency=window.currency,
            code=PAYOUT_CODE,
            flags=TransferFlags.PENDING,
            metadata={"payout_id": str(payout_id), "window_id": str(window.id)},
        )
        holds.append(_Hold(storefront, account.id, available, hold))
    return holds


def _hold_chunk(
    tx: Tx,
    window: Window,
    provider: str,
    clearing: uuid.UUID,
    storefronts: Sequence[uuid.UUID],
) -> list[Payout]:
    """Hold the available proceeds of these storefronts; their payout rows."""
    holds = _holds_of(tx, window, clearing, storefronts)
    if not holds:
        return []
    results = tx.create_transfers([hold.transfer for hold in holds])
    made: list[Payout] = []
    for hold, result in zip(holds, results, strict=True):
        if result.status is Status.EXCEEDS_CREDITS:
            continue  # proceeds shrank since we read them: this money waits for the next window
        if result.status is not Status.CREATED:
            raise InvariantViolation(f"payout hold {hold.transfer.id} refused: {result.status}")
        payout_id = payout_id_of(window.id, hold.storefront_id)
        repository.insert_payout(
            tx,
            payout_id=payout_id,
            window=window,
            storefront_id=hold.storefront_id,
            provider=provider,
            proceeds_account_id=hold.proceeds_account_id,
            clearing_account_id=clearing,
            amount_minor=hold.available_minor,
            hold_transfer_id=hold.transfer.id,
        )
        made.append(repository.reread_payout(tx, payout_id))
    return made


# -- confirming and failing -----------------------------------------------------------------


_DONE_DIFFERENTLY = {
    PayoutState.PAID: "payout_confirmed_differently",
    PayoutState.FAILED: "payout_failed_differently",
}


def _done_before(
    payout: Payout, done: PayoutState, said: str | None, given: str, what: str
) -> bool:
    """Whether the payout was already ``done`` with ``given`` (a replay answers it);
    ``payout_confirmed_differently`` / ``payout_failed_differently`` when it was done
    with something else, ``payout_not_pending`` when it is neither pending nor done."""
    if payout.state is done:
        if said != given:
            raise Conflict(_DONE_DIFFERENTLY[done], f"payout {payout.id} {what} {said!r}")
        return True
    if payout.state is not PayoutState.PENDING:
        raise Refused("payout_not_pending", f"payout {payout.id} is {payout.state}")
    return False


def confirm_payout_in(tx: Tx, *, payout_id: uuid.UUID, provider_reference: str) -> Payout:
    """The provider paid the payout: post its hold; the payout is ``paid`` (and its window
    ``settled`` when no payout of it is pending any more). (:func:`confirm_payout` runs it
    in a transaction of its own.)"""
    reference = check_text(provider_reference, "provider_reference", REFERENCE_LENGTH_MAX)
    window, payout = _lock(tx, check_id(payout_id, "payout_id"))
    said = payout.provider_reference
    if _done_before(payout, PayoutState.PAID, said, reference, "was confirmed by"):
        return payout
    used = repository.payout_confirmed_by(
        tx, provider=payout.provider, provider_reference=reference
    )
    if used is not None:
        raise Conflict(
            "provider_reference_used", f"{payout.provider} {reference!r} confirmed payout {used}"
        )
    post_id = _resolve(tx, payout, TransferFlags.POST_PENDING, "post")
    repository.mark_paid(tx, payout.id, provider_reference=reference, transfer_id=post_id)
    return _finish(tx, window, payout.id, events.PAYOUT_CONFIRMED)


confirm_payout = transactional(confirm_payout_in)


def fail_payout_in(tx: Tx, *, payout_id: uuid.UUID, reason: str) -> Payout:
    """The provider could not pay the payout: void its hold (the money is available in the
    storefront's proceeds again, and the next window to close pays it); the payout is
    ``failed`` (and its window ``settled`` when no payout of it is pending any more).
    (:func:`fail_payout` runs it in a transaction of its own.)"""
    reason = check_text(reason, "reason", REASON_LENGTH_MAX)
    window, payout = _lock(tx, check_id(payout_id, "payout_id"))
    if _done_before(payout, PayoutState.FAILED, payout.failure_reason, reason, "failed for"):
        return payout
    void_id = _resolve(tx, payout, TransferFlags.VOID_PENDING, "void")
    repository.mark_failed(tx, payout.id, reason=reason, transfer_id=void_id)
    return _finish(tx, window, payout.id, events.PAYOUT_FAILED)


fail_payout = transactional(fail_payout_in)


def _lock(tx: Tx, payout_id: uuid.UUID) -> tuple[Window, Payout]:
    """Lock the payout's window, then the payout (the order every write takes)."""
    found = repository.read_payout(tx, payout_id, lock=False)
    if found is None:
        raise NotFound("payout_not_found", f"no payout {payout_id}")
    window = repository.read_window(tx, found.window_id, lock=True)
    payout = repository.read_payout(tx, payout_id, lock=True)
    if window is None or payout is None:
        raise InvariantViolation(f"payout {payout_id} or its window vanished")
    return window, payout


def _resolve(tx: Tx, payout: Payout, flag: TransferFlags, name: str) -> uuid.UUID:
    transfer = Transfer(
        id=leg_id(payout.id, name),
        debit_account_id=None,
        credit_account_id=None,
        amount=None,
        currency=None,
        code=PAYOUT_CODE,
        flags=flag,
        pending_id=payout.hold_transfer_id,
        metadata={"payout_id": str(payout.id), "window_id": str(payout.window_id)},
    )
    [result] = tx.create_transfers([transfer])
    if result.status is not Status.CREATED:
        raise InvariantViolation(f"payout {payout.id} {name} refused: {result.status}")
    return transfer.id


def _finish(tx: Tx, window: Window, payout_id: uuid.UUID, event_type: str) -> Payout:
    payout = repository.reread_payout(tx, payout_id)
    events.emit(
        tx, event_type, _payout_payload(payout), party_id=payout.storefront_id, subject_id=payout.id
    )
    if window.state is WindowState.CLOSED and repository.pending_count(tx, window.id) == 0:
        repository.mark_settled(tx, window.id)
        settled = repository.reread_window(tx, window.id)
        events.emit(
            tx,
            events.WINDOW_SETTLED,
            _window_payload(settled),
            party_id=parties.platform_id(window.currency),
            subject_id=window.id,
        )
    return payout


# -- reading ------------------------------------------------------------------------------


def get_window_in(tx: Tx, *, window_id: uuid.UUID) -> Window:
    """The window, or :class:`~ledger.flows.errors.NotFound`. (:func:`get_window` runs it
    in a transaction of its own.)"""
    window = repository.read_window(tx, check_id(window_id, "window_id"), lock=False)
    if window is None:
        raise NotFound("window_not_found", f"no settlement window {window_id}")
    return window


get_window = transactional(get_window_in)


def get_payout_in(tx: Tx, *, payout_id: uuid.UUID) -> Payout:
    """The payout, or :class:`~ledger.flows.errors.NotFound`. (:func:`get_payout` runs it
    in a transaction of its own.)"""
    payout = repository.read_payout(tx, check_id(payout_id, "payout_id"), lock=False)
    if payout is None:
        raise NotFound("payout_not_found", f"no payout {payout_id}")
    return payout


get_payout = transactional(get_payout_in)


def list_windows(
    led: Ledger,
    *,
    currency: str | None = None,
    state: WindowState | None = None,
    limit: int = 100,
    starting_after: uuid.UUID | None = None,
) -> list[Window]:
    """Windows oldest first (by when they opened), optionally of one currency and state,
    after the cursor ``starting_after`` (a window id; an unknown one answers ``[]``), at
    most ``limit`` (1..1000)."""
    _check_limit(limit, WINDOWS_PAGE_MAX)
    if starting_after is not None:
        check_id(starting_after, "starting_after")
    wanted = None if state is None else WindowState(state)
    return led.transact(
        lambda tx: repository.select_windows(
            tx, currency=currency, state=wanted, limit=limit, starting_after=starting_after
        )
    )


def list_payouts(
    led: Ledger,
    *,
    window_id: uuid.UUID,
    limit: int = PAYOUTS_PAGE_MAX,
    starting_after: uuid.UUID | None = None,
) -> list[Payout]:
    """A window's payouts in id order, after the cursor ``starting_after`` (a payout id),
    at most ``limit`` (1..1000); an unknown window answers
    :class:`~ledger.flows.errors.NotFound`."""
    check_id(window_id, "window_id")
    _check_limit(limit, PAYOUTS_PAGE_MAX)
    if starting_after is not None:
        check_id(starting_after, "starting_after")

    def read(tx: Tx) -> list[Payout]:
        get_window_in(tx, window_id=window_id)
        return repository.select_payouts(
            tx, window_id=window_id, limit=limit, starting_after=starting_after
        )

    return led.transact(read)
