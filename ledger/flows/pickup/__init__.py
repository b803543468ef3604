"""Pickup codes: the villager's proof, at the station, that the goods went to them.

An order whose delivery method hands the goods over at a station (:data:`HANDOVER_METHODS`:
``pickup_point``, a village service station; ``agent_delivery``, the order's agent, who
hands the goods over at the agent's own station) and that names a villager gets a pickup
code when it is dispatched: 6 digits, drawn with :mod:`secrets`, sent to the villager as an
outbox event addressed to them (:data:`PICKUP_CODE_EVENT`, ``party_id`` = the villager;
the next issue sends it as an SMS), and stored only as a salted SHA-256. A courier order
(delivered to the door) has no pickup code; neither has an order that names no villager
(an anonymous buyer paying cash at the agent: there is nobody to send the code to).

The delivery step of such an order (:func:`ledger.flows.orders.deliver_order`) needs the
code, in two phases, as consent codes do:

1. :func:`check`, in its own transaction before the money: the code is looked up by the
   order (never by the code alone) and compared; a wrong code is counted and committed
   (``pickup_code_invalid``), and the :data:`TRIES_WRONG_MAX`-th wrong one voids the code.
   A right code answers a :class:`PickupProof`.
2. :func:`require_in`, inside the delivery's transaction: no proof is
   ``pickup_code_required``; the proof's code must still be open (a wrong try or a new
   code may have voided it meanwhile). A delivery of all that is left marks it ``used``;
   a partial delivery leaves it open for the next hand-over of the same order.

A code lives as long as its order is dispatched: it is issued with the order's auto-release
time (``valid_until`` in the event; an extension of the timer keeps the code valid) and
dies with the order's full delivery, release, refund or cancellation, after which no
delivery step is possible anyway. A voided or lost code is replaced by the storefront
sending the dispatch step again (a new step id) on the dispatched order: a new code, the
old one void, the timer untouched; at most :data:`ISSUES_PER_ORDER_MAX` codes per order, so
that guessing is bounded at ``ISSUES_PER_ORDER_MAX * TRIES_WRONG_MAX`` tries in a million.
"""

from __future__ import annotations

from ledger.flows.pickup.repository import PickupCodeState
from ledger.flows.pickup.service import (
    CODE_DIGITS,
    HANDOVER_METHODS,
    ISSUES_PER_ORDER_MAX,
    PICKUP_CODE_EVENT,
    SALT_BYTES,
    TRIES_WRONG_MAX,
    PickupProof,
    check,
    issue_in,
    needed,
    require_in,
)

__all__ = [
    "CODE_DIGITS",
    "HANDOVER_METHODS",
    "ISSUES_PER_ORDER_MAX",
    "PICKUP_CODE_EVENT",
    "SALT_BYTES",
    "TRIES_WRONG_MAX",
    "PickupCodeState",
    "PickupProof",
    "check",
    "issue_in",
    "needed",
    "require_in",
]
