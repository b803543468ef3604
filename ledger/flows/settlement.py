"""Settlement windows: storefronts' released proceeds netted into payouts, paid out
through a provider, with a report that ties to the ledger.

Windows
    An operator opens a window for a currency (:func:`open_window`); at most one window
    of a currency is open at a time (the database holds that with a partial unique
    index; a second answers ``window_already_open``). Windows do not open by themselves:
    after a close, the next window is opened explicitly, so the period of each window is
    exactly ``opened_at .. closed_at`` as the operator ran them. States::

        open --close--> closed --(every payout paid or failed)--> settled

    A window that closes with no payout is settled at once.

Closing (:func:`close_window`, idempotent by the window id)
    Nets each storefront of the window's currency into one payout: all of its proceeds
    *available* when the window closes (``credits_posted - debits_posted -
    debits_pending`` of its ``proceeds`` account). That is what was released to it and
    not yet paid out: the releases of this window's period, plus whatever an earlier
    window did not pay (a failed payout's money is back in proceeds), less refunds after
    release that took proceeds back; a payout still pending from an earlier window is
    already held, so it is not netted twice. A storefront with nothing available gets no
    payout.

    The legs (one per payout, core ``code`` :data:`PAYOUT_CODE`)::

        close     PENDING   storefront proceeds  ->  platform provider_clearing:<PROVIDER>
        confirm   POST_PENDING of that hold (all of it)
        fail      VOID_PENDING of that hold (the money is available in proceeds again,
                  and the next window to close pays it)

    The hold goes straight to the provider's clearing account (the platform's money at
    the provider shrinks by what the provider pays out), without a leg through the
    platform's ``settlement`` account: each payout is one hold that resolves once, so the
    ledger itself shows what is in flight (the proceeds' ``debits_pending``) and what was
    paid. The hold has no timeout: a payout waits for the provider's answer.

    A storefront whose proceeds shrank between the close reading them and the hold being
    applied (a refund after release racing the close) gets no payout in that window; its
    money waits for the next.

Confirming and failing (idempotent by the payout id)
    :func:`confirm_payout` posts the hold with the provider's reference (unique per
    provider: one statement line confirms one payout); :func:`fail_payout` voids it with a
    reason. A replay with the same reference (reason) answers the payout unchanged; with
    another, :class:`~ledger.flows.errors.Conflict`; confirming a failed payout or failing
    a paid one is refused (``payout_not_pending``).

Locks: every write locks the window row first (``FOR UPDATE``), then its payouts; so two
racing closes of one window make one set of payouts (the second finds it closed and
answers it), and the last payout resolved settles the window exactly once.

The report (:func:`window_report`) ties the window's rows to the core's transfers, and
through them (the core's counters equal the sums over transfers,
:meth:`~ledger.Ledger.check_integrity`) to the balances.

Events (outbox, same transaction): ``window.opened``, ``window.closed``,
``window.settled`` (``party_id`` = the platform of the currency), ``payout.created``,
``payout.confirmed``, ``payout.failed`` (``party_id`` = the storefront).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core import currency as iso4217
from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.store import from_us
from ledger.core.tx import Row, Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import events, parties
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Role

__all__ = [
    "PAYOUTS_PAGE_MAX",
    "PAYOUT_CODE",
    "WINDOWS_PAGE_MAX",
    "Payout",
    "PayoutState",
    "ReportLine",
    "Window",
    "WindowReport",
    "WindowState",
    "close_window",
    "close_window_in",
    "confirm_payout",
    "confirm_payout_in",
    "fail_payout",
    "fail_payout_in",
    "get_payout",
    "get_payout_in",
    "get_window",
    "get_window_in",
    "list_payouts",
    "list_windows",
    "open_window",
    "open_window_in",
    "payout_id_of",
    "window_report",
]

SETTLEMENT_NAMESPACE = uuid.UUID("3e9a6c1d-7b2f-4d58-a1c4-9f0e2b7d6a53")
"""Derives payout ids from the window and the storefront."""

PAYOUT_CODE = 901
"""Core transfer ``code`` of a payout's hold, its post and its void."""

WINDOWS_PAGE_MAX = 1000
PAYOUTS_PAGE_MAX = 1000
REFERENCE_LENGTH_MAX = 128
REASON_LENGTH_MAX = 500
CLOSE_CHUNK = 1000
"""Storefronts read and held per core call while a window closes (all in one transaction)."""
LOOKUP_CHUNK = 1000
REPORT_ATTEMPTS_MAX = 5
"""Reads of a window's rows around the core's transfers until two agree."""


class WindowState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    SETTLED = "settled"


class PayoutState(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Window:
    """A settlement window; amounts in minor units of ``currency``."""

    id: uuid.UUID
    currency: str
    state: WindowState
    provider: str | None
    """The provider the window's payouts went through (set when it closes)."""
    payouts_count: int
    payouts_total_minor: int
    opened_at: datetime
    closed_at: datetime | None
    settled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Payout:
    """What a closed window pays one storefront; amounts in minor units of ``currency``."""

    id: uuid.UUID
    window_id: uuid.UUID
    storefront_id: uuid.UUID
    currency: str
    provider: str
    proceeds_account_id: uuid.UUID
    clearing_account_id: uuid.UUID
    proceeds_before_minor: int
    """The storefront's available proceeds when the window closed."""
    amount_minor: int
    """The payout (all of ``proceeds_before_minor``)."""
    state: PayoutState
    hold_transfer_id: uuid.UUID
    resolve_transfer_id: uuid.UUID | None
    """The post (paid) or the void (failed) of the hold."""
    provider_reference: str | None
    failure_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReportLine:
    """One storefront's payout in a window report, beside what the core holds of it."""

    storefront_id: uuid.UUID
    payout_id: uuid.UUID
    state: PayoutState
    provider_reference: str | None
    proceeds_before_minor: int
    amount_minor: int
    held_minor: int
    """The hold the core has for this payout (0 when it has none)."""
    posted_minor: int
    """What the core posted of the hold (paid out)."""
    voided_minor: int
    """What the core released of the hold (back in proceeds)."""
    proceeds_after_minor: int
    """``proceeds_before - posted``: what of it the storefront still holds or will be
    paid by a later window (a pending payout's amount included, until it resolves)."""
    ties: bool


@dataclass(frozen=True, slots=True)
class WindowReport:
    """A window's payouts and the ledger figures they must equal.

    ``ties`` holds when every line ties (the core holds each payout's hold on the
    storefront's proceeds towards the clearing account for exactly the payout amount; a
    paid payout's hold is posted in full and not voided, a failed one voided and not
    posted, a pending one neither; each payout nets all of the proceeds available at
    close), the totals equal the window's recorded count and total, ``paid_total =
    ledger_posted = clearing_movement`` (what the window's posts credited to the
    provider's clearing account), ``failed_total = ledger_voided``, and a window is
    settled exactly when no payout is pending. ``problems`` says what did not tie."""

    window: Window
    clearing_account_id: uuid.UUID | None
    lines: tuple[ReportLine, ...]
    proceeds_before_total_minor: int
    payouts_total_minor: int
    paid_total_minor: int
    failed_total_minor: int
    pending_total_minor: int
    ledger_held_minor: int
    ledger_posted_minor: int
    ledger_voided_minor: int
    clearing_movement_minor: int
    proceeds_after_total_minor: int
    ties: bool
    problems: tuple[str, ...]


# -- rows ---------------------------------------------------------------------------------

_WINDOW_COLUMNS = (
    "id, currency, state, provider, payouts_count, payouts_total_minor,"
    " opened_at_us, closed_at_us, settled_at_us"
)
_PAYOUT_COLUMNS = (
    "id, window_id, storefront_id, currency, provider, proceeds_account_id,"
    " clearing_account_id, proceeds_before_minor, amount_minor, state, hold_transfer_id,"
    " resolve_transfer_id, provider_reference, failure_reason, created_at_us, resolved_at_us"
)


def _time(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _window(row: Row) -> Window:
    return Window(
        id=row[0],
        currency=row[1],
        state=WindowState(row[2]),
        provider=row[3],
        payouts_count=row[4],
        payouts_total_minor=row[5],
        opened_at=from_us(row[6]),
        closed_at=_time(row[7]),
        settled_at=_time(row[8]),
    )


def _payout(row: Row) -> Payout:
    return Payout(
        id=row[0],
        window_id=row[1],
        storefront_id=row[2],
        currency=row[3],
        provider=row[4],
        proceeds_account_id=row[5],
        clearing_account_id=row[6],
        proceeds_before_minor=row[7],
        amount_minor=row[8],
        state=PayoutState(row[9]),
        hold_transfer_id=row[10],
        resolve_transfer_id=row[11],
        provider_reference=row[12],
        failure_reason=row[13],
        created_at=from_us(row[14]),
        resolved_at=_time(row[15]),
    )


def _read_window(tx: Tx, window_id: uuid.UUID, *, lock: bool) -> Window | None:
    row = tx.one(
        f"SELECT {_WINDOW_COLUMNS} FROM settlement_windows WHERE id = :id"
        f"{tx.for_update if lock else ''}",
        {"id": window_id},
    )
    return None if row is None else _window(row)


def _read_payout(tx: Tx, payout_id: uuid.UUID, *, lock: bool) -> Payout | None:
    row = tx.one(
        f"SELECT {_PAYOUT_COLUMNS} FROM payouts WHERE id = :id{tx.for_update if lock else ''}",
        {"id": payout_id},
    )
    return None if row is None else _payout(row)


def _payouts_of(tx: Tx, window_id: uuid.UUID) -> list[Payout]:
    rows = tx.execute(
        f"SELECT {_PAYOUT_COLUMNS} FROM payouts WHERE window_id = :w ORDER BY id",
        {"w": window_id},
    )
    return [_payout(row) for row in rows]


# -- checks -------------------------------------------------------------------------------


def _check_id(value: object, name: str) -> uuid.UUID:
    if not isinstance(value, uuid.UUID):
        raise MalformedRequest(f"{name} must be a UUID")
    return value


def _check_text(value: object, name: str, length_max: int) -> str:
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


def payout_id_of(window_id: uuid.UUID, storefront_id: uuid.UUID) -> uuid.UUID:
    """The id of a window's payout to a storefront (the same on every replay)."""
    return uuid.uuid5(SETTLEMENT_NAMESPACE, f"payout:{window_id}:{storefront_id}")


def _leg_id(payout_id: uuid.UUID, name: str) -> uuid.UUID:
    return uuid.uuid5(payout_id, f"settlement:{name}")


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


def open_window(led: Ledger, *, window_id: uuid.UUID, currency: str) -> Window:
    """Open a settlement window for ``currency`` (its period starts now); idempotent by
    ``window_id``. Refused (``window_already_open``) while another window of the currency
    is open."""
    return led.transact(lambda tx: open_window_in(tx, window_id=window_id, currency=currency))


def open_window_in(tx: Tx, *, window_id: uuid.UUID, currency: str) -> Window:
    """:func:`open_window` inside a transaction someone else opened."""
    window_id = _check_id(window_id, "window_id")
    currency = _check_currency(currency)
    existing = _read_window(tx, window_id, lock=False)
    if existing is not None:
        if existing.currency != currency:
            raise Conflict("window_id_reused", f"window {window_id} is a {existing.currency} one")
        return existing
    other = tx.one(
        "SELECT id FROM settlement_windows WHERE currency = :c AND state = 'open'",
        {"c": currency},
    )
    if other is not None:
        raise Refused("window_already_open", f"window {other[0]} of {currency} is open")
    platform = parties.ensure_platform(tx, currency)
    tx.execute(
        "INSERT INTO settlement_windows (id, currency, state, provider, payouts_count,"
        " payouts_total_minor, opened_at_us) VALUES (:id, :c, 'open', NULL, 0, 0, :now)",
        {"id": window_id, "c": currency, "now": tx.now_us},
    )
    window = _read_window(tx, window_id, lock=False)
    assert window is not None  # just written in this transaction
    events.emit(
        tx,
        events.WINDOW_OPENED,
        _window_payload(window),
        party_id=platform.id,
        subject_id=window.id,
    )
    return window


# -- closing ------------------------------------------------------------------------------


def close_window(led: Ledger, *, window_id: uuid.UUID, provider: str) -> Window:
    """Close the window: each storefront of its currency with proceeds available gets a
    payout of all of them, held towards ``provider``'s clearing account. Idempotent by
    ``window_id``: closing a closed window through the same provider answers it as it is;
    through another, :class:`~ledger.flows.errors.Conflict`."""
    return led.transact(lambda tx: close_window_in(tx, window_id=window_id, provider=provider))


def close_window_in(tx: Tx, *, window_id: uuid.UUID, provider: str) -> Window:
    """:func:`close_window` inside a transaction someone else opened."""
    window_id = _check_id(window_id, "window_id")
    if not isinstance(provider, str):
        raise MalformedRequest("provider must be a string")
    parties.provider_role(provider)  # refuses a malformed provider name
    window = _read_window(tx, window_id, lock=True)
    if window is None:
        raise NotFound("window_not_found", f"no settlement window {window_id}")
    if window.state is not WindowState.OPEN:
        if window.provider != provider:
            raise Conflict(
                "window_closed_differently", f"window {window_id} closed through {window.provider}"
            )
        return window
    clearing = parties.provider_clearing(tx, window.currency, provider)
    platform = parties.platform_id(window.currency)
    storefronts = [
        row[0]
        for row in tx.execute(
            "SELECT id FROM parties WHERE kind = :kind AND currency = :c ORDER BY id",
            {"kind": Kind.STOREFRONT.value, "c": window.currency},
        )
    ]
    made: list[Payout] = []
    for start in range(0, len(storefronts), CLOSE_CHUNK):
        made += _hold_chunk(
            tx, window, provider, clearing, storefronts[start : start + CLOSE_CHUNK]
        )
    total = sum(p.amount_minor for p in made)
    state = WindowState.CLOSED if made else WindowState.SETTLED
    tx.execute(
        "UPDATE settlement_windows SET state = :state, provider = :provider,"
        " payouts_count = :count, payouts_total_minor = :total, closed_at_us = :now,"
        " settled_at_us = :settled WHERE id = :id",
        {
            "state": state.value,
            "provider": provider,
            "count": len(made),
            "total": total,
            "now": tx.now_us,
            "settled": tx.now_us if state is WindowState.SETTLED else None,
            "id": window_id,
        },
    )
    for payout in made:
        events.emit(
            tx,
            events.PAYOUT_CREATED,
            _payout_payload(payout),
            party_id=payout.storefront_id,
            subject_id=payout.id,
        )
    closed = _read_window(tx, window_id, lock=False)
    assert closed is not None  # locked above
    payload = _window_payload(closed)
    events.emit(tx, events.WINDOW_CLOSED, payload, party_id=platform, subject_id=window_id)
    if state is WindowState.SETTLED:
        events.emit(tx, events.WINDOW_SETTLED, payload, party_id=platform, subject_id=window_id)
    return closed


def _hold_chunk(
    tx: Tx,
    window: Window,
    provider: str,
    clearing: uuid.UUID,
    storefronts: Sequence[uuid.UUID],
) -> list[Payout]:
    """Hold the available proceeds of these storefronts; their payout rows."""
    by_account = {parties.account_id(sf, Role.PROCEEDS): sf for sf in storefronts}
    holds: list[tuple[uuid.UUID, int, Transfer]] = []
    for account in tx.lookup_accounts(list(by_account)):
        available = account.credits_posted - account.debits_posted - account.debits_pending
        if available <= 0:
            continue
        storefront = by_account[account.id]
        payout_id = payout_id_of(window.id, storefront)
        hold = Transfer(
            id=_leg_id(payout_id, "hold"),
            debit_account_id=account.id,
            credit_account_id=clearing,
            amount=available,
            currency=window.currency,
            code=PAYOUT_CODE,
            flags=TransferFlags.PENDING,
            metadata={"payout_id": str(payout_id), "window_id": str(window.id)},
        )
        holds.append((storefront, available, hold))
    if not holds:
        return []
    results = tx.create_transfers([hold for _, _, hold in holds])
    made: list[Payout] = []
    for (storefront, available, hold), result in zip(holds, results, strict=True):
        if result.status is Status.EXCEEDS_CREDITS:
            continue  # proceeds shrank since we read them: this money waits for the next window
        if result.status is not Status.CREATED:
            raise InvariantViolation(f"payout hold {hold.id} refused: {result.status}")
        payout_id = payout_id_of(window.id, storefront)
        tx.execute(
            f"INSERT INTO payouts ({_PAYOUT_COLUMNS}) VALUES (:id, :window_id, :storefront_id,"
            " :currency, :provider, :proceeds, :clearing, :before, :amount, 'pending', :hold,"
            " NULL, NULL, NULL, :now, NULL)",
            {
                "id": payout_id,
                "window_id": window.id,
                "storefront_id": storefront,
                "currency": window.currency,
                "provider": provider,
                "proceeds": hold.debit_account_id,
                "clearing": clearing,
                "before": available,
                "amount": available,
                "hold": hold.id,
                "now": tx.now_us,
            },
        )
        payout = _read_payout(tx, payout_id, lock=False)
        assert payout is not None  # just written in this transaction
        made.append(payout)
    return made


# -- confirming and failing -----------------------------------------------------------------


def confirm_payout(led: Ledger, *, payout_id: uuid.UUID, provider_reference: str) -> Payout:
    """The provider paid the payout: post its hold; the payout is ``paid`` (and its window
    ``settled`` when no payout of it is pending any more)."""
    return led.transact(
        lambda tx: confirm_payout_in(tx, payout_id=payout_id, provider_reference=provider_reference)
    )


def confirm_payout_in(tx: Tx, *, payout_id: uuid.UUID, provider_reference: str) -> Payout:
    """:func:`confirm_payout` inside a transaction someone else opened."""
    reference = _check_text(provider_reference, "provider_reference", REFERENCE_LENGTH_MAX)
    window, payout = _lock(tx, _check_id(payout_id, "payout_id"))
    if payout.state is PayoutState.PAID:
        if payout.provider_reference != reference:
            raise Conflict(
                "payout_confirmed_differently",
                f"payout {payout.id} was confirmed by {payout.provider_reference!r}",
            )
        return payout
    if payout.state is not PayoutState.PENDING:
        raise Refused("payout_not_pending", f"payout {payout.id} is {payout.state}")
    used = tx.one(
        "SELECT id FROM payouts WHERE provider = :p AND provider_reference = :r",
        {"p": payout.provider, "r": reference},
    )
    if used is not None:
        raise Conflict(
            "provider_reference_used", f"{payout.provider} {reference!r} confirmed payout {used[0]}"
        )
    post_id = _resolve(tx, payout, TransferFlags.POST_PENDING, "post")
    tx.execute(
        "UPDATE payouts SET state = 'paid', provider_reference = :r, resolve_transfer_id = :t,"
        " resolved_at_us = :now WHERE id = :id",
        {"r": reference, "t": post_id, "now": tx.now_us, "id": payout.id},
    )
    return _finish(tx, window, payout.id, events.PAYOUT_CONFIRMED)


def fail_payout(led: Ledger, *, payout_id: uuid.UUID, reason: str) -> Payout:
    """The provider could not pay the payout: void its hold (the money is available in the
    storefront's proceeds again, and the next window to close pays it); the payout is
    ``failed`` (and its window ``settled`` when no payout of it is pending any more)."""
    return led.transact(lambda tx: fail_payout_in(tx, payout_id=payout_id, reason=reason))


def fail_payout_in(tx: Tx, *, payout_id: uuid.UUID, reason: str) -> Payout:
    """:func:`fail_payout` inside a transaction someone else opened."""
    reason = _check_text(reason, "reason", REASON_LENGTH_MAX)
    window, payout = _lock(tx, _check_id(payout_id, "payout_id"))
    if payout.state is PayoutState.FAILED:
        if payout.failure_reason != reason:
            raise Conflict(
                "payout_failed_differently",
                f"payout {payout.id} failed for {payout.failure_reason!r}",
            )
        return payout
    if payout.state is not PayoutState.PENDING:
        raise Refused("payout_not_pending", f"payout {payout.id} is {payout.state}")
    void_id = _resolve(tx, payout, TransferFlags.VOID_PENDING, "void")
    tx.execute(
        "UPDATE payouts SET state = 'failed', failure_reason = :r, resolve_transfer_id = :t,"
        " resolved_at_us = :now WHERE id = :id",
        {"r": reason, "t": void_id, "now": tx.now_us, "id": payout.id},
    )
    return _finish(tx, window, payout.id, events.PAYOUT_FAILED)


def _lock(tx: Tx, payout_id: uuid.UUID) -> tuple[Window, Payout]:
    """Lock the payout's window, then the payout (the order every write takes)."""
    found = _read_payout(tx, payout_id, lock=False)
    if found is None:
        raise NotFound("payout_not_found", f"no payout {payout_id}")
    window = _read_window(tx, found.window_id, lock=True)
    payout = _read_payout(tx, payout_id, lock=True)
    if window is None or payout is None:
        raise InvariantViolation(f"payout {payout_id} or its window vanished")
    return window, payout


def _resolve(tx: Tx, payout: Payout, flag: TransferFlags, name: str) -> uuid.UUID:
    transfer = Transfer(
        id=_leg_id(payout.id, name),
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
    payout = _read_payout(tx, payout_id, lock=False)
    assert payout is not None  # locked above
    events.emit(
        tx, event_type, _payout_payload(payout), party_id=payout.storefront_id, subject_id=payout.id
    )
    pending = tx.one(
        "SELECT COUNT(*) FROM payouts WHERE window_id = :w AND state = 'pending'",
        {"w": window.id},
    )
    if window.state is WindowState.CLOSED and pending is not None and pending[0] == 0:
        tx.execute(
            "UPDATE settlement_windows SET state = 'settled', settled_at_us = :now WHERE id = :id",
            {"now": tx.now_us, "id": window.id},
        )
        settled = _read_window(tx, window.id, lock=False)
        assert settled is not None  # locked above
        events.emit(
            tx,
            events.WINDOW_SETTLED,
            _window_payload(settled),
            party_id=parties.platform_id(window.currency),
            subject_id=window.id,
        )
    return payout


# -- reading ------------------------------------------------------------------------------


def get_window(led: Ledger, *, window_id: uuid.UUID) -> Window:
    """The window, or :class:`~ledger.flows.errors.NotFound`."""
    return led.transact(lambda tx: get_window_in(tx, window_id=window_id))


def get_window_in(tx: Tx, *, window_id: uuid.UUID) -> Window:
    """:func:`get_window` inside a transaction someone else opened."""
    window = _read_window(tx, _check_id(window_id, "window_id"), lock=False)
    if window is None:
        raise NotFound("window_not_found", f"no settlement window {window_id}")
    return window


def get_payout(led: Ledger, *, payout_id: uuid.UUID) -> Payout:
    """The payout, or :class:`~ledger.flows.errors.NotFound`."""
    return led.transact(lambda tx: get_payout_in(tx, payout_id=payout_id))


def get_payout_in(tx: Tx, *, payout_id: uuid.UUID) -> Payout:
    """:func:`get_payout` inside a transaction someone else opened."""
    payout = _read_payout(tx, _check_id(payout_id, "payout_id"), lock=False)
    if payout is None:
        raise NotFound("payout_not_found", f"no payout {payout_id}")
    return payout


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
        _check_id(starting_after, "starting_after")
    wanted = None if state is None else WindowState(state)

    def read(tx: Tx) -> list[Window]:
        where = ["1 = 1"]
        params: dict[str, Any] = {"limit": limit}
        if currency is not None:
            where.append("currency = :c")
            params["c"] = currency
        if wanted is not None:
            where.append("state = :s")
            params["s"] = wanted.value
        if starting_after is not None:
            cursor = tx.one(
                "SELECT opened_at_us FROM settlement_windows WHERE id = :id",
                {"id": starting_after},
            )
            if cursor is None:
                return []
            where.append("(opened_at_us > :at OR (opened_at_us = :at AND id > :after))")
            params.update(at=cursor[0], after=starting_after)
        rows = tx.execute(
            f"SELECT {_WINDOW_COLUMNS} FROM settlement_windows WHERE {' AND '.join(where)}"
            " ORDER BY opened_at_us, id LIMIT :limit",
            params,
        )
        return [_window(row) for row in rows]

    return led.transact(read)


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
    _check_id(window_id, "window_id")
    _check_limit(limit, PAYOUTS_PAGE_MAX)
    if starting_after is not None:
        _check_id(starting_after, "starting_after")

    def read(tx: Tx) -> list[Payout]:
        get_window_in(tx, window_id=window_id)
        where = "window_id = :w"
        params: dict[str, Any] = {"w": window_id, "limit": limit}
        if starting_after is not None:
            where += " AND id > :after"
            params["after"] = starting_after
        rows = tx.execute(
            f"SELECT {_PAYOUT_COLUMNS} FROM payouts WHERE {where} ORDER BY id LIMIT :limit",
            params,
        )
        return [_payout(row) for row in rows]

    return led.transact(read)


# -- the report ---------------------------------------------------------------------------


def window_report(led: Ledger, *, window_id: uuid.UUID) -> WindowReport:
    """The window's payouts beside the core's transfers for them, and whether they tie
    (see :class:`WindowReport`).

    There is no ``_in`` twin: the core's transfers are read through the ledger, outside
    a flow transaction. The window's rows are read before and after them until both
    reads agree, so that a payout confirmed meanwhile cannot make a false break."""
    _check_id(window_id, "window_id")

    def read(tx: Tx) -> tuple[Window, list[Payout]]:
        return get_window_in(tx, window_id=window_id), _payouts_of(tx, window_id)

    rows = led.transact(read)
    for attempt in range(REPORT_ATTEMPTS_MAX):
        ids: list[uuid.UUID] = []
        for p in rows[1]:
            ids += [p.hold_transfer_id, _leg_id(p.id, "post"), _leg_id(p.id, "void")]
        found: dict[uuid.UUID, Transfer] = {}
        for start in range(0, len(ids), LOOKUP_CHUNK):
            found.update((t.id, t) for t in led.lookup_transfers(ids[start : start + LOOKUP_CHUNK]))
        again = led.transact(read)
        if again == rows or attempt == REPORT_ATTEMPTS_MAX - 1:
            break  # after that many changes in a row, report what the last read saw
        rows = again
    window, payouts = rows
    return _report(window, payouts, found)


def _report(
    window: Window, payouts: list[Payout], found: dict[uuid.UUID, Transfer]
) -> WindowReport:
    problems: list[str] = []
    lines: list[ReportLine] = []
    clearing = payouts[0].clearing_account_id if payouts else None
    clearing_movement = 0
    for p in payouts:
        hold = found.get(p.hold_transfer_id)
        post = found.get(_leg_id(p.id, "post"))
        void = found.get(_leg_id(p.id, "void"))
        wrong: list[str] = []
        if (
            hold is None
            or hold.flags != TransferFlags.PENDING
            or hold.debit_account_id != p.proceeds_account_id
            or hold.credit_account_id != p.clearing_account_id
            or hold.amount != p.amount_minor
        ):
            wrong.append("the hold differs from the payout")
        if post is not None and (
            post.pending_id != p.hold_transfer_id or post.amount != p.amount_minor
        ):
            wrong.append("the post differs from the payout")
        if void is not None and void.pending_id != p.hold_transfer_id:
            wrong.append("the void differs from the payout")
        expected = {
            PayoutState.PENDING: (False, False),
            PayoutState.PAID: (True, False),
            PayoutState.FAILED: (False, True),
        }[p.state]
        if (post is not None, void is not None) != expected:
            wrong.append(f"a {p.state} payout has post={post is not None} void={void is not None}")
        resolved = post or void
        if (resolved.id if resolved else None) != p.resolve_transfer_id:
            wrong.append("the payout names another resolving transfer")
        if p.amount_minor != p.proceeds_before_minor:
            wrong.append("the payout is not all of the available proceeds")
        if p.clearing_account_id != clearing:
            wrong.append("the payout went to another clearing account")
        posted = (post.amount or 0) if post is not None else 0
        voided = (void.amount or 0) if void is not None else 0
        if post is not None and post.credit_account_id == clearing:
            clearing_movement += posted
        problems += [f"payout {p.id} ({p.storefront_id}): {w}" for w in wrong]
        lines.append(
            ReportLine(
                storefront_id=p.storefront_id,
                payout_id=p.id,
                state=p.state,
                provider_reference=p.provider_reference,
                proceeds_before_minor=p.proceeds_before_minor,
                amount_minor=p.amount_minor,
                held_minor=(hold.amount or 0) if hold is not None else 0,
                posted_minor=posted,
                voided_minor=voided,
                proceeds_after_minor=p.proceeds_before_minor - posted,
                ties=not wrong,
            )
        )

    def total(state: PayoutState | None = None) -> int:
        return sum(p.amount_minor for p in payouts if state is None or p.state is state)

    payouts_total = total()
    paid, failed, pending = (
        total(PayoutState.PAID),
        total(PayoutState.FAILED),
        total(PayoutState.PENDING),
    )
    held = sum(line.held_minor for line in lines)
    posted_total = sum(line.posted_minor for line in lines)
    voided_total = sum(line.voided_minor for line in lines)
    checks = {
        "payouts count and total equal the window's": (
            len(payouts) == window.payouts_count and payouts_total == window.payouts_total_minor
        ),
        "the core holds every payout": held == payouts_total,
        "paid = posted = clearing movement": paid == posted_total == clearing_movement,
        "failed = voided": failed == voided_total,
        "settled exactly when nothing is pending": window.state is WindowState.OPEN
        or (window.state is WindowState.SETTLED) == (pending == 0),
    }
    problems += [f"window {window.id}: not {name}" for name, ok in checks.items() if not ok]
    return WindowReport(
        window=window,
        clearing_account_id=clearing,
        lines=tuple(lines),
        proceeds_before_total_minor=sum(p.proceeds_before_minor for p in payouts),
        payouts_total_minor=payouts_total,
        paid_total_minor=paid,
        failed_total_minor=failed,
        pending_total_minor=pending,
        ledger_held_minor=held,
        ledger_posted_minor=posted_total,
        ledger_voided_minor=voided_total,
        clearing_movement_minor=clearing_movement,
        proceeds_after_total_minor=sum(line.proceeds_after_minor for line in lines),
        ties=not problems,
        problems=tuple(problems),
    )
