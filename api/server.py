"""``vledger serve``: the API under uvicorn, on SQLite by default or PostgreSQL by URL.

One process by default. ``workers`` > 1 (PostgreSQL only) runs that many processes under
uvicorn's supervisor, sharing the listening socket: each builds its app from the database
URL handed over in :data:`DATABASE_ENV` (:func:`app_from_env`). A worker process ends
with its supervisor, even one killed with SIGKILL, which cannot pass the signal on
(:func:`exit_with_parent`, Linux): no orphan keeps serving the port. Everything the service
does is safe from several processes at once (the group commit and the database's locks,
the idempotency records, the per-key rate limit (``rate_buckets``), the sealer's lock,
the sweeps, leased webhook deliveries, claimed reconciliation dates); what is per
process: the caches of keys (2 s) and account owners (immutable), and the enrollment's
per-address limit (N processes allow up to N times it).

:data:`RATE_LIMIT_PER_S_ENV` and :data:`RATE_LIMIT_BURST_ENV` set every served process's
per-key rate limit (``Settings.rate_limit_per_s``, ``rate_limit_burst``; default: the
settings' own); a value that is not a positive number is refused before anything is
served (:class:`ServeRefused`).

:data:`WEBHOOK_NETWORKS_ENV` (``VLEDGER_WEBHOOK_NETWORKS_ALLOWED``, comma-separated CIDRs,
default empty) lets webhook endpoints target those non-public networks anyway
(``WebhookSettings.target_networks_allowed``). It is for a try-out on one machine
(``127.0.0.0/8`` for a receiver on your own loopback), **never for production**: the
guard it lifts stops requests forged to the service's own network. A value that is not
a list of networks is refused before anything is served (:class:`ServeRefused`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import socket
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from api.app import create_app
from api.observability import configure_logging
from api.settings import Settings, loopback_hosts
from ledger import open_ledger
from ledger.core.errors import EdgeError
from ledger.flows.rate_buckets import Rate
from webhooks.settings import WebhookSettings, parse_networks

HOST_DEFAULT = "127.0.0.1"
PORT_DEFAULT = 8000
DATABASE_ENV = "VLEDGER_SERVE_DATABASE"
"""How :func:`serve` hands the database URL to its worker processes."""
BIND_ENV = "VLEDGER_SERVE_BIND"
"""How :func:`serve` hands ``host port`` to its worker processes (their allowed hosts)."""
PUBLIC_ORIGIN_ENV = "VLEDGER_PUBLIC_ORIGIN"
"""``https://ledger.example``: the origin clients sign for behind a proxy (Settings)."""
WEBHOOK_NETWORKS_ENV = "VLEDGER_WEBHOOK_NETWORKS_ALLOWED"
"""Comma-separated CIDRs webhook targets may be on (a local try-out only, never production)."""
RATE_LIMIT_PER_S_ENV = "VLEDGER_RATE_LIMIT_PER_S"
"""Requests per second each key may sustain, in every served process (``Settings``)."""
RATE_LIMIT_BURST_ENV = "VLEDGER_RATE_LIMIT_BURST"
"""Requests each key may make at once, in every served process (``Settings``)."""
PR_SET_PDEATHSIG = 1
"""``prctl`` option (``<linux/prctl.h>``): the signal a process gets when its parent dies."""
PARENT_DEATH_SIGNAL = signal.SIGTERM
"""What a worker process gets when its supervisor dies: uvicorn's graceful shutdown (stop
accepting, finish the requests in flight, close the pool)."""


def served_settings(host: str, port: int) -> Settings:
    """The settings of a served process: its public origin from the environment, else the
    names a loopback address answers to (``api.settings.loopback_hosts``)."""
    origin = os.environ.get(PUBLIC_ORIGIN_ENV) or None
    if origin is not None:
        return Settings(public_origin=origin, **served_rate_limit())
    return Settings(allowed_hosts=loopback_hosts(host, port), **served_rate_limit())


def served_rate_limit() -> dict[str, Any]:
    """The per-key rate limit :data:`RATE_LIMIT_PER_S_ENV` and :data:`RATE_LIMIT_BURST_ENV`
    set (only those set); :class:`ServeRefused` if either is not a positive number."""
    chosen: dict[str, Any] = {}
    try:
        if rate := os.environ.get(RATE_LIMIT_PER_S_ENV):
            chosen["rate_limit_per_s"] = float(rate)
        if burst := os.environ.get(RATE_LIMIT_BURST_ENV):
            chosen["rate_limit_burst"] = int(burst)
        limit: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(Settings)}
        limit.update(chosen)
        Rate.per_second(limit["rate_limit_per_s"], limit["rate_limit_burst"])
    except ValueError as bad:
        raise ServeRefused(f"{RATE_LIMIT_PER_S_ENV} / {RATE_LIMIT_BURST_ENV}: {bad}") from None
    return chosen


class ServeRefused(EdgeError, ValueError):
    """``serve`` cannot run as asked (several processes on SQLite, a malformed
    :data:`WEBHOOK_NETWORKS_ENV`)."""


def served_webhook_settings() -> WebhookSettings:
    """The webhook settings of a served process: the defaults, with the networks
    :data:`WEBHOOK_NETWORKS_ENV` allows; :class:`ServeRefused` if it is malformed."""
    try:
        allowed = parse_networks(os.environ.get(WEBHOOK_NETWORKS_ENV, ""))
    except ValueError as bad:
        raise ServeRefused(f"{WEBHOOK_NETWORKS_ENV}: {bad}") from None
    return WebhookSettings(target_networks_allowed=allowed)


def uvicorn_config(app: object, host: str, port: int, *, workers: int = 1) -> uvicorn.Config:
    """Uvicorn as the API wants it: our Date header and access log, not uvicorn's. With
    ``workers`` > 1, ``app`` is the import string of an app factory."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        workers=workers,
        factory=workers > 1,
        date_header=False,
        server_header=False,
        access_log=False,
        log_config=None,
        proxy_headers=False,
    )


def serve(
    host: str = HOST_DEFAULT,
    port: int = PORT_DEFAULT,
    database_url: str = "sqlite:///village.db",
    *,
    migrate: bool = True,
    settings: Settings | None = None,
    workers: int = 1,
) -> None:
    """Migrate (unless told not to), then serve until interrupted, in ``workers``
    processes (the default settings in each when more than one)."""
    if workers < 1:
        raise ServeRefused("workers must be 1 or more")
    if workers > 1 and not database_url.startswith("postgresql"):
        raise ServeRefused("several worker processes need PostgreSQL (SQLite has one writer)")
    if workers > 1 and settings is not None:
        raise ServeRefused("several worker processes run with the default settings")
    hooks = served_webhook_settings()  # a malformed value stops here, before migrating
    served_rate_limit()  # so does a malformed rate limit
    configure_logging()
    if migrate:
        open_ledger(database_url, migrate=True).close()
    if workers == 1:
        settings = settings or served_settings(host, port)
        app = create_app(database_url, settings=settings, webhook_settings=hooks)
        uvicorn.Server(uvicorn_config(app, host, port)).run()
        return
    os.environ[DATABASE_ENV] = database_url
    os.environ[BIND_ENV] = f"{host} {port}"
    config = uvicorn_config(f"{__name__}:app_from_env", host, port, workers=workers)
    Multiprocess(config, sockets=[tcp_socket(host, port)]).run()


def tcp_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` that says it is TCP (``IPPROTO_TCP``, not 0, as
    uvicorn's own ``bind_socket`` makes it): asyncio sets ``TCP_NODELAY`` only on such
    sockets, and without it every answer waits about 40 ms for a delayed ACK. Inheritable,
    for the worker processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def exit_with_parent() -> None:
    """In a worker process: get :data:`PARENT_DEATH_SIGNAL` when the supervisor that
    started it dies, however it dies (Linux's ``PR_SET_PDEATHSIG``; the supervisor's
    thread that started the workers is its main thread, which lives as long as it does).
    A supervisor already gone sends nothing: the signal is raised at once. Elsewhere than
    Linux, or outside a multiprocessing child, nothing is done."""
    parent = multiprocessing.parent_process()
    if not sys.platform.startswith("linux") or parent is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent.pid:  # the supervisor died before the prctl
        signal.raise_signal(PARENT_DEATH_SIGNAL)


def app_from_env() -> FastAPI:
    """A worker process's app (``factory``): the database URL :func:`serve` handed over.
    The process ends with its supervisor (:func:`exit_with_parent`)."""
    exit_with_parent()
    configure_logging()
    host, port = os.environ[BIND_ENV].rsplit(" ", 1)
    return create_app(
        os.environ[DATABASE_ENV],
        settings=served_settings(host, int(port)),
        webhook_settings=served_webhook_settings(),
    )
