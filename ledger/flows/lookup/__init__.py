"""The back office's lookups (auditors and operators read everything): find an object by
its id, a villager by phone, payouts and suspense items by the provider's reference; an
account's statement with its posted counters after each transfer; an order's timeline
(its events); the agents whose low-float alarm is ringing.

Reads only, each bounded (a page of at most :data:`~ledger.limits.API_PAGE_SIZE_MAX`, a
search of exact matches at most :data:`HITS_PER_KIND_MAX` per kind). Tables are read
through their owners' functions; the counters after each transfer come from the
published view ``journal_transfers`` (:mod:`ledger.flows.lookup.repository`). Who may
call these is the caller's rule (the API: auditors and operators only).
"""

from __future__ import annotations

from ledger.flows.lookup.service import (
    HITS_PER_KIND_MAX,
    QUERY_LENGTH_MAX,
    AccountHistory,
    HistoryLine,
    Hit,
    OrderTimeline,
    account_history,
    float_alarms,
    order_timeline,
    search,
)

__all__ = [
    "HITS_PER_KIND_MAX",
    "QUERY_LENGTH_MAX",
    "AccountHistory",
    "HistoryLine",
    "Hit",
    "OrderTimeline",
    "account_history",
    "float_alarms",
    "order_timeline",
    "search",
]
