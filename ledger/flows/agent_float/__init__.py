"""An agent's float: e-money the agent spends on villagers' cash-ins and gets back from
their cash-outs.

Money (each operation one linked batch, idempotent by the client's id):

- **top-up**: the agent deposits cash with a super-agent or a bank (the ``provider``);
  the provider's clearing account at the platform pays the agent's ``float``
  (``provider_clearing:<PROVIDER>`` debit, ``float`` credit). Reconciliation matches the
  clearing account against the provider's statement.
- **float transfer**: one agent's ``float`` pays another's, in one currency;
  ``float_short`` when the payer's float (less what is held on it) cannot cover it.

The float's limit flag (never below zero, holds included) is the database's guard; the
refusal codes come from it.

Low-float threshold: :func:`set_float_threshold` sets, per agent, the float below which
the agent should top up. Every flow that changes the float calls :func:`check_float_low`
at its end: when the float **available** (credits posted, less debits posted and
pending: what the agent can spend now) is below the threshold and the alarm is armed, it
emits one ``float.low`` event and disarms it; when the float is back at or above the
threshold, it re-arms it. So one crossing from at-or-above to below emits one event,
however many operations follow below. Setting a threshold emits nothing: the alarm is
armed if the float is at or above it then, else it waits for the float to come back up.
The flows here and in :mod:`ledger.flows.cash` call it (an offline cash-in does not: it
spends float its device's allowance already held, so the float available does not
change). A flow that changes the float without calling it (an order paid in cash, a
device's allowance held) is seen late: the next call rings or re-arms for it.

Guarantee cap: :func:`set_guarantee_cap` bounds the float's posted balance by the
collateral the agent lodged; a top-up or an incoming float transfer that would take the
balance above it is refused (``guarantee_cap_exceeded``). A villager's cash-out, which
also raises the float, is not refused by the cap (the agent already handed the cash
over); lowering the cap below the balance refuses only later top-ups.
"""

from __future__ import annotations

from ledger.flows.agent_float.checks import check_amount, check_id, submit_linked
from ledger.flows.agent_float.model import (
    FLOAT_TRANSFER_CODE,
    TOP_UP_CODE,
    FloatSettings,
    FloatStatus,
    FloatTopUp,
    FloatTransfer,
)
from ledger.flows.agent_float.requests import FLOAT_TOPUP, request_top_up
from ledger.flows.agent_float.service import (
    check_float_low,
    check_guarantee_cap,
    get_float,
    get_float_in,
    set_float_threshold,
    set_float_threshold_in,
    set_guarantee_cap,
    set_guarantee_cap_in,
    top_up_float,
    top_up_float_in,
    transfer_float,
    transfer_float_in,
)
from ledger.limits import AMOUNT_MAX_MINOR

__all__ = [
    "AMOUNT_MAX_MINOR",
    "FLOAT_TOPUP",
    "FLOAT_TRANSFER_CODE",
    "TOP_UP_CODE",
    "FloatSettings",
    "FloatStatus",
    "FloatTopUp",
    "FloatTransfer",
    "check_amount",
    "check_float_low",
    "check_guarantee_cap",
    "check_id",
    "get_float",
    "get_float_in",
    "request_top_up",
    "set_float_threshold",
    "set_float_threshold_in",
    "set_guarantee_cap",
    "set_guarantee_cap_in",
    "submit_linked",
    "top_up_float",
    "top_up_float_in",
    "transfer_float",
    "transfer_float_in",
]
