"""Issuing and checking pickup codes (see :mod:`ledger.flows.pickup`)."""

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
from ledger.flows.pickup import repository
from ledger.flows.pickup.repository import NewPickupCode, PickupCodeState

__all__ = [
    "CODE_DIGITS",
    "HANDOVER_METHODS",
    "ISSUES_PER_ORDER_MAX",
    "PICKUP_CODE_EVENT",
    "SALT_BYTES",
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
    if repository.count_for_order(tx, order_id) >= ISSUES_PER_ORDER_MAX:
        raise Refused(
            "pickup_codes_exceeded", f"order {order_id} had {ISSUES_PER_ORDER_MAX} pickup codes"
        )
    repository.void_open(tx, order_id)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_bytes(SALT_BYTES)
    new = NewPickupCode(
        id=uuid.uuid4(),
        order_id=order_id,
        villager_id=villager_id,
        salt=salt,
        code_hash=_digest(salt, order_id, code),
        expires_at_us=valid_until_us,
    )
    repository.add(tx, new)
    storefront = parties.get_party(tx, storefront_id, Kind.STOREFRONT)
    payload: dict[str, Any] = {
        "order_id": str(order_id),
        "storefront_name": storefront.name,
        "code": code,
        "valid_until": None if valid_until_us is None else from_us(valid_until_us).isoformat(),
    }
    events.emit(tx, PICKUP_CODE_EVENT, payload, party_id=villager_id, subject_id=order_id)
    return new.id


def _try(tx: Tx, order_id: uuid.UUID, code: str) -> PickupProof | str:
    """Compare ``code`` with the order's open code; a proof, or why not (the wrong try
    counted in ``tx``)."""
    found = repository.find_open(tx, order_id)
    if found is None:
        return f"order {order_id} has no open pickup code (ask the storefront to send a new one)"
    if hmac.compare_digest(_digest(found.salt, order_id, code), found.code_hash):
        return PickupProof(found.id, order_id, _SEAL)
    tries = found.tries_wrong + 1
    state = PickupCodeState.VOID if tries >= TRIES_WRONG_MAX else PickupCodeState.OPEN
    repository.record_wrong_try(tx, found.id, tries_wrong=tries, state=state)
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
    if repository.find_state(tx, proof.code_id, order_id) is not PickupCodeState.OPEN:
        raise Refused("pickup_code_invalid", "the pickup code was voided or used meanwhile")
    if final:
        repository.set_state(tx, proof.code_id, PickupCodeState.USED)
