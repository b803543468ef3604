"""The consent flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.consent`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from argon2.low_level import Type, hash_secret_raw

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.store import from_us
from ledger.core.tx import Tx
from ledger.flows import events, limits, parties
from ledger.flows.agent_float import check_amount, check_id
from ledger.flows.consent import repository
from ledger.flows.consent.repository import ConsentRow, ConsentState, Purpose
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind, Party
from ledger.limits import SWEEP_BATCH_MAX as SWEEP_LIMIT_MAX
from ledger.limits import US_PER_S

CODE_DIGITS = 6
"""A consent code is this many decimal digits."""
CODE_TTL_S = 10 * 60
"""How long a withdrawal or pay code (and a consent given by PIN) stays usable."""
OFFLINE_CODE_TTL_S = 24 * 3600
"""How long an offline withdrawal code (and the hold it made) stays usable."""
WRONG_TRIES_MAX = 3
"""Wrong codes for a villager and purpose that void the villager's open codes of it."""
OPEN_CODES_MAX = 3
"""The most open codes a villager may have for one purpose at a time."""
CALLER_FAILURES_MAX = 10
"""The most wrong codes one caller may present in :data:`CALLER_FAILURE_WINDOW_S`."""
CALLER_FAILURE_WINDOW_S = 3600

CODE_SALT_BYTES = 16
CODE_HASH_BYTES = 32
CODE_HASH_TIME_COST = 1
CODE_HASH_MEMORY_KIB = 8192
"""argon2id cost of a code's hash (about 10 ms here): 10**6 guesses take hours, the code
lives minutes."""

CONSENT_CODE_MADE = "consent.code_made"
CONSENT_PIN_GIVEN = "consent.pin_given"
CONSENT_USED = "consent.used"
CONSENT_VOIDED = "consent.voided"
CONSENT_EXPIRED = "consent.expired"


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A code as made: answered once, to the villager's own channel; the only place the
    digits appear."""

    id: uuid.UUID
    villager_id: uuid.UUID
    purpose: Purpose
    amount_minor: int
    agent_id: uuid.UUID | None
    order_id: uuid.UUID | None
    code: str
    expires_at: datetime


_SEAL = object()
"""Only this module builds a :class:`Consent` that :func:`require_in` accepts."""


@dataclass(frozen=True, slots=True)
class Consent:
    """The proof a money flow needs; built only by this module."""

    villager_id: uuid.UUID
    purpose: Purpose
    amount_minor: int
    agent_id: uuid.UUID | None
    order_id: uuid.UUID | None
    code_id: uuid.UUID | None
    """The code's id; ``None`` when the villager gave it with the PIN."""
    consent_id: uuid.UUID
    """The row that records it (the code's id, or the PIN consent's own)."""
    seal: object = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class HeldWithdrawal:
    """What an offline withdrawal code holds: the core hold, its fee quote (JSON of
    :class:`ledger.flows.fees.Quote`, ``None`` without a schedule) and the UTC day whose
    cash-out usage counted the amount."""

    hold_id: uuid.UUID
    quote: str | None
    utc_day: int


# -- checks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Asked:
    """What a consent is for: checked once, the same way, by :func:`make_code`,
    :func:`by_pin` and :func:`check_code`."""

    villager_id: uuid.UUID
    purpose: Purpose
    amount_minor: int
    agent_id: uuid.UUID | None
    order_id: uuid.UUID | None


def _asked(
    villager_id: uuid.UUID,
    purpose: object,
    amount_minor: int,
    agent_id: uuid.UUID | None,
    order_id: uuid.UUID | None,
) -> _Asked:
    """The request checked: a known purpose, well-formed ids, an amount, the target the
    purpose takes (:func:`_check_target`)."""
    checked = _purpose(purpose)
    check_id(villager_id, "villager_id")
    check_amount(amount_minor)
    _check_target(checked, agent_id, order_id)
    return _Asked(villager_id, checked, amount_minor, agent_id, order_id)


def _purpose(value: object) -> Purpose:
    try:
        return Purpose(str(value))
    except ValueError:
        raise MalformedRequest(f"purpose must be one of {[p.value for p in Purpose]}") from None


def _check_target(purpose: Purpose, agent_id: uuid.UUID | None, order_id: uuid.UUID | None) -> None:
    """A withdrawal names one agent and no order, a payment one order and no agent."""
    if agent_id is not None:
        check_id(agent_id, "agent_id")
    if order_id is not None:
        check_id(order_id, "order_id")
    wants_agent = purpose is not Purpose.PAYMENT
    if (agent_id is not None) != wants_agent or (order_id is not None) == wants_agent:
        raise Refused(
            "consent_purpose_invalid",
            f"a {purpose.value} consent names {'one agent' if wants_agent else 'one order'}",
        )


def _hash(code: str, salt: bytes) -> bytes:
    return hash_secret_raw(
        code.encode("ascii"),
        salt,
        time_cost=CODE_HASH_TIME_COST,
        memory_cost=CODE_HASH_MEMORY_KIB,
        parallelism=1,
        hash_len=CODE_HASH_BYTES,
        type=Type.ID,
    )


def _well_formed(code: object) -> bool:
    return isinstance(code, str) and len(code) == CODE_DIGITS and code.isascii() and code.isdigit()


def _verify_pin(led: Ledger, villager_id: uuid.UUID, pin: str) -> None:
    from ledger.flows import villagers  # late: villagers may import the flows

    villagers.verify_pin(led, villager_id=villager_id, pin=pin)


def _villager_locked(tx: Tx, villager_id: uuid.UUID) -> Party:
    """The villager, its party row locked: one villager's consents change one at a time."""
    parties.find_party(tx, villager_id, lock=True)
    return parties.get_party(tx, villager_id, Kind.VILLAGER)


def _check_ceiling(tx: Tx, villager: Party, amount_minor: int) -> None:
    if villager.kyc_tier is None:
        raise Refused("kyc_tier_unknown", f"villager {villager.id} has no KYC tier")
    tier = limits.tier_limits_in(tx, currency=villager.currency, tier=villager.kyc_tier)
    if amount_minor > tier.per_transaction_max_minor:
        raise Refused(
            "limit_exceeded_per_transaction",
            f"{amount_minor} is above the {tier.tier} limit of"
            f" {tier.per_transaction_max_minor} per transaction",
        )


def _agent_for(tx: Tx, villager: Party, agent_id: uuid.UUID | None) -> Party | None:
    if agent_id is None:
        return None
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    if agent.currency != villager.currency:
        raise Refused(
            "currency_mismatch",
            f"the agent holds {agent.currency}, the villager {villager.currency}",
        )
    return agent


# -- events, expiry -----------------------------------------------------------------------


def _payload(row: ConsentRow, **extra: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "consent_id": str(row.id),
        "villager_id": str(row.villager_id),
        "purpose": row.purpose.value,
        "method": row.method,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "agent_id": None if row.agent_id is None else str(row.agent_id),
        "order_id": None if row.order_id is None else str(row.order_id),
        "expires_at": from_us(row.expires_at_us).isoformat(),
    }
    payload.update(extra)
    return payload


def _emit(tx: Tx, event_type: str, row: ConsentRow, **extra: Any) -> None:
    events.emit(tx, event_type, _payload(row, **extra), party_id=row.villager_id, subject_id=row.id)


def _give_back(tx: Tx, row: ConsentRow, *, void_hold: bool) -> None:
    """An offline withdrawal code that will not be used: its hold voided (unless the core
    already expired it) and its amount given back to the day's cash-out usage."""
    if row.purpose is not Purpose.OFFLINE_WITHDRAWAL:
        return
    from ledger.flows import cash  # late: cash imports this module

    if row.hold_id is None or row.utc_day is None:  # a database CHECK too
        raise InvariantViolation(f"offline withdrawal code {row.id} holds nothing")
    # The usage row before the accounts: the order the money flows lock them in.
    limits.release_in(
        tx,
        villager_id=row.villager_id,
        day=row.utc_day,
        direction=limits.Direction.CASH_OUT,
        amount_minor=row.amount_minor,
    )
    if void_hold:
        cash.void_offline_withdrawal_in(tx, consent_id=row.id, hold_id=row.hold_id)


def _expire_due(tx: Tx, rows: list[ConsentRow]) -> list[ConsentRow]:
    """Expire the rows whose time has passed; the others, still open."""
    live = []
    for row in rows:
        if not row.due(tx.now_us):
            live.append(row)
            continue
        repository.close(tx, row.id, ConsentState.EXPIRED)
        _give_back(tx, row, void_hold=False)  # the hold's timeout is the code's
        _emit(tx, CONSENT_EXPIRED, row)
    return live


# -- making a consent -----------------------------------------------------------------------


def make_code(
    led: Ledger,
    *,
    villager_id: uuid.UUID,
    pin: str,
    purpose: Purpose,
    amount_minor: int,
    agent_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
) -> IssuedCode:
    """The villager makes a one-time code (the PIN first, in its own transaction): for
    ``purpose``, exactly ``amount_minor``, at one agent or for one order. An offline
    withdrawal code holds its amount and fee on the wallet now (module docstring)."""
    asked = _asked(villager_id, purpose, amount_minor, agent_id, order_id)
    return _issue(led, asked, pin)


def make_code_in_session(
    led: Ledger,
    *,
    villager_id: uuid.UUID,
    purpose: Purpose,
    amount_minor: int,
    agent_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
) -> IssuedCode:
    """:func:`make_code` for a channel that verified the villager's PIN earlier in the
    same session, where she typed it (the USSD menu, :mod:`ledger.flows.ussd`, verifies
    it once per session): the PIN is not checked a second time. Refused ``pin_locked``
    when her PIN is locked now (three wrong tries elsewhere since), ``villager_not_active``
    when she is not active."""
    asked = _asked(villager_id, purpose, amount_minor, agent_id, order_id)
    return _issue(led, asked, None)


def _issue(led: Ledger, asked: _Asked, pin: str | None) -> IssuedCode:
    """A new code for ``asked``: the PIN checked first, or (``None``) the session's."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_bytes(CODE_SALT_BYTES)
    secret = (salt, _hash(code, salt))
    if pin is not None:
        row = _give(led, asked, pin, secret)
    else:
        consent_id = uuid.uuid4()
        row = led.transact(lambda tx: _give_in(tx, consent_id, asked, secret, session=True))
    return IssuedCode(
        row.id,
        asked.villager_id,
        asked.purpose,
        asked.amount_minor,
        asked.agent_id,
        asked.order_id,
        code,
        from_us(row.expires_at_us),
    )


def _active_in(tx: Tx, villager_id: uuid.UUID) -> None:
    """The villager's PIN is usable now (a session's verified PIN counts only then)."""
    from ledger.flows import villagers  # late: villagers may import the flows

    found = villagers.get_villager_in(tx, villager_id)
    if found is not None and found.state is villagers.State.LOCKED:
        raise Refused("pin_locked", "the villager's PIN is locked")
    if found is None or found.state is not villagers.State.ACTIVE:
        raise Refused("villager_not_active", f"villager {villager_id} is not active")


def by_pin(
    led: Ledger,
    *,
    villager_id: uuid.UUID,
    pin: str,
    purpose: Purpose,
    amount_minor: int,
    agent_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
) -> Consent:
    """The villager starts the step with the PIN (USSD later): a consent for exactly
    this, usable once within :data:`CODE_TTL_S`. An offline withdrawal needs a code."""
    asked = _asked(villager_id, purpose, amount_minor, agent_id, order_id)
    if asked.purpose is Purpose.OFFLINE_WITHDRAWAL:
        raise Refused("consent_purpose_invalid", "an offline withdrawal needs a code")
    return _consent(_give(led, asked, pin, None))


def _give(led: Ledger, asked: _Asked, pin: str, secret: tuple[bytes, bytes] | None) -> ConsentRow:
    """The one path of :func:`make_code` (``secret``: the code's salt and hash) and
    :func:`by_pin` (``None``): the PIN checked in a transaction of its own, then the
    consent stored in another."""
    _verify_pin(led, asked.villager_id, pin)
    consent_id = uuid.uuid4()
    return led.transact(lambda tx: _give_in(tx, consent_id, asked, secret))


def _give_in(
    tx: Tx,
    consent_id: uuid.UUID,
    asked: _Asked,
    secret: tuple[bytes, bytes] | None,
    *,
    session: bool = False,
) -> ConsentRow:
    """Store a consent under the villager's lock, within the tier's per-transaction
    maximum; a code also: at most :data:`OPEN_CODES_MAX` open, and an offline withdrawal
    code's hold. With ``session`` (a PIN verified earlier in the session), only if her
    PIN is usable now."""
    villager = _villager_locked(tx, asked.villager_id)
    if session:
        _active_in(tx, asked.villager_id)
    _check_ceiling(tx, villager, asked.amount_minor)
    agent = _agent_for(tx, villager, asked.agent_id)
    offline = asked.purpose is Purpose.OFFLINE_WITHDRAWAL
    ttl_s = OFFLINE_CODE_TTL_S if offline else CODE_TTL_S
    held = None
    if secret is not None:
        live = _expire_due(tx, repository.select_open(tx, asked.villager_id, asked.purpose))
        if sum(row.method == "code" for row in live) >= OPEN_CODES_MAX:
            raise Refused(
                "consent_codes_too_many",
                f"the villager has {OPEN_CODES_MAX} open {asked.purpose.value} codes",
            )
    if offline:
        from ledger.flows import cash  # late: cash imports this module

        assert agent is not None and secret is not None  # _asked, by_pin
        held = cash.hold_offline_withdrawal_in(
            tx,
            consent_id=consent_id,
            agent=agent,
            villager=villager,
            amount_minor=asked.amount_minor,
            timeout_s=ttl_s,
        )
    row = _insert(tx, consent_id, villager, asked, secret, held, ttl_s)
    _emit(tx, CONSENT_PIN_GIVEN if secret is None else CONSENT_CODE_MADE, row)
    return row


def _insert(
    tx: Tx,
    consent_id: uuid.UUID,
    villager: Party,
    asked: _Asked,
    secret: tuple[bytes, bytes] | None,
    held: HeldWithdrawal | None,
    ttl_s: int,
) -> ConsentRow:
    new = ConsentRow(
        id=consent_id,
        villager_id=villager.id,
        purpose=asked.purpose,
        method="pin" if secret is None else "code",
        amount_minor=asked.amount_minor,
        currency=villager.currency,
        agent_id=asked.agent_id,
        order_id=asked.order_id,
        code_salt=None if secret is None else secret[0],
        code_hash=None if secret is None else secret[1],
        state=ConsentState.OPEN,
        failures=0,
        hold_id=None if held is None else held.hold_id,
        quote=None if held is None else held.quote,
        utc_day=None if held is None else held.utc_day,
        expires_at_us=tx.now_us + ttl_s * US_PER_S,
    )
    repository.insert(tx, new)
    return _read(tx, consent_id, lock=False)


def _read(tx: Tx, consent_id: uuid.UUID, *, lock: bool) -> ConsentRow:
    row = repository.select(tx, consent_id, lock=lock)
    if row is None:
        raise Refused("consent_invalid", f"no consent {consent_id}")
    return row


def _consent(row: ConsentRow) -> Consent:
    return Consent(
        villager_id=row.villager_id,
        purpose=row.purpose,
        amount_minor=row.amount_minor,
        agent_id=row.agent_id,
        order_id=row.order_id,
        code_id=row.id if row.method == "code" else None,
        consent_id=row.id,
        seal=_SEAL,
    )


# -- checking a code ------------------------------------------------------------------------


def check_code(
    led: Ledger,
    *,
    caller_id: uuid.UUID,
    villager_id: uuid.UUID,
    code: str,
    purpose: Purpose,
    amount_minor: int,
    agent_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
) -> Consent:
    """The consent a code the caller presents gives, checked in a transaction of its own
    (a wrong try is counted and committed before the refusal; module docstring).
    :class:`Refused` ``consent_invalid``, ``consent_expired``, ``consent_rate_limited``."""
    asked = _asked(villager_id, purpose, amount_minor, agent_id, order_id)
    check_id(caller_id, "caller_id")
    outcome = led.transact(lambda tx: _check_in(tx, caller_id, code, asked))
    if isinstance(outcome, Refused):
        raise outcome
    return outcome


def _check_in(tx: Tx, caller_id: uuid.UUID, code: object, asked: _Asked) -> Consent | Refused:
    """The consent, or the refusal to raise once this transaction has committed."""
    villager_id, purpose, amount_minor = asked.villager_id, asked.purpose, asked.amount_minor
    agent_id, order_id = asked.agent_id, asked.order_id
    since_us = tx.now_us - CALLER_FAILURE_WINDOW_S * US_PER_S
    failed = repository.count_failures_since(tx, caller_id=caller_id, since_us=since_us)
    if failed >= CALLER_FAILURES_MAX:
        return Refused(
            "consent_rate_limited",
            f"{failed} wrong codes in the last {CALLER_FAILURE_WINDOW_S} s; try later",
        )
    if parties.find_party(tx, villager_id) is None:
        return _wrong_try(tx, caller_id, villager_id, purpose, [])
    _villager_locked(tx, villager_id)
    rows = repository.select_open(tx, villager_id, purpose)
    found = _match(rows, code, (amount_minor, agent_id, order_id)) if _well_formed(code) else None
    if found is not None and found.due(tx.now_us):
        _expire_due(tx, rows)
        return Refused("consent_expired", "the code has expired; the villager makes a new one")
    live = _expire_due(tx, rows)
    if found is None or not found.matches(amount_minor, agent_id, order_id):
        return _wrong_try(tx, caller_id, villager_id, purpose, live)
    return _consent(found)


def _match(
    rows: list[ConsentRow], code: object, asked: tuple[int, uuid.UUID | None, uuid.UUID | None]
) -> ConsentRow | None:
    """The open code with these digits (every row's hash is computed, so the time does
    not tell how many there are); of two with the same digits, the one made for
    ``asked`` (amount, agent, order)."""
    assert isinstance(code, str)  # _well_formed
    same = [
        row
        for row in rows
        if row.method == "code"
        and row.code_salt is not None
        and row.code_hash is not None
        and hmac.compare_digest(_hash(code, row.code_salt), row.code_hash)
    ]
    fitting = [row for row in same if row.matches(*asked)] or same
    return fitting[0] if fitting else None


def _wrong_try(
    tx: Tx, caller_id: uuid.UUID, villager_id: uuid.UUID, purpose: Purpose, live: list[ConsentRow]
) -> Refused:
    """Count a wrong code for the caller and on every open code of the villager and
    purpose; void those that reached :data:`WRONG_TRIES_MAX`."""
    repository.insert_failure(tx, caller_id=caller_id, villager_id=villager_id, purpose=purpose)
    for row in live:
        if row.method != "code":
            continue
        tries = row.failures + 1
        repository.set_failures(tx, row.id, tries)
        if tries >= WRONG_TRIES_MAX:
            repository.close(tx, row.id, ConsentState.VOIDED)
            _give_back(tx, row, void_hold=True)
            _emit(tx, CONSENT_VOIDED, row, reason="wrong_tries", failures=tries)
    return Refused("consent_invalid", "the code is not a valid consent for this request")


# -- using a consent ------------------------------------------------------------------------


def require_in(
    tx: Tx,
    consent: Consent | None,
    *,
    villager_id: uuid.UUID,
    purpose: Purpose,
    amount_minor: int,
    agent_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
    used_for: uuid.UUID | None = None,
) -> None:
    """Inside the money transaction: use ``consent`` for this debit, once (module
    docstring). ``used_for`` names the operation (default: the order, else the consent).
    :class:`Refused` ``consent_required``, ``consent_invalid``, ``consent_expired``,
    ``sim_swap_hold``; the caller's transaction must roll back."""
    if consent is None:
        raise Refused("consent_required", "the villager's consent (a code or the PIN) is needed")
    if not isinstance(consent, Consent) or consent.seal is not _SEAL:
        raise Refused("consent_invalid", "not a consent this ledger gave")
    asked = (villager_id, Purpose(purpose), amount_minor, agent_id, order_id)
    if (
        consent.villager_id,
        consent.purpose,
        consent.amount_minor,
        consent.agent_id,
        consent.order_id,
    ) != asked:
        raise Refused("consent_invalid", "the consent is for another debit")
    row = _read(tx, consent.consent_id, lock=True)
    if (row.villager_id, row.purpose, row.amount_minor, row.agent_id, row.order_id) != asked:
        raise Refused("consent_invalid", "the consent is for another debit")
    if row.state is ConsentState.EXPIRED or (row.state is ConsentState.OPEN and row.due(tx.now_us)):
        raise Refused("consent_expired", "the consent has expired")
    if row.state is not ConsentState.OPEN:
        raise Refused("consent_invalid", f"the consent was {row.state.value}")
    from ledger.flows import villagers  # late: villagers may import the flows

    villagers.check_debit_allowed_in(tx, villager_id=villager_id, amount_minor=amount_minor)
    operation = used_for or order_id or row.id
    repository.close(tx, row.id, ConsentState.USED, operation)
    _emit(tx, CONSENT_USED, row, used_for=str(operation))


def held_withdrawal_in(tx: Tx, consent: Consent) -> HeldWithdrawal:
    """What the offline withdrawal code behind ``consent`` holds (read after
    :func:`require_in` used it)."""
    row = _read(tx, consent.consent_id, lock=False)
    if row.hold_id is None or row.utc_day is None:
        raise Refused("consent_invalid", "the consent holds nothing")
    return HeldWithdrawal(row.hold_id, row.quote, row.utc_day)


# -- timers ---------------------------------------------------------------------------------


def sweep_codes(led: Ledger, limit: int = 1000) -> int:
    """Expire open consents whose time has passed (an offline withdrawal code gives its
    usage back; the core expires its hold), at most ``limit``; how many this call
    expired."""
    if type(limit) is not int or not 1 <= limit <= SWEEP_LIMIT_MAX:
        raise MalformedRequest(f"limit must be 1..{SWEEP_LIMIT_MAX}")
    due = led.transact(lambda tx: repository.due_villagers(tx, limit=limit))
    expired = 0
    for villager_id, purpose in due:

        def one(tx: Tx, villager_id: uuid.UUID = villager_id, purpose: Purpose = purpose) -> int:
            _villager_locked(tx, villager_id)
            rows = repository.select_open(tx, villager_id, purpose)
            return len(rows) - len(_expire_due(tx, rows))

        expired += led.transact(one)
    return expired
