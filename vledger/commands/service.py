"""Commands that run the service: migrate, demo, expire, sweep, serve, worker."""

from __future__ import annotations

import argparse
import os

from ledger import open_ledger
from ledger.core import migrations
from ledger.core.replica import READ_DATABASE_ENV, check_read_url
from vledger.common import EXIT_OK, UsageError, display, read_database_argument
from vledger.demo import run_demo
from vledger.progress import shown


def migrate(args: argparse.Namespace) -> int:
    url: str = args.database
    open_ledger(url, migrate=True).close()
    revision = migrations.current_revision(url)
    head = " (head)" if revision == migrations.head_revision() else ""
    print(f"migrated {display(url)} to revision {revision}{head}")
    return EXIT_OK


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--direct",
        action="store_true",
        help="call the flows in this process instead of the signed API",
    )


def demo(args: argparse.Namespace) -> int:
    if args.direct:
        return run_demo(args.database)
    from vledger.demo_http import run_demo_http

    return run_demo_http(args.database)


def expire(args: argparse.Namespace) -> int:
    with (
        open_ledger(args.database) as led,
        shown("vledger expire", quiet=getattr(args, "quiet", False)) as progress,
    ):
        progress.step("voiding expired holds")
        voided = led.expire_pending()
    print(f"expired holds voided: {voided}")
    return EXIT_OK


def sweep(args: argparse.Namespace) -> int:
    from ledger.flows.timers import sweep_all

    with (
        open_ledger(args.database) as led,
        shown("vledger sweep", quiet=getattr(args, "quiet", False)) as progress,
    ):
        progress.step("running the flows' timers")
        counts = sweep_all(led)
    for name, count in counts.items():
        print(f"{name}: {count}")
    return EXIT_OK


def _read_database(args: argparse.Namespace) -> str | None:
    """``--read-database``, checked against ``--database`` (one line, exit 2, before
    anything starts)."""
    url: str | None = args.read_database
    if url is not None:
        check_read_url(url, primary_url=args.database)
    return url


def worker_arguments(parser: argparse.ArgumentParser) -> None:
    read_database_argument(parser)


def serve_arguments(parser: argparse.ArgumentParser) -> None:
    read_database_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="server processes sharing the port; default: one per core this process may run"
        " on with PostgreSQL, 1 with SQLite (one writer; more are refused). Every process"
        " enforces the same per-key rate limit, kept in the database",
    )


def serve_workers(args: argparse.Namespace) -> int:
    """``--workers``, else its default: the cores this process may run on (PostgreSQL),
    1 (SQLite, which has one writer)."""
    if args.workers is not None:
        return int(args.workers)
    if not str(args.database).startswith("postgresql"):
        return 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def serve(args: argparse.Namespace) -> int:
    from api.server import ServeRefused, served_rate_limit, served_webhook_settings
    from api.server import serve as serve_api

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1..65535, not {args.port}")
    read_url = _read_database(args)
    if read_url is not None:  # every served process builds its Settings from the environment
        os.environ[READ_DATABASE_ENV] = read_url
    try:
        served_webhook_settings()  # VLEDGER_WEBHOOK_NETWORKS_ALLOWED: one line, exit 2
        served_rate_limit()  # VLEDGER_RATE_LIMIT_PER_S, _BURST: the same
    except ServeRefused as refused:
        raise UsageError(str(refused)) from None
    try:
        serve_api(args.host, args.port, args.database, migrate=True, workers=serve_workers(args))
    except ServeRefused as refused:
        raise UsageError(f"--workers: {refused}") from None
    return EXIT_OK


SCHEDULER_JOIN_S = 70
"""How long ``vledger worker`` waits for the reconciliation scheduler to stop."""


def worker(args: argparse.Namespace) -> int:
    import sys
    import threading

    from api.server import ServeRefused, served_webhook_settings
    from reconciliation.tasks import run_scheduler
    from sms.settings import gateway_from_env
    from sms.worker import run_sms_worker
    from webhooks import run_worker

    try:  # the same webhook settings as vledger serve (VLEDGER_WEBHOOK_NETWORKS_ALLOWED)
        hooks = served_webhook_settings()
    except ServeRefused as refused:
        raise UsageError(str(refused)) from None
    read_url = _read_database(args)
    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_scheduler,
        args=(args.database,),
        kwargs={"stop": stop, "read_database_url": read_url},
        name="vledger-recon-scheduler",
        daemon=True,
    )
    scheduler.start()
    texts = threading.Thread(
        target=run_sms_worker,
        args=(args.database,),
        kwargs={"stop": stop},
        name="vledger-sms-runner",
        daemon=True,
    )
    texts.start()
    print(
        f"vledger worker on {display(args.database)}: delivering webhooks and SMS, running the"
        " reconciliation schedule; Ctrl-C stops",
        flush=True,
    )
    if gateway_from_env() is None:
        print(
            "vledger worker: no SMS gateway set (VLEDGER_SMS_URL, VLEDGER_SMS_USERNAME,"
            " VLEDGER_SMS_API_KEY): SMS stay queued, see vledger sms outbox",
            file=sys.stderr,
            flush=True,
        )
    try:
        run_worker(args.database, settings=hooks, stop=stop)
    finally:
        stop.set()
        scheduler.join(timeout=SCHEDULER_JOIN_S)
        texts.join(timeout=SCHEDULER_JOIN_S)
    return EXIT_OK
