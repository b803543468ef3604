"""The villagers flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.villagers`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import phonenumbers
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ledger.core.errors import InvariantViolation
from ledger.core.ledger import Ledger
from ledger.core.store import from_us
from ledger.core.tx import Tx
from ledger.flows import events, limits, parties
from ledger.flows.errors import Conflict, FlowError, NotFound, Refused
from ledger.flows.parties import Kind
from ledger.flows.villagers import repository
from ledger.flows.villagers.repository import CodeRow, VillagerRow
from ledger.limits import US_PER_S

PIN_LENGTH_MIN = 4
PIN_LENGTH_MAX = 6
PIN_TRIES_MAX = 3
"""Wrong PIN tries in a row that lock the PIN."""
ACTIVATION_CODE_DIGITS = 8
ACTIVATION_CODE_TTL_S = 86_400
"""How long an activation code stays valid: a day to receive the SMS and type it."""
ACTIVATION_CODE_TRIES_MAX = 3
"""Wrong tries that void an activation code."""
UNLOCK_WINDOW_S = 30 * 86_400
"""A second unlock within this long of the last one needs an operator (and a hold)."""
SIM_SWAP_HOLD_S = 48 * 3_600
"""How long wallet debits above the tier's per-transaction limit are held."""
PHONE_INPUT_LENGTH_MAX = 32
"""The longest phone number text accepted before parsing (spaces and dashes included)."""
REGISTRATION_TIER = "tier0"
"""The KYC tier of a villager an agent registers: a phone number, nothing more."""

_HASHER = PasswordHasher(time_cost=3, memory_cost=19_456, parallelism=1)
"""argon2id, m=19 MiB (OWASP's floor), t=3, p=1: one verify costs ~19-28 ms on this 2-core
machine (quiet to loaded; bench/RESULTS.md "USSD"), within the 20-50 ms issue 14 asks.
A hash made with other parameters (the library's defaults before: m=64 MiB, t=3, p=4,
~117-173 ms) still verifies, and is rehashed with these on its next right PIN."""
DUMMY_PIN_HASH = (
    "$argon2id$v=19$m=19456,t=3,p=1$R3i11j8ZKZ0uwZY7E8mWUQ"
    "$EPc4FhdpvFcg9zI0UC83SixNh/9C2qq+jtx15ViXYtI"
)
"""A hash of a random secret nobody kept, with the hasher's parameters: an unknown phone
is verified against it so that it costs what a wrong PIN costs."""

_PHONE_CHARACTERS = frozenset("+0123456789 -()")
_NAME_FORBIDDEN = frozenset("<>")

T = TypeVar("T")


class Language(StrEnum):
    EN = "en"
    SW = "sw"


class State(StrEnum):
    PENDING_ACTIVATION = "pending_activation"
    ACTIVE = "active"
    LOCKED = "locked"


class _CodeReason(StrEnum):
    REGISTRATION = "registration"
    UNLOCK = "unlock"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class Villager:
    """A villager principal as it is now (no PIN hash, no code)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    """The agent that registered it."""
    name: str
    currency: str
    phone: str
    """E.164."""
    language: Language
    kyc_tier: str
    state: State
    pin_tries_left: int
    unlocked_at: datetime | None
    debit_hold_until: datetime | None
    """End of a SIM-swap hold (it may lie in the past)."""
    created_at: datetime
    updated_at: datetime
    wallet_id: uuid.UUID


# -- validation ---------------------------------------------------------------------------


def normalise_phone(raw: object) -> str:
    """``raw`` as E.164 (``+254712345678``); :class:`Refused` ``phone_invalid``."""
    if (
        not isinstance(raw, str)
        or not 1 <= len(raw) <= PHONE_INPUT_LENGTH_MAX
        or not raw.startswith("+")
        or not set(raw) <= _PHONE_CHARACTERS
    ):
        raise Refused(
            "phone_invalid",
            f"a phone number is + and its country code, then the number"
            f" (at most {PHONE_INPUT_LENGTH_MAX} characters: digits, spaces, dashes)",
        )
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise Refused("phone_invalid", "that is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise Refused("phone_invalid", "that is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_pin(pin: object, what: str = "a PIN") -> str:
    if (
        not isinstance(pin, str)
        or not PIN_LENGTH_MIN <= len(pin) <= PIN_LENGTH_MAX
        or not pin.isascii()
        or not pin.isdigit()
    ):
        raise Refused("pin_format_invalid", f"{what} is {PIN_LENGTH_MIN}-{PIN_LENGTH_MAX} digits")
    return pin


def _check_new_pin(pin: object) -> str:
    """A PIN to set: well formed and not trivially guessed."""
    checked = _check_pin(pin, "a new PIN")
    steps = {int(b) - int(a) for a, b in itertools.pairwise(checked)}
    if steps in ({0}, {1}, {-1}):
        raise Refused("pin_too_weak", "one digit repeated or a straight run is too easy to guess")
    return checked


def _check_code(code: object) -> str:
    if (
        not isinstance(code, str)
        or len(code) != ACTIVATION_CODE_DIGITS
        or not code.isascii()
        or not code.isdigit()
    ):
        raise Refused(
            "activation_code_invalid", f"an activation code is {ACTIVATION_CODE_DIGITS} digits"
        )
    return code


def _check_name(name: object) -> str:
    if not isinstance(name, str) or any(c in _NAME_FORBIDDEN or not c.isprintable() for c in name):
        raise Refused("name_invalid", "a name is printable text without < or >")
    return name


def _matches(hashed: str, secret: str) -> bool:
    """Whether ``secret`` is what ``hashed`` hashes: one argon2 verify, always."""
    try:
        return _HASHER.verify(hashed, secret)
    except (VerificationError, InvalidHashError):  # a mismatch is a VerificationError
        return False


def _new_code() -> str:
    return f"{secrets.randbelow(10**ACTIVATION_CODE_DIGITS):0{ACTIVATION_CODE_DIGITS}d}"


# -- reading ------------------------------------------------------------------------------


def _villager(tx: Tx, row: VillagerRow) -> Villager:
    """The villager as it is now: its row and its party's name, currency and tier."""
    party = parties.find_party(tx, row.party_id)
    if party is None or party.kyc_tier is None:
        raise InvariantViolation(f"villager {row.party_id} has no villager party with a tier")
    return Villager(
        id=row.party_id,
        agent_id=row.agent_id,
        name=party.name,
        currency=party.currency,
        phone=row.phone,
        language=Language(row.language),
        kyc_tier=party.kyc_tier,
        state=State(row.state),
        pin_tries_left=max(PIN_TRIES_MAX - row.pin_tries_failed, 0),
        unlocked_at=None if row.unlocked_at_us is None else from_us(row.unlocked_at_us),
        debit_hold_until=(
            None if row.debit_hold_until_us is None else from_us(row.debit_hold_until_us)
        ),
        created_at=from_us(row.created_at_us),
        updated_at=from_us(row.updated_at_us),
        wallet_id=parties.account_id(row.party_id, parties.Role.WALLET),
    )


def get_villager_in(tx: Tx, villager_id: uuid.UUID) -> Villager | None:
    """The villager principal, or ``None`` (also for a receive-only villager party)."""
    row = repository.select_by_id(tx, villager_id, lock=False)
    return None if row is None else _villager(tx, row)


def get_villager(led: Ledger, villager_id: uuid.UUID) -> Villager:
    """The villager principal; :class:`NotFound` ``villager_not_found``."""
    found = led.transact(lambda tx: get_villager_in(tx, villager_id))
    if found is None:
        raise NotFound("villager_not_found", f"no villager {villager_id}")
    return found


def _locked(tx: Tx, villager_id: uuid.UUID) -> VillagerRow:
    row = repository.select_by_id(tx, villager_id, lock=True)
    if row is None:
        raise NotFound("villager_not_found", f"no villager {villager_id}")
    return row


def _emit(tx: Tx, event_type: str, villager_id: uuid.UUID, **payload: Any) -> None:
    events.emit(
        tx,
        event_type,
        {"villager_id": str(villager_id), **payload},
        party_id=villager_id,
        subject_id=villager_id,
    )


def _iso(at_us: int) -> str:
    return from_us(at_us).isoformat().replace("+00:00", "Z")


def _settle(led: Ledger, work: Callable[[Tx], T | FlowError]) -> T:
    """Run ``work``, commit what it wrote, and raise the refusal it returned (a wrong
    try is a refusal that must stay written)."""
    outcome = led.transact(work)
    if isinstance(outcome, FlowError):
        raise outcome
    return outcome


# -- activation codes -----------------------------------------------------------------------


def _issue_code(tx: Tx, row: VillagerRow, reason: _CodeReason, code: str, code_hash: str) -> None:
    """Void any open code of the villager, store a new one and send it to the villager."""
    villager_id = row.party_id
    repository.void_open_codes(tx, villager_id)
    expires_at_us = tx.now_us + ACTIVATION_CODE_TTL_S * US_PER_S
    repository.insert_code(
        tx, villager_id, code_hash=code_hash, reason=reason.value, expires_at_us=expires_at_us
    )
    _emit(
        tx,
        events.VILLAGER_ACTIVATION_CODE,
        villager_id,
        phone=row.phone,
        language=row.language,
        code=code,
        reason=reason.value,
        expires_at=_iso(expires_at_us),
    )


# -- registration ---------------------------------------------------------------------------


def _registration_sha256(**fields: str) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def register_villager(
    led: Ledger,
    *,
    villager_id: uuid.UUID,
    agent_id: uuid.UUID,
    phone: str,
    name: str,
    currency: str,
    language: str,
) -> Villager:
    """An agent registers a villager at its station: the party (``tier0``), its wallet and
    the villager row, and a first activation code sent to the villager alone. The same
    request again answers the same villager and sends nothing; another request under the
    same id is a :class:`Conflict` ``villager_id_reused``; a phone already registered is
    ``phone_taken``; a currency in which ``tier0`` has no limits is ``kyc_tier_unknown``
    (nothing written)."""
    e164 = normalise_phone(phone)
    if language not in set(Language):
        raise Refused("language_not_supported", f"a language is one of {', '.join(Language)}")
    _check_name(name)
    digest = _registration_sha256(
        agent=str(agent_id), phone=e164, name=name, currency=currency, language=language
    )
    code = _new_code()
    code_hash = _HASHER.hash(code)

    def work(tx: Tx) -> Villager:
        existing = repository.select_by_id(tx, villager_id, lock=False)
        if existing is not None:
            if existing.registration_sha256 != digest:
                raise Conflict("villager_id_reused", f"villager {villager_id} was another request")
            return _villager(tx, existing)
        _check_new_registration(tx, villager_id, agent_id, e164, currency)
        parties.onboard_in(
            tx,
            party_id=villager_id,
            kind=Kind.VILLAGER,
            name=name,
            currency=currency,
            kyc_tier=REGISTRATION_TIER,
        )
        repository.insert(
            tx,
            villager_id=villager_id,
            agent_id=agent_id,
            phone=e164,
            language=language,
            registration_sha256=digest,
        )
        row = _locked(tx, villager_id)
        _emit(tx, events.VILLAGER_REGISTERED, villager_id, agent_id=str(agent_id))
        _issue_code(tx, row, _CodeReason.REGISTRATION, code, code_hash)
        return _villager(tx, row)

    return led.transact(work)


def _check_new_registration(
    tx: Tx, villager_id: uuid.UUID, agent_id: uuid.UUID, phone: str, currency: str
) -> None:
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    if agent.currency != currency:
        raise Refused("currency_mismatch", f"agent {agent_id} works in {agent.currency}")
    limits.tier_limits_in(tx, currency=currency, tier=REGISTRATION_TIER)  # kyc_tier_unknown
    if parties.find_party(tx, villager_id) is not None:
        raise Conflict("villager_id_reused", f"party {villager_id} exists already")
    if repository.phone_taken(tx, phone):
        raise Conflict("phone_taken", "that phone number is registered to another villager")


# -- activation -------------------------------------------------------------------------------


def activate(led: Ledger, *, phone: str, activation_code: str, pin: str) -> Villager:
    """The villager sets the PIN with the activation code -> ``active``. A wrong code is
    counted (and committed); the :data:`ACTIVATION_CODE_TRIES_MAX`-th voids it.
    :class:`Refused` ``activation_code_invalid`` (also for an unknown phone),
    ``activation_code_expired``, ``activation_code_void``, ``pin_format_invalid``,
    ``pin_too_weak``."""
    e164 = normalise_phone(phone)
    _check_code(activation_code)
    pin_hash = _HASHER.hash(_check_new_pin(pin))

    def work(tx: Tx) -> Villager | FlowError:
        row = repository.select_by_phone(tx, e164, lock=True)
        code = None if row is None else repository.select_open_code(tx, row.party_id)
        if row is None or code is None:
            _matches(DUMMY_PIN_HASH, activation_code)
            return Refused("activation_code_invalid", "no such activation code for that phone")
        if tx.now_us >= code.expires_at_us:
            repository.resolve_code(tx, code.id, state="void", tries_failed=code.tries_failed)
            return Refused("activation_code_expired", "the code expired: ask for a new one")
        if not _matches(code.code_hash, activation_code):
            return _wrong_code(tx, row.party_id, code)
        repository.resolve_code(tx, code.id, state="used", tries_failed=code.tries_failed)
        _set_pin(tx, row.party_id, pin_hash, State.ACTIVE)
        _emit(tx, events.VILLAGER_ACTIVATED, row.party_id)
        return _villager(tx, _locked(tx, row.party_id))

    return _settle(led, work)


def _wrong_code(tx: Tx, villager_id: uuid.UUID, code: CodeRow) -> Refused:
    tries = code.tries_failed + 1
    left = ACTIVATION_CODE_TRIES_MAX - tries
    repository.resolve_code(tx, code.id, state="open" if left > 0 else "void", tries_failed=tries)
    _emit(tx, events.VILLAGER_ACTIVATION_FAILED, villager_id, tries_left=max(left, 0))
    if left > 0:
        return Refused("activation_code_invalid", f"wrong activation code; {left} tries left")
    return Refused("activation_code_void", "wrong activation code; the code is now void")


def _set_pin(tx: Tx, villager_id: uuid.UUID, pin_hash: str | None, state: State) -> None:
    repository.set_pin(tx, villager_id, pin_hash=pin_hash, state=state.value)


# -- PIN checks ---------------------------------------------------------------------------


def verify_pin(led: Ledger, *, villager_id: uuid.UUID, pin: str) -> Villager:
    """Check the villager's PIN in a transaction of its own (a wrong try stays counted);
    the villager. :class:`Refused` ``pin_invalid`` (tries left in the detail),
    ``pin_locked``, ``villager_not_active``, ``pin_format_invalid``; :class:`NotFound`
    ``villager_not_found``."""
    _check_pin(pin)

    def work(tx: Tx) -> Villager | FlowError:
        return _verify_in(tx, _locked(tx, villager_id), pin)

    return _settle(led, work)


def verify_pin_by_phone(led: Ledger, *, phone: str, pin: str) -> Villager:
    """:func:`verify_pin` for the villager of ``phone``. An unknown phone takes the same
    path as a wrong PIN: one argon2 verify, against :data:`DUMMY_PIN_HASH`, and
    ``pin_invalid``, whose detail here tells no count of tries (an unknown phone has none
    to count down, so a count would tell the two apart; the villager's own
    ``villager.pin_failed`` event carries it)."""
    e164 = normalise_phone(phone)
    _check_pin(pin)

    def work(tx: Tx) -> Villager | FlowError:
        row = repository.select_by_phone(tx, e164, lock=True)
        verified = _verify_in(tx, row, pin)
        if isinstance(verified, Refused) and verified.code == "pin_invalid":
            return Refused("pin_invalid", "wrong PIN")
        return verified

    return _settle(led, work)


def _verify_in(tx: Tx, row: VillagerRow | None, pin: str) -> Villager | Refused:
    """Verify ``pin`` for ``row`` (``None``: an unknown phone) and record the try."""
    if row is None:
        _matches(DUMMY_PIN_HASH, pin)
        return _pin_invalid(PIN_TRIES_MAX - 1)
    state = State(row.state)
    if state is State.LOCKED:
        return Refused("pin_locked", "the PIN is locked: an agent or an operator unlocks it")
    if state is not State.ACTIVE:
        return Refused("villager_not_active", "the villager has not set a PIN yet")
    pin_hash = row.pin_hash
    if pin_hash is None:  # a database CHECK: an active villager has a PIN
        raise InvariantViolation(f"active villager {row.party_id} has no PIN hash")
    if not _matches(pin_hash, pin):
        return _wrong_pin(tx, row)
    if row.pin_tries_failed or _HASHER.check_needs_rehash(pin_hash):
        _set_pin(tx, row.party_id, _rehashed(pin_hash, pin), State.ACTIVE)  # tries back to 0
    _emit(tx, events.VILLAGER_PIN_VERIFIED, row.party_id)
    return _villager(tx, _locked(tx, row.party_id))


def _pin_invalid(left: int) -> Refused:
    return Refused("pin_invalid", f"wrong PIN; {left} tries left")


def _wrong_pin(tx: Tx, row: VillagerRow) -> Refused:
    villager_id, tries = row.party_id, row.pin_tries_failed + 1
    left = max(PIN_TRIES_MAX - tries, 0)
    state = State.LOCKED if left == 0 else State.ACTIVE
    repository.set_pin_tries(tx, villager_id, tries_failed=tries, state=state.value)
    _emit(tx, events.VILLAGER_PIN_FAILED, villager_id, tries_left=left)
    if state is State.LOCKED:
        _emit(tx, events.VILLAGER_PIN_LOCKED, villager_id, tries_failed=tries)
        return Refused("pin_locked", f"wrong PIN {tries} times: the PIN is now locked")
    return _pin_invalid(left)


def _rehashed(pin_hash: str, pin: str) -> str:
    """The hash to keep: a fresh one when the hasher's parameters have changed."""
    return _HASHER.hash(pin) if _HASHER.check_needs_rehash(pin_hash) else pin_hash


def change_pin(led: Ledger, *, villager_id: uuid.UUID, pin: str, new_pin: str) -> Villager:
    """The villager changes the PIN: the current one is checked (and a wrong one counted,
    as in :func:`verify_pin`), then the new one set. ``pin_unchanged`` when they match."""
    _check_pin(pin)
    if _check_new_pin(new_pin) == pin:
        raise Refused("pin_unchanged", "the new PIN is the PIN")
    new_hash = _HASHER.hash(new_pin)

    def work(tx: Tx) -> Villager | FlowError:
        checked = _verify_in(tx, _locked(tx, villager_id), pin)
        if isinstance(checked, FlowError):
            return checked
        _set_pin(tx, villager_id, new_hash, State.ACTIVE)
        _emit(tx, events.VILLAGER_PIN_CHANGED, villager_id)
        return _villager(tx, _locked(tx, villager_id))

    return _settle(led, work)


def find_villager_by_phone(led: Ledger, phone: str) -> Villager | None:
    """The villager of ``phone`` (any text :func:`normalise_phone` takes), or ``None``.
    For a channel whose network vouches for the number (USSD): the API never answers
    it, so it tells no caller which numbers are registered."""
    e164 = normalise_phone(phone)
    return led.transact(lambda tx: find_villager_by_e164_in(tx, e164))


def find_villager_by_e164_in(tx: Tx, e164: str) -> Villager | None:
    """:func:`find_villager_by_phone` in the caller's transaction, for a number already in
    E.164 (:func:`normalise_phone`)."""
    row = repository.select_by_phone(tx, e164, lock=False)
    return None if row is None else _villager(tx, row)


def find_station_villager(led: Ledger, *, agent_id: uuid.UUID, phone: str) -> Villager | None:
    """The villager of ``phone`` if ``agent_id`` registered her, else ``None``: the same
    answer for a number nobody has and a number of another agent's villager, so an agent
    learns nothing of other stations. :class:`Refused` ``phone_invalid``."""
    found = find_villager_by_phone(led, phone)
    return found if found is not None and found.agent_id == agent_id else None


def set_language(led: Ledger, *, villager_id: uuid.UUID, language: str) -> Villager:
    """The villager chooses the language of its menus and messages;
    :class:`Refused` ``language_not_supported``, :class:`NotFound` ``villager_not_found``."""
    if language not in set(Language):
        raise Refused("language_not_supported", f"a language is one of {', '.join(Language)}")

    def work(tx: Tx) -> Villager:
        _locked(tx, villager_id)
        repository.set_language(tx, villager_id, language=language)
        return _villager(tx, _locked(tx, villager_id))

    return led.transact(work)


# -- unlock, reset, phone change ------------------------------------------------------------


def _hold_until_us(tx: Tx) -> int:
    return tx.now_us + SIM_SWAP_HOLD_S * US_PER_S


def _recently_unlocked(tx: Tx, row: VillagerRow) -> bool:
    unlocked_at_us = row.unlocked_at_us
    return unlocked_at_us is not None and tx.now_us - unlocked_at_us < UNLOCK_WINDOW_S * US_PER_S


def unlock(
    led: Ledger,
    *,
    villager_id: uuid.UUID,
    agent_id: uuid.UUID | None = None,
    operator_id: uuid.UUID | None = None,
) -> Villager:
    """Unlock a locked PIN (or re-issue the code of a villager not yet active): the PIN is
    dropped and a fresh activation code sent, so the villager sets a new one. Exactly one
    of ``agent_id`` (the registering agent, a first unlock only) or ``operator_id``. A
    second unlock within :data:`UNLOCK_WINDOW_S` needs an operator (``operator_required``)
    and starts the SIM-swap hold. ``villager_not_locked`` for an active villager."""
    if (agent_id is None) == (operator_id is None):
        raise Refused("actor_invalid", "an unlock is by one agent or one operator")
    code = _new_code()
    code_hash = _HASHER.hash(code)

    def work(tx: Tx) -> Villager:
        row = _locked(tx, villager_id)
        if agent_id is not None and row.agent_id != agent_id:
            raise NotFound("villager_not_found", f"no villager {villager_id}")
        if State(row.state) is State.ACTIVE:
            raise Refused("villager_not_locked", "the villager is active: nothing to unlock")
        second = _recently_unlocked(tx, row)
        if second and operator_id is None:
            raise Refused("operator_required", "a second unlock within 30 days needs an operator")
        hold_us = _hold_until_us(tx) if second else row.debit_hold_until_us
        repository.restart_activation(tx, villager_id, debit_hold_until_us=hold_us, unlocked=True)
        by = {"agent_id": str(agent_id)} if agent_id else {"operator_id": str(operator_id)}
        hold = {"debit_hold_until": _iso(hold_us)} if second and hold_us is not None else {}
        _emit(tx, events.VILLAGER_UNLOCKED, villager_id, **by, **hold)
        _issue_code(tx, row, _CodeReason.UNLOCK, code, code_hash)
        return _villager(tx, _locked(tx, villager_id))

    return led.transact(work)


def reset(led: Ledger, *, villager_id: uuid.UUID, operator_id: uuid.UUID) -> Villager:
    """An operator resets a forgotten PIN: a fresh activation code, the state back to
    ``pending_activation``, and the SIM-swap hold."""
    code = _new_code()
    code_hash = _HASHER.hash(code)

    def work(tx: Tx) -> Villager:
        row = _locked(tx, villager_id)
        hold_us = _hold_until_us(tx)
        repository.restart_activation(tx, villager_id, debit_hold_until_us=hold_us, unlocked=False)
        _emit(
            tx,
            events.VILLAGER_RESET,
            villager_id,
            operator_id=str(operator_id),
            debit_hold_until=_iso(hold_us),
        )
        _issue_code(tx, row, _CodeReason.RESET, code, code_hash)
        return _villager(tx, _locked(tx, villager_id))

    return led.transact(work)


def change_phone(
    led: Ledger, *, villager_id: uuid.UUID, operator_id: uuid.UUID, phone: str
) -> Villager:
    """An operator moves the villager to a new phone number; the PIN stays (whoever holds
    the new SIM still needs it) and the SIM-swap hold starts. The event names both
    numbers, so both can be told. The same number again changes nothing."""
    e164 = normalise_phone(phone)

    def work(tx: Tx) -> Villager:
        row = _locked(tx, villager_id)
        if row.phone == e164:
            return _villager(tx, row)
        if repository.phone_taken(tx, e164):
            raise Conflict("phone_taken", "that phone number is registered to another villager")
        hold_us = _hold_until_us(tx)
        repository.set_phone(tx, villager_id, phone=e164, debit_hold_until_us=hold_us)
        _emit(
            tx,
            events.VILLAGER_PHONE_CHANGED,
            villager_id,
            operator_id=str(operator_id),
            old_phone=row.phone,
            new_phone=e164,
            debit_hold_until=_iso(hold_us),
        )
        return _villager(tx, _locked(tx, villager_id))

    return led.transact(work)


# -- the SIM-swap hold --------------------------------------------------------------------


def debit_hold_until_in(tx: Tx, villager_id: uuid.UUID) -> int | None:
    """When the villager's SIM-swap hold ends (microseconds since 1970 UTC), or ``None``
    when no hold is in force now."""
    until_us = repository.debit_hold_until_us(tx, villager_id)
    if until_us is None or until_us <= tx.now_us:
        return None
    return until_us


def check_debit_allowed_in(tx: Tx, *, villager_id: uuid.UUID, amount_minor: int) -> None:
    """:class:`Refused` ``sim_swap_hold`` when a SIM-swap hold is in force and
    ``amount_minor`` is above the per-transaction limit of the villager's tier; a debit at
    or below it, or with no hold, passes."""
    until_us = debit_hold_until_in(tx, villager_id)
    if until_us is None:
        return
    party = parties.get_party(tx, villager_id, Kind.VILLAGER)
    assert party.kyc_tier is not None  # the database holds it for villagers
    tier = limits.tier_limits_in(tx, currency=party.currency, tier=party.kyc_tier)
    if amount_minor > tier.per_transaction_max_minor:
        raise Refused(
            "sim_swap_hold",
            f"after a PIN reset or phone change, debits above"
            f" {tier.per_transaction_max_minor} wait until {_iso(until_us)}",
        )
