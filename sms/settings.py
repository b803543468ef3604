"""The SMS worker's limits and knobs (:class:`SmsSettings`), each named with its unit, and
the gateway it sends to (:class:`Gateway`), read from the environment by
:func:`gateway_from_env`: no gateway, nothing sent."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ENV_API_KEY",
    "ENV_SENDER_ID",
    "ENV_URL",
    "ENV_USERNAME",
    "ENV_ZONE",
    "Gateway",
    "SmsSettings",
    "gateway_from_env",
]

ENV_URL = "VLEDGER_SMS_URL"
"""The bulk SMS endpoint, e.g. ``https://api.africastalking.com/version1/messaging``."""
ENV_USERNAME = "VLEDGER_SMS_USERNAME"
ENV_API_KEY = "VLEDGER_SMS_API_KEY"
ENV_SENDER_ID = "VLEDGER_SMS_SENDER_ID"
"""Optional: the ``from`` (a registered sender id or short code)."""
ENV_ZONE = "VLEDGER_SMS_ZONE"
"""Optional: the time zone for a phone whose country has none or several."""


@dataclass(frozen=True, slots=True)
class Gateway:
    """An Africa's Talking-shaped bulk SMS gateway and its credentials."""

    url: str
    username: str
    api_key: str
    sender_id: str | None = None

    def __repr__(self) -> str:  # the API key never reaches a log line
        return f"Gateway(url={self.url!r}, username={self.username!r}, api_key='***')"


def gateway_from_env(environ: Mapping[str, str] | None = None) -> Gateway | None:
    """The gateway the environment names (URL, username and API key all set), else None."""
    env = os.environ if environ is None else environ
    url, username, key = (env.get(n, "").strip() for n in (ENV_URL, ENV_USERNAME, ENV_API_KEY))
    if not (url and username and key):
        return None
    return Gateway(url, username, key, env.get(ENV_SENDER_ID, "").strip() or None)


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """The worker's limits and knobs, each named with its unit."""

    worker_enabled: bool = True
    """Run the SMS worker inside the API process (``vledger serve``)."""
    poll_interval_s: float = 1.0
    attempts_max: int = 8
    """Attempts per message before it is ``failed`` (about 2 hours with the backoff)."""
    backoff_base_s: float = 30.0
    backoff_cap_s: float = 3600.0
    jitter_ratio: float = 0.2
    """Each delay is scaled by a random factor in ``1 +- jitter_ratio``."""
    timeout_s: float = 10.0
    """One POST's timeout."""
    lease_s: float = 60.0
    """A claimed message is not claimed again for this long (longer than ``timeout_s``)."""
    messages_per_pass_max: int = 100
    events_per_pass_max: int = 500
    gap_wait_s: float = 60.0
    """A hole in the outbox's ``seq`` this old is a rolled-back transaction: the cursor
    moves past it (as the webhooks' cursor does)."""
    parts_max: int = 4
    """A rendered text longer than this many parts is cut (names are already short)."""
    default_zone: str = "Africa/Nairobi"
    """The time zone of a phone whose country has no single zone (``$VLEDGER_SMS_ZONE``)."""
    answer_bytes_max: int = 64 * 1024
    """The most of a gateway's answer that is read."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SmsSettings:
        env = os.environ if environ is None else environ
        zone = env.get(ENV_ZONE, "").strip()
        return cls(default_zone=zone) if zone else cls()
