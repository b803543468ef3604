"""The ledger's values: accounts, transfers, their flags, and the statuses calls answer.

Amounts are ``int`` minor units of the account's ISO 4217 currency; never float.
Timestamps are timezone-aware UTC datetimes with microsecond precision.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from ledger.limits import (
    AMOUNT_LIMIT,
    BATCH_SIZE_MAX,
    CODE_MAX,
    CORE_PAGE_SIZE_MAX,
    COUNTER_MAX,
    TIMEOUT_S_MAX,
)

__all__ = [
    "AMOUNT_LIMIT",
    "BATCH_SIZE_MAX",
    "CODE_MAX",
    "CORE_PAGE_SIZE_MAX",
    "COUNTER_MAX",
    "TIMEOUT_S_MAX",
    "Account",
    "AccountFlags",
    "Balance",
    "Result",
    "Status",
    "Transfer",
    "TransferFlags",
]


class AccountFlags(enum.Flag):
    """Flags of an account. Limit flags are checked against posted plus pending amounts."""

    LINKED = 1
    DEBITS_MUST_NOT_EXCEED_CREDITS = 2
    CREDITS_MUST_NOT_EXCEED_DEBITS = 4


class TransferFlags(enum.Flag):
    """Flags of a transfer. At most one of PENDING, POST_PENDING, VOID_PENDING."""

    LINKED = 1
    PENDING = 2
    POST_PENDING = 4
    VOID_PENDING = 8


class Status(enum.StrEnum):
    """Every answer a ``create_*`` call can give, in precedence order (top first)."""

    CREATED = "created"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    EXISTS_WITH_DIFFERENT_FLAGS = "exists_with_different_flags"
    EXISTS_WITH_DIFFERENT_PENDING_ID = "exists_with_different_pending_id"
    EXISTS_WITH_DIFFERENT_TIMEOUT = "exists_with_different_timeout"
    EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID = "exists_with_different_debit_account_id"
    EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID = "exists_with_different_credit_account_id"
    EXISTS_WITH_DIFFERENT_AMOUNT = "exists_with_different_amount"
    EXISTS_WITH_DIFFERENT_CODE = "exists_with_different_code"
    EXISTS_WITH_DIFFERENT_REVERSES_ID = "exists_with_different_reverses_id"
    EXISTS_WITH_DIFFERENT_CURRENCY = "exists_with_different_currency"
    EXISTS = "exists"
    ID_ALREADY_FAILED = "id_already_failed"
    FLAGS_ARE_MUTUALLY_EXCLUSIVE = "flags_are_mutually_exclusive"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_MUST_BE_ZERO = "pending_id_must_be_zero"
    PENDING_ID_MUST_NOT_BE_ZERO = "pending_id_must_not_be_zero"
    PENDING_ID_MUST_BE_DIFFERENT = "pending_id_must_be_different"
    TIMEOUT_RESERVED_FOR_PENDING_TRANSFER = "timeout_reserved_for_pending_transfer"
    AMOUNT_MUST_NOT_BE_ZERO = "amount_must_not_be_zero"
    CODE_MUST_NOT_BE_ZERO = "code_must_not_be_zero"
    CURRENCY_NOT_SUPPORTED = "currency_not_supported"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY = "accounts_must_have_the_same_currency"
    CURRENCY_MUST_MATCH_ACCOUNTS = "currency_must_match_accounts"
    REVERSAL_MUST_BE_PLAIN = "reversal_must_be_plain"
    REVERSAL_NOT_FOUND = "reversal_not_found"
    REVERSAL_TARGET_NOT_POSTED = "reversal_target_not_posted"
    REVERSAL_MUST_SWAP_ACCOUNTS = "reversal_must_swap_accounts"
    EXCEEDS_REVERSIBLE_AMOUNT = "exceeds_reversible_amount"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID = (
        "pending_transfer_has_different_debit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID = (
        "pending_transfer_has_different_credit_account_id"
    )
    PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY = "pending_transfer_has_different_currency"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    OVERFLOWS_DEBITS = "overflows_debits"
    OVERFLOWS_CREDITS = "overflows_credits"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"


SPENDING_STATUSES: frozenset[Status] = frozenset(
    {
        Status.DEBIT_ACCOUNT_NOT_FOUND,
        Status.CREDIT_ACCOUNT_NOT_FOUND,
        Status.PENDING_TRANSFER_NOT_FOUND,
        Status.REVERSAL_NOT_FOUND,
        Status.EXCEEDS_CREDITS,
        Status.EXCEEDS_DEBITS,
    }
)
"""Refusals that could change later: they spend the transfer id (``id_already_failed``)."""


@dataclass(frozen=True, slots=True)
class Result:
    """The answer for the event at ``index`` of a ``create_*`` call."""

    index: int
    status: Status


@dataclass(frozen=True, slots=True)
class Account:
    """An account: one currency, four counters in minor units, never deleted.

    The counters are read back from the ledger; on creation they are ignored.
    """

    id: uuid.UUID
    currency: str
    code: int
    flags: AccountFlags = AccountFlags(0)
    metadata: dict[str, str] | None = None
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    created_at: datetime | None = None

    @property
    def balance_posted(self) -> int:
        """Credits minus debits, posted only (a liability account's view)."""
        return self.credits_posted - self.debits_posted


@dataclass(frozen=True, slots=True)
class Transfer:
    """One amount moved from a debit account to a credit account, immutable once created.

    A post or void of a hold may leave accounts, currency and amount ``None``; it reads
    back with the hold's accounts and currency, and the amount it posted or released.
    """

    id: uuid.UUID
    debit_account_id: uuid.UUID | None
    credit_account_id: uuid.UUID | None
    amount: int | None
    currency: str | None
    code: int
    flags: TransferFlags = TransferFlags(0)
    pending_id: uuid.UUID | None = None
    timeout_s: int = 0
    reverses_id: uuid.UUID | None = None
    metadata: dict[str, str] | None = None
    created_at: datetime | None = field(default=None)


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's posted counters as of a moment (``balance_at``)."""

    account_id: uuid.UUID
    debits_posted: int
    credits_posted: int
    at: datetime

    @property
    def balance_posted(self) -> int:
        return self.credits_posted - self.debits_posted
