"""The service's background work, beside the webhook worker inside ``vledger serve``.

- the **sweeper**, every :attr:`~api.settings.Settings.sweep_interval_s` (30 s):
  :func:`ledger.flows.timers.sweep_all` (orders auto-released, cash-outs expired, other
  holds past their timeout voided);
- the **sealer**, every :attr:`~api.settings.Settings.seal_interval_s` (10 s):
  :func:`reconciliation.seal.seal_pending` (committed transfers sealed into signed
  blocks, each announced by a ``checkpoint.sealed`` event to every storefront);
- on SQLite, the **reconciliation schedule**, every
  :attr:`~api.settings.Settings.reconcile_interval_s` (15 min):
  :func:`reconciliation.tasks.run_pass` (each scheduled job backfilled for the business
  dates not yet reconciled; on PostgreSQL ``vledger worker`` runs it through procrastinate).

Each is a :class:`ledger.periodic.Periodic`: one pass at once, then one every interval,
until :meth:`~ledger.periodic.Periodic.stop`; an interval of ``None`` starts no thread
(tests). Both passes are safe to repeat and to run
from several processes (their state is in the database), so a pass that fails is logged
and the next one tries again: a background thread never takes the service down. The
sealer needs the service key (:func:`reconciliation.service_key.load_service_key`); when
it cannot be loaded the error is logged and nothing is sealed (``vledger seal`` can
catch up later), the API serving on; but a key that other users may read or replace
(:class:`~reconciliation.service_key.ServiceKeyExposed`) stops the service from starting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from api.observability import LOGGER_NAME
from api.settings import Settings
from ledger import Ledger
from ledger.flows.timers import sweep_all
from ledger.periodic import Periodic
from reconciliation.seal import seal_pending
from reconciliation.service_key import (
    ServiceKey,
    ServiceKeyError,
    ServiceKeyExposed,
    existing_service_key,
    load_service_key,
)
from reconciliation.tasks import run_pass

log = logging.getLogger(LOGGER_NAME)

SEAL_SETTLE_WAIT_S = 1.0
"""How long a sealer pass waits for PostgreSQL transactions in flight (the next pass
seals what this one left), kept short so that stopping is prompt."""

SWEEPER_THREAD = "vledger-sweeper"
SEALER_THREAD = "vledger-sealer"
RECONCILER_THREAD = "vledger-reconciler"


def sweep_pass(led: Ledger) -> Mapping[str, int]:
    """One sweep; logged when it moved anything."""
    counts = sweep_all(led)
    if any(counts.values()):
        log.info("timers swept", extra={"counts": dict(counts)})
    return counts


def seal_pass(led: Ledger, key: ServiceKey) -> int:
    """One sealing pass; logged when it sealed a block."""
    blocks = seal_pending(led, key, settle_wait_s=SEAL_SETTLE_WAIT_S)
    if blocks:
        log.info("transfers sealed", extra={"blocks": blocks})
    return blocks


def service_key(database_url: str, path: str | None) -> ServiceKey | None:
    """The sealer's key, or None (logged) when it cannot be loaded; a key others may
    read or replace (:class:`ServiceKeyExposed`) stops the service from starting."""
    try:
        return load_service_key(database_url, path)
    except ServiceKeyExposed:
        raise
    except (ServiceKeyError, OSError) as exc:
        log.error("service key not loaded: sealing is off", extra={"error": str(exc)})
        return None


def refuse_exposed_key(database_url: str, path: str | None) -> None:
    """Raise :class:`ServiceKeyExposed` now, before anything is served, when the sealer's
    key exists and others may read or replace it; any other problem with the key is left
    to :func:`start_background` (logged, sealing off)."""
    try:
        existing_service_key(database_url, path)
    except ServiceKeyExposed:
        raise
    except (ServiceKeyError, OSError):
        return


def start_background(led: Ledger, database_url: str, settings: Settings) -> list[Periodic]:
    """The threads ``settings`` asks for, started (stop them with :func:`stop_all`)."""
    threads: list[Periodic] = []
    if settings.sweep_interval_s is not None:
        threads.append(Periodic(SWEEPER_THREAD, settings.sweep_interval_s, lambda: sweep_pass(led)))
    if settings.seal_interval_s is not None:
        key = service_key(database_url, settings.service_key_path)
        if key is not None:
            found = key
            threads.append(
                Periodic(SEALER_THREAD, settings.seal_interval_s, lambda: seal_pass(led, found))
            )
    if settings.reconcile_interval_s is not None and led.dialect == "sqlite":
        out = Path(settings.reports_dir)
        threads.append(
            Periodic(
                RECONCILER_THREAD, settings.reconcile_interval_s, lambda: run_pass(led, out=out)
            )
        )
    return [t.start() for t in threads]


def stop_all(threads: list[Periodic]) -> None:
    for thread in threads:
        thread.ask_to_stop()  # all of them first, then wait for each
    for thread in threads:
        thread.stop()
