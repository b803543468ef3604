"""Agents' commission payouts: once a month (UTC) per currency, each agent's commission
earned in that month moves from its ``commission`` account to its ``float`` or to a
provider, in a payout window with a line per agent that ties to the ledger.

What an agent earns
    Commission reaches an agent's ``commission`` account as fee legs
    (:func:`ledger.flows.fees.fee_transfers`: its share of a fee, and the platform's
    commission out of ``commission_expense``). What it **earned in a month** is what was
    credited to that account with a ``created_at`` in the month, less what was debited
    from it in the month by anything but a payout (a refund or reversal taking commission
    back). Months are UTC: from the first day 00:00 UTC (inclusive) to the next month's
    first day 00:00 UTC (exclusive); :class:`Month`.

Paying a month (:func:`pay_month`, once per (month, currency))
    Only a month that is over (``month_not_over`` otherwise). The payout's id derives from
    the month and the currency: asking again, with any destination, over the API or the
    command line, answers the first payout unchanged and moves nothing. Each agent of the
    currency that earned more than zero gets one line and one core transfer (code
    :data:`COMMISSION_PAYOUT_CODE`) of the month's earnings, or of what its commission
    account still holds when that is less (the account never goes below zero; a refund
    racing the payout leaves that agent out, its money waits in the account)::

        to=float     agent commission  ->  agent float
        to=provider  agent commission  ->  platform provider_clearing:<PROVIDER>

    The provider pays the agent outside the ledger; crediting the platform's clearing
    account at the provider records that the platform's money there shrinks by it, as a
    settlement payout does. Transfer ids derive from the payout and the agent, so a retry
    can never move money twice (the core answers ``exists``). Agents with nothing earned
    are skipped. A later month's payout never pays an earlier month's commission: each
    month is paid by its own payout, in any order.

Who pays (maker-checker, :func:`request_payout`, what the API and the command line call)
    A payout **to a provider** sends money out of the platform, so one operator proposes
    it (a proposal of kind :data:`COMMISSION_PAYOUT`, :mod:`ledger.flows.proposals`,
    showing the checker how many agents and how much it would pay now) and another
    approves it; the payout is made in the approval's transaction with ``made_by`` the
    approver (the proposal keeps the maker). One such proposal per (month, currency) may
    wait (``commission_payout_proposed`` for another request of the month meanwhile);
    approving one whose month was paid since is refused (``commission_month_paid``).
    A payout **to the agents' floats** stays one operator's act: it moves each agent's
    money from its own commission account to its own float, inside the platform (the
    platform's clearing accounts, what it holds at providers, do not change), and a
    mistake is corrected by a transfer back; it is what the agent earned either way.

The report of who got what is the payout's lines (agent, earned, paid, the transfer).
Events (outbox, same transaction): ``commission.paid`` per line (``party_id`` = the
agent), ``commission_payout.made`` per payout (``party_id`` = the platform of the
currency). The API pays with :func:`pay_month_report` (the payout and its first lines in one
transaction). Reads: :func:`get_payout`, :func:`list_payouts`, :func:`payout_lines`, and
:func:`agent_commission` (this month's earnings so far, what is unpaid, the paid
months).

Locks: the payout's row is claimed first (an insert that does nothing when the row
exists; on PostgreSQL a racing claim waits for the first to commit and then answers
its payout), so two racing payouts of one month make one set of lines.

Modules: :mod:`~ledger.flows.commission.model` (the month, rows, derived ids),
:mod:`~ledger.flows.commission.repository` (all SQL of ``commission_payouts`` and
``commission_payout_lines``; agents and their movements through the published views
``party_account_roles`` and ``posted_transfers``), :mod:`~ledger.flows.commission.service`
(the operations).
"""

from __future__ import annotations

from ledger.flows.commission.model import (
    COMMISSION_NAMESPACE,
    COMMISSION_PAYOUT_CODE,
    PAID_MONTHS_SHOWN,
    AgentCommission,
    CommissionPayout,
    Destination,
    Earning,
    Month,
    PayoutLine,
    line_id_of,
    payout_id_of,
    transfer_id_of,
)
from ledger.flows.commission.service import (
    COMMISSION_PAYOUT,
    PAY_CHUNK,
    agent_commission,
    agent_commission_in,
    get_payout,
    get_payout_in,
    list_payouts,
    pay_month,
    pay_month_in,
    pay_month_report,
    payout_lines,
    request_payout,
)
from ledger.limits import LIST_PAGE_SIZE_MAX as PAYOUTS_PAGE_MAX

__all__ = [
    "COMMISSION_NAMESPACE",
    "COMMISSION_PAYOUT",
    "COMMISSION_PAYOUT_CODE",
    "PAID_MONTHS_SHOWN",
    "PAYOUTS_PAGE_MAX",
    "PAY_CHUNK",
    "AgentCommission",
    "CommissionPayout",
    "Destination",
    "Earning",
    "Month",
    "PayoutLine",
    "agent_commission",
    "agent_commission_in",
    "get_payout",
    "get_payout_in",
    "line_id_of",
    "list_payouts",
    "pay_month",
    "pay_month_in",
    "pay_month_report",
    "payout_id_of",
    "payout_lines",
    "request_payout",
    "transfer_id_of",
]
