"""What an Africa's Talking-shaped answer means (:mod:`sms.gateway`): pure, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx
import pytest

from sms.gateway import Answer, form_of, outcome, read_answer, send
from sms.settings import Gateway

PHONE = "+254712000101"
GATEWAY = Gateway("https://sms.example/version1/messaging", "sandbox", "key-1", "VLEDGER")


def body(code: object, number: str = PHONE) -> bytes:
    recipient = {
        "statusCode": code,
        "number": number,
        "status": "S",
        "cost": "KES 0.8000",
        "messageId": "ATXid_1",
    }
    return json.dumps({"SMSMessageData": {"Recipients": [recipient]}}).encode()


@pytest.mark.parametrize(
    ("http", "answer", "sent", "retry"),
    [
        (201, body(101), True, False),
        (201, body(100), True, False),
        (201, body(102), True, False),
        (201, body("101"), True, False),
        (201, body(403), False, False),  # InvalidPhoneNumber
        (201, body(406), False, False),  # UserInBlacklist
        (201, body(405), False, True),  # InsufficientBalance
        (201, body(500), False, True),
        (201, body(101, number="+254700000000"), False, True),  # not our number
        (201, b"<html>oops</html>", False, True),
        (201, b'{"SMSMessageData": {"Recipients": "x"}}', False, True),
        (201, body(True), False, False),  # a statusCode that is no number
        (400, b"bad", False, False),
        (401, b"", False, False),
        (429, b"", False, True),
        (500, b"", False, True),
        (503, b"", False, True),
    ],
)
def test_what_an_answer_means(http: int, answer: bytes, sent: bool, retry: bool) -> None:
    result = outcome(read_answer(http, answer, PHONE))
    assert (result.sent, result.retry) == (sent, retry)
    assert (result.error is None) == sent


def test_no_answer_is_retried() -> None:
    result = outcome(Answer(None, error="ConnectError: refused"))
    assert (result.sent, result.retry, result.error) == (False, True, "ConnectError: refused")


def test_the_form_and_headers_sent() -> None:
    assert form_of(GATEWAY, PHONE, "hi") == {
        "username": "sandbox",
        "to": PHONE,
        "message": "hi",
        "from": "VLEDGER",
    }
    assert "from" not in form_of(Gateway("u", "n", "k"), PHONE, "hi")
    got: list[tuple[str, Mapping[str, str], Mapping[str, str], float]] = []

    def post(
        url: str, form: Mapping[str, str], headers: Mapping[str, str], t: float
    ) -> tuple[int, bytes]:
        got.append((url, form, headers, t))
        return 201, body(101)

    answer = send(GATEWAY, PHONE, "hi", http_post=post, timeout_s=3.0)
    assert answer.message_id == "ATXid_1" and answer.cost == "KES 0.8000"
    [(url, _form, headers, timeout_s)] = got
    assert url == GATEWAY.url and headers["apiKey"] == "key-1" and timeout_s == 3.0

    def timeout(*_args: object) -> tuple[int, bytes]:
        raise httpx.ReadTimeout("slow")

    late = send(GATEWAY, PHONE, "hi", http_post=timeout, timeout_s=3.0)
    assert late.http_status is None and late.error == "ReadTimeout: slow"
    assert "key-1" not in repr(GATEWAY)
