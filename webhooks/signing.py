"""What a delivery sends, per Standard Webhooks: the body (the same bytes on every
attempt), the ``whsec_`` secrets and the ``webhook-signature`` header."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

__all__ = ["SECRET_BYTES", "SECRET_PREFIX", "message_body", "new_secret", "signature_header"]

SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signature_header(secrets_: Sequence[str], msg_id: str, at: datetime, body: bytes) -> str:
    """``webhook-signature``: ``v1,<base64>`` per secret, space-separated."""
    text = body.decode("utf-8")
    return " ".join(Webhook(s).sign(msg_id, at, text) for s in secrets_)


def message_body(event_type: str, created_at: datetime, payload: Mapping[str, Any]) -> bytes:
    """The JSON a delivery POSTs: the same bytes on every attempt."""
    text = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": text, "data": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
