"""What every route shares: the ledger, the settings, and the request pipeline.

The pipeline of a request, in order:

1. body size: a ``Content-Length`` over the limit answers 413 before reading, a body
   that grows past it while read answers 413 too;
2. signature (:mod:`api.signatures`): the digest against the raw bytes, then the
   signature; 401 otherwise;
3. rate limit of the key: 429 with ``Retry-After`` (a POST's is taken in its own
   transaction, at step 5, and a POST refused before that still takes, once answered:
   :func:`take_late`);
4. role check of the route: 403;
5. POST only: ``Idempotency-Key`` (400 when missing), the claim (:mod:`api.idempotency`);
6. strict parse of the body (:mod:`api.strictjson`): 400 / 422;
7. one service call; the answer, an expected refusal included, is stored for replay.

A POST's take, claim, service call and stored answer are one database transaction,
grouped with concurrent requests' (:func:`run_post`); the hot routes (transfers, cash-ins,
order steps) run it from the event loop on the ledger's writer threads, with no worker
thread of their own (:func:`run_post_async`).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import http_sf
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api import idempotency
from api.access import Owners
from api.observability import Metrics
from api.principals import ApiKey, KeyCache, find_key
from api.problems import PROBLEM_CONTENT_TYPE, ApiError, refusal_of
from api.ratelimit import KeyRateLimit, TokenBuckets
from api.settings import Settings
from api.signatures import Verified, verify_request
from ledger import Ledger
from ledger.core.errors import LedgerError
from ledger.core.tx import Tx

PURGE_EVERY_POSTS = 1000
JSON_CONTENT_TYPE = "application/json"


@dataclass
class Context:
    ledger: Ledger
    settings: Settings
    read_ledger: Ledger | None = None
    """The read-only ledger on the replica (``Settings.read_database_url``), if any."""
    metrics: Metrics = field(default_factory=Metrics)
    buckets: TokenBuckets = field(init=False)
    key_limit: KeyRateLimit = field(init=False)
    keys: KeyCache = field(init=False)
    owners: Owners = field(default_factory=Owners)
    _posts: itertools.count[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.buckets = TokenBuckets(
            rate_per_s=self.settings.rate_limit_per_s, burst=self.settings.rate_limit_burst
        )
        self.key_limit = KeyRateLimit(
            self.ledger,
            rate_per_s=self.settings.rate_limit_per_s,
            burst=self.settings.rate_limit_burst,
        )
        led = self.ledger
        self.keys = KeyCache(
            lambda key_id: find_key(led, key_id), ttl_s=self.settings.key_cache_ttl_s
        )

    @property
    def reads(self) -> Ledger:
        """Where auditors' reads go: the replica when there is one, else the primary."""
        return self.ledger if self.read_ledger is None else self.read_ledger

    def http_date(self) -> str:
        return email.utils.format_datetime(self.settings.clock(), usegmt=True)


def context(request: Request) -> Context:
    found: Context = request.app.state.ctx
    return found


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def problem_response(request: Request, error: ApiError) -> JSONResponse:
    ctx = context(request)
    ctx.metrics.refusals.labels(error.code).inc()
    request.scope.setdefault("state", {})["problem_code"] = error.code
    headers = dict(error.headers)
    if error.status == 401:
        headers["Date"] = ctx.http_date()
    return JSONResponse(
        error.body(instance=request.url.path, request_id=request_id(request)),
        status_code=error.status,
        headers=headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


async def raw_body(request: Request) -> bytes:
    """The request's bytes, read at most to the size limit (413 past it)."""
    limit = context(request).settings.body_size_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            raise ApiError("invalid_parameter", "Content-Length is not a number", status=400)
        if int(declared) > limit:
            raise ApiError("body_too_large", f"the body limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("body_too_large", f"the body limit is {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request.scope.setdefault("state", {})["raw_body"] = body
    return body


def target_uri(request: Request, settings: Settings) -> str:
    """The URI the client signed: the public origin (or Host) + the raw path and query."""
    scope = request.scope
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    query: bytes = scope.get("query_string", b"")
    path = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    if settings.public_origin:
        return settings.public_origin.rstrip("/") + path
    host = request.headers.get("host", "")
    if settings.allowed_hosts is not None and host.lower() not in settings.allowed_hosts:
        raise ApiError("signature_invalid", "the request names a host this service is not")
    return f"{scope.get('scheme', 'http')}://{host}{path}"


def verify_signature(
    request: Request, body: bytes, lookup: Callable[[str], ApiKey | None], settings: Settings
) -> Verified:
    """Verify the request's RFC 9421 signature in the service's profile, the key found by
    ``lookup``; :class:`ApiError` (401) if it fails."""
    fields = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
    return verify_request(
        method=request.method,
        url=target_uri(request, settings),
        fields=fields,
        body=body,
        lookup=lookup,
        now=settings.clock(),
        tag=settings.signature_tag,
        age_max_s=settings.signature_age_max_s,
        ahead_max_s=settings.signature_future_skew_max_s,
    )


def verify_looked_up(request: Request, body: bytes) -> ApiKey:
    """The caller's key once its signature is verified, the key looked up in the
    database unless remembered (I/O: a worker thread)."""
    ctx = context(request)
    return _noted(request, verify_signature(request, body, ctx.keys.find, ctx.settings).key)


def verify_remembered(request: Request, body: bytes) -> ApiKey | None:
    """:func:`verify_looked_up` without I/O, for the event loop: ``None`` when the key is
    not remembered (then look it up in a worker thread); the same refusals otherwise."""
    ctx = context(request)
    missed: list[str] = []

    def remembered(key_id: str) -> ApiKey | None:
        found = ctx.keys.cached(key_id)
        if found is None:
            missed.append(key_id)
        return found

    try:
        key = verify_signature(request, body, remembered, ctx.settings).key
    except ApiError:
        if missed:
            return None
        raise
    return _noted(request, key)


def _noted(request: Request, key: ApiKey) -> ApiKey:
    state = request.scope.setdefault("state", {})
    state["key_id"] = key.key_id
    state["principal_id"] = str(key.principal_id)
    return key


RATE_TAKE_DUE = "rate_take_due"
"""The request state's flag: the caller's rate-limit take is still to be made (a POST's
is made in its own transaction, :func:`run_post`)."""


def take_or_refuse(request: Request, key: ApiKey) -> None:
    """Take from the key's rate limit in a transaction of its own (I/O: a worker thread);
    429 when it is spent."""
    request.scope.setdefault("state", {}).pop(RATE_TAKE_DUE, None)
    wait_s = context(request).key_limit.take(key.key_id)
    if wait_s:
        raise ApiError("rate_limited", "slow down", headers={"Retry-After": str(wait_s)})


def defer_take(request: Request) -> None:
    """Leave the take to the request's own transaction (:func:`run_post`); whatever
    refuses the request before it still takes (:func:`take_if_due`)."""
    request.scope.setdefault("state", {})[RATE_TAKE_DUE] = True


def take_if_due(request: Request, key: ApiKey) -> None:
    """The take a deferred request has not made yet (it was refused before its
    transaction), in a transaction of its own; a worker thread."""
    if request.scope.get("state", {}).get(RATE_TAKE_DUE):
        take_or_refuse(request, key)


async def take_late(ctx: Context, state: dict[str, Any]) -> None:
    """After the answer: the take of a POST refused before its transaction (a wrong
    role, a body that does not parse), so that no request is free of the rate limit. A
    take that fails (the database away) is given up: the request was refused anyway."""
    if state.pop(RATE_TAKE_DUE, None) and state.get("key_id"):
        with contextlib.suppress(LedgerError):
            await run_in_threadpool(ctx.key_limit.take, state["key_id"])


def _taken(request: Request) -> None:
    """The request's transaction is over: its take committed with it, or, rolled back
    (a 5xx), is given back with the request."""
    request.scope.setdefault("state", {}).pop(RATE_TAKE_DUE, None)


def _rate_refusal_in(tx: Tx, request: Request, key: ApiKey) -> Response | None:
    """The deferred take, in the request's transaction: a 429 (never stored: the key is
    not spent, the client sends it again later) or ``None`` when taken."""
    if not request.scope.setdefault("state", {}).get(RATE_TAKE_DUE):
        return None
    wait_s = context(request).key_limit.take_in(tx, key.key_id)
    if not wait_s:
        return None
    error = ApiError("rate_limited", "slow down", headers={"Retry-After": str(wait_s)})
    return problem_response(request, error)


def idempotency_key(request: Request, settings: Settings) -> str:
    values = request.headers.getlist("idempotency-key")
    if not values:
        raise ApiError("idempotency_key_missing", "send Idempotency-Key on every POST")
    raw = ", ".join(values)
    try:
        parsed = http_sf.parse(raw.encode("latin-1"), tltype="item")
    except (ValueError, TypeError, UnicodeEncodeError):
        raise ApiError("idempotency_key_invalid", "Idempotency-Key is not a string") from None
    value = parsed[0] if isinstance(parsed, tuple) else None
    if isinstance(value, http_sf.Token):
        value = str(value)
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= settings.idempotency_key_length_max
        or not value.isascii()
    ):
        raise ApiError(
            "idempotency_key_invalid",
            f"Idempotency-Key is a string of 1..{settings.idempotency_key_length_max} characters",
        )
    return value


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != JSON_CONTENT_TYPE:
        raise ApiError("unsupported_media_type", "send Content-Type: application/json")


def json_response(status: int, content: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return Response(body, status_code=status, headers=headers, media_type=JSON_CONTENT_TYPE)


STORED_HEADERS = ("content-type", "location", "retry-after")


def _scope(request: Request, caller: ApiKey) -> idempotency.Scope:
    key = idempotency_key(request, context(request).settings)
    return idempotency.Scope(caller.principal_id, request.method, request.url.path, key)


def _judged(claim: idempotency.Claim) -> Response | None:
    """What a claim answers at once: a replay's stored answer, a refusal when the key is
    reused or busy; ``None`` when the request is to run now."""
    if claim.outcome is idempotency.Outcome.REUSED:
        raise ApiError("idempotency_key_reused", "this key was sent with another body")
    if claim.outcome is idempotency.Outcome.IN_PROGRESS:
        raise ApiError(
            "idempotency_in_progress",
            "the first request with this key is still running",
            headers={"Retry-After": str(claim.retry_after_s)},
        )
    if claim.answer is None:
        return None
    stored = claim.answer
    headers = {**stored.headers, "Idempotency-Replayed": "true"}
    media = headers.pop("content-type", JSON_CONTENT_TYPE)
    return Response(stored.body, status_code=stored.status_code, headers=headers, media_type=media)


def _claim_in(tx: Tx, request: Request, scope: idempotency.Scope, body: bytes) -> Response | None:
    settings = context(request).settings
    claim = idempotency.claim_in(
        tx,
        scope,
        digest=hashlib.sha256(body).hexdigest(),
        ttl_s=settings.idempotency_ttl_s,
        lock_s=settings.idempotency_lock_s,
    )
    return _judged(claim)


def _answer(request: Request, handle: Callable[[], Response]) -> Response:
    """``handle()``'s answer; an expected refusal from anywhere in the error tree (the
    API's, a flow's, a job's: :func:`api.problems.refusal_of`) rendered as its problem, so
    that it is stored and replayed like any answer. What ``handle`` completed before the
    refusal stays, as it did when each flow call committed on its own (a wrong code's
    counted try, then ``pickup_code_wrong``); the flow call that refused wrote nothing
    (its ``transact`` is a savepoint). A 503 or a bug propagates."""
    try:
        return handle()
    except LedgerError as error:
        refusal = refusal_of(error)
        if refusal is None:
            raise
        return problem_response(request, refusal)


def _stored(response: Response) -> idempotency.StoredAnswer:
    headers = {k: response.headers[k] for k in STORED_HEADERS if k in response.headers}
    return idempotency.StoredAnswer(response.status_code, headers, bytes(response.body))


class _NotStored(Exception):
    """A 5xx answer: the request's transaction rolls back (its key too), then it is sent."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def run_post(
    request: Request,
    caller: ApiKey,
    body: bytes,
    handle: Callable[[], Response],
    *,
    one_transaction: bool = True,
) -> Response:
    """Run a POST once per Idempotency-Key; replay its stored answer after that. Every
    expected refusal ``handle`` raises is an answer too, stored and replayed; a 5xx (or a
    crash) leaves no record, so that the same request may be sent again.

    The claim, everything ``handle`` writes through the ledger (its flows' ``transact``
    calls join: :mod:`ledger.core.ledger`) and the stored answer are one database
    transaction: after a crash a request is either done and replayable or never happened.
    Concurrent requests share one transaction (:meth:`ledger.Ledger.transact_grouped`:
    one commit for the group, a savepoint each, a refusal rolls back its own request only).
    ``one_transaction=False`` is for a handler that commits work of its own as it goes (a
    reconciliation job: its runs and files): claim, handle and answer are then three
    transactions, and the claim a lease (``idempotency_lock_s``) that a crash leaves behind
    until it runs out."""
    ctx = context(request)
    try:
        scope = _scope(request, caller)
    except ApiError:  # refused once the request is taken, as any other
        take_if_due(request, caller)
        raise
    if not one_transaction:
        take_if_due(request, caller)
        return _run_post_leased(request, scope, body, handle)
    try:
        response = ctx.ledger.transact_grouped(_whole(request, caller, scope, body, handle))
    except _NotStored as not_stored:
        return not_stored.response
    finally:
        _taken(request)
    _purge_now_and_then(ctx)
    return response


async def run_post_async(
    request: Request, caller: ApiKey, body: bytes, handle: Callable[[], Response]
) -> Response:
    """:func:`run_post` from the event loop, with no worker thread: the request's
    transaction (take, claim, ``handle``, answer) runs on one of the ledger's writer
    threads in the group it joins (:meth:`ledger.Ledger.transact_grouped_async`)."""
    ctx = context(request)
    try:
        scope = _scope(request, caller)
    except ApiError:
        await run_in_threadpool(take_if_due, request, caller)
        raise
    try:
        response = await ctx.ledger.transact_grouped_async(
            _whole(request, caller, scope, body, handle)
        )
    except _NotStored as not_stored:
        return not_stored.response
    finally:
        _taken(request)
    if _purge_due(ctx):
        await run_in_threadpool(idempotency.purge_expired, ctx.ledger)
    return response


def _whole(
    request: Request,
    caller: ApiKey,
    scope: idempotency.Scope,
    body: bytes,
    handle: Callable[[], Response],
) -> Callable[[Tx], Response]:
    """A POST's one transaction: the deferred rate-limit take, the claim, ``handle`` and
    its stored answer (see :func:`run_post`)."""

    def whole(tx: Tx) -> Response:
        refused = _rate_refusal_in(tx, request, caller)
        if refused is not None:
            return refused
        judged = _claim_in(tx, request, scope, body)
        if judged is not None:
            return judged
        response = _answer(request, handle)
        if response.status_code >= 500:
            raise _NotStored(response)
        idempotency.complete_in(tx, scope, _stored(response))
        return response

    return whole


def _run_post_leased(
    request: Request, scope: idempotency.Scope, body: bytes, handle: Callable[[], Response]
) -> Response:
    """:func:`run_post` in three transactions (claim, handle, answer); see there."""
    led = context(request).ledger
    judged = led.transact(lambda tx: _claim_in(tx, request, scope, body))
    if judged is not None:
        return judged
    try:
        response = _answer(request, handle)
    except BaseException:
        idempotency.release(led, scope)
        raise
    if response.status_code >= 500:
        idempotency.release(led, scope)
        return response
    idempotency.complete(led, scope, _stored(response))
    _purge_now_and_then(context(request))
    return response


def _purge_due(ctx: Context) -> bool:
    return next(ctx._posts) % PURGE_EVERY_POSTS == PURGE_EVERY_POSTS - 1


def _purge_now_and_then(ctx: Context) -> None:
    if _purge_due(ctx):
        idempotency.purge_expired(ctx.ledger)
