"""The ``settlement_windows`` and ``payouts`` tables: the only module that writes SQL
naming them. Storefronts are read from the published view ``party_account_roles``.

A window row is written when it opens and updated when it closes and settles; a payout
row is written when its window closes and updated once when it is paid or fails.
Amounts are minor units of the row's currency, moments UTC microseconds.
"""

from __future__ import annotations

import uuid
from typing import Any

from ledger.core.rows import RowMapper, moment, written_or_locked
from ledger.core.tx import Tx
from ledger.flows.parties import Kind, Role
from ledger.flows.settlement.model import Payout, PayoutState, Window, WindowState

_WINDOW = RowMapper(
    Window,
    "id, currency, state, provider, payouts_count, payouts_total_minor,"
    " opened_at_us AS opened_at, closed_at_us AS closed_at, settled_at_us AS settled_at",
    {"state": WindowState, "opened_at": moment, "closed_at": moment, "settled_at": moment},
)
_PAYOUT = RowMapper(
    Payout,
    "id, window_id, storefront_id, currency, provider, proceeds_account_id,"
    " clearing_account_id, proceeds_before_minor, amount_minor, state, hold_transfer_id,"
    " resolve_transfer_id, provider_reference, failure_reason, created_at_us AS created_at,"
    " resolved_at_us AS resolved_at",
    {"state": PayoutState, "created_at": moment, "resolved_at": moment},
)


# -- windows ------------------------------------------------------------------------------


def read_window(tx: Tx, window_id: uuid.UUID, *, lock: bool) -> Window | None:
    """The window, locked ``FOR UPDATE`` when ``lock``; ``None`` when there is none."""
    row = tx.one(
        f"SELECT {_WINDOW.columns} FROM settlement_windows WHERE id = :id"
        f"{tx.for_update if lock else ''}",
        {"id": window_id},
    )
    return _WINDOW.one(row)


def reread_window(tx: Tx, window_id: uuid.UUID) -> Window:
    """A window this transaction wrote or locked."""
    return written_or_locked(read_window(tx, window_id, lock=False), f"window {window_id}")


def open_window_of(tx: Tx, currency: str) -> uuid.UUID | None:
    """The id of the currency's open window, if one is open."""
    row = tx.one(
        "SELECT id FROM settlement_windows WHERE currency = :c AND state = 'open'",
        {"c": currency},
    )
    return None if row is None else row[0]


def insert_window(tx: Tx, *, window_id: uuid.UUID, currency: str) -> None:
    tx.execute(
        "INSERT INTO settlement_windows (id, currency, state, provider, payouts_count,"
        " payouts_total_minor, opened_at_us) VALUES (:id, :c, 'open', NULL, 0, 0, :now)",
        {"id": window_id, "c": currency, "now": tx.now_us},
    )


def mark_closed(
    tx: Tx,
    window_id: uuid.UUID,
    *,
    state: WindowState,
    provider: str,
    payouts_count: int,
    payouts_total_minor: int,
) -> None:
    """Record the close (``settled`` at once when ``state`` says so)."""
    tx.execute(
        "UPDATE settlement_windows SET state = :state, provider = :provider,"
        " payouts_count = :count, payouts_total_minor = :total, closed_at_us = :now,"
        " settled_at_us = :settled WHERE id = :id",
        {
            "state": state.value,
            "provider": provider,
            "count": payouts_count,
            "total": payouts_total_minor,
            "now": tx.now_us,
            "settled": tx.now_us if state is WindowState.SETTLED else None,
            "id": window_id,
        },
    )


def mark_settled(tx: Tx, window_id: uuid.UUID) -> None:
    tx.execute(
        "UPDATE settlement_windows SET state = 'settled', settled_at_us = :now WHERE id = :id",
        {"now": tx.now_us, "id": window_id},
    )


def select_windows(
    tx: Tx,
    *,
    currency: str | None,
    state: WindowState | None,
    limit: int,
    starting_after: uuid.UUID | None,
) -> list[Window]:
    """At most ``limit`` windows by when they opened (then id), of the currency and state
    given, after the window ``starting_after`` (``[]`` when there is no such window)."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if currency is not None:
        where.append("currency = :c")
        params["c"] = currency
    if state is not None:
        where.append("state = :s")
        params["s"] = state.value
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
        f"SELECT {_WINDOW.columns} FROM settlement_windows WHERE {' AND '.join(where)}"
        " ORDER BY opened_at_us, id LIMIT :limit",
        params,
    )
    return _WINDOW.all(rows)


# -- storefronts (the published view) ---------------------------------------------------


def storefronts_of(tx: Tx, currency: str) -> list[uuid.UUID]:
    """Every storefront of the currency that has a proceeds account, in id order."""
    rows = tx.execute(
        "SELECT party_id FROM party_account_roles WHERE party_kind = :kind"
        " AND role = :role AND currency = :c ORDER BY party_id",
        {"kind": Kind.STOREFRONT.value, "role": Role.PROCEEDS.value, "c": currency},
    )
    return [row[0] for row in rows]


# -- payouts ------------------------------------------------------------------------------


def read_payout(tx: Tx, payout_id: uuid.UUID, *, lock: bool) -> Payout | None:
    """The payout, locked ``FOR UPDATE`` when ``lock``; ``None`` when there is none."""
    row = tx.one(
        f"SELECT {_PAYOUT.columns} FROM payouts WHERE id = :id{tx.for_update if lock else ''}",
        {"id": payout_id},
    )
    return _PAYOUT.one(row)


def reread_payout(tx: Tx, payout_id: uuid.UUID) -> Payout:
    """A payout this transaction wrote or locked."""
    return written_or_locked(read_payout(tx, payout_id, lock=False), f"payout {payout_id}")


def payouts_of(tx: Tx, window_id: uuid.UUID) -> list[Payout]:
    """Every payout of the window, in id order."""
    rows = tx.execute(
        f"SELECT {_PAYOUT.columns} FROM payouts WHERE window_id = :w ORDER BY id",
        {"w": window_id},
    )
    return _PAYOUT.all(rows)


def payouts_with_reference(tx: Tx, reference: str, *, limit: int) -> list[Payout]:
    """At most ``limit`` payouts the provider confirmed with this reference, in id order."""
    rows = tx.execute(
        f"SELECT {_PAYOUT.columns} FROM payouts WHERE provider_reference = :r"
        " ORDER BY id LIMIT :limit",
        {"r": reference, "limit": limit},
    )
    return _PAYOUT.all(rows)


def select_payouts(
    tx: Tx, *, window_id: uuid.UUID, limit: int, starting_after: uuid.UUID | None
) -> list[Payout]:
    """At most ``limit`` payouts of the window in id order, after ``starting_after``."""
    where = "window_id = :w"
    params: dict[str, Any] = {"w": window_id, "limit": limit}
    if starting_after is not None:
        where += " AND id > :after"
        params["after"] = starting_after
    rows = tx.execute(
        f"SELECT {_PAYOUT.columns} FROM payouts WHERE {where} ORDER BY id LIMIT :limit",
        params,
    )
    return _PAYOUT.all(rows)


def insert_payout(
    tx: Tx,
    *,
    payout_id: uuid.UUID,
    window: Window,
    storefront_id: uuid.UUID,
    provider: str,
    proceeds_account_id: uuid.UUID,
    clearing_account_id: uuid.UUID,
    amount_minor: int,
    hold_transfer_id: uuid.UUID,
) -> None:
    """A pending payout of all of the storefront's available proceeds (``amount_minor``)."""
    tx.execute(
        f"INSERT INTO payouts ({_PAYOUT.stored_columns}) VALUES (:id, :window_id, :storefront_id,"
        " :currency, :provider, :proceeds, :clearing, :before, :amount, 'pending', :hold,"
        " NULL, NULL, NULL, :now, NULL)",
        {
            "id": payout_id,
            "window_id": window.id,
            "storefront_id": storefront_id,
            "currency": window.currency,
            "provider": provider,
            "proceeds": proceeds_account_id,
            "clearing": clearing_account_id,
            "before": amount_minor,
            "amount": amount_minor,
            "hold": hold_transfer_id,
            "now": tx.now_us,
        },
    )


def payout_confirmed_by(tx: Tx, *, provider: str, provider_reference: str) -> uuid.UUID | None:
    """The payout this provider's reference confirmed, if one did."""
    row = tx.one(
        "SELECT id FROM payouts WHERE provider = :p AND provider_reference = :r",
        {"p": provider, "r": provider_reference},
    )
    return None if row is None else row[0]


def mark_paid(
    tx: Tx, payout_id: uuid.UUID, *, provider_reference: str, transfer_id: uuid.UUID
) -> None:
    tx.execute(
        "UPDATE payouts SET state = 'paid', provider_reference = :r, resolve_transfer_id = :t,"
        " resolved_at_us = :now WHERE id = :id",
        {"r": provider_reference, "t": transfer_id, "now": tx.now_us, "id": payout_id},
    )


def mark_failed(tx: Tx, payout_id: uuid.UUID, *, reason: str, transfer_id: uuid.UUID) -> None:
    tx.execute(
        "UPDATE payouts SET state = 'failed', failure_reason = :r, resolve_transfer_id = :t,"
        " resolved_at_us = :now WHERE id = :id",
        {"r": reason, "t": transfer_id, "now": tx.now_us, "id": payout_id},
    )


def pending_count(tx: Tx, window_id: uuid.UUID) -> int:
    """How many payouts of the window are still pending."""
    row = tx.one(
        "SELECT COUNT(*) FROM payouts WHERE window_id = :w AND state = 'pending'",
        {"w": window_id},
    )
    return 0 if row is None else int(row[0])
