"""The villager's consent to a debit of the wallet: one-time codes and the PIN.

No money leaves a villager's wallet without the villager's say (issue 11). A flow that
debits a wallet asks for a :class:`Consent` and hands it to :func:`require_in` inside its
money transaction. A consent is got in one of two ways:

- **by PIN** (:func:`by_pin`): the villager starts the step from their own phone with the
  PIN (USSD later); the PIN is checked by :func:`ledger.flows.villagers.verify_pin`;
- **by code** (:func:`make_code`, then :func:`check_code`): the villager makes a one-time
  code (the PIN first) and tells it to the agent or enters it at the storefront; the
  agent's or storefront's request carries it.

A code is :data:`CODE_DIGITS` digits from :mod:`secrets`, answered once, to the villager's
own channel (the :class:`IssuedCode`); at rest only a salted argon2id hash is kept. It is
looked up by villager **and** code, never by code alone; it is for one :class:`Purpose`,
an exact amount (minor units), and one agent (withdrawals) or one order (payments); it
lasts :data:`CODE_TTL_S` (an offline withdrawal code :data:`OFFLINE_CODE_TTL_S`); it is
used once. An amount above the villager's tier per-transaction maximum is refused when
the code is made (``limit_exceeded_per_transaction``), and so is a
:data:`OPEN_CODES_MAX` + 1st open code of one purpose (``consent_codes_too_many``).

Wrong tries: a code that matches no open code of the villager and purpose, or matches one
made for another amount, agent or order, is a wrong try. :func:`check_code` runs in a
transaction of its own and commits the wrong try before it refuses (so the rollback of
the money transaction cannot undo it): every open code of that villager and purpose
counts it, and one that reaches :data:`WRONG_TRIES_MAX` is voided (the right digits then
fail too); the caller's wrong tries are rate-limited (:data:`CALLER_FAILURES_MAX` in
:data:`CALLER_FAILURE_WINDOW_S`, then ``consent_rate_limited`` before any code is looked
at).

:func:`require_in` (inside the money transaction) locks the consent's row, checks that it
is still open and unexpired and is for this villager, purpose, amount, agent and order,
marks it ``used`` (two racing requests with one code cannot both use it: the second finds
it used, ``consent_invalid``), and calls
:func:`ledger.flows.villagers.check_debit_allowed_in` (the SIM-swap hold).

An **offline withdrawal** code holds its amount when it is made: a core ``PENDING``
transfer of ``amount + fee`` (the fee quoted then, as a two-phase cash-out holds it) from
the wallet towards the named agent's float, timeout :data:`OFFLINE_CODE_TTL_S`, and
counts the amount in the villager's daily cash-out usage
(:func:`ledger.flows.cash.hold_offline_withdrawal_in`). The agent's phone captures the
cash-out with the code; at sync the hold is posted
(:func:`ledger.flows.cash.cash_out_in`). A voided or expired offline code gives the hold
and the usage back.

Refusals (:class:`~ledger.flows.errors.Refused`): ``consent_required`` (no consent),
``consent_invalid`` (wrong, spent, voided, or for something else), ``consent_expired``,
``consent_rate_limited``, ``consent_codes_too_many``, ``consent_purpose_invalid`` (an
offline withdrawal by PIN, or an agent or order that the purpose does not take),
``limit_exceeded_per_transaction``, ``kyc_tier_unknown``, ``currency_mismatch``,
``amount_invalid``; and the PIN's own (``pin_invalid``, ``pin_locked``,
``villager_not_active``) and ``sim_swap_hold`` from :mod:`ledger.flows.villagers`.

Events, addressed to the villager (``party_id`` = the villager, ``subject_id`` = the
consent), never with the digits: ``consent.code_made``, ``consent.pin_given``,
``consent.used``, ``consent.voided`` (``reason``: ``wrong_tries``), ``consent.expired``.

The tables' SQL lives in :mod:`ledger.flows.consent.repository`; the villager's row is
locked through :func:`ledger.flows.parties.find_party`.
"""

from ledger.flows.consent.repository import ConsentState, Purpose
from ledger.flows.consent.service import (
    CALLER_FAILURE_WINDOW_S,
    CALLER_FAILURES_MAX,
    CODE_DIGITS,
    CODE_HASH_BYTES,
    CODE_HASH_MEMORY_KIB,
    CODE_HASH_TIME_COST,
    CODE_SALT_BYTES,
    CODE_TTL_S,
    CONSENT_CODE_MADE,
    CONSENT_EXPIRED,
    CONSENT_PIN_GIVEN,
    CONSENT_USED,
    CONSENT_VOIDED,
    OFFLINE_CODE_TTL_S,
    OPEN_CODES_MAX,
    WRONG_TRIES_MAX,
    Consent,
    HeldWithdrawal,
    IssuedCode,
    by_pin,
    check_code,
    held_withdrawal_in,
    make_code,
    make_code_in_session,
    require_in,
    sweep_codes,
)
from ledger.limits import SWEEP_BATCH_MAX as SWEEP_LIMIT_MAX

__all__ = [
    "CALLER_FAILURES_MAX",
    "CALLER_FAILURE_WINDOW_S",
    "CODE_DIGITS",
    "CODE_HASH_BYTES",
    "CODE_HASH_MEMORY_KIB",
    "CODE_HASH_TIME_COST",
    "CODE_SALT_BYTES",
    "CODE_TTL_S",
    "CONSENT_CODE_MADE",
    "CONSENT_EXPIRED",
    "CONSENT_PIN_GIVEN",
    "CONSENT_USED",
    "CONSENT_VOIDED",
    "Consent",
    "ConsentState",
    "HeldWithdrawal",
    "IssuedCode",
    "OFFLINE_CODE_TTL_S",
    "OPEN_CODES_MAX",
    "Purpose",
    "SWEEP_LIMIT_MAX",
    "WRONG_TRIES_MAX",
    "by_pin",
    "check_code",
    "held_withdrawal_in",
    "make_code",
    "make_code_in_session",
    "require_in",
    "sweep_codes",
]
