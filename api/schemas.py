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
from ledger.flows.limits import TIER_LENGTH_MAX
from ledger.flows.orders.model import EXTENSION_DAYS_MAX
from ledger.limits import (
    AMOUNT_MAX_MINOR,
    CODE_MAX,
    METADATA_ENTRIES_MAX,
    METADATA_KEY_LENGTH_MAX,
    METADATA_VALUE_LENGTH_MAX,
    NAME_LENGTH_MAX,
    REASON_LENGTH_MAX,
    REFERENCE_LENGTH_MAX,
    TIMEOUT_S_MAX,
    TRANSFERS_PER_REQUEST_MAX,
)

AmountMinor = Annotated[int, Strict(), Field(ge=1, le=AMOUNT_MAX_MINOR, examples=[150_000])]
Currency = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    Field(description="ISO 4217 alphabetic code, upper-case ASCII", examples=["KES"]),
]
Code = Annotated[int, Strict(), Field(ge=1, le=CODE_MAX, examples=[101])]
MetadataKey = Annotated[
    str, Strict(), StringConstraints(min_length=1, max_length=METADATA_KEY_LENGTH_MAX)
]
MetadataValue = Annotated[str, Strict(), StringConstraints(max_length=METADATA_VALUE_LENGTH_MAX)]
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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "transfers": [
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
            ]
        }
    )

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


class ProposalOut(BaseModel):
    """A sensitive step one operator proposed and a different operator decides
    (maker-checker). ``kind`` ``transfers``: ``payload`` is ``{"transfers": [...]}`` as
    ``POST /v1/transfers`` took them, and ``result`` their statuses once approved."""

    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    state: Literal["proposed", "approved", "rejected"]
    proposed_by: uuid.UUID = Field(description="The maker: an operator principal")
    decided_by: uuid.UUID | None = Field(description="The checker (never the maker)")
    reason: str | None = Field(description="Why it was rejected")
    result: Any = Field(description="What applying it answered (approved only)")
    created_at: datetime
    decided_at: datetime | None


class ProposalCreated(BaseModel):
    """``POST /v1/transfers`` by an operator touching a party's account: nothing moved
    yet; a different operator approves the proposal (``/v1/proposals/{id}/approve``)."""

    proposal: ProposalOut


class ProposalList(BaseModel):
    data: list[ProposalOut]
    has_more: bool


class ProposalReject(Request):
    """Reject a proposal: nothing it names is applied."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "wrong wallet: see ticket 4411"}]}
    )

    reason: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=REASON_LENGTH_MAX)]


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


# -- village flows: parties, orders, devices ----------------------------------------------

StepId = Annotated[
    uuid.UUID | None,
    Field(
        description="The client's permanent id of this step (idempotent beyond the"
        " Idempotency-Key's 24 h); default: derived from the caller, the path and the key"
    ),
]
Name = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=NAME_LENGTH_MAX)]
DeliveryMethodName = Literal["courier", "pickup_point", "agent_delivery"]
PartyKindName = Literal["storefront", "agent", "villager"]
Base64Key = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}=$"),
    Field(description="Raw 32-byte Ed25519 public key, standard base64"),
]
AllowanceMinor = Annotated[int, Strict(), Field(ge=0, le=AMOUNT_MAX_MINOR, examples=[500_000])]


class OperatorCreate(Request):
    """Propose a new operator: the person's name and the raw 32-byte Ed25519 public key
    they made (standard base64; the private half never leaves them). Another operator
    approves it after comparing the proposal's ``fingerprint`` with the person's."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "8d0b6a52-3c1e-4f7a-9e2d-5b4c3a291f08",
                    "name": "Wanjiru Kamau",
                    "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
                }
            ]
        }
    )

    id: StepId = None
    name: Name
    public_key: Base64Key


class OperatorKeyCreate(Request):
    """Propose another key for an existing operator (a new laptop, a lost key): the raw
    32-byte Ed25519 public key, standard base64. Another operator approves it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}]
        }
    )

    id: StepId = None
    public_key: Base64Key


class PartyCreate(Request):
    """Onboard a party (operators only). A storefront's or an agent's ``id`` is the id of
    an existing principal of that role (``vledger keys create`` prints it): that principal
    then acts as the party. A villager's ``id`` is any new UUID and needs a ``kyc_tier``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6d1c1a8e-2b7f-4c3d-9e0a-5f4b3c2d1e0f",
                    "kind": "storefront",
                    "name": "Duka Online",
                    "currency": "KES",
                }
            ]
        }
    )

    id: uuid.UUID
    kind: PartyKindName
    name: Name
    currency: Currency
    kyc_tier: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=32)] | None = None


class PartyOut(BaseModel):
    id: uuid.UUID
    kind: str
    name: str
    currency: str
    kyc_tier: str | None
    accounts: dict[str, uuid.UUID] = Field(description="The party's account ids by role")


class OrderCreate(Request):
    """A storefront's order (the caller's storefront); no money moves yet. ``id`` is the
    client's permanent id: resubmitting the same order is safe."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3e9b6f0c-8a1d-4e2f-b3c4-d5e6f7a8b9c0",
                    "currency": "KES",
                    "amount_minor": 120_000,
                    "delivery_method": "agent_delivery",
                    "villager_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
                }
            ]
        }
    )

    id: uuid.UUID
    currency: Currency
    amount_minor: AmountMinor
    delivery_method: DeliveryMethodName
    villager_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None


class OrderStep(Request):
    """A step with no parameters (dispatch, release, cancel); the body may be empty."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"step_id": "2b7e1f3c-8d4a-4c6e-9f0b-5a1d3e7c9b2f"}]}
    )

    step_id: StepId = None


OrderCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[0-9]{6}$")]
"""A code a villager was given or made: 6 digits."""


class OrderPay(Request):
    """Pay the order in full into escrow: from the villager's wallet or in cash at the
    agent. An agent pays as itself; an operator names the agent of a cash payment; a
    storefront pays its own order from the wallet only. A wallet payment carries the pay
    code the villager made for this order and its exact amount (``consent_code``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"source": "cash"}, {"source": "wallet", "consent_code": "482910"}]
        }
    )

    step_id: StepId = None
    source: Literal["wallet", "cash"]
    agent_id: uuid.UUID | None = None
    consent_code: OrderCode | None = Field(
        default=None, description="The villager's pay code (a wallet payment needs it)"
    )


class OrderDeliver(Request):
    """Goods arrived: all (no ``amount_minor``) or a part, which is released now. An order
    handed over at a station (``pickup_point``, ``agent_delivery``) needs the pickup code
    the villager was sent when it was dispatched (``pickup_code``)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount_minor": 60000}, {"pickup_code": "730214"}]}
    )

    step_id: StepId = None
    amount_minor: AmountMinor | None = None
    pickup_code: OrderCode | None = Field(
        default=None, description="The villager's pickup code (a hand-over at a station)"
    )


class OrderDispute(Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "the goods arrived damaged"}]}
    )

    step_id: StepId = None
    reason: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=REASON_LENGTH_MAX)]


class OrderResolve(Request):
    model_config = ConfigDict(json_schema_extra={"examples": [{"decision": "refund"}]})

    step_id: StepId = None
    decision: Literal["refund", "release", "resume"]


class OrderRefund(Request):
    """Refund the payer: a part or all of what is left in escrow, or after release
    (``after_release``) all that was released, within the refund window."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount_minor": 30000}]})

    step_id: StepId = None
    amount_minor: AmountMinor | None = None
    after_release: Annotated[bool, Strict()] = False


class OrderOut(BaseModel):
    """An order; amounts are minor units of ``currency``."""

    id: uuid.UUID
    storefront_id: uuid.UUID
    villager_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    currency: str
    amount_minor: int
    delivery_method: str
    state: Literal[
        "created",
        "paid",
        "dispatched",
        "delivered",
        "released",
        "cancelled",
        "disputed",
        "refunded",
    ]
    payment_source: Literal["wallet", "cash"] | None
    paid_minor: int
    released_minor: int
    refunded_minor: int
    reversed_minor: int
    escrow_minor: int = Field(description="What the order holds in escrow now")
    deliveries: int
    extensions: int
    disputed_from: str | None
    auto_release_at: datetime | None
    refund_until: datetime | None
    created_at: datetime
    updated_at: datetime
    dispatched_at: datetime | None
    released_at: datetime | None
    dispatch_deadline_at: datetime | None = Field(
        default=None,
        description="Paid: when it must be dispatched by; after it the sweeper cancels and"
        " refunds it",
    )


class OrderList(BaseModel):
    data: list[OrderOut]
    has_more: bool


class DeviceCreate(Request):
    """Register the calling agent's phone: its Ed25519 key, and the allowance of the
    agent's float held for its offline cash-ins (minor units)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
                    "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
                    "allowance_minor": 500_000,
                }
            ]
        }
    )

    id: uuid.UUID
    public_key: Base64Key
    allowance_minor: AllowanceMinor


class DeviceAllowance(Request):
    """What the device may spend offline from now on (replenishes a spent allowance)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"allowance_minor": 500000}]})

    allowance_minor: AllowanceMinor


class DeviceOut(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    public_key: str = Field(description="standard base64")
    state: Literal["active", "revoked"]
    allowance_registered_minor: int
    allowance_minor: int
    last_seq: int
    created_at: datetime
    updated_at: datetime


class SignedRecordIn(Request):
    """One offline record: its canonical bytes as a string (ASCII JSON, see
    ``ledger.flows.offline``) and the device's Ed25519 signature over them (base64)."""

    payload: Annotated[str, Strict(), StringConstraints(min_length=2, max_length=1024)]
    signature: Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]


class DeviceSync(Request):
    """A device's records in capture order (at most 500)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "records": [
                        {
                            "payload": (
                                '{"agent_id":"3f0d8c52-9d2e-4f7b-a1c4-6e2b9d0a7f13",'
                                '"amount_minor":50000,"captured_at":"2026-06-01T09:15:00.000Z",'
                                '"currency":"KES","device_id":"c7a1e9d4-2b3f-4e8a-9c6d-1f0e2a3b4c5d",'
                                '"kind":"cash_in","record_id":"9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b",'
                                '"seq":1,"villager_id":"6b5a4f3e-2d1c-4b0a-9f8e-7d6c5b4a3f2e"}'
                            ),
                            "signature": (
                                "8z3B5CFCRlXuC9PbKJTpmdGslDDZFqzrZtgw4wVKk84K"
                                "Pdc8h/Osxvab+B5e/B2uG9II0e+hUQ+Ufpg7QhnvDw=="
                            ),
                        }
                    ]
                }
            ]
        }
    )

    records: Annotated[list[SignedRecordIn], Field(min_length=1, max_length=500)]


class SyncedRecordOut(BaseModel):
    record_id: uuid.UUID
    device_id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    seq: int
    kind: Literal["cash_in", "cash_out", "handover"]
    amount_minor: int
    currency: str
    state: Literal["applied", "exception"]
    reason: str | None
    # applied: the cash-in or cash-out it became (a handover: the order's delivery step)
    cash_operation_id: uuid.UUID | None
    captured_at: datetime
    synced_at: datetime
    order_id: uuid.UUID | None  # a handover's order; null for a cash record


class SyncReportOut(BaseModel):
    device_id: uuid.UUID
    records: list[SyncedRecordOut]
    stored_now: int
    applied: int
    exceptions: int
    replayed: int


class SyncedRecordList(BaseModel):
    data: list[SyncedRecordOut]
    has_more: bool


# -- webhooks -------------------------------------------------------------------------------

EventTypeName = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$", max_length=64),
    Field(examples=["order.paid", "order.*", "*"]),
]


class WebhookEndpointCreate(Request):
    """A URL to POST the caller's events to (Standard Webhooks), for these event types
    (``order.paid``, ``order.*`` or ``*``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "url": "https://shop.example/hooks/vledger",
                    "event_types": ["order.paid", "order.released", "order.refunded"],
                }
            ]
        }
    )

    url: Annotated[str, Strict(), StringConstraints(min_length=8, max_length=2048)]
    event_types: Annotated[list[EventTypeName], Field(min_length=1, max_length=50)]
    description: Annotated[str, Strict(), StringConstraints(max_length=200)] | None = None


class WebhookSecretRotate(Request):
    """Rotate the signing secret; the old one keeps signing beside the new for
    ``grace_s`` seconds (0..7 days; default one day)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"grace_s": 3600}]})

    grace_s: Annotated[int, Strict(), Field(ge=0, le=7 * 86_400)] = 86_400


class WebhookEndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    state: Literal["enabled", "disabled"]
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until then deliveries carry a second signature, by the previous secret"
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(description="whsec_<base64>: shown only now and on rotation")


class WebhookEndpointList(BaseModel):
    data: list[WebhookEndpointOut]
    has_more: bool


class WebhookSecretOut(BaseModel):
    endpoint_id: uuid.UUID
    secret: str = Field(description="The new whsec_ secret")
    previous_secret_expires_at: datetime | None


class WebhookDeliveryOut(BaseModel):
    """One event to one endpoint; ``webhook-id`` is ``event_id`` on every attempt."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    state: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime


class WebhookDeliveryList(BaseModel):
    data: list[WebhookDeliveryOut]
    has_more: bool


# -- cash at the agent's counter and the agent's float ---------------------------------------

OperationId = Annotated[
    uuid.UUID,
    Field(
        description="The client's permanent id of this operation: resubmitting it, with"
        " any Idempotency-Key and at any time, answers the same operation and moves no"
        " money twice (an offline agent's retry after the key's 24 h still finds it)"
    ),
]
Provider = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[A-Z0-9_]{1,32}$"),
    Field(
        description="A provider: 1..32 upper-case ASCII letters, digits or _", examples=["MPESA"]
    ),
]
CashOutTimeoutS = Annotated[
    int,
    Strict(),
    Field(ge=60, le=86_400, description="Seconds the agent has to confirm (60..86400)"),
]
Reason = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=REASON_LENGTH_MAX)]


class CashInCreate(Request):
    """A villager handed the calling agent cash: the agent's float pays her wallet."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
                    "villager_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
                    "amount_minor": 50_000,
                }
            ]
        }
    )

    id: OperationId
    villager_id: uuid.UUID
    amount_minor: AmountMinor


class CashInOut(BaseModel):
    """A cash-in; amounts are minor units of ``currency``."""

    id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    device_id: uuid.UUID | None = Field(description="The phone that captured it offline")
    currency: str
    amount_minor: int = Field(description="Cash handed over, and e-money credited")
    fee_minor: int
    commission_minor: int = Field(description="What the agent earned")
    fee_version: int | None = Field(description="The cash_in fee schedule that priced it")
    created_at: datetime


class CashInList(BaseModel):
    data: list[CashInOut]
    has_more: bool


class CashOutCreate(Request):
    """A villager asks the calling agent for cash, with the withdrawal code she made for
    this agent and amount (``consent_code``): ``amount_minor`` plus the fee of her wallet
    and ``amount_minor`` of the agent's cash-on-hand are held until the agent confirms
    (``/v1/cash-outs/{id}/confirm``), someone cancels, or ``timeout_s`` passes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "2b3c4d5e-6f70-4812-9a3b-4c5d6e7f8091",
                    "villager_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
                    "amount_minor": 20_000,
                    "consent_code": "482910",
                }
            ]
        }
    )

    id: OperationId
    villager_id: uuid.UUID
    amount_minor: AmountMinor
    timeout_s: CashOutTimeoutS = 900
    consent_code: OrderCode | None = Field(
        default=None,
        description="The withdrawal code the villager made for this agent and exact amount"
        " (without it: 422 consent_required, nothing held)",
    )


class CashOutConfirm(Request):
    """No parameters: the agent handed the cash over. The body may be empty."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})


class CashOutCancel(Request):
    """Cancel a requested cash-out (the body may be empty)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "the villager changed their mind"}]}
    )

    reason: Reason | None = None


class CashOutOut(BaseModel):
    """A cash-out; amounts are minor units of ``currency``."""

    id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    device_id: uuid.UUID | None
    currency: str
    amount_minor: int = Field(description="Cash the agent hands over")
    fee_minor: int = Field(description="Paid by the villager on top of the amount")
    total_minor: int = Field(description="What leaves the wallet: amount and fee")
    fee_version: int | None
    mode: Literal["two_phase", "one_shot"]
    state: Literal["requested", "completed", "cancelled", "expired"]
    reason: str | None = Field(description="Why it was cancelled")
    created_at: datetime
    expires_at: datetime | None = Field(description="When a requested cash-out expires")
    resolved_at: datetime | None


class CashOutList(BaseModel):
    data: list[CashOutOut]
    has_more: bool


class FloatTopUpCreate(Request):
    """Cash the agent deposited with ``provider`` (a bank or super-agent), confirmed by the
    platform (operators): the provider's clearing account pays the agent's float."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "4c5d6e7f-8091-4a2b-b3c4-d5e6f7a8b9c0",
                    "amount_minor": 1_000_000,
                    "provider": "KCB",
                }
            ]
        }
    )

    id: OperationId
    amount_minor: AmountMinor
    provider: Provider


class FloatTopUpOut(BaseModel):
    id: uuid.UUID
    agent_id: uuid.UUID
    provider: str
    currency: str
    amount_minor: int
    transfer_id: uuid.UUID = Field(description="The core transfer that moved it")
    created_at: datetime


class FloatTransferCreate(Request):
    """Pay ``amount_minor`` of the agent's float to another agent (same currency)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5d6e7f80-91a2-4b3c-8d4e-5f6a7b8c9d0e",
                    "to_agent_id": "6e7f8091-a2b3-4c4d-9e5f-6a7b8c9d0e1f",
                    "amount_minor": 200_000,
                }
            ]
        }
    )

    id: OperationId
    to_agent_id: uuid.UUID
    amount_minor: AmountMinor


class FloatTransferOut(BaseModel):
    id: uuid.UUID
    from_agent_id: uuid.UUID
    to_agent_id: uuid.UUID
    currency: str
    amount_minor: int
    transfer_id: uuid.UUID
    created_at: datetime


class FloatThresholdSet(Request):
    """The float below which ``float.low`` is emitted (once per crossing); ``null``
    clears it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"threshold_minor": 100_000}]})

    threshold_minor: AmountMinor | None


class FloatOut(BaseModel):
    """An agent's float now (minor units of ``currency``)."""

    agent_id: uuid.UUID
    currency: str
    balance_minor: int = Field(description="Credits posted less debits posted")
    held_minor: int = Field(description="Held for devices' allowances and the like")
    available_minor: int = Field(description="What the agent can spend now")
    low_threshold_minor: int | None
    low_armed: bool = Field(description="Whether the next fall below emits float.low")
    guarantee_cap_minor: int | None


# -- operator tasks: KYC tiers, suspense (maker-checker where money or limits grow) -------

TierName = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=f"^[A-Za-z0-9_]{{1,{TIER_LENGTH_MAX}}}$"),
    Field(description="A KYC tier's name", examples=["tier1"]),
]


class KycTierSet(Request):
    """Move a villager to a KYC tier. To ``tier0``: applied at once (200: lowering only
    restricts her). To any other tier: a proposal (202) that another operator approves;
    ``id`` is the proposal's permanent id (default: derived from the Idempotency-Key)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"tier": "tier1"}, {"tier": "tier0"}]}
    )

    id: StepId = None
    tier: TierName


class KycTierOut(BaseModel):
    """A villager's KYC tier now."""

    villager_id: uuid.UUID
    currency: str
    kyc_tier: str


class ProposalMade(BaseModel):
    """Nothing changed yet: a different operator approves the proposal
    (``POST /v1/proposals/{id}/approve``), which applies it in its transaction."""

    proposal: ProposalOut


class TierLimitsSet(Request):
    """Propose a tier's limits in a currency (a new tier, or new limits), minor units:
    the most one cash-in or cash-out moves, the most cashed in (and, apart, out) per UTC
    day, the most the wallet holds. Another operator approves it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "currency": "KES",
                    "tier": "tier1",
                    "per_transaction_max_minor": 7_000_000,
                    "daily_max_minor": 15_000_000,
                    "balance_max_minor": 30_000_000,
                }
            ]
        }
    )

    id: StepId = None
    currency: Currency
    tier: TierName
    per_transaction_max_minor: AmountMinor
    daily_max_minor: AmountMinor
    balance_max_minor: AmountMinor


class TierLimitsOut(BaseModel):
    """A tier's limits in one currency (minor units)."""

    currency: str
    tier: str
    per_transaction_max_minor: int
    daily_max_minor: int = Field(description="Per UTC day, for cash-in and cash-out apart")
    balance_max_minor: int


class TierLimitsList(BaseModel):
    data: list[TierLimitsOut]
    has_more: bool


class SuspenseOut(BaseModel):
    """Provider money nobody could match (minor units of ``currency``): ``parked``, then
    ``reassigned`` to the party it belonged to or ``returned`` through its provider."""

    id: uuid.UUID
    currency: str
    provider: str
    provider_reference: str
    amount_minor: int
    note: str | None
    state: Literal["parked", "reassigned", "returned"]
    park_transfer_id: uuid.UUID
    target_party_id: uuid.UUID | None = Field(description="Reassigned: whose it was")
    target_account_id: uuid.UUID | None = Field(description="Reassigned: the account credited")
    resolve_transfer_id: uuid.UUID | None
    return_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


class SuspenseList(BaseModel):
    data: list[SuspenseOut]
    has_more: bool


class SuspenseReassign(Request):
    """Move a parked item to whose it was: a villager's wallet or a storefront's
    proceeds (exactly one; the tier's wallet maximum still holds)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"to_villager_id": "3e1b7c2a-9d4f-4a6b-8c0e-1f2a3b4c5d6e"}]}
    )

    to_villager_id: uuid.UUID | None = None
    to_storefront_id: uuid.UUID | None = None


class SuspenseReturn(Request):
    """Propose sending a parked item back through its provider, with the reason why;
    another operator approves it. ``id``: the proposal's permanent id."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "sender asked for it back: ticket 5120"}]}
    )

    id: StepId = None
    reason: Reason


CapMinor = Annotated[int, Strict(), Field(ge=0, le=AMOUNT_MAX_MINOR, examples=[2_000_000])]


class GuaranteeCapSet(Request):
    """The most the agent's float may hold (its collateral), minor units; ``null``
    removes the cap. Top-ups and incoming float transfers beyond it are refused."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"cap_minor": 2_000_000}]})

    cap_minor: CapMinor | None


class OrderExtend(Request):
    """Push a dispatched order's auto-release timer ``days`` later (a disputed order's
    paused timer gets the days added to what it has left); at most 5 times an order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"days": 7}]})

    step_id: StepId = None
    days: Annotated[int, Strict(), Field(ge=1, le=EXTENSION_DAYS_MAX)]


# -- settlement -----------------------------------------------------------------------------


class WindowOpen(Request):
    """Open a settlement window for a currency (one open window per currency)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": "7f8091a2-b3c4-4d5e-8f6a-7b8c9d0e1f2a", "currency": "KES"}]
        }
    )

    id: OperationId
    currency: Currency


class WindowClose(Request):
    """Close the window: every storefront's available proceeds become one payout each,
    held towards ``provider``'s clearing account."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"provider": "MPESA"}]})

    provider: Provider


class WindowOut(BaseModel):
    """A settlement window; amounts are minor units of ``currency``."""

    id: uuid.UUID
    currency: str
    state: Literal["open", "closed", "settled"]
    provider: str | None = Field(description="Set when the window closes")
    payouts_count: int
    payouts_total_minor: int
    opened_at: datetime
    closed_at: datetime | None
    settled_at: datetime | None


class WindowList(BaseModel):
    data: list[WindowOut]
    has_more: bool


class PayoutConfirm(Request):
    """The provider paid the payout: its statement reference (unique per provider)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"provider_reference": "QK71X2"}]})

    provider_reference: Annotated[
        str, Strict(), StringConstraints(min_length=1, max_length=REFERENCE_LENGTH_MAX)
    ]


class PayoutFail(Request):
    """The provider could not pay: the money is back in the storefront's proceeds and
    the next window to close pays it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "account closed"}]})

    reason: Reason


class PayoutOut(BaseModel):
    """What a closed window pays one storefront (minor units of ``currency``)."""

    id: uuid.UUID
    window_id: uuid.UUID
    storefront_id: uuid.UUID
    currency: str
    provider: str
    proceeds_account_id: uuid.UUID
    clearing_account_id: uuid.UUID
    proceeds_before_minor: int = Field(description="Available proceeds when the window closed")
    amount_minor: int
    state: Literal["pending", "paid", "failed"]
    hold_transfer_id: uuid.UUID
    resolve_transfer_id: uuid.UUID | None = Field(description="The post (paid) or void (failed)")
    provider_reference: str | None
    failure_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


class PayoutList(BaseModel):
    data: list[PayoutOut]
    has_more: bool


class ReportLineOut(BaseModel):
    """One payout beside what the core holds of it (minor units)."""

    storefront_id: uuid.UUID
    payout_id: uuid.UUID
    state: Literal["pending", "paid", "failed"]
    provider_reference: str | None
    proceeds_before_minor: int
    amount_minor: int
    held_minor: int
    posted_minor: int
    voided_minor: int
    proceeds_after_minor: int
    ties: bool


class WindowReportOut(BaseModel):
    """A window's payouts and the ledger figures they must equal; ``ties`` when they all
    do, else ``problems`` says what did not."""

    window: WindowOut
    clearing_account_id: uuid.UUID | None
    lines: list[ReportLineOut]
    proceeds_before_total_minor: int
    payouts_total_minor: int
    paid_total_minor: int
    failed_total_minor: int
    pending_total_minor: int
    ledger_held_minor: int
    ledger_posted_minor: int
    ledger_voided_minor: int
    clearing_movement_minor: int
    proceeds_after_total_minor: int
    ties: bool
    problems: list[str]


# -- agents' commission payouts (a month, UTC, per currency) ----------------------------


CommissionMonth = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}$"),
    Field(description="A calendar month in UTC, YYYY-MM", examples=["2026-11"]),
]


class CommissionPayoutCreate(Request):
    """Pay every agent of ``currency`` the commission it earned in ``month`` (UTC; the
    month must be over) to its float, or to ``provider`` (``to: provider``). Once per
    month and currency: asking again answers the first payout."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"month": "2026-11", "currency": "KES", "to": "float"},
                {"month": "2026-11", "currency": "UGX", "to": "provider", "provider": "MPESA"},
            ]
        }
    )

    month: CommissionMonth
    currency: Currency
    to: Literal["float", "provider"]
    provider: Provider | None = Field(default=None, description="Only with to=provider")


class CommissionLineOut(BaseModel):
    """What a payout paid one agent (minor units of the payout's currency)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    commission_account_id: uuid.UUID
    destination_account_id: uuid.UUID = Field(description="Its float, or the provider's clearing")
    earned_minor: int = Field(description="Credited in the month less what was taken back in it")
    amount_minor: int = Field(description="Paid: earned, or less if the account held less")
    transfer_id: uuid.UUID
    created_at: datetime


class CommissionPayoutSummary(BaseModel):
    """A month's commission payout in one currency (minor units)."""

    id: uuid.UUID
    month: str = Field(description="YYYY-MM, UTC")
    currency: str
    to: Literal["float", "provider"]
    provider: str | None
    period_start: datetime = Field(description="The month's first moment (UTC), inclusive")
    period_end: datetime = Field(description="The next month's first moment (UTC), exclusive")
    lines_count: int
    total_minor: int
    made_by: uuid.UUID | None = Field(description="The operator (null: the command line)")
    created_at: datetime


class CommissionPayoutOut(CommissionPayoutSummary):
    """The payout and a page of its lines in agent id order (``lines_has_more``: page on
    with ``starting_after`` = the last line's ``agent_id``)."""

    lines: list[CommissionLineOut]
    lines_has_more: bool


class CommissionPayoutList(BaseModel):
    data: list[CommissionPayoutSummary]
    has_more: bool


class CommissionPaidMonthOut(BaseModel):
    month: str
    payout_id: uuid.UUID
    earned_minor: int
    amount_minor: int
    transfer_id: uuid.UUID
    paid_at: datetime


class AgentCommissionOut(BaseModel):
    """An agent's commission (minor units of ``currency``): earned this month (UTC) so
    far, what its commission account holds unpaid, and its paid months, newest first."""

    agent_id: uuid.UUID
    currency: str
    month: str = Field(description="The current month, YYYY-MM, UTC")
    earned_this_month_minor: int
    unpaid_minor: int
    paid: list[CommissionPaidMonthOut]


# -- reconciliation runs, checkpoints (auditors, operators) -----------------------------


class RunOut(BaseModel):
    """A recorded reconciliation run (``reconciliation.runs``): immutable once written."""

    id: uuid.UUID
    job: str
    business_date: str = Field(description="YYYY-MM-DD")
    scope: str
    attempt: int = Field(description="1 for the first run of this job, date and scope")
    rule_version: int
    input_sha256: str
    checked: int
    breaks: int
    status: Literal["ok", "breaks"]
    started_at: datetime
    finished_at: datetime
    read_source: Literal["primary", "replica"] = Field(
        description="Where the job read the ledger: the primary, or a streaming replica"
        " (``reconciliation.replica``)"
    )
    read_lsn: str | None = Field(
        description="The WAL position (X/Y) the job's reads include everything up to;"
        " null on SQLite"
    )
    close_lsn: str | None = Field(
        description="The primary's WAL position at the business date's close, which the"
        " replica had to pass; null when no replica was asked"
    )


class RunCreate(Request):
    """Run a reconciliation job now, for one business date (auditors, operators). The
    jobs that read an outside record (``statement``, ``cash-count``) take it as a file
    and run from ``vledger reconcile``; ``job`` lists the others."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"job": "integrity", "business_date": "2026-06-01"}]}
    )

    job: Annotated[str, Strict(), StringConstraints(pattern=r"^[a-z0-9-]{1,32}$")]
    business_date: Annotated[
        str, Strict(), StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    ] = Field(description="YYYY-MM-DD")
    scope: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=200)] | None = None
    options: Annotated[
        dict[
            Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,64}$")],
            Annotated[str, Strict(), StringConstraints(max_length=200)],
        ],
        Field(max_length=20, description="the job's settings, as ``--option NAME=VALUE``"),
    ] = Field(default_factory=dict)


class RunList(BaseModel):
    data: list[RunOut]
    has_more: bool


class RunDetailOut(RunOut):
    """A run with its summary and the names of its files that are present."""

    summary: dict[str, Any]
    files: list[str] = Field(
        description="summary.json, detail.csv, report.html, then the job's own files"
        " (the pack job's pack/...) that are present"
    )


# -- cash counts and their variances (maker-checker) ---------------------------------------

DenominationText = Annotated[
    str, Strict(), StringConstraints(pattern=r"^[0-9]{1,12}(\.[0-9]{1,4})?$")
]


class CashCountCreate(Request):
    """An agent's counted cash, as the ``cash-count`` job's file holds it (the agent is the
    path's). ``denominations``: a note or coin's value in MAJOR units (decimal text, no
    more fraction digits than the currency has) -> how many were counted. A count that is
    over or short needs a ``comment``. The same checks as ``vledger reconcile cash-count``
    (``reconciliation.cash_count.parse_count``) apply, whole."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "counted_at": "2026-06-01T18:00:00+03:00",
                    "currency": "KES",
                    "denominations": {"1000": 21, "200": 2},
                    "comment": "a KES 100 note went with the change",
                }
            ]
        }
    )

    agent_id: uuid.UUID | None = Field(default=None, description="the path's agent, if given")
    counted_at: datetime = Field(description="ISO 8601 with its UTC offset; not in the future")
    currency: Currency
    denominations: Annotated[
        dict[DenominationText, Annotated[int, Strict(), Field(ge=0, le=1_000_000)]],
        Field(min_length=1, max_length=64),
    ]
    comment: (
        Annotated[str, Strict(), StringConstraints(min_length=1, max_length=REASON_LENGTH_MAX)]
        | None
    ) = None


class VarianceOut(BaseModel):
    """A count over or short: ``amount_minor`` of ``currency`` the agent's cash differs by.
    ``proposed`` until an operator's approval proposal is approved by another operator
    (the transfer is posted, ``transfer_id``) or an operator rejects it (nothing moves)."""

    id: uuid.UUID
    count_id: uuid.UUID
    agent_id: uuid.UUID
    currency: str
    direction: Literal["over", "short"]
    amount_minor: int
    comment: str
    state: Literal["proposed", "approved", "rejected"]
    transfer_id: uuid.UUID | None
    decided_by: uuid.UUID | None = Field(
        description="The deciding operator's principal: the approval's signed approver, or"
        " the rejecter"
    )
    decided_by_name: str | None = Field(
        description="Variances decided before signed decisions only: the name that was"
        " typed at the command line, never checked"
    )
    reject_reason: str | None
    created_at: datetime
    decided_at: datetime | None


class VarianceList(BaseModel):
    data: list[VarianceOut]
    has_more: bool


class CashCountOut(BaseModel):
    """The ``cash-count`` run of a count (its summary: counted, expected, movements) and
    the variance it proposed, if it is over or short."""

    run: RunDetailOut
    variance: VarianceOut | None


class VarianceApproval(Request):
    """Propose approving a variance: a different operator approves the proposal
    (``POST /v1/proposals/{id}/approve``), which posts the variance transfer."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "7d1e0c55-3b6a-4f0e-9a2d-8c4b1e6f3a90"}]}
    )

    id: StepId = None


class VarianceProposed(BaseModel):
    """Nothing moved yet: another operator approves the proposal."""

    proposal: ProposalOut
    variance: VarianceOut


class VarianceReject(Request):
    """Reject a proposed variance: nothing moves; the count stays on record."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "recounted next morning: KES 21,500"}]}
    )

    reason: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=REASON_LENGTH_MAX)]


class CheckpointOut(BaseModel):
    """A sealed block: its signed checkpoint note (C2SP signed-note text) and what it
    commits to."""

    number: int
    tree_size_before: int
    tree_size: int
    first_seq: int
    last_seq: int
    root_hash: str = Field(description="hex")
    chain_head: str = Field(description="hex")
    checkpoint: str = Field(description="the signed checkpoint note")
    key_name: str
    key_id: str
    public_key: str = Field(description="base64 raw Ed25519 public key that signed it")
    sealed_at: datetime


class CheckpointList(BaseModel):
    data: list[CheckpointOut]
    has_more: bool


# -- villagers ------------------------------------------------------------------------------

PhoneText = Annotated[
    str,
    Strict(),
    StringConstraints(min_length=1, max_length=32),
    Field(description="E.164 with its country code; spaces and dashes are dropped"),
]
LanguageName = Literal["en", "sw"]


class VillagerCreate(Request):
    """An agent registers a villager at its station. ``id`` is the client's permanent id
    for the villager (a new UUID). An agent leaves ``agent_id`` out (it is the caller); an
    operator names the agent. The activation code goes to the villager's phone, never into
    this answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3e1b7c2a-9d4f-4a6b-8c0e-1f2a3b4c5d6e",
                    "phone": "+254 712 345 678",
                    "name": "Wanjiru Kamau",
                    "currency": "KES",
                    "language": "sw",
                }
            ]
        }
    )

    id: uuid.UUID
    agent_id: uuid.UUID | None = None
    phone: PhoneText
    name: Name
    currency: Currency
    language: LanguageName


class VillagerStep(Request):
    """No parameters (unlock, reset). The body may be empty."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})


class VillagerPhoneChange(Request):
    """The villager's new phone number (operators only)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "+254 722 000 111"}]})

    phone: PhoneText


class VillagerOut(BaseModel):
    """A villager principal: never its PIN, PIN hash or activation code."""

    id: uuid.UUID
    agent_id: uuid.UUID = Field(description="the agent that registered the villager")
    name: str
    currency: str
    phone: str = Field(description="E.164")
    language: LanguageName
    kyc_tier: str
    state: Literal["pending_activation", "active", "locked"]
    pin_tries_left: int
    wallet_id: uuid.UUID
    unlocked_at: datetime | None
    debit_hold_until: datetime | None = Field(
        description="end of a SIM-swap hold on wallet debits above the tier's"
        " per-transaction limit (may lie in the past)"
    )
    created_at: datetime
    updated_at: datetime


class VillagerList(BaseModel):
    """An agent's villager with the phone number asked for: one, or none."""

    data: list[VillagerOut]
    has_more: bool


# -- the station app's home figures -------------------------------------------------------


class StationOut(BaseModel):
    """An agent's station figures now (minor units of ``currency``); its float is
    ``GET /v1/agents/{agent_id}/float``."""

    agent_id: uuid.UUID
    currency: str
    cash_on_hand_minor: int = Field(
        description="Cash taken at cash-ins less cash handed over at cash-outs (posted)"
    )
    cash_promised_minor: int = Field(description="What open cash-outs still hold of the cash")
    open_cash_outs: int = Field(description="Cash-outs waiting for the agent's confirmation")
    commission_month: str = Field(description="The month counted, YYYY-MM, in UTC")
    commission_month_minor: int = Field(
        description="Commission credited to the agent in that month so far (before payouts)"
    )
    at: datetime = Field(description="When these figures were read")


# -- fee schedules (maker-checker: proposed by one operator, approved by another) ---------

ProductName = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$"),
    Field(description="order, cash_in, cash_out ...", examples=["order"]),
]


class FeeScheduleCreate(Request):
    """Propose the next version of a product's fee schedule in a currency. ``rules`` is
    the JSON of ``ledger.flows.fees`` (bands of fixed fees or basis points, rising, the
    last open-ended; the fee's split into tax and agent commission; the platform's
    commission), all integers. ``effective_at``: when it takes effect (not in the past;
    default and if it passed before the approval: the approval's moment)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5b0c2e1a-7d3f-4e6a-9b8c-1d2e3f4a5b6c",
                    "product": "order",
                    "currency": "KES",
                    "rules": {
                        "bands": [{"up_to_minor": None, "bps": 200, "min_minor": 1000}],
                        "split_bps": {"tax": 1600},
                    },
                }
            ]
        }
    )

    id: StepId = None
    product: ProductName
    currency: Currency
    rules: dict[str, Any]
    effective_at: datetime | None = None


class FeeQuoteOut(BaseModel):
    """What one amount costs (all minor units of the schedule's currency)."""

    amount_minor: int
    fee_minor: int
    tax_minor: int
    agent_commission_minor: int
    platform_income_minor: int
    rounding_minor: int = Field(description="What the floors leave of the fee (0..2)")
    platform_commission_minor: int = Field(description="What the platform pays the agent")


class FeeBandOut(BaseModel):
    """One band: fixed, or basis points clamped to min and max."""

    up_to_minor: int | None = Field(description="null: open-ended (the last band)")
    fixed_minor: int
    bps: int
    min_minor: int
    max_minor: int | None


class FeePreviewOut(BaseModel):
    """A schedule's band table and what example amounts cost under it."""

    product: str
    currency: str
    version: int = Field(description="0: the rules of a proposal, not published yet")
    bands: list[FeeBandOut]
    tax_bps: int
    agent_commission_bps: int
    quotes: list[FeeQuoteOut]


class FeeScheduleProposed(BaseModel):
    """``POST /v1/fee-schedules``: nothing is published yet; another operator approves
    the proposal (``/v1/proposals/{id}/approve``), which publishes it."""

    proposal: ProposalOut
    preview: FeePreviewOut


class FeeScheduleOut(BaseModel):
    """One published version (never edited: a change is a new version)."""

    product: str
    currency: str
    version: int
    effective_from: datetime
    created_at: datetime
    rules: dict[str, Any]


class FeeScheduleList(BaseModel):
    data: list[FeeScheduleOut]
    has_more: bool


ENROLLMENT_CODE_TEXT_LENGTH_MAX = 64
ENROLLMENT_PUBLIC_KEY_TEXT_LENGTH_MAX = 64


class EnrollmentCreate(Request):
    """A one-time enrollment code for the principal (an agent, auditor or operator)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"principal_id": "0b7c7f3e-6a55-4f0e-9d43-2f1c8a9e4b21"}]}
    )

    principal_id: uuid.UUID


class EnrollmentRedeem(Request):
    """Redeem a code: the new key's raw 32-byte Ed25519 public key, base64; the request is
    signed by that key (``keyid="enroll-<base64url SHA-256 of the raw key>"``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "7K3M-Q9TX-2HVR-8WCN-5PDA",
                    "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
                }
            ]
        }
    )

    code: str = Field(min_length=1, max_length=ENROLLMENT_CODE_TEXT_LENGTH_MAX)
    public_key: str = Field(min_length=1, max_length=ENROLLMENT_PUBLIC_KEY_TEXT_LENGTH_MAX)


# -- the back office's lookups (/v1/back-office) ----------------------------------------------


class SearchHitOut(BaseModel):
    """One object a search named exactly."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "party",
                    "id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
                    "matched": "phone",
                    "label": "villager Amina Njeri +254712345678",
                    "currency": "KES",
                    "amount_minor": None,
                }
            ]
        }
    )

    kind: Literal["party", "account", "transfer", "order", "proposal", "payout", "suspense_item"]
    id: uuid.UUID
    matched: Literal["id", "phone", "reference"]
    label: str = Field(description="A short description (text, never markup)")
    currency: str | None
    amount_minor: int | None = Field(description="Its amount, minor units of currency")


class SearchOut(BaseModel):
    """Every object the text names exactly: by id, a villager by phone number, payouts
    and suspense items by the provider's reference."""

    query: str
    data: list[SearchHitOut]


class HistoryLineOut(BaseModel):
    """A transfer touching the account and the account's posted counters right after it."""

    transfer: TransferOut
    debits_posted_after: int = Field(description="Minor units", examples=[0])
    credits_posted_after: int = Field(description="Minor units", examples=[125_000])
    balance_posted_after: int = Field(
        description="credits_posted_after - debits_posted_after", examples=[125_000]
    )


class AccountHolderOut(BaseModel):
    party_id: uuid.UUID
    role: str = Field(examples=["wallet"])
    kind: str = Field(examples=["villager"])
    name: str = Field(examples=["Amina Njeri"])


class AccountHistoryOut(BaseModel):
    """An account, the party holding it (if a party does) and a page of its statement,
    oldest first, each line with the counters after it."""

    account: AccountOut
    holder: AccountHolderOut | None
    data: list[HistoryLineOut]
    has_more: bool


class OrderEventOut(BaseModel):
    seq: int = Field(description="The event's place in the outbox; the page cursor")
    id: uuid.UUID
    type: str = Field(examples=["order.paid"])
    payload: dict[str, Any]
    created_at: datetime


class OrderTimelineOut(BaseModel):
    """An order and a page of its events, in the order they happened."""

    order: OrderOut
    data: list[OrderEventOut]
    has_more: bool


class FloatAlarmList(BaseModel):
    """Agents whose float available is below their threshold (``float.low`` rang, not
    re-armed), with their float now."""

    data: list[FloatOut]
    has_more: bool


# -- agents' till numbers and SMS phones (api/routes/tills.py) ----------------------------


class AgentTillOut(BaseModel):
    """The agent's 6-digit till number, which a villager types on the USSD menu to
    withdraw cash there, and the name the menu shows beside it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "agent_id": "0b7f6a52-3c1e-4b8e-9a51-2f0e7c1d9a10",
                    "till_number": "482913",
                    "name": "Wanjiru's shop",
                }
            ]
        }
    )

    agent_id: uuid.UUID
    till_number: str = Field(description="6 digits, the first not 0")
    name: str


class AgentSmsContactSet(Request):
    """Where the agent's SMS go (low float, cash-out requested): its phone, and the
    language of the messages (``en`` unless given)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"phone": "+254712345678", "language": "sw"}]}
    )

    phone: PhoneText
    language: LanguageName = "en"


class AgentSmsContactOut(BaseModel):
    """The agent's SMS phone (E.164, normalised) and language."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "agent_id": "0b7f6a52-3c1e-4b8e-9a51-2f0e7c1d9a10",
                    "phone": "+254712345678",
                    "language": "sw",
                }
            ]
        }
    )

    agent_id: uuid.UUID
    phone: str = Field(description="E.164")
    language: LanguageName
