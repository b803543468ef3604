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

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ledger.core.ledger import Ledger
from ledger.core.store import from_us
from ledger.core.tx import Tx
from ledger.flows import events, parties
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind

__all__ = [
    "CODE_DIGITS",
    "HANDOVER_METHODS",
    "ISSUES_PER_ORDER_MAX",
    "PICKUP_CODE_EVENT",
    "TRIES_WRONG_MAX",
    "PickupProof",
    "check",
    "issue_in",
    "needed",
    "require_in",
]

HANDOVER_METHODS = frozenset({"pickup_point", "agent_delivery"})
"""Delivery methods whose goods are handed over at a station: they need a pickup code."""
CODE_DIGITS = 6
TRIES_WRONG_MAX = 3
"""Wrong codes that void an order's pickup code."""
ISSUES_PER_ORDER_MAX = 5
"""Pickup codes one order may be given (the first and the re-sent ones)."""
PICKUP_CODE_EVENT = "order.pickup_code"
"""The outbox event addressed to the villager that carries the code (the SMS to send)."""

SALT_BYTES = 32
"""Not 16: a 16-byte BLOB reads back as a UUID on SQLite."""

_SEAL = object()
"""Only this module makes proofs: :func:`require_in` refuses one without this seal."""


@dataclass(frozen=True, slots=True)
class PickupProof:
    """A right pickup code was shown for this order (made only by :func:`check`)."""

    code_id: uuid.UUID
    order_id: uuid.UUID
    _seal: object = field(repr=False, compare=False)


def needed(delivery_method: str, villager_id: uuid.UUID | None) -> bool:
    """Whether an order's hand-over needs a pickup code."""
    return delivery_method in HANDOVER_METHODS and villager_id is not None


def _digest(salt: bytes, order_id: uuid.UUID, code: str) -> bytes:
    return hashlib.sha256(salt + order_id.bytes + code.encode("ascii")).digest()


def _well_formed(code: object) -> TypeGuard[str]:
    return isinstance(code, str) and len(code) == CODE_DIGITS and code.isascii() and code.isdigit()


def issue_in(
    tx: Tx,
    *,
    order_id: uuid.UUID,
    villager_id: uuid.UUID,
    storefront_id: uuid.UUID,
    valid_until_us: int | None,
) -> uuid.UUID:
    """Give the order a new pickup code (an open one before is void) and send it to the
    villager as a :data:`PICKUP_CODE_EVENT`; the code row's id. Refused
    ``pickup_codes_exceeded`` past :data:`ISSUES_PER_ORDER_MAX` codes for the order."""
    row = tx.one("SELECT COUNT(*) FROM pickup_codes WHERE order_id = :o", {"o": order_id})
    if row is not None and int(row[0]) >= ISSUES_PER_ORDER_MAX:
        raise Refused(
            "pickup_codes_exceeded", f"order {order_id} had {ISSUES_PER_ORDER_MAX} pickup codes"
        )
    tx.execute(
        "UPDATE pickup_codes SET state = 'void', updated_at_us = :now"
        " WHERE order_id = :o AND state = 'open'",
        {"o": order_id, "now": tx.now_us},
    )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_bytes(SALT_BYTES)
    code_id = uuid.uuid4()
    tx.execute(
        "INSERT INTO pickup_codes (id, order_id, villager_id, salt, code_hash, state,"
        " tries_wrong, expires_at_us, created_at_us, updated_at_us) VALUES (:id, :o, :v,"
        " :salt, :hash, 'open', 0, :until, :now, :now)",
        {
            "id": code_id,
            "o": order_id,
            "v": villager_id,
            "salt": salt,
            "hash": _digest(salt, order_id, code),
            "until": valid_until_us,
            "now": tx.now_us,
        },
    )
    storefront = parties.get_party(tx, storefront_id, Kind.STOREFRONT)
    payload: dict[str, Any] = {
        "order_id": str(order_id),
        "storefront_name": storefront.name,
        "code": code,
        "valid_until": None if valid_until_us is None else from_us(valid_until_us).isoformat(),
    }
    events.emit(tx, PICKUP_CODE_EVENT, payload, party_id=villager_id, subject_id=order_id)
    return code_id


def _try(tx: Tx, order_id: uuid.UUID, code: str) -> PickupProof | str:
    """Compare ``code`` with the order's open code; a proof, or why not (the wrong try
    counted in ``tx``)."""
    row = tx.one(
        "SELECT id, salt, code_hash, tries_wrong FROM pickup_codes"
        f" WHERE order_id = :o AND state = 'open'{tx.for_update}",
        {"o": order_id},
    )
    if row is None:
        return f"order {order_id} has no open pickup code (ask the storefront to send a new one)"
    code_id, salt, code_hash, tries = row[0], bytes(row[1]), bytes(row[2]), int(row[3])
    if hmac.compare_digest(_digest(salt, order_id, code), code_hash):
        return PickupProof(code_id, order_id, _SEAL)
    tries += 1
    tx.execute(
        "UPDATE pickup_codes SET tries_wrong = :t, state = :s, updated_at_us = :now WHERE id = :id",
        {
            "t": tries,
            "s": "void" if tries >= TRIES_WRONG_MAX else "open",
            "now": tx.now_us,
            "id": code_id,
        },
    )
    if tries >= TRIES_WRONG_MAX:
        return f"wrong pickup code; {TRIES_WRONG_MAX} wrong tries voided it"
    return f"wrong pickup code ({TRIES_WRONG_MAX - tries} tries left)"


def check(led: Ledger, *, order_id: uuid.UUID, code: object) -> PickupProof:
    """Check ``code`` against the order's open pickup code in a transaction of its own,
    so that a wrong try is counted even though the delivery is refused: a proof, or
    Refused ``pickup_code_invalid`` (a malformed code is refused without counting)."""
    if not _well_formed(code):
        raise Refused("pickup_code_invalid", f"a pickup code is {CODE_DIGITS} digits")
    outcome = led.transact(lambda tx: _try(tx, order_id, code))
    if isinstance(outcome, str):
        raise Refused("pickup_code_invalid", outcome)
    return outcome


def require_in(tx: Tx, proof: PickupProof | None, *, order_id: uuid.UUID, final: bool) -> None:
    """Inside the delivery's transaction: the order's hand-over was proven with its open
    pickup code; ``final`` (all that is left was handed over) marks the code used."""
    if proof is None:
        raise Refused("pickup_code_required", f"order {order_id} is handed over with its code")
    if proof._seal is not _SEAL or proof.order_id != order_id:
        raise Refused("pickup_code_invalid", f"the proof is not for order {order_id}")
    row = tx.one(
        f"SELECT state FROM pickup_codes WHERE id = :id AND order_id = :o{tx.for_update}",
        {"id": proof.code_id, "o": order_id},
    )
    if row is None or row[0] != "open":
        raise Refused("pickup_code_invalid", "the pickup code was voided or used meanwhile")
    if final:
        tx.execute(
            "UPDATE pickup_codes SET state = 'used', updated_at_us = :now WHERE id = :id",
            {"now": tx.now_us, "id": proof.code_id},
        )
