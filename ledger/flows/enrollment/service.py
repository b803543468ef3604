"""Issuing and redeeming enrollment codes (the rules are in :mod:`ledger.flows.enrollment`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.core.ledger import Ledger
from ledger.core.store import from_us
from ledger.core.tx import Tx
from ledger.flows import events, offline, parties, principals
from ledger.flows.enrollment import repository
from ledger.flows.enrollment.repository import CodeState, EnrollmentRow, NewCode
from ledger.flows.errors import NotFound, Refused
from ledger.flows.parties import Kind
from ledger.flows.principals import Alg, Role

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "CODE_TTL_S",
    "ENROLLABLE",
    "TRIES_WRONG_MAX",
    "Enrolled",
    "Issued",
    "issue",
    "issue_in",
    "normalise",
    "redeem",
    "thumbprint",
    "void_codes",
]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O or U; 5 bits a character."""
LOOKUP_LENGTH = 4
"""The code's first characters, stored in clear to find its row (not secret)."""
SECRET_LENGTH = 16
"""The secret part: 16 characters x 5 bits = 80 random bits."""
CODE_LENGTH = LOOKUP_LENGTH + SECRET_LENGTH
GROUP_LENGTH = 4
CODE_TTL_S = 900
"""A code is valid for 15 minutes: redeemable at 899 s, expired at 900 s."""
TRIES_WRONG_MAX = 5
"""Wrong codes with an open code's lookup prefix that void it."""
PUBLIC_KEY_LENGTH = 32
CODE_TEXT_LENGTH_MAX = 64
ENROLLABLE = frozenset({Role.AGENT, Role.AUDITOR, Role.OPERATOR})
"""Roles whose keys are made on a phone or in a browser (storefronts sign from servers)."""
ISSUED, REDEEMED, FAILED = "enrollment.issued", "enrollment.redeemed", "enrollment.failed"
_READING = str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None})


@dataclass(frozen=True, slots=True)
class Issued:
    """A new code; ``code`` exists only here (the database keeps its digest)."""

    id: uuid.UUID
    principal_id: uuid.UUID
    role: Role
    code: str
    """Grouped for reading: ``XXXX-XXXX-XXXX-XXXX-XXXX``."""
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Enrolled:
    """What a redeemed code registered."""

    enrollment_id: uuid.UUID
    principal_id: uuid.UUID
    role: Role
    key_id: str
    device_id: uuid.UUID | None
    """The agent's offline device (agents only)."""


def thumbprint(public_key: bytes) -> str:
    """The key id a redeem request is signed with: ``enroll-`` + base64url (no padding)
    of the SHA-256 of the raw 32-byte public key."""
    digest = hashlib.sha256(public_key).digest()
    return "enroll-" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


def _grouped(code: str) -> str:
    return "-".join(code[i : i + GROUP_LENGTH] for i in range(0, len(code), GROUP_LENGTH))


def normalise(text: object) -> str | None:
    """The code as stored (upper case, no dashes or spaces, O->0, I/L->1), or None when it
    cannot be a code."""
    if not isinstance(text, str) or len(text) > CODE_TEXT_LENGTH_MAX or not text.isascii():
        return None
    code = text.upper().translate(_READING)
    if len(code) != CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    return code


def issue_in(tx: Tx, *, principal_id: uuid.UUID, issued_by: uuid.UUID | None) -> Issued:
    """A new one-time code for the principal, valid :data:`CODE_TTL_S`; the principal's
    older open codes are voided (one open code a principal). ``issued_by`` is the signed
    operator who asked (None: the command line on the database itself); an operator's
    code is refused when asked by an operator (maker-checker needs two people)."""
    role = principals.principal_role_in(tx, principal_id)
    if role is None:
        raise NotFound("principal_not_found", f"no principal {principal_id}")
    if role not in ENROLLABLE:
        raise Refused("enrollment_role_refused", f"a {role.value} is not enrolled with a code")
    if role is Role.OPERATOR and issued_by is not None:
        # One operator must not get a key for another (or a second one of its own): that
        # would let it be both maker and checker. An operator's code comes from the
        # command line at setup (issued_by None), as its first keys do.
        raise Refused(
            "enrollment_role_refused",
            "an operator's key is not issued through the API: one operator could then act"
            " as two (use `vledger agents enroll --principal ID` at setup)",
        )
    if role is Role.AGENT:
        parties.get_party(tx, principal_id, Kind.AGENT)  # its device needs the agent party
    repository.void_open_of(tx, principal_id)
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    expires_at_us = tx.now_us + CODE_TTL_S * 1_000_000
    new = NewCode(
        id=uuid.uuid4(),
        principal_id=principal_id,
        role=role.value,
        lookup=code[:LOOKUP_LENGTH],
        code_hash=_digest(code),
        issued_by=issued_by,
        expires_at_us=expires_at_us,
    )
    repository.insert(tx, new)
    expires_at = from_us(expires_at_us)
    payload = {
        "enrollment_id": str(new.id),
        "principal_id": str(principal_id),
        "role": role.value,
        "issued_by": None if issued_by is None else str(issued_by),
        "expires_at": expires_at.isoformat(),
    }
    events.emit(tx, ISSUED, payload, subject_id=new.id)
    return Issued(new.id, principal_id, role, _grouped(code), expires_at)


def issue(led: Ledger, *, principal_id: uuid.UUID, issued_by: uuid.UUID | None) -> Issued:
    """:func:`issue_in` in a transaction of its own."""
    return led.transact(lambda tx: issue_in(tx, principal_id=principal_id, issued_by=issued_by))


def _failed(tx: Tx, row: EnrollmentRow | None, reason: str) -> tuple[str, str]:
    """Record a failed redeem (an event; a wrong try on an open code); the refusal."""
    detail = {
        "enrollment_code_invalid": "the enrollment code is wrong",
        "enrollment_code_expired": "the enrollment code expired: ask for a new one",
        "enrollment_code_used": "the enrollment code was used already",
        "enrollment_code_void": "the enrollment code is void: ask for a new one",
    }[reason]
    if row is not None and row.state is CodeState.OPEN and reason == "enrollment_code_invalid":
        tries = row.tries_wrong + 1
        voided = tries >= TRIES_WRONG_MAX
        state = CodeState.VOID if voided else CodeState.OPEN
        repository.record_wrong_try(tx, row.id, tries_wrong=tries, state=state)
        if voided:
            detail += f"; {TRIES_WRONG_MAX} wrong tries voided the open code"
    payload = {
        "enrollment_id": None if row is None else str(row.id),
        "principal_id": None if row is None else str(row.principal_id),
        "reason": reason,
    }
    events.emit(tx, FAILED, payload, subject_id=None if row is None else row.id)
    return reason, detail


def _replayed(row: EnrollmentRow, public_key: bytes) -> Enrolled | None:
    """The first answer, when the same key redeems its own used code again."""
    if row.state is not CodeState.USED or row.key_id is None or row.public_key is None:
        return None
    if not hmac.compare_digest(base64.b64decode(row.public_key), public_key):
        return None
    return Enrolled(row.id, row.principal_id, Role(row.role), row.key_id, row.device_id)


def _register(tx: Tx, row: EnrollmentRow, public_key: bytes) -> Enrolled:
    key = principals.add_key_for_in(
        tx, principal_id=row.principal_id, alg=Alg.ED25519, material=public_key
    )
    device_id = None
    if key.role is Role.AGENT:
        device_id = uuid.uuid4()
        offline.register_device_in(
            tx,
            device_id=device_id,
            agent_id=row.principal_id,
            public_key=public_key,
            allowance_minor=0,
        )
    encoded = base64.b64encode(public_key).decode("ascii")
    repository.mark_used(tx, row.id, key_id=key.key_id, public_key=encoded, device_id=device_id)
    payload = {
        "enrollment_id": str(row.id),
        "principal_id": str(row.principal_id),
        "role": key.role.value,
        "key_id": key.key_id,
        "device_id": None if device_id is None else str(device_id),
    }
    events.emit(tx, REDEEMED, payload, subject_id=row.id)
    return Enrolled(row.id, row.principal_id, key.role, key.key_id, device_id)


def _redeem_in(tx: Tx, code: str, public_key: bytes) -> Enrolled | tuple[str, str]:
    rows = repository.find_by_lookup(tx, code[:LOOKUP_LENGTH])
    wanted = _digest(code)
    row = next((r for r in rows if hmac.compare_digest(r.code_hash, wanted)), None)
    if row is None:
        open_rows = [r for r in rows if r.state is CodeState.OPEN]
        for other in open_rows[1:]:
            _failed(tx, other, "enrollment_code_invalid")
        return _failed(tx, open_rows[0] if open_rows else None, "enrollment_code_invalid")
    replay = _replayed(row, public_key)
    if replay is not None:
        return replay
    if row.state is CodeState.USED:
        return _failed(tx, row, "enrollment_code_used")
    if row.state is CodeState.VOID:
        return _failed(tx, row, "enrollment_code_void")
    if tx.now_us >= row.expires_at_us:
        return _failed(tx, row, "enrollment_code_expired")
    return _register(tx, row, public_key)


def _check_public_key(public_key: object) -> bytes:
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_LENGTH:
        raise Refused("public_key_invalid", "a public key is 32 raw bytes of Ed25519")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise Refused("public_key_invalid", "not an Ed25519 public key") from None
    return public_key


def redeem(led: Ledger, *, code: object, public_key: object) -> Enrolled:
    """Register ``public_key`` as the key of the code's principal (and as an agent's
    offline device) and use the code up, in one transaction. A failure is recorded
    (event, wrong try) in a transaction of its own and then refused:
    ``enrollment_code_invalid`` (wrong or malformed; a malformed code counts nothing),
    ``enrollment_code_expired``, ``enrollment_code_used``, ``enrollment_code_void``.
    The same key redeeming its own used code again answers the first result."""
    raw = _check_public_key(public_key)
    normal = normalise(code)
    if normal is None:
        raise Refused("enrollment_code_invalid", f"an enrollment code is {CODE_LENGTH} characters")
    outcome = led.transact(lambda tx: _redeem_in(tx, normal, raw))
    if isinstance(outcome, tuple):
        raise Refused(*outcome)
    return outcome


def void_codes(led: Ledger, *, principal_id: uuid.UUID) -> int:
    """Void the principal's open codes (a code handed to the wrong person, a principal
    that must not enroll any more); how many were open."""
    return led.transact(lambda tx: repository.void_open_of(tx, principal_id))
