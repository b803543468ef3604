"""Cash at the agent's counter: a villager's cash-in (cash for e-money) and cash-out
(e-money for cash).

Money (each operation one linked batch, all or nothing, idempotent by the client's id):

- **cash-in** of ``amount``: the agent's ``float`` pays the villager's ``wallet``
  ``amount``, and the agent's cash-on-hand grows by the cash taken (agent ``cash`` debit /
  ``cash_control`` credit). Commission: if a ``cash_in`` fee schedule is in effect
  (:mod:`ledger.flows.fees`), its legs are paid in the same batch: the platform pays the
  agent its ``platform_commission`` out of ``commission_expense``, and if the schedule
  also charges a fee (normally it does not), the villager pays it out of the wallet just
  credited (a fee of the whole amount or more is refused, ``fee_exceeds_amount``). **No
  schedule in effect means no commission and no fee**: a cash-in is never refused for
  want of a schedule.
- **cash-out**, two-phase. :func:`request_cash_out` prices the fee by the ``cash_out``
  schedule (none in effect: no fee) and reserves, as core holds that expire after
  :data:`CASH_OUT_TIMEOUT_S`: ``amount + fee`` of the wallet (wallet -> agent float,
  pending) and ``amount`` of the agent's cash-on-hand (``cash_control`` -> ``cash``,
  pending). The second hold is what makes "the agent's expected cash-on-hand" exact: the
  ``cash`` account's limit counts its posted balance less every open cash-out's promise,
  so a request the agent could not pay is refused (``agent_cash_short``) and two racing
  requests cannot both take the last cash. :func:`confirm_cash_out` (the agent handed the
  cash over) posts both holds (the wallet hold for ``amount`` only, which releases the
  fee part) and pays the fee legs out of the wallet (platform income, tax, rounding, the
  agent's commission: :func:`ledger.flows.fees.fee_transfers`) in one batch, at the fee
  quoted at request time. :func:`cancel_cash_out` voids both holds;
  :func:`sweep_cash_outs` voids the timed-out ones (``expired``).
  :func:`cash_out_in` is the **one-shot** cash-out an offline phone captured: the same
  transfers, posted at once (the wallet's side by posting the hold its offline withdrawal
  code made: :func:`hold_offline_withdrawal_in`).

Consent (:mod:`ledger.flows.consent`): no cash-out without the villager's. A two-phase
cash-out needs a ``withdrawal`` consent for that agent and exact amount: either the
villager starts it with the PIN (:func:`start_withdrawal`; the agent then confirms the
hand-over with :func:`confirm_cash_out`, M-Pesa's model) or the agent's request carries a
code the villager made (:func:`request_cash_out` with ``consent_code``). A one-shot cash-out
needs an ``offline_withdrawal`` code, whose hold it posts. Without consent:
``consent_required`` and nothing held; a wrong code ``consent_invalid`` (counted, see
:func:`ledger.flows.consent.check_code`), ``consent_expired``, ``consent_rate_limited``.
A replayed request (same id, same request) answers the stored cash-out before any consent
is looked at, so a spent code does not refuse its own replay.

States of a cash-out: ``requested`` -> ``completed`` | ``cancelled`` | ``expired``; a
one-shot cash-out is born ``completed``. Refusals (:class:`~ledger.flows.errors.Refused`
codes): ``float_short``, ``wallet_short`` (the wallet cannot pay amount + fee),
``agent_cash_short``, ``below_minimum`` (:data:`CASH_OUT_MINIMUM_MINOR`),
``limit_exceeded_per_transaction``, ``limit_exceeded_daily``, ``limit_exceeded_balance``
(:mod:`ledger.flows.limits`), ``kyc_tier_unknown``, ``currency_mismatch``,
``amount_invalid``, ``fee_exceeds_amount``; ``cash_out_cancelled``,
``cash_out_expired``, ``cash_out_completed``, ``agent_mismatch`` for a step that no
longer applies. A refusal writes nothing; a caller of an ``..._in`` function that catches
one must roll its transaction back.

Idempotency: the same id with the same request answers the same operation (a two-phase
cash-out as it is now) and changes nothing; the same id with another request is a
:class:`~ledger.flows.errors.Conflict` (``cash_in_id_reused``, ``cash_out_id_reused``).
Confirming a completed cash-out (by its agent) and cancelling a cancelled one answer it
unchanged. Transfer ids derive from the operation id (``uuid5(id, "cash_out:hold")``).

Events (``party_id`` = the agent, ``subject_id`` = the operation): ``cashin.completed``,
``cashout.reserved``, ``cashout.completed``, ``cashout.cancelled``, ``cashout.expired``;
and ``float.low`` through :func:`ledger.flows.agent_float.check_float_low`.
"""

from __future__ import annotations

from ledger.flows.cash.cash_in import cash_in, cash_in_in, get_cash_in, list_cash_ins
from ledger.flows.cash.cash_out import get_cash_out, list_cash_outs
from ledger.flows.cash.model import (
    CASH_IN_CODE,
    CASH_OUT_CODE,
    CASH_OUT_MINIMUM_MINOR,
    CASH_OUT_TIMEOUT_MAX_S,
    CASH_OUT_TIMEOUT_MIN_S,
    CASH_OUT_TIMEOUT_S,
    CASH_PAID_CODE,
    CASH_RECEIVED_CODE,
    CashIn,
    CashOut,
    CashOutMode,
    CashOutState,
    minimum_cash_out_minor,
)
from ledger.flows.cash.one_shot import (
    cash_out,
    cash_out_in,
    hold_offline_withdrawal_in,
    void_offline_withdrawal_in,
)
from ledger.flows.cash.two_phase import (
    cancel_cash_out,
    cancel_cash_out_in,
    confirm_cash_out,
    confirm_cash_out_in,
    request_cash_out,
    request_cash_out_in,
    start_withdrawal,
    sweep_cash_outs,
)
from ledger.limits import LIST_PAGE_SIZE_MAX as PAGE_MAX
from ledger.limits import REASON_LENGTH_MAX
from ledger.limits import SWEEP_BATCH_MAX as SWEEP_LIMIT_MAX

__all__ = [
    "CASH_IN_CODE",
    "CASH_OUT_CODE",
    "CASH_OUT_MINIMUM_MINOR",
    "CASH_OUT_TIMEOUT_MAX_S",
    "CASH_OUT_TIMEOUT_MIN_S",
    "CASH_OUT_TIMEOUT_S",
    "CASH_PAID_CODE",
    "CASH_RECEIVED_CODE",
    "PAGE_MAX",
    "REASON_LENGTH_MAX",
    "SWEEP_LIMIT_MAX",
    "CashIn",
    "CashOut",
    "CashOutMode",
    "CashOutState",
    "cancel_cash_out",
    "cancel_cash_out_in",
    "cash_in",
    "cash_in_in",
    "cash_out",
    "cash_out_in",
    "confirm_cash_out",
    "confirm_cash_out_in",
    "get_cash_in",
    "get_cash_out",
    "hold_offline_withdrawal_in",
    "list_cash_ins",
    "list_cash_outs",
    "minimum_cash_out_minor",
    "request_cash_out",
    "request_cash_out_in",
    "start_withdrawal",
    "sweep_cash_outs",
    "void_offline_withdrawal_in",
]
