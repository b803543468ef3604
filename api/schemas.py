"""The API's request and answer shapes (the OpenAPI document is generated from these).

Requests refuse unknown fields (no mass assignment: counters, ``created_at`` and owners
are never taken from a client) and take integers strictly: a JSON integer, never a
string, a float or a boolean. Amounts are minor units, 1 ..= 2**53 - 1, so that every
client can hold them exactly.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, model_validator

from ledger import AccountFlags, TransferFlags
from ledger.core.values import CODE_MAX, TIMEOUT_S_MAX

AMOUNT_MAX = 2**53 - 1
"""The largest amount a request may carry (JSON-safe integers)."""
TRANSFERS_PER_REQUEST_MAX = 500
METADATA_ENTRIES_MAX = 32

AmountMinor = Annotated[int, Strict(), Field(ge=1, le=AMOUNT_MAX, examples=[150_000])]
Currency = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(description="ISO 4217 alphabetic code, upper-case ASCII", examples=["KES"]),
]
Code = Annotated[int, Strict(), Field(ge=1, le=CODE_MAX, examples=[101])]
MetadataKey = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, Strict(), StringConstraints(max_length=512)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Field(max_length=METADATA_ENTRIES_MAX, examples=[{"order": "A-1001"}]),
]

AccountFlagName = Literal["debits_must_not_exceed_credits", "credits_must_not_exceed_debits"]
TransferFlagName = Literal["linked", "pending", "post_pending", "void_pending"]

ACCOUNT_FLAGS: dict[str, AccountFlags] = {
    "debits_must_not_exceed_credits": AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    "credits_must_not_exceed_debits": AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
}
TRANSFER_FLAGS: dict[str, TransferFlags] = {
    "linked": TransferFlags.LINKED,
    "pending": TransferFlags.PENDING,
    "post_pending": TransferFlags.POST_PENDING,
    "void_pending": TransferFlags.VOID_PENDING,
}


def account_flag_names(flags: AccountFlags) -> list[str]:
    return [name for name, flag in ACCOUNT_FLAGS.items() if flag in flags]


def transfer_flag_names(flags: TransferFlags) -> list[str]:
    return [name for name, flag in TRANSFER_FLAGS.items() if flag in flags]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccountCreate(Request):
    """A new account. ``id`` is the client's permanent id: resubmitting it is safe."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b4f6f2e-7f0e-4d61-9a53-0d3b8f1f5a10",
                    "currency": "KES",
                    "code": 101,
                    "flags": ["debits_must_not_exceed_credits"],
                    "metadata": {"villager": "V-17"},
                }
            ]
        }
    )

    id: uuid.UUID
    currency: Currency
    code: Code
    flags: Annotated[list[AccountFlagName], Field(max_length=2)] = []
    metadata: Metadata | None = None


class TransferCreate(Request):
    """One transfer of a batch; see the core's rules (``shared/CORE_API.md``).

    A post or void (``post_pending``/``void_pending``) names the hold in ``pending_id``
    and may leave accounts, amount and currency out; every other transfer gives them.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5c1b2a9e-3f34-4c2b-8d59-1a7c2e0f9b21",
                    "debit_account_id": "0b4f6f2e-7f0e-4d61-9a53-0d3b8f1f5a10",
                    "credit_account_id": "8a2d7c41-5b6e-4f0a-9c3d-2e1f0a9b8c7d",
                    "amount": 150000,
                    "currency": "KES",
                    "code": 1,
                }
            ]
        }
    )

    id: uuid.UUID
    debit_account_id: uuid.UUID | None = None
    credit_account_id: uuid.UUID | None = None
    amount: AmountMinor | None = None
    currency: Currency | None = None
    code: Code
    flags: Annotated[list[TransferFlagName], Field(max_length=4)] = []
    pending_id: uuid.UUID | None = None
    timeout_s: Annotated[int, Strict(), Field(ge=0, le=TIMEOUT_S_MAX)] = 0
    reverses_id: uuid.UUID | None = None
    metadata: Metadata | None = None

    @model_validator(mode="after")
    def _complete(self) -> TransferCreate:
        if "post_pending" in self.flags or "void_pending" in self.flags:
            return self
        missing = [
            name
            for name in ("debit_account_id", "credit_account_id", "amount", "currency")
            if getattr(self, name) is None
        ]
        if missing:
            raise ValueError(f"a transfer that is not a post or void needs {', '.join(missing)}")
        return self


class TransferBatchCreate(Request):
    """Transfers applied in order in one call; ``linked`` chains them (all or none)."""

    transfers: Annotated[
        list[TransferCreate], Field(min_length=1, max_length=TRANSFERS_PER_REQUEST_MAX)
    ]


class AccountOut(BaseModel):
    """An account as the ledger holds it. Counters are minor units of ``currency``."""

    id: uuid.UUID
    currency: str
    code: int
    flags: list[AccountFlagName]
    metadata: dict[str, str] | None
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    created_at: datetime


class AccountList(BaseModel):
    data: list[AccountOut]
    has_more: bool


class TransferOut(BaseModel):
    """A transfer as committed; ``amount`` is in minor units of ``currency``."""

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    currency: str
    code: int
    flags: list[TransferFlagName]
    pending_id: uuid.UUID | None
    timeout_s: int
    reverses_id: uuid.UUID | None
    metadata: dict[str, str] | None
    created_at: datetime


class TransferList(BaseModel):
    data: list[TransferOut]
    has_more: bool


class TransferResult(BaseModel):
    """The core's answer for the transfer at ``index``: ``created``, ``exists`` ..."""

    index: int
    id: uuid.UUID
    status: str
    type: str = Field(description="The problem type URI of a status other than created")


class TransferBatchOut(BaseModel):
    results: list[TransferResult]


class BalanceOut(BaseModel):
    """Posted counters as of ``at`` (inclusive), minor units."""

    account_id: uuid.UUID
    at: datetime
    debits_posted: int
    credits_posted: int
    balance_posted: int = Field(description="credits_posted - debits_posted")


class KeyRevoked(BaseModel):
    key_id: str
    state: Literal["revoked"]


class Health(BaseModel):
    status: str
    detail: str | None = None


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(examples=["urn:vledger:problem:validation_failed"])
    code: str = Field(examples=["validation_failed"])
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None
