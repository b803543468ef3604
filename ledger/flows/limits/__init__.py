"""KYC limits: what a villager of a tier may move through an agent's counter.

A villager's KYC tier (``parties.kyc_tier``) and currency name a row of ``kyc_tiers``
with three limits, in minor units (the figures seeded by migration 0004 are below):

- ``per_transaction_max_minor``: the most one cash-in or one cash-out may move (the
  amount the villager hands over or takes away; a cash-out's fee is not counted);
- ``daily_max_minor``: the most a villager may cash in in one UTC day, and, **counted
  apart**, the most they may cash out in one UTC day (a villager who cashes in 10,000
  and out 10,000 on one day has used 10,000 of each allowance, not 20,000 of one: the
  limits are about how much cash crosses the counter in each direction);
- ``balance_max_minor``: the most the wallet may hold after any credit (credits posted
  plus pending, less debits posted: what the wallet would hold if every pending credit
  posted and no pending debit did). Checked by :func:`check_balance_in`, which every
  flow reaches through :func:`ledger.flows.wallets.after_transfers_in` after each batch
  that credits a wallet: cash-ins, order refunds, suspense reassignments, reversals.

Seeded tiers (``tier0``: a phone number; ``tier1``: an ID document checked; ``tier2``:
full KYC), per transaction / per day and direction / wallet balance, in major units:

=====  ===========================  ===========================  ==========================
tier   KES                          UGX                          TZS
=====  ===========================  ===========================  ==========================
tier0  5,000 / 10,000 / 20,000      150,000 / 300,000 / 600,000  100,000 / 200,000 / 400,000
tier1  70,000 / 150,000 / 300,000   2m / 4m / 8m                 1.5m / 3m / 6m
tier2  250,000 / 500,000 / 1m       7m / 15m / 30m               5m / 10m / 20m
=====  ===========================  ===========================  ==========================

A villager whose tier has no row in their currency can do no cash operation
(``kyc_tier_unknown``): :func:`set_tier_limits` adds one. Changing limits emits
``kyc.tier_limits_changed``; over the API both a villager's raise above ``tier0`` and a
change of limits are maker-checker proposals (:mod:`ledger.flows.kyc`).

Concurrency: the daily amounts live in one ``kyc_usage`` row per villager and UTC day.
Every cash operation of a villager inserts that row if it is missing (``INSERT ... ON
CONFLICT DO NOTHING``, so two first operations of a day do not collide) and then locks it
(``SELECT ... FOR UPDATE``) before it checks and adds, so two agents cashing out one
wallet at once run one after the other and the second sees the first's amount. A
two-phase cash-out reserves its amount when it is requested; cancelled or expired, it
gives the amount back to the day it was taken from. The balance limit is checked after
the crediting transfers in the same transaction, when the core holds the wallet's row
locked, so it too holds under concurrency.

The tables' SQL lives in :mod:`ledger.flows.limits.repository`; a villager's tier is
read and written through :mod:`ledger.flows.parties`.
"""

from ledger.flows.limits.repository import Direction, TierLimits
from ledger.flows.limits.service import (
    DAY_US,
    TIER_LENGTH_MAX,
    Usage,
    check_balance_in,
    check_tier_limits,
    get_tier_limits,
    get_usage,
    list_tier_limits,
    release_in,
    reserve_in,
    set_kyc_tier,
    set_kyc_tier_in,
    set_tier_limits,
    set_tier_limits_in,
    tier_limits_in,
    utc_day,
)
from ledger.limits import AMOUNT_MAX_MINOR as LIMIT_MAX_MINOR

__all__ = [
    "DAY_US",
    "Direction",
    "LIMIT_MAX_MINOR",
    "TIER_LENGTH_MAX",
    "TierLimits",
    "Usage",
    "check_balance_in",
    "check_tier_limits",
    "get_tier_limits",
    "get_usage",
    "list_tier_limits",
    "release_in",
    "reserve_in",
    "set_kyc_tier",
    "set_kyc_tier_in",
    "set_tier_limits",
    "set_tier_limits_in",
    "tier_limits_in",
    "utc_day",
]
