"""Villagers as principals: a phone number, a PIN, a language, a KYC tier, a state.

A villager is a party of kind ``villager`` (its ``wallet`` and KYC tier live in
:mod:`ledger.flows.parties`) with a ``villagers`` row that makes it a principal:

- **phone**: E.164, validated and normalised with ``phonenumbers``, unique; a number
  without its country code is refused (``phone_invalid``), as is anything that is not a
  phone number or longer than :data:`PHONE_INPUT_LENGTH_MAX`;
- **PIN**: 4-6 ASCII digits, hashed with argon2id (``argon2-cffi``'s PasswordHasher);
  the PIN in clear is never stored, logged, put in an event or in an exception message;
  trivially weak PINs (one digit repeated, a straight run up or down: ``0000``,
  ``1234``, ``654321``) are refused with ``pin_too_weak``;
- **language** (``en``, ``sw``), the **KYC tier** (the party's, ``tier0`` on
  registration; a currency in which ``tier0`` has no limits is refused,
  ``kyc_tier_unknown``) and a **state**: ``pending_activation`` -> ``active`` <->
  ``locked``.

Lifecycle:

- :func:`register_villager`: an agent registers the villager at its station (the party,
  the wallet and the villager row in one transaction, idempotent by the villager id); a
  one-time activation code (:data:`ACTIVATION_CODE_DIGITS` digits, argon2id-hashed at
  rest, single use, valid :data:`ACTIVATION_CODE_TTL_S`, void after
  :data:`ACTIVATION_CODE_TRIES_MAX` wrong tries) goes **only** to the villager, as an
  outbox event ``villager.activation_code`` addressed to it (the SMS issue sends it);
  the agent's answer never holds it, or the agent could set the PIN.
- :func:`activate`: the villager sets the PIN with the code -> ``active``.
- :func:`verify_pin` / :func:`verify_pin_by_phone`: each its own transaction, so a wrong
  try is committed even though the caller's money transaction will not run;
  :data:`PIN_TRIES_MAX` wrong tries in a row lock the PIN. An unknown phone runs the same
  path as a wrong PIN: one argon2 verify (against :data:`DUMMY_PIN_HASH`) and the same
  ``pin_invalid``.
- :func:`change_pin`: the PIN, then a new one.
- :func:`unlock`: always forces a new PIN through a fresh activation code (state back to
  ``pending_activation``); the registering agent may do a first unlock, an operator any;
  a second unlock within :data:`UNLOCK_WINDOW_S` needs an operator. It also re-issues a
  code to a villager whose code expired or went void before activation.
- :func:`reset` (forgot PIN) and :func:`change_phone`: operators only.

SIM-swap hold: a second unlock within :data:`UNLOCK_WINDOW_S`, a reset or a phone change
holds wallet debits above the tier's per-transaction limit for :data:`SIM_SWAP_HOLD_S`
(:func:`debit_hold_until_in`, :func:`check_debit_allowed_in` ``sim_swap_hold``).

Events (``party_id`` = ``subject_id`` = the villager; no PIN, hash or code in any
payload except the code in ``villager.activation_code``): ``villager.registered``,
``villager.activation_code``, ``villager.activation_failed``, ``villager.activated``,
``villager.pin_verified``, ``villager.pin_failed``, ``villager.pin_locked``,
``villager.pin_changed``, ``villager.unlocked``, ``villager.reset``,
``villager.phone_changed``.

Villagers onboarded by an operator through ``POST /v1/parties`` (kind ``villager``) have
no row here: they stay **receive-only wallets**. They have no PIN, so they can give no
consent, so nothing may debit their wallet; registering them as principals is not
possible under the same id (``villager_id_reused``): an agent could otherwise take over a
wallet it did not open.

Argon2 runs inside the transaction, under the villager's row lock: tries on one villager
queue one after the other, so parallel guesses cannot pass :data:`PIN_TRIES_MAX`. The
flows are synchronous; the API calls them from a worker thread.

The tables' SQL lives in :mod:`ledger.flows.villagers.repository`; the party's name,
currency and tier are read through :func:`ledger.flows.parties.find_party`.
"""

from ledger.flows.villagers.service import (
    ACTIVATION_CODE_DIGITS,
    ACTIVATION_CODE_TRIES_MAX,
    ACTIVATION_CODE_TTL_S,
    DUMMY_PIN_HASH,
    PHONE_INPUT_LENGTH_MAX,
    PIN_LENGTH_MAX,
    PIN_LENGTH_MIN,
    PIN_TRIES_MAX,
    REGISTRATION_TIER,
    SIM_SWAP_HOLD_S,
    UNLOCK_WINDOW_S,
    Language,
    State,
    Villager,
    activate,
    change_phone,
    change_pin,
    check_debit_allowed_in,
    debit_hold_until_in,
    find_station_villager,
    find_villager_by_e164_in,
    find_villager_by_phone,
    get_villager,
    get_villager_in,
    normalise_phone,
    register_villager,
    reset,
    set_language,
    unlock,
    verify_pin,
    verify_pin_by_phone,
)

__all__ = [
    "ACTIVATION_CODE_DIGITS",
    "ACTIVATION_CODE_TRIES_MAX",
    "ACTIVATION_CODE_TTL_S",
    "DUMMY_PIN_HASH",
    "Language",
    "PHONE_INPUT_LENGTH_MAX",
    "PIN_LENGTH_MAX",
    "PIN_LENGTH_MIN",
    "PIN_TRIES_MAX",
    "REGISTRATION_TIER",
    "SIM_SWAP_HOLD_S",
    "State",
    "UNLOCK_WINDOW_S",
    "Villager",
    "activate",
    "change_phone",
    "change_pin",
    "check_debit_allowed_in",
    "debit_hold_until_in",
    "find_station_villager",
    "find_villager_by_e164_in",
    "find_villager_by_phone",
    "get_villager",
    "get_villager_in",
    "normalise_phone",
    "register_villager",
    "reset",
    "set_language",
    "unlock",
    "verify_pin",
    "verify_pin_by_phone",
]
