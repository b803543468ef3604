"""One message to an Africa's Talking-shaped bulk SMS gateway, and what its answer means.

The request: ``POST`` to the gateway URL, form-encoded ``username``, ``to`` (the E.164
number), ``message`` and, when a sender id is set, ``from``; headers ``apiKey`` and
``Accept: application/json``. The answer's ``SMSMessageData.Recipients[]`` holds, per
number, ``statusCode``, ``status``, ``number``, ``messageId`` and ``cost`` (a text such as
``KES 0.8000``), kept as given.

One message per request (each text is the recipient's own), so a number the gateway
refuses never holds back another's message. What an answer means (:func:`outcome`):

- sent: HTTP 2xx and the recipient's ``statusCode`` 100 (Processed), 101 (Sent) or 102
  (Queued);
- retried later: no answer (timeout, connection error), HTTP 429 or 5xx, an answer
  without our number in it, or a retryable recipient status
  (:data:`RECIPIENT_RETRYABLE`: insufficient balance, could not route, the gateway's
  own errors);
- failed for good: any other HTTP 4xx (a bad key, a bad request) or recipient status
  (invalid number, blacklisted, do-not-disturb, risk hold, invalid sender id).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from sms.settings import Gateway

__all__ = [
    "RECIPIENT_RETRYABLE",
    "RECIPIENT_SENT",
    "Answer",
    "HttpPost",
    "Outcome",
    "form_of",
    "outcome",
    "post_with_httpx",
    "read_answer",
    "send",
]

HttpPost = Callable[[str, Mapping[str, str], Mapping[str, str], float], tuple[int, bytes]]
"""``(url, form, headers, timeout_s) -> (HTTP status, body)``; raises ``OSError`` or
``httpx.HTTPError`` when no answer came."""

RECIPIENT_SENT = frozenset({100, 101, 102})
RECIPIENT_RETRYABLE = frozenset({405, 407, 500, 501, 502})
ANSWER_BYTES_MAX = 64 * 1024
"""The most of an answer that is read."""
FIELD_LENGTH_MAX = 128


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back for one message: the HTTP status and our recipient's entry."""

    http_status: int | None
    status_code: int | None = None
    status: str | None = None
    message_id: str | None = None
    cost: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    sent: bool
    retry: bool
    error: str | None


def form_of(gateway: Gateway, phone: str, text: str) -> dict[str, str]:
    """The bulk SMS form for one message."""
    form = {"username": gateway.username, "to": phone, "message": text}
    if gateway.sender_id:
        form["from"] = gateway.sender_id
    return form


_clients: list[httpx.Client] = []
_clients_lock = threading.Lock()


def _client() -> httpx.Client:
    """One client for the process: its connections to the gateway are kept and reused (a
    new client per message costs ~80 ms here, one kept ~7 ms)."""
    with _clients_lock:
        if not _clients:
            _clients.append(httpx.Client(follow_redirects=False))
        return _clients[0]


def post_with_httpx(
    url: str, form: Mapping[str, str], headers: Mapping[str, str], timeout_s: float
) -> tuple[int, bytes]:
    """The default transport: one form POST on the process's client, no redirects followed."""
    response = _client().post(url, data=dict(form), headers=dict(headers), timeout=timeout_s)
    return response.status_code, response.content[:ANSWER_BYTES_MAX]


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:FIELD_LENGTH_MAX]


def _recipient(body: bytes, phone: str) -> dict[str, Any] | None:
    try:
        answer = json.loads(body[:ANSWER_BYTES_MAX])
        recipients = answer["SMSMessageData"]["Recipients"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(recipients, list):
        return None
    for entry in recipients:
        if isinstance(entry, dict) and str(entry.get("number", "")) == phone:
            return entry
    return None


def read_answer(http_status: int, body: bytes, phone: str) -> Answer:
    """Our recipient's entry in the gateway's answer."""
    if not 200 <= http_status < 300:
        return Answer(http_status, error=f"HTTP {http_status}")
    entry = _recipient(body, phone)
    if entry is None:
        return Answer(http_status, error="the answer names no recipient for this number")
    raw = entry.get("statusCode")
    code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if isinstance(raw, str) and raw.isdigit() and len(raw) <= 3:
        code = int(raw)
    return Answer(
        http_status,
        status_code=code,
        status=_text(entry.get("status")),
        message_id=_text(entry.get("messageId")),
        cost=_text(entry.get("cost")),
    )


def outcome(answer: Answer) -> Outcome:
    """Sent, retried later or failed for good (see the module docstring)."""
    status = answer.http_status
    if status is None:
        return Outcome(False, True, answer.error)
    if not 200 <= status < 300:
        return Outcome(False, status == 429 or status >= 500, answer.error or f"HTTP {status}")
    if answer.error is not None:
        return Outcome(False, True, answer.error)
    if answer.status_code in RECIPIENT_SENT:
        return Outcome(True, False, None)
    error = f"recipient {answer.status_code}: {answer.status}"
    return Outcome(False, answer.status_code in RECIPIENT_RETRYABLE, error)


def send(
    gateway: Gateway, phone: str, text: str, *, http_post: HttpPost, timeout_s: float
) -> Answer:
    """POST one message; what came back (``http_status`` None when no answer came)."""
    headers = {
        "apiKey": gateway.api_key,
        "Accept": "application/json",
        "User-Agent": "vledger-sms/1",
    }
    try:
        status, body = http_post(gateway.url, form_of(gateway, phone, text), headers, timeout_s)
    except (OSError, httpx.HTTPError) as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}"[:500])
    return read_answer(status, body, phone)
