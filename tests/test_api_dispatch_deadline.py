"""Over signed HTTP, both engines: a storefront may not dispatch a paid order whose
dispatch deadline has passed (the sweeper has not cancelled it yet): 409
``dispatch_deadline_passed``, nothing written; in time, the dispatch goes through.

The API runs on the wall clock, so the story moves the order's deadline rather than
the time (the exact boundary is tested on the flow, tests/test_flow_dispatch_deadline.py)."""

from __future__ import annotations

import uuid
from typing import Any

from api.problems import FLOW_CODES, STATE_CODES
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.flows.parties import Role
from tests.test_api_harness import api, api_server
from tests.test_api_orders import Village, fee_schedule, ok, refused, village

__all__ = ["api", "api_server", "fee_schedule", "village"]

SECOND_US = 1_000_000


def paid_order(village: Village) -> dict[str, Any]:
    order = village.order(50_000)
    paid: dict[str, Any] = ok(village.wallet_pay(village.agent, order))
    assert paid["state"] == "paid"
    return paid


def move_deadline(village: Village, order_id: str, *, from_now_us: int) -> None:
    now_us = to_us(village.api.ledger.now())

    def move(tx: Tx) -> None:
        tx.execute(
            "UPDATE orders SET dispatch_deadline_at_us = :at WHERE id = :id",
            {"at": now_us + from_now_us, "id": uuid.UUID(order_id)},
        )

    village.api.ledger.transact(move)


def test_dispatch_past_the_deadline_is_a_409_and_changes_nothing(village: Village) -> None:
    assert "dispatch_deadline_passed" in STATE_CODES
    order = paid_order(village)
    move_deadline(village, order["id"], from_now_us=-SECOND_US)
    before = ok(village.shop.request("GET", f"/v1/orders/{order['id']}"))
    balances = (
        village.balance(village.villager_id, Role.WALLET),
        village.balance(village.shop_id, Role.ESCROW),
    )
    problem = refused(
        village.step(village.shop, order["id"], "dispatch"), 409, "dispatch_deadline_passed"
    )
    assert problem["title"] == FLOW_CODES["dispatch_deadline_passed"]
    after = ok(village.shop.request("GET", f"/v1/orders/{order['id']}"))
    assert after == before
    assert (after["state"], after["auto_release_at"]) == ("paid", None)
    assert balances == (
        village.balance(village.villager_id, Role.WALLET),
        village.balance(village.shop_id, Role.ESCROW),
    )


def test_dispatch_before_the_deadline_goes_through(village: Village) -> None:
    order = paid_order(village)
    move_deadline(village, order["id"], from_now_us=60 * SECOND_US)
    dispatched = ok(village.step(village.shop, order["id"], "dispatch"))
    assert dispatched["state"] == "dispatched"
    assert dispatched["auto_release_at"] is not None
