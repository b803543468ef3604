"""The delivery worker's limits and knobs (:class:`WebhookSettings`), each named with its
unit; the API keeps one in ``app.state.webhooks``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ledger.flows import events

__all__ = ["NETWORKS_ALLOWED_MAX", "WebhookSettings", "parse_networks"]

NETWORKS_ALLOWED_MAX = 16
"""At most this many networks in :func:`parse_networks`' text."""


def _known_event_types() -> frozenset[str]:
    return frozenset(
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and "." in value
    )


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The worker's limits and knobs, each named with its unit."""

    worker_enabled: bool = True
    """Run the delivery worker inside the API process (``vledger serve``)."""
    poll_interval_s: float = 1.0
    attempts_max: int = 16
    """Attempts per delivery before it is ``failed`` (about 3 days with the backoff)."""
    backoff_base_s: float = 30.0
    backoff_cap_s: float = 12 * 3600.0
    jitter_ratio: float = 0.2
    """Each delay is scaled by a random factor in ``1 +- jitter_ratio``."""
    timeout_s: float = 10.0
    """One POST's timeout."""
    lease_s: float = 60.0
    """A claimed delivery is not claimed again for this long (longer than ``timeout_s``)."""
    deliveries_per_pass_max: int = 100
    events_per_pass_max: int = 500
    gap_wait_s: float = 60.0
    """A hole in the outbox's ``seq`` this old is a rolled-back transaction, not one in
    flight: the cursor moves past it."""
    endpoints_per_principal_max: int = 20
    target_networks_allowed: tuple[str, ...] = ()
    """Non-public networks that targets may be on anyway (tests: ``127.0.0.0/8``)."""
    event_types: frozenset[str] = field(default_factory=_known_event_types)
    """The event types the outbox knows (``ledger.flows.events``)."""


def parse_networks(text: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (``127.0.0.0/8,::1/128``; blanks ignored) as
    :attr:`WebhookSettings.target_networks_allowed` wants them; ``ValueError`` naming the
    first one that is not a network (host bits set included), or more than
    :data:`NETWORKS_ALLOWED_MAX` of them. Empty text: none."""
    found: list[str] = []
    for part in text.split(","):
        cidr = part.strip()
        if not cidr:
            continue
        try:
            found.append(str(ipaddress.ip_network(cidr, strict=True)))
        except ValueError:
            raise ValueError(f"{cidr!r} is not a network in CIDR notation") from None
    if len(found) > NETWORKS_ALLOWED_MAX:
        raise ValueError(f"at most {NETWORKS_ALLOWED_MAX} networks")
    return tuple(found)
