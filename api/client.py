"""A Python client of the signed API: signs, sets Idempotency-Key, keeps time, retries.

::

    from api.client import Client
    with Client.from_key_file("http://127.0.0.1:8000", "k_...", "storefront.pem") as vl:
        vl.create_account(id=uuid4(), currency="KES", code=101)

* every request is signed (RFC 9421, the ``vledger`` profile of :mod:`api.signatures`)
  with an Ed25519 key (PKCS#8 PEM file) or an HMAC-SHA256 secret (base64 file);
* every POST carries an ``Idempotency-Key`` (a new UUID unless given); a retry resends
  the same key and the same body, re-signed, so it can never act twice;
* the server's ``Date`` corrects the client's clock (phones drift): the offset is kept
  and used for ``created``; a 401 ``signature_expired`` is retried once after correcting;
* connection errors, 5xx, 409 ``idempotency_in_progress`` and 429 are retried with
  exponential backoff and jitter (``Retry-After`` honoured), at most ``attempts_max``.

Errors: a non-2xx answer raises :class:`ProblemError` carrying the problem document.
"""

from __future__ import annotations

import base64
import email.utils
import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.principals import Alg
from api.signatures import sign_request
from ledger.core.errors import EdgeError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 5.0
CLOCK_OFFSET_MIN_S = 2.0
"""Offsets below this are Date's one-second rounding, not drift."""


class ProblemError(EdgeError):
    """A non-2xx answer: ``status`` and the problem document (``code``, ``detail`` ...)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = str(problem.get("code", ""))
        super().__init__(f"{status} {self.code}: {problem.get('detail', '')}")


def load_key(path: str | Path) -> tuple[Alg, ed25519.Ed25519PrivateKey | bytes]:
    """The key file written by ``vledger keys create``: a PEM Ed25519 key or an HMAC secret."""
    data = Path(path).read_bytes()
    if data.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError("only Ed25519 private keys are supported")
        return Alg.ED25519, key
    return Alg.HMAC_SHA256, base64.b64decode(data.strip(), validate=True)


class Client:
    def __init__(
        self,
        base_url: str,
        *,
        key_id: str,
        alg: Alg,
        private_key: ed25519.Ed25519PrivateKey | bytes,
        timeout_s: float = 10.0,
        attempts_max: int = 5,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key_id = key_id
        self.alg = alg
        self._key = private_key
        self._clock = clock
        self._sleep = sleep
        self.attempts_max = attempts_max
        self.clock_offset_s = 0.0
        """Server time minus local time, learnt from ``Date``."""
        self._http = httpx.Client(timeout=timeout_s, transport=transport)

    @classmethod
    def from_key_file(cls, base_url: str, key_id: str, path: str | Path, **kw: Any) -> Client:
        alg, key = load_key(path)
        return cls(base_url, key_id=key_id, alg=alg, private_key=key, **kw)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- signing ----------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock() + self.clock_offset_s, UTC)

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        url = httpx.URL(self.base_url + path)
        if params:
            url = url.copy_merge_params(dict(params))
        return str(url)

    def signed_headers(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        *,
        idempotency_key: str | None = None,
        created: datetime | None = None,
    ) -> dict[str, str]:
        """The headers of a signed request (for tests and tools that send it themselves)."""
        headers: dict[str, str] = {}
        if body:
            headers["content-type"] = "application/json"
        if idempotency_key is not None:
            headers["idempotency-key"] = '"' + idempotency_key + '"'
        return sign_request(
            method=method,
            url=url,
            headers=headers,
            body=body,
            key_id=self.key_id,
            alg=self.alg,
            private_key=self._key,
            created=created or self.now(),
        )

    def _learn_clock(self, response: httpx.Response) -> None:
        date = response.headers.get("date")
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return
        offset = server - self._clock()
        if abs(offset - self.clock_offset_s) >= CLOCK_OFFSET_MIN_S:
            self.clock_offset_s = offset

    # -- requests ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send a signed request, retrying what is safe to retry; the last answer."""
        method = method.upper()
        url = self.url(path, params)
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode()
        if method == "POST" and idempotency_key is None:
            idempotency_key = str(uuid.uuid4())
        clock_retried = False
        attempt = 0
        while True:
            attempt += 1
            headers = self.signed_headers(method, url, body, idempotency_key=idempotency_key)
            try:
                response = self._http.request(method, url, content=body, headers=headers)
            except httpx.TransportError:
                if attempt >= self.attempts_max:
                    raise
                self._sleep(self._backoff_s(attempt, None))
                continue
            self._learn_clock(response)
            code = _problem_code(response)
            if response.status_code == 401 and code == "signature_expired" and not clock_retried:
                clock_retried = True
                continue
            retry = response.status_code in RETRY_STATUSES or (
                response.status_code == 409 and code == "idempotency_in_progress"
            )
            if not retry or attempt >= self.attempts_max:
                return response
            self._sleep(self._backoff_s(attempt, response.headers.get("retry-after")))

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """:meth:`request`, then the answer's JSON; :class:`ProblemError` for a non-2xx.
        UUIDs in ``json_body`` may be UUID objects."""
        body = None if json_body is None else _plain(json_body)
        return self._json(
            self.request(
                method, path, json_body=body, params=params, idempotency_key=idempotency_key
            )
        )

    def _backoff_s(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None and retry_after.isdigit():
            return min(float(retry_after), BACKOFF_MAX_S)
        return random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt))

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise ProblemError(response.status_code, problem)
        return response.json()

    # -- resources --------------------------------------------------------------------

    def create_account(self, *, idempotency_key: str | None = None, **fields: Any) -> Any:
        """``POST /v1/accounts``; fields as the API takes them (UUIDs may be UUID objects)."""
        return self._json(
            self.request(
                "POST", "/v1/accounts", json_body=_plain(fields), idempotency_key=idempotency_key
            )
        )

    def get_account(self, account_id: uuid.UUID | str) -> Any:
        return self._json(self.request("GET", f"/v1/accounts/{account_id}"))

    def list_accounts(self, *, limit: int | None = None, starting_after: str | None = None) -> Any:
        return self._json(self.request("GET", "/v1/accounts", params=_page(limit, starting_after)))

    def account_transfers(
        self,
        account_id: uuid.UUID | str,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> Any:
        return self._json(
            self.request(
                "GET", f"/v1/accounts/{account_id}/transfers", params=_page(limit, starting_after)
            )
        )

    def balance(self, account_id: uuid.UUID | str, at: datetime | None = None) -> Any:
        params = {"at": at.isoformat()} if at is not None else None
        return self._json(self.request("GET", f"/v1/accounts/{account_id}/balance", params=params))

    def create_transfers(
        self, transfers: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> Any:
        """``POST /v1/transfers``: the list of per-transfer results."""
        answer = self._json(
            self.request(
                "POST",
                "/v1/transfers",
                json_body={"transfers": _plain(transfers)},
                idempotency_key=idempotency_key,
            )
        )
        return answer["results"]

    def get_transfer(self, transfer_id: uuid.UUID | str) -> Any:
        return self._json(self.request("GET", f"/v1/transfers/{transfer_id}"))

    def revoke_key(self, key_id: str) -> Any:
        return self._json(self.request("POST", f"/v1/keys/{key_id}/revoke"))


def _page(limit: int | None, starting_after: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if limit is not None:
        params["limit"] = str(limit)
    if starting_after is not None:
        params["starting_after"] = starting_after
    return params


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _problem_code(response: httpx.Response) -> str:
    if "problem+json" not in response.headers.get("content-type", ""):
        return ""
    try:
        return str(response.json().get("code", ""))
    except ValueError:
        return ""
