"""The tables ``orders``, ``order_steps`` and ``delivery_methods``: the only module that
writes SQL naming them. Rows come back as frozen values (:class:`OrderRow`,
:class:`DeliveryMethod`, :class:`RecordedStep`); the outbox is read through the published
view ``outbox_events`` (migration 0021), never the ``events`` table."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.core.tx import Row, Tx
from ledger.flows import events
from ledger.flows.orders.model import (
    DeliveryMethod,
    Leg,
    OrderRow,
    ReleasedLeg,
    Source,
    State,
    Step,
)

_COLUMNS = tuple(f.name for f in dataclasses.fields(OrderRow))
"""The columns of ``orders``, in the order of :class:`OrderRow`'s fields."""
_UUID_COLUMNS = frozenset({"id", "storefront_id", "villager_id", "agent_id", "payment_transfer_id"})
_FIXED = frozenset(
    {"id", "storefront_id", "villager_id", "currency", "amount_minor", "delivery_method"}
)
"""Columns an order never changes after it is created."""
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM orders"

_METHOD_COLUMNS = "name, auto_release_days, refund_window_days, dispatch_deadline_hours"


def _row(values: Mapping[str, Any]) -> OrderRow:
    state, source, disputed_from = (
        values["state"],
        values["payment_source"],
        values["disputed_from"],
    )
    return OrderRow(
        **{
            **values,
            "state": State(state),
            "payment_source": None if source is None else Source(source),
            "disputed_from": None if disputed_from is None else State(disputed_from),
        }
    )


def _from_db(raw: Row) -> OrderRow:
    return _row(dict(zip(_COLUMNS, raw, strict=True)))


def _params(row: OrderRow) -> dict[str, Any]:
    """The row as SQL parameters: enums as their stored text."""
    return {
        name: value.value if isinstance(value, State | Source) else value
        for name, value in ((c, getattr(row, c)) for c in _COLUMNS)
    }


def snapshot(row: OrderRow) -> str:
    """The row as the JSON text a step's history keeps (its ``result``)."""
    return json.dumps(
        {
            name: (str(value) if name in _UUID_COLUMNS and value is not None else value)
            for name, value in _params(row).items()
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def from_snapshot(text: str) -> OrderRow:
    """The row a step's history kept (:func:`snapshot`)."""
    raw = json.loads(text)
    return _row(
        {
            # .get: a step recorded before a column existed answers it as None
            k: (uuid.UUID(raw[k]) if k in _UUID_COLUMNS and raw[k] is not None else raw.get(k))
            for k in _COLUMNS
        }
    )


# -- orders -------------------------------------------------------------------------------


def read(tx: Tx, order_id: uuid.UUID, *, lock: bool) -> OrderRow | None:
    """The order's row (``lock``: ``FOR UPDATE`` on PostgreSQL), or ``None``."""
    raw = tx.one(f"{_SELECT} WHERE id = :id{tx.for_update if lock else ''}", {"id": order_id})
    return None if raw is None else _from_db(raw)


def insert(tx: Tx, row: OrderRow) -> None:
    tx.execute(
        f"INSERT INTO orders ({', '.join(_COLUMNS)})"
        f" VALUES ({', '.join(f':{c}' for c in _COLUMNS)})",
        _params(row),
    )


def save(tx: Tx, row: OrderRow) -> None:
    """Write every column an order may change."""
    changing = [c for c in _COLUMNS if c not in _FIXED]
    params = _params(row)
    tx.execute(
        f"UPDATE orders SET {', '.join(f'{c} = :{c}' for c in changing)} WHERE id = :id",
        {c: params[c] for c in (*changing, "id")},
    )


def page_of_storefront(
    tx: Tx, *, storefront_id: uuid.UUID, after: uuid.UUID | None, limit: int
) -> list[OrderRow]:
    """A storefront's orders, oldest first, after the order ``after`` of that storefront
    (another answers ``[]``), at most ``limit``."""
    params: dict[str, Any] = {"sf": storefront_id, "limit": limit}
    where = "storefront_id = :sf"
    if after is not None:
        cursor = tx.one(
            "SELECT created_at_us FROM orders WHERE id = :id AND storefront_id = :sf",
            {"id": after, "sf": storefront_id},
        )
        if cursor is None:
            return []
        where += " AND (created_at_us > :at OR (created_at_us = :at AND id > :after))"
        params.update(at=cursor[0], after=after)
    rows = tx.execute(f"{_SELECT} WHERE {where} ORDER BY created_at_us, id LIMIT :limit", params)
    return [_from_db(raw) for raw in rows]


def page_of_agent(
    tx: Tx, *, agent_id: uuid.UUID, before: uuid.UUID | None, limit: int
) -> list[OrderRow]:
    """The orders naming the agent (its station's), newest first, older than the order
    ``before`` of that agent (another answers ``[]``), at most ``limit``."""
    params: dict[str, Any] = {"agent": agent_id, "limit": limit}
    where = "agent_id = :agent"
    if before is not None:
        cursor = tx.one(
            "SELECT created_at_us FROM orders WHERE id = :id AND agent_id = :agent",
            {"id": before, "agent": agent_id},
        )
        if cursor is None:
            return []
        where += " AND (created_at_us < :at OR (created_at_us = :at AND id < :before))"
        params.update(at=cursor[0], before=before)
    rows = tx.execute(
        f"{_SELECT} WHERE {where} ORDER BY created_at_us DESC, id DESC LIMIT :limit", params
    )
    return [_from_db(raw) for raw in rows]


def latest_of_villager(tx: Tx, *, villager_id: uuid.UUID, limit: int) -> list[OrderRow]:
    """A villager's orders, newest first, at most ``limit`` (her USSD menu)."""
    rows = tx.execute(
        f"{_SELECT} WHERE villager_id = :v ORDER BY created_at_us DESC, id DESC LIMIT :limit",
        {"v": villager_id, "limit": limit},
    )
    return [_from_db(raw) for raw in rows]


def of_villager_in_id_range(
    tx: Tx, *, villager_id: uuid.UUID, low: uuid.UUID, high: uuid.UUID, limit: int
) -> list[OrderRow]:
    """A villager's orders whose id is in ``low..high`` (inclusive: a range of the primary
    key, compared bytewise on both engines), newest first, at most ``limit``."""
    rows = tx.execute(
        f"{_SELECT} WHERE id >= :low AND id <= :high AND villager_id = :v"
        " ORDER BY created_at_us DESC, id DESC LIMIT :limit",
        {"low": low, "high": high, "v": villager_id, "limit": limit},
    )
    return [_from_db(raw) for raw in rows]


# -- order_steps: the history ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedStep:
    """A step of an order's history: the request it answered and the order it left."""

    request: str
    result: OrderRow


def recorded_step(tx: Tx, step_id: uuid.UUID) -> RecordedStep | None:
    raw = tx.one("SELECT request, result FROM order_steps WHERE id = :id", {"id": step_id})
    return None if raw is None else RecordedStep(raw[0], from_snapshot(raw[1]))


def step_recorded(tx: Tx, step_id: uuid.UUID) -> bool:
    return tx.one("SELECT 1 FROM order_steps WHERE id = :id", {"id": step_id}) is not None


def insert_step(
    tx: Tx, *, step_id: uuid.UUID, kind: Step, row: OrderRow, request: str, legs: Sequence[Leg]
) -> None:
    """Record a step: its request, its legs and the order as it left it."""
    legs_text = json.dumps(
        [
            [
                leg.group.value,
                str(leg.transfer.id),
                str(leg.transfer.debit_account_id),
                str(leg.transfer.credit_account_id),
                leg.transfer.amount,
            ]
            for leg in legs
        ],
        separators=(",", ":"),
    )
    tx.execute(
        "INSERT INTO order_steps (id, order_id, kind, request, legs, result, created_at_us)"
        " VALUES (:id, :order_id, :kind, :request, :legs, :result, :now)",
        {
            "id": step_id,
            "order_id": row.id,
            "kind": kind.value,
            "request": request,
            "legs": legs_text,
            "result": snapshot(row),
            "now": tx.now_us,
        },
    )


def released_legs(tx: Tx, order_id: uuid.UUID) -> list[ReleasedLeg]:
    """Every release leg of the order's steps so far, oldest first."""
    found: list[ReleasedLeg] = []
    for (text,) in tx.execute(
        "SELECT legs FROM order_steps WHERE order_id = :id ORDER BY created_at_us, id",
        {"id": order_id},
    ):
        for group, leg_id, debit, credit, amount_minor in json.loads(text):
            if group == "release":
                ids = (uuid.UUID(leg_id), uuid.UUID(debit), uuid.UUID(credit))
                found.append(ReleasedLeg(*ids, amount_minor))
    return found


# -- delivery_methods -----------------------------------------------------------------------


def delivery_method(tx: Tx, name: str) -> DeliveryMethod | None:
    raw = tx.one(f"SELECT {_METHOD_COLUMNS} FROM delivery_methods WHERE name = :n", {"n": name})
    return None if raw is None else DeliveryMethod(*raw)


def delivery_methods(tx: Tx) -> list[DeliveryMethod]:
    """Every delivery method, by name."""
    rows = tx.execute(f"SELECT {_METHOD_COLUMNS} FROM delivery_methods ORDER BY name")
    return [DeliveryMethod(*raw) for raw in rows]


def update_delivery_method(
    tx: Tx,
    *,
    name: str,
    auto_release_days: int,
    refund_window_days: int,
    dispatch_deadline_hours: int,
) -> None:
    tx.execute(
        "UPDATE delivery_methods SET auto_release_days = :auto, refund_window_days = :window,"
        " dispatch_deadline_hours = :deadline, updated_at_us = :now WHERE name = :name",
        {
            "auto": auto_release_days,
            "window": refund_window_days,
            "deadline": dispatch_deadline_hours,
            "now": tx.now_us,
            "name": name,
        },
    )


# -- what the sweeper finds due ---------------------------------------------------------------

_DUE_EXPIRY = (
    "FROM orders WHERE state = 'paid' AND dispatch_deadline_at_us < :now AND {noted} EXISTS"
    " (SELECT 1 FROM outbox_events WHERE outbox_events.subject_id = orders.id"
    " AND outbox_events.type = :refused)"
)
_DUE_RELEASE = "FROM orders WHERE auto_release_at_us <= :now"


def _due_params(now_us: int) -> dict[str, Any]:
    return {"now": now_us, "refused": events.ORDER_DISPATCH_EXPIRY_REFUSED}


def fresh_expiries(tx: Tx, *, now_us: int, limit: int) -> list[uuid.UUID]:
    """The first ``limit`` paid orders past their dispatch deadline that no sweep noted
    refused (no ``order.dispatch_expiry_refused`` event), by (deadline, id)."""
    rows = tx.execute(
        f"SELECT id {_DUE_EXPIRY.format(noted='NOT')}"
        " ORDER BY dispatch_deadline_at_us, id LIMIT :limit",
        {**_due_params(now_us), "limit": limit},
    )
    return [raw[0] for raw in rows]


def _turning_page(
    tx: Tx, due: str, order_by: str, params: Mapping[str, Any], slot: int, limit: int
) -> list[uuid.UUID]:
    """At most ``limit`` of the ``n`` orders ``SELECT id {due} ORDER BY {order_by}``
    finds: with more than ``limit``, from ``(slot * limit) mod n`` on, wrapping round to
    the first ones."""
    raw = tx.one(f"SELECT count(*) {due}", params)
    count = 0 if raw is None else int(raw[0])
    if count == 0:
        return []
    offset = 0 if count <= limit else (slot * limit) % count
    page = f"SELECT id {due} ORDER BY {order_by} LIMIT :limit OFFSET :offset"
    found = [r[0] for r in tx.execute(page, {**params, "limit": limit, "offset": offset})]
    if len(found) < limit and offset > 0:  # wrap round to the first ones
        rest = {**params, "limit": limit - len(found), "offset": 0}
        found += [r[0] for r in tx.execute(page, rest)]
    return found


def refused_expiries(tx: Tx, *, now_us: int, slot: int, limit: int) -> list[uuid.UUID]:
    """Page ``slot`` (turning, see :func:`_turning_page`) of the paid orders past their
    dispatch deadline that a sweep noted refused before."""
    due = _DUE_EXPIRY.format(noted="")
    order_by = "dispatch_deadline_at_us, id"
    return _turning_page(tx, due, order_by, _due_params(now_us), slot, limit)


def due_releases(tx: Tx, *, now_us: int, slot: int, limit: int) -> list[uuid.UUID]:
    """Page ``slot`` (turning) of the orders whose auto-release time has come."""
    order_by = "auto_release_at_us, id"
    return _turning_page(tx, _DUE_RELEASE, order_by, {"now": now_us}, slot, limit)


def refusal_codes_noted(tx: Tx, order_id: uuid.UUID) -> set[str]:
    """The codes of the ``order.dispatch_expiry_refused`` events written for the order."""
    rows = tx.execute(
        "SELECT payload FROM outbox_events WHERE subject_id = :id AND type = :type",
        {"id": order_id, "type": events.ORDER_DISPATCH_EXPIRY_REFUSED},
    )
    return {json.loads(raw[0])["code"] for raw in rows}
