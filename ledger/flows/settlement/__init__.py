"""Settlement windows: storefronts' released proceeds netted into payouts, paid out
through a provider, with a report that ties to the ledger.

Windows
    An operator opens a window for a currency (:func:`open_window`); at most one window
    of a currency is open at a time (the database holds that with a partial unique
    index; a second answers ``window_already_open``). Windows do not open by themselves:
    after a close, the next window is opened explicitly, so the period of each window is
    exactly ``opened_at .. closed_at`` as the operator ran them. States::

        open --close--> closed --(every payout paid or failed)--> settled

    A window that closes with no payout is settled at once.

Closing (:func:`close_window`, idempotent by the window id)
    Nets each storefront of the window's currency into one payout: all of its proceeds
    *available* when the window closes (``credits_posted - debits_posted -
    debits_pending`` of its ``proceeds`` account). That is what was released to it and
    not yet paid out: the releases of this window's period, plus whatever an earlier
    window did not pay (a failed payout's money is back in proceeds), less refunds after
    release that took proceeds back; a payout still pending from an earlier window is
    already held, so it is not netted twice. A storefront with nothing available gets no
    payout.

    The legs (one per payout, core ``code`` :data:`PAYOUT_CODE`)::

        close     PENDING   storefront proceeds  ->  platform provider_clearing:<PROVIDER>
        confirm   POST_PENDING of that hold (all of it)
        fail      VOID_PENDING of that hold (the money is available in proceeds again,
                  and the next window to close pays it)

    The hold goes straight to the provider's clearing account (the platform's money at
    the provider shrinks by what the provider pays out), without a leg through the
    platform's ``settlement`` account: each payout is one hold that resolves once, so the
    ledger itself shows what is in flight (the proceeds' ``debits_pending``) and what was
    paid. The hold has no timeout: a payout waits for the provider's answer.

    A storefront whose proceeds shrank between the close reading them and the hold being
    applied (a refund after release racing the close) gets no payout in that window; its
    money waits for the next.

Confirming and failing (idempotent by the payout id)
    :func:`confirm_payout` posts the hold with the provider's reference (unique per
    provider: one statement line confirms one payout); :func:`fail_payout` voids it with a
    reason. A replay with the same reference (reason) answers the payout unchanged; with
    another, :class:`~ledger.flows.errors.Conflict`; confirming a failed payout or failing
    a paid one is refused (``payout_not_pending``).

Locks: every write locks the window row first (``FOR UPDATE``), then its payouts; so two
racing closes of one window make one set of payouts (the second finds it closed and
answers it), and the last payout resolved settles the window exactly once.

The report (:func:`window_report`) ties the window's rows to the core's transfers, and
through them (the core's counters equal the sums over transfers,
:meth:`~ledger.Ledger.check_integrity`) to the balances.

Events (outbox, same transaction): ``window.opened``, ``window.closed``,
``window.settled`` (``party_id`` = the platform of the currency), ``payout.created``,
``payout.confirmed``, ``payout.failed`` (``party_id`` = the storefront).

Modules: :mod:`~ledger.flows.settlement.model` (states, rows, derived ids),
:mod:`~ledger.flows.settlement.repository` (all SQL of ``settlement_windows`` and
``payouts``; storefronts through the published view ``party_account_roles``),
:mod:`~ledger.flows.settlement.service` (the operations),
:mod:`~ledger.flows.settlement.report` (the window report).
"""

from __future__ import annotations

from ledger.flows.settlement.model import (
    PAYOUT_CODE,
    SETTLEMENT_NAMESPACE,
    Payout,
    PayoutState,
    Window,
    WindowState,
    payout_id_of,
)
from ledger.flows.settlement.report import ReportLine, WindowReport, window_report
from ledger.flows.settlement.service import (
    close_window,
    close_window_in,
    confirm_payout,
    confirm_payout_in,
    fail_payout,
    fail_payout_in,
    get_payout,
    get_payout_in,
    get_window,
    get_window_in,
    list_payouts,
    list_windows,
    open_window,
    open_window_in,
)
from ledger.limits import LIST_PAGE_SIZE_MAX as PAYOUTS_PAGE_MAX
from ledger.limits import LIST_PAGE_SIZE_MAX as WINDOWS_PAGE_MAX
from ledger.limits import REASON_LENGTH_MAX, REFERENCE_LENGTH_MAX

__all__ = [
    "PAYOUTS_PAGE_MAX",
    "PAYOUT_CODE",
    "REASON_LENGTH_MAX",
    "REFERENCE_LENGTH_MAX",
    "SETTLEMENT_NAMESPACE",
    "WINDOWS_PAGE_MAX",
    "Payout",
    "PayoutState",
    "ReportLine",
    "Window",
    "WindowReport",
    "WindowState",
    "close_window",
    "close_window_in",
    "confirm_payout",
    "confirm_payout_in",
    "fail_payout",
    "fail_payout_in",
    "get_payout",
    "get_payout_in",
    "get_window",
    "get_window_in",
    "list_payouts",
    "list_windows",
    "open_window",
    "open_window_in",
    "payout_id_of",
    "window_report",
]
