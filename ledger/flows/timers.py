"""The flows' timers, run together: what ``vledger sweep`` and the service's sweeper do.

Every timer lives in the database (UTC microseconds), so a sweep is a plain function of
the rows and the clock: running it twice, or from two processes, changes nothing more
than running it once. The flows sweep first, so that a flow whose hold times out records
why (an order auto-released, a cash-out expired); the core's ``expire_pending`` then
voids any other hold past its timeout.
"""

from __future__ import annotations

from ledger.core.ledger import Ledger
from ledger.flows import cash, consent, orders, ussd


def sweep_all(led: Ledger) -> dict[str, int]:
    """Run every timer once at the ledger's clock; how many objects each one moved."""
    return {
        # auto-released, or cancelled and refunded past their dispatch deadline
        "orders released or cancelled": orders.sweep_orders(led),
        "cash-outs expired": cash.sweep_cash_outs(led),
        # an offline withdrawal code gives its day's usage back (the core voids its hold)
        "consent codes expired": consent.sweep_codes(led),
        "USSD sessions purged": ussd.purge_sessions(led),  # idle a day: long over
        "expired holds voided": led.expire_pending(),
    }
