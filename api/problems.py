"""RFC 9457 problem details: one ``type`` URI and one ``code`` per kind of refusal.

Every error the API answers is an :class:`ApiError` rendered by one handler as
``application/problem+json``::

    {"type": "urn:vledger:problem:exceeds_credits", "code": "exceeds_credits",
     "title": "...", "status": 422, "detail": "...", "instance": "/v1/...",
     "request_id": "..."}

The codes are the core's statuses (:class:`ledger.Status`), the API's own
(:data:`API_CODES`) and the village flows' (:data:`FLOW_CODES`, raised as
:class:`~ledger.flows.errors.FlowError`); ``type`` is ``urn:vledger:problem:<code>`` for
each. A flow's refusal maps by its class, never by its code: ``NotFound`` is 404,
``Conflict`` 409, ``Refused`` 422, except a refusal because of the object's state (an
order that is not payable now, a revoked device, a cash-out that expired, a payout
already paid, a second open window: :data:`STATE_CODES`), which is 409. A
:class:`~ledger.StorageError` (the database unreachable, locked for too long, or not
migrated) is 503 ``not_ready``, the code ``/readyz`` answers for the same state, with
``Retry-After`` (:func:`storage_problem`).

One function renders the whole error tree (:mod:`ledger.core.errors`): :func:`problem_of`.
An :class:`ApiError` (the API's own refusal, an :class:`~ledger.core.errors.EdgeError`)
is itself; a :class:`~ledger.flows.errors.FlowError` as above; a
:class:`~ledger.MalformedRequest` 422 ``validation_failed``; the reconciliation's
:class:`~reconciliation.errors.InputInvalid` 422 and
:class:`~reconciliation.errors.JobRefused` 409, both ``job_refused``; a
:class:`~ledger.StorageError` 503. Anything else (an
:class:`~ledger.core.errors.InvariantViolation`, a
:class:`~reconciliation.errors.JobFailed`) is a bug or a failure, not a refusal: 500
``internal_error``, logged. A POST stores and replays every refusal below 500
(:func:`refusal_of`, ``api.context.run_post``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger import Status
from ledger.core.errors import EdgeError, LedgerError, MalformedRequest, StorageError
from ledger.flows.errors import Conflict, FlowError, NotFound
from reconciliation.errors import JobFailed, JobRefused, ReconciliationError

PROBLEM_TYPE_PREFIX = "urn:vledger:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

API_CODES: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "The body is not strict JSON"),
    "idempotency_key_missing": (400, "Idempotency-Key is required on every POST"),
    "idempotency_key_invalid": (400, "Idempotency-Key is malformed"),
    "invalid_parameter": (400, "A query or path parameter is malformed"),
    "signature_missing": (401, "The request is not signed"),
    "signature_invalid": (401, "The request signature does not verify"),
    "signature_expired": (401, "The signature's created time is out of range"),
    "signature_coverage": (401, "The signature does not cover the required components"),
    "digest_mismatch": (401, "Content-Digest does not match the body"),
    "key_unknown": (401, "The key id is unknown or revoked"),
    "forbidden": (403, "This role may not do that"),
    "not_found": (404, "No such object"),
    "method_not_allowed": (405, "Method not allowed"),
    "idempotency_in_progress": (409, "A request with this Idempotency-Key is in progress"),
    "run_file_changed": (409, "The file no longer has the SHA-256 its run recorded"),
    "body_too_large": (413, "The request body is too large"),
    "unsupported_media_type": (415, "The body must be application/json"),
    "account_id_reserved": (422, "An account id is a version 4 or version 7 UUID"),
    "debit_account_unbounded": (
        422,
        "A raw transfer debits only the caller's account with debits_must_not_exceed_credits",
    ),
    "credit_account_forbidden": (
        422,
        "A raw transfer credits only the caller's accounts or another storefront's or agent's",
    ),
    "principal_mismatch": (422, "A storefront or agent party is named by a principal of its role"),
    "target_refused": (422, "The webhook URL is not a public http(s) target"),
    "idempotency_key_reused": (422, "This Idempotency-Key was used with another request"),
    "validation_failed": (422, "The request does not match the schema"),
    "unknown_job": (422, "No such reconciliation job runs over the API"),
    "job_refused": (422, "The reconciliation job refused the request"),
    "rate_limited": (429, "Too many requests for this key"),
    "internal_error": (500, "Internal error"),
    "not_ready": (503, "The database is unreachable or not migrated"),
}
"""The API's own problem codes: HTTP status and title."""

FLOW_CODES: dict[str, str] = {
    # not found (404)
    "order_not_found": "No such order",
    "device_not_found": "No such device",
    "record_not_found": "No such offline record",
    "party_not_found": "No such party",
    "storefront_not_found": "No such storefront (onboard it first)",
    "agent_not_found": "No such agent",
    "villager_not_found": "No such villager",
    "platform_not_found": "No platform party for this currency",
    "account_not_found": "The party has no account in that role",
    "cash_in_not_found": "No such cash-in",
    "cash_out_not_found": "No such cash-out",
    "window_not_found": "No such settlement window",
    "payout_not_found": "No such payout",
    "commission_payout_not_found": "No such commission payout",
    "proposal_not_found": "No such proposal",
    "variance_not_found": "No such cash-count variance",
    "principal_not_found": "No such principal",
    "suspense_not_found": "No such suspense item",
    # conflicts of a client's id (409)
    "order_exists_different": "The order id exists with other details",
    "step_id_reused": "The step id was used for another request",
    "party_exists_different": "The party id exists with other details",
    "party_id_reserved": "The party id is reserved",
    "villager_id_reused": "The villager id was used for another registration or party",
    "phone_taken": "The phone number is registered to another villager",
    "account_exists_different": "A party account exists with other details",
    "account_id_taken": "A party's account id was opened by a principal or differs",
    "proposal_exists_different": "The proposal id exists with other details",
    "variance_transfer_exists": "The variance's transfer id was used otherwise",
    "device_exists_different": "The device id exists with other details",
    "public_key_in_use": "Another device is registered with that key",
    "record_exists_different": "A synced record id came with other bytes",
    "cash_in_id_reused": "The cash-in id was used for another request",
    "cash_out_id_reused": "The cash-out id was used for another request",
    "topup_id_reused": "The top-up id was used for another request",
    "transfer_id_reused": "The float transfer id was used for another request",
    "window_id_reused": "The window id was used for another currency",
    "window_closed_differently": "The window was closed through another provider",
    "payout_confirmed_differently": "The payout was confirmed with another reference",
    "payout_failed_differently": "The payout failed for another reason",
    "provider_reference_used": "The provider reference confirmed another payout",
    "suspense_id_reused": "The suspense id parked other money",
    "provider_reference_parked": "The provider's reference is parked as another item",
    "suspense_already_resolved": "The suspense item was resolved otherwise",
    "suspense_return_proposed": "A return of this suspense item waits for approval already",
    "commission_payout_proposed": "A payout of this month and currency waits for approval",
    # the object's state (409)
    "order_not_payable": "Only a created order is paid",
    "order_not_dispatchable": "Only a paid order is dispatched",
    "dispatch_deadline_passed": "The paid order's dispatch deadline has passed",
    "order_not_deliverable": "Only a dispatched order is delivered",
    "order_not_releasable": "Only a dispatched or delivered order is released",
    "order_not_disputable": "Only a paid, dispatched or delivered order is disputed",
    "order_not_disputed": "Only a disputed order is resolved",
    "order_not_cancellable": "Only an order not yet dispatched is cancelled",
    "order_not_refundable": "The order holds nothing in escrow",
    "order_not_released": "A refund after release needs a released order",
    "order_released": "The order was released: refund it with after_release",
    "order_disputed": "A disputed order is resolved, not refunded",
    "order_timer_not_running": "The order's auto-release timer is not running",
    "device_revoked": "The device is revoked",
    "cash_out_completed": "The cash-out was completed (or posted at once)",
    "cash_out_cancelled": "The cash-out was cancelled",
    "cash_out_expired": "The cash-out expired before the agent confirmed it",
    "window_already_open": "Another window of this currency is open",
    "payout_not_pending": "The payout was already paid or failed",
    "proposal_not_pending": "The proposal was decided otherwise",
    "variance_approved": "The variance was approved: its transfer is posted",
    "variance_rejected": "The variance was rejected: nothing moves for it",
    # refused by the rules (422)
    "amount_invalid": "The amount is out of range",
    "amount_exceeds_escrow": "The amount exceeds what the order holds in escrow",
    "currency_mismatch": "The parties hold another currency",
    "currency_not_supported": "Not an active ISO 4217 currency",
    "delivery_method_invalid": "Unknown delivery method",
    "delivery_terms_invalid": "A delivery method's days or hours are out of range",
    "payment_source_invalid": "A payment source is wallet or cash",
    "villager_required": "A wallet payment needs the order's villager",
    "agent_required": "A cash payment is taken by an agent",
    "agent_mismatch": "The order or cash-out names another agent",
    "decision_invalid": "A decision is refund, release or resume",
    "reason_invalid": "A reason is 1..500 characters",
    "extension_invalid": "An extension is 1..30 days",
    "extensions_exceeded": "Too many extensions of this order",
    "partial_deliveries_exceeded": "Too many partial deliveries of this order",
    "pickup_code_required": "The hand-over at a station needs the villager's pickup code",
    "pickup_code_invalid": "The pickup code is wrong, void or used",
    "pickup_codes_exceeded": "This order was given as many pickup codes as it may have",
    "refund_window_closed": "The refund window of this order has closed",
    "fee_schedule_missing": "No fee schedule is in effect",
    "fee_exceeds_release": "The fee exceeds the amount released",
    "funds_short": "An account of the operation is short",
    "wallet_short": "The villager's wallet is short",
    "float_short": "The agent's float is short",
    "escrow_short": "The storefront's escrow is short",
    "proceeds_short": "The storefront's proceeds are short",
    "agent_cash_short": "The agent's cash on hand is short",
    "agent_commission_short": "The agent's commission is short",
    "fee_income_short": "The platform's fee income is short",
    "tax_payable_short": "The platform's tax payable is short",
    "commission_expense_short": "The platform's commission expense is short",
    "name_invalid": "A name is 1..200 characters",
    "kyc_tier_invalid": "A villager has a KYC tier; nobody else has one",
    "provider_invalid": "A provider is 1..32 upper-case ASCII letters or digits",
    "public_key_invalid": "Not a raw 32-byte Ed25519 public key",
    "record_invalid": "An offline record is not well formed",
    "record_device_mismatch": "A record names another device",
    "record_signature_invalid": "A record's device signature does not verify",
    "records_out_of_order": "Records must come in increasing seq",
    "record_seq_reused": "A new record reuses a stored seq",
    "record_gap": "The records skip a seq: send the missing one first",
    "batch_too_large": "Too many records in one sync",
    "below_minimum": "The amount is below the smallest cash-out",
    "fee_exceeds_amount": "The fee takes all of the amount",
    "kyc_tier_unknown": "The villager's KYC tier has no limits in this currency",
    "kyc_tier_needs_approval": "A villager is onboarded at tier0; a higher tier takes a second"
    " operator's approval",
    "limit_invalid": "A KYC limit is out of range",
    "limit_exceeded_per_transaction": "The amount is above the villager's per-transaction limit",
    "limit_exceeded_daily": "The amount would pass the villager's daily limit",
    "limit_exceeded_balance": "The wallet would hold more than the villager's tier allows",
    "agents_must_differ": "An agent cannot transfer float to itself",
    "guarantee_cap_exceeded": "The float would pass the agent's guarantee cap",
    "provider_reference_invalid": "A provider reference is 1..128 characters, not blank",
    "phone_invalid": "A phone number is E.164: + and the country code, then the number",
    "language_not_supported": "A villager's language is en or sw",
    "pin_format_invalid": "A PIN is 4..6 digits",
    "pin_too_weak": "The PIN is one digit repeated or a straight run",
    "pin_unchanged": "The new PIN is the PIN",
    "pin_invalid": "The PIN is wrong (the detail says how many tries are left)",
    "pin_locked": "The PIN is locked after too many wrong tries: it must be unlocked",
    "villager_not_active": "The villager has not set a PIN yet",
    "villager_not_locked": "The villager is active: there is nothing to unlock",
    "activation_code_invalid": "The activation code is wrong, used or unknown",
    "activation_code_expired": "The activation code expired: a new one is needed",
    "activation_code_void": "Too many wrong tries: the activation code is void",
    "operator_required": "A second unlock within 30 days needs an operator",
    "actor_invalid": "An unlock is by one agent or one operator",
    "sim_swap_hold": "After a PIN reset or phone change, large wallet debits wait 48 hours",
    "consent_required": "The villager's consent is needed: a code the villager made, or the PIN",
    "consent_invalid": "The consent code is wrong, used, void, or for another debit",
    "consent_expired": "The consent code expired: the villager makes a new one",
    "consent_rate_limited": "Too many wrong consent codes from this caller: try later",
    "consent_codes_too_many": "The villager has as many open codes of this kind as allowed",
    "consent_purpose_invalid": "A withdrawal code names one agent, a pay code one order",
    "enrollment_code_invalid": "The enrollment code is wrong or malformed",
    "enrollment_code_expired": "The enrollment code expired (15 minutes): ask for a new one",
    "enrollment_code_used": "The enrollment code was used already",
    "enrollment_code_void": "The enrollment code is void (5 wrong tries, replaced or revoked)",
    "enrollment_role_refused": "Only agents and auditors enroll with a code through the API",
    "operator_exists": "An operator of that name exists",
    "operator_not_found": "No operator has that id",
    "public_key_registered": "That public key is registered already (to someone)",
    "key_refused": "The key cannot be registered (the detail says why)",
    "proposal_maker_cannot_decide": "The operator who made a proposal cannot approve it",
    "decider_not_operator": "A variance is decided by an operator's principal (a signed caller)",
    "proposal_kind_unknown": "Nothing applies proposals of that kind",
    "proposal_empty": "A proposal of transfers needs at least one",
    "fee_rules_invalid": "The fee rules are malformed (the detail says where)",
    "product_invalid": "A product is 1..48 lower-case ASCII letters, digits or _",
    "effective_from_naive": "A fee schedule's start must carry a time zone",
    "effective_at_past": "A fee schedule cannot take effect in the past",
    "month_invalid": "A month is YYYY-MM (UTC)",
    "month_not_over": "The month is not over yet (months end at 00:00 UTC)",
    "destination_invalid": "A payout goes to float, or to provider with a provider named",
    "provider_required": "A payout to a provider names the provider",
    "target_invalid": "Name exactly one of to_villager_id, to_storefront_id",
    "note_invalid": "A note is 1..500 characters, not blank",
    "suspense_not_parked": "The suspense item is no longer parked: nothing to return",
    "commission_month_paid": "The month's commission in this currency was paid already",
}
"""The village flows' codes (:class:`~ledger.flows.errors.FlowError`) and their titles.
``tests/test_api_orders.py`` and ``tests/test_api_cash.py`` check every code the exposed
flows raise is here."""

FLOW_CODE_ALIASES = {"signature_invalid": "record_signature_invalid"}
"""Flow codes that would mean something else as API codes, and the code they answer as
(an offline record's device signature is not the request's signature)."""

STATE_CODES = frozenset(
    {code for code in FLOW_CODES if code.startswith("order_not_") and code != "order_not_found"}
    | {"order_released", "order_disputed", "order_timer_not_running", "device_revoked"}
    | {"dispatch_deadline_passed"}
    | {"cash_out_completed", "cash_out_cancelled", "cash_out_expired"}
    | {"window_already_open", "payout_not_pending", "proposal_not_pending"}
)
"""Refusals because of the object's current state: 409 rather than 422."""

STORAGE_RETRY_AFTER_S = 2
"""Seconds a client waits before retrying a request the database could not serve (503)."""

STATUS_HTTP: dict[Status, int] = {s: 422 for s in Status}
STATUS_HTTP.update({Status.CREATED: 201, Status.EXISTS: 409})


def problem_type(code: str) -> str:
    return f"{PROBLEM_TYPE_PREFIX}{code}"


def all_codes() -> list[str]:
    """Every problem code, the core's statuses included (for the OpenAPI document)."""
    return sorted({*API_CODES, *FLOW_CODES, *(s.value for s in Status if s is not Status.CREATED)})


@dataclass
class ApiError(EdgeError):
    """The API refused a request before (or instead of) a flow: rendered as problem+json
    with ``status`` and ``code``."""

    code: str
    detail: str = ""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = API_CODES[self.code][0] if self.code in API_CODES else 422
        super().__init__(self.detail or self.code)

    @property
    def title(self) -> str:
        if self.code in API_CODES:
            return API_CODES[self.code][1]
        if self.code in FLOW_CODES:
            return FLOW_CODES[self.code]
        return self.code.replace("_", " ").capitalize()

    def body(self, *, instance: str, request_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "type": problem_type(self.code),
            "code": self.code,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            answer["detail"] = self.detail
        answer["instance"] = instance
        answer["request_id"] = request_id
        answer.update(self.extra)
        return answer


def status_error(status: Status, detail: str = "", **extra: Any) -> ApiError:
    """The problem for a core status that refuses a whole request."""
    return ApiError(status.value, detail, STATUS_HTTP[status], extra=extra)


def flow_problem(error: FlowError) -> ApiError:
    """The problem for a flow's refusal: 404, 409 or 422 by its class (see the module)."""
    if isinstance(error, NotFound):
        status = 404
    elif isinstance(error, Conflict) or error.code in STATE_CODES:
        status = 409
    else:
        status = 422
    return ApiError(FLOW_CODE_ALIASES.get(error.code, error.code), error.detail, status)


def storage_problem() -> ApiError:
    """The problem for a :class:`~ledger.StorageError`: 503 ``not_ready`` with
    ``Retry-After``; nothing was committed, so the same request may be sent again. The
    detail names no file, host or schema (the error's message goes to the server log)."""
    return ApiError(
        "not_ready",
        "the database could not serve this request; nothing was committed: try again",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
    )


def _reconciliation_problem(error: ReconciliationError) -> ApiError | None:
    if isinstance(error, JobFailed):
        return None
    status = 409 if isinstance(error, JobRefused) else 422
    return ApiError("job_refused", str(error), status)


def problem_of(error: LedgerError) -> ApiError | None:
    """The problem that answers ``error`` (the mapping is in the module's docstring);
    ``None`` for a bug or a failure, which the API answers 500 ``internal_error``."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, FlowError):
        return flow_problem(error)
    if isinstance(error, MalformedRequest):
        return ApiError("validation_failed", str(error))
    if isinstance(error, StorageError):
        return storage_problem()
    if isinstance(error, ReconciliationError):
        return _reconciliation_problem(error)
    return None


def refusal_of(error: LedgerError) -> ApiError | None:
    """The problem for an expected refusal (below 500: one a POST stores and replays);
    ``None`` for anything else (a 503 or a 500: the request may be sent again)."""
    problem = problem_of(error)
    return problem if problem is not None and problem.status < 500 else None
