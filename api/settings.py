"""The API's limits and knobs, each named with its unit last."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ledger.core.replica import READ_DATABASE_ENV
from ledger.limits import API_PAGE_SIZE_MAX, TRANSFERS_PER_REQUEST_MAX


def system_clock() -> datetime:
    return datetime.now(UTC)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
HTTP_PORT = 80


def loopback_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` values a server bound to ``host``:``port`` answers to when ``host`` is
    a loopback address; ``None`` (any) for another address, which is reached by names
    only its deployment knows: set ``public_origin`` there."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    names = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == HTTP_PORT:  # a client may leave the default port out of Host
        names.update(LOOPBACK_NAMES)
    return frozenset(names)


USSD_SECRET_LENGTH_MIN = 16
"""The shortest aggregator secret accepted (it is all that stands for a signature)."""
USSD_SECRETS_ENV = "VLEDGER_USSD_SECRETS"
"""Comma-separated aggregator secrets (:attr:`Settings.ussd_secrets`' default)."""
USSD_SOURCE_NETWORKS_ENV = "VLEDGER_USSD_SOURCE_NETWORKS"
"""Comma-separated CIDRs the aggregator calls from (:attr:`Settings.ussd_source_networks`)."""
USSD_TRUSTED_PROXIES_ENV = "VLEDGER_USSD_TRUSTED_PROXIES"
"""Comma-separated proxy addresses whose ``X-Forwarded-For`` is read."""


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    """What one API process enforces. The defaults are the issue's profile."""

    signature_age_max_s: int = 300
    """A signature whose ``created`` is older than this is refused."""
    signature_future_skew_max_s: int = 60
    """A signature whose ``created`` is further ahead of the server's clock is refused."""
    signature_tag: str = "vledger"
    """The ``tag`` every request signature must carry."""
    body_size_max_bytes: int = 1_048_576
    """Larger request bodies answer 413 before they are read in full."""
    page_size_max: int = API_PAGE_SIZE_MAX
    """The largest ``limit`` of a list."""
    page_size_default: int = 20
    transfers_per_request_max: int = TRANSFERS_PER_REQUEST_MAX
    """The most transfers one ``POST /v1/transfers`` may carry."""
    idempotency_ttl_s: int = 86_400
    """How long a POST's answer is kept for replay (the draft asks for at least 24 h)."""
    idempotency_lock_s: int = 60
    """How long an unfinished request holds its key before another attempt may take it."""
    idempotency_key_length_max: int = 255
    key_cache_ttl_s: float = 2.0
    """How long this process trusts a key it looked up (``api.principals.KeyCache``): a key
    revoked by another process is refused here at most this long after; 0: no cache."""
    rate_limit_per_s: float = 50.0
    """Requests per second each key may sustain (one bucket per key in the database, shared
    by every process: ``ledger.flows.rate_buckets``); also each network address's rate at
    the enrollment's redeem (in this process)."""
    rate_limit_burst: int = 100
    """Requests a key may make at once before the rate applies."""
    public_origin: str | None = None
    """``https://api.example`` when behind a proxy: the origin clients sign in
    ``@target-uri`` (default: the request's scheme and Host)."""
    allowed_hosts: frozenset[str] | None = None
    """Without ``public_origin``: the ``Host`` values (``host:port``) this service answers
    to; a request naming another host is refused before its signature is read, so a
    signature made for another service is never checked against a forged ``Host``.
    ``None``: any (``vledger serve`` on a loopback address sets its own three names)."""
    sweep_interval_s: float | None = 30.0
    """How often the service runs the flows' timers (``ledger.flows.timers.sweep_all``:
    orders auto-released, cash-outs expired, holds voided); ``None``: not in this process."""
    seal_interval_s: float | None = 10.0
    """How often the service seals committed transfers into signed blocks
    (``reconciliation.seal.seal_pending``); ``None``: not in this process."""
    reconcile_interval_s: float | None = 900.0
    """On SQLite, how often the service runs the reconciliation schedule
    (``reconciliation.tasks.run_pass``; on PostgreSQL ``vledger worker`` runs it through
    procrastinate); ``None``: not in this process."""
    reports_dir: str = "reports"
    """Where scheduled reconciliation runs write their files."""
    service_key_path: str | None = None
    """The sealer's Ed25519 key file (default: ``$VLEDGER_SERVICE_KEY``, else next to the
    database; see ``reconciliation.service_key``)."""
    read_database_url: str | None = field(
        default_factory=lambda: os.environ.get(READ_DATABASE_ENV) or None
    )
    """A streaming replica of the ledger's PostgreSQL (``$VLEDGER_READ_DATABASE``, or
    ``--read-database``), opened read-only: auditors' reads of runs and checkpoints, and the
    reconciliation jobs and packs they start, read there (a job only once the replica has
    passed the primary's position after its date closed: ``reconciliation.replica``);
    money never does. ``None``: everything reads the primary."""
    clock: Callable[[], datetime] = field(default=system_clock)
    """The clock signatures and idempotency records are checked against (UTC)."""
    ussd_secrets: tuple[str, ...] = field(default_factory=lambda: _env_list(USSD_SECRETS_ENV))
    """The USSD aggregators' secrets, one each: the last path segment of the callback URL
    (``POST /ussd/africastalking/{secret}``) configured at the aggregator. Empty: the
    callback answers every call with ``END`` and a generic message (USSD off)."""
    ussd_source_networks: tuple[str, ...] = field(
        default_factory=lambda: _env_list(USSD_SOURCE_NETWORKS_ENV)
    )
    """The networks (CIDR, IPv4 or IPv6) the aggregators call from; a call from anywhere
    else is refused like a wrong secret. Empty: every call is refused."""
    ussd_trusted_proxies: tuple[str, ...] = field(
        default_factory=lambda: _env_list(USSD_TRUSTED_PROXIES_ENV)
    )
    """Addresses (or CIDRs) of this deployment's own proxies: only from them is
    ``X-Forwarded-For`` read to find the caller's address (the nearest address in it that is
    not a trusted proxy); from any other peer the header is ignored."""

    def __post_init__(self) -> None:
        """Refuse USSD settings that cannot be right, when the process starts rather than
        on the aggregator's first call (``ValueError``)."""
        for secret in self.ussd_secrets:
            if len(secret) < USSD_SECRET_LENGTH_MIN or not secret.isascii() or "/" in secret:
                raise ValueError(
                    f"a USSD secret is at least {USSD_SECRET_LENGTH_MIN} ASCII characters,"
                    " without '/'"
                )
        for cidr in (*self.ussd_source_networks, *self.ussd_trusted_proxies):
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"not an address or network (CIDR): {cidr!r}") from None
