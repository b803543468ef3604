"""Order escrow: a storefront order is paid into the storefront's escrow and released to
the seller when the goods arrive, or refunded to whoever paid.

States and the operations that move between them:

==================================  ==================================================
from                                operation -> to
==================================  ==================================================
created                             pay -> paid; cancel -> cancelled
paid                                dispatch -> dispatched; cancel -> cancelled;
                                    refund (all) -> refunded; dispute -> disputed
dispatched                          deliver (all) -> delivered; deliver (a part: that
                                    part is released) -> dispatched; release (the
                                    villager confirms early) or the timer -> released;
                                    refund (all) -> refunded; dispute -> disputed
delivered                           release or the timer -> released; refund (all) ->
                                    refunded; dispute -> disputed
disputed                            resolve: refund -> refunded, release -> released,
                                    resume -> the state it came from, timer resumed
released                            refund after release, within the window -> refunded
==================================  ==================================================

A partial refund keeps the state; a refund of all that is left in escrow of an order
that released a part before ends ``released`` (the released part stays refundable).

Money (one linked batch per operation, all or nothing):

- **pay** from the villager's wallet: wallet -> storefront escrow, only with the
  villager's consent (:mod:`ledger.flows.consent`: the pay code the villager made for
  this order and amount, or the PIN: :func:`pay_order_by_pin`); without it
  ``consent_required`` and nothing is held. **Pay in cash** at the
  agent: the agent's float -> escrow, and the agent's cash-on-hand grows (agent ``cash``
  debit / ``cash_control`` credit) by the cash the villager handed over.
- **hand-over** at a station (``pickup_point``, ``agent_delivery``): dispatch sends the
  villager a pickup code, and the delivery step needs it (:mod:`ledger.flows.pickup`).
- **release** (of all that is left in escrow, or of a delivered part): escrow -> seller
  proceeds, and out of the same escrow the fee legs of :func:`ledger.flows.fees.quote`
  for product ``order`` priced on the released amount (platform fee income, tax, rounding,
  and the agent's commission when an agent assisted; without one, the agent's share is
  platform income, as :func:`~ledger.flows.fees.fee_transfers` rules). So the seller gets
  ``released - fee`` and the legs add up to the amount released exactly. A release whose
  fee would exceed it is refused (``fee_exceeds_release``).
- **refund** out of escrow back to the payer (each refund transfer names the payment it
  reverses): to the wallet; or, for a cash payer, to the agent's float while the agent's
  cash-on-hand shrinks (``cash_control`` debit / ``cash`` credit): the agent hands the cash
  back and is made whole in float, so a refund needs the agent to hold the cash
  (``agent_cash_short`` otherwise).
- **refund after release** (``after_release=True``, until ``refund_until``: the refund
  window of the delivery method after the last release) reverses every leg of every
  release of the order back into escrow (each reversal names the leg it reverses: the
  seller's proceeds, fee income, tax, rounding and the agent's commission all give back
  what they got), then refunds the payer in full as above. If one of those accounts no
  longer holds it (the proceeds were paid out, the agent spent the commission), the whole
  refund is refused and nothing moves (``proceeds_short``, ``agent_commission_short`` ...).

Timers live in the database in UTC microseconds, their lengths in the ``delivery_methods``
table (one row per method, :func:`delivery_method_in`; an operator changes them with
:func:`set_delivery_method`): ``pay`` sets ``dispatch_deadline_at = now + H hours`` (a
dispatch after it is refused ``dispatch_deadline_passed``); ``dispatch`` sets
``auto_release_at = now + N days``; ``extend_auto_release`` pushes it; a dispute pauses it
(the time left is kept) and a dispute withdrawn resumes it. :func:`sweep_orders`, each order
in its own transaction, cancels and refunds every paid order not dispatched by its deadline
(``order.cancelled`` with ``reason`` ``dispatch_expired``; a dispute does not stop that
clock: a paid order whose dispute is withdrawn after its deadline is cancelled by the next
sweep), and releases every dispatched or delivered order whose timer has passed.

Refunds into a wallet are credits like any other: the villager's KYC maximum balance
holds (:mod:`ledger.flows.wallets`). A refund, cancellation or dispute refund that would
take the wallet above it is refused with ``limit_exceeded_balance`` and nothing moves:
the order stays as it was (paid, dispatched, delivered, disputed or released) and stays
refundable: the same request succeeds once the wallet has room (the villager spent or
cashed out, or an operator moved them up a tier). The API answers the refusal as 422
``limit_exceeded_balance``. The sweeper meeting such a refusal notes it
(``order.dispatch_expiry_refused``, once per order and code) and goes on with the next
order. Every movement of a wallet writes a ``wallet.receipt`` event to the villager.

Every operation locks the order row first (``FOR UPDATE`` on PostgreSQL), so two racing
operations on one order run one after the other and the second sees the first's state;
the escrow account's limit flag (never below zero) is the database's second guard.
Every operation is idempotent by a client step id (the create by the order id): a replay
with the same request answers the order as that step left it and changes nothing; the
same id with another request is a :class:`~ledger.flows.errors.Conflict`.

A villager reads and types an order by its reference (:func:`order_reference`: the id's
first :data:`REFERENCE_DIGITS` hex digits, upper case), on USSD screens and in her SMS.

Amounts are integer minor units of the storefront's currency; events (``order.*``) go to
the outbox in the same transaction with ``party_id`` = the storefront.

The package: :mod:`.model` (the values: states, :class:`Order`, the stored
:class:`~.model.OrderRow`), :mod:`.repository` (all SQL of ``orders``, ``order_steps``
and ``delivery_methods``), :mod:`.legs` (the transfers, pure), :mod:`.steps` (how one
operation runs), :mod:`.service` (the operations) and :mod:`.sweep` (the timers).
"""

from __future__ import annotations

from ledger.flows.orders.model import (
    AUTO_RELEASE_DAYS_MAX,
    CASH_RECEIVED_CODE,
    CASH_RETURNED_CODE,
    DELIVERY_METHODS,
    DISPATCH_DEADLINE_HOURS_MAX,
    DISPATCH_EXPIRED,
    EXTENSION_DAYS_MAX,
    EXTENSIONS_MAX,
    PARTIAL_DELIVERIES_MAX,
    PAYMENT_CODE,
    REFERENCE_DIGITS,
    REFUND_CODE,
    REFUND_WINDOW_DAYS_MAX,
    RELEASE_CODE,
    REVERSAL_CODE,
    Decision,
    DeliveryMethod,
    Order,
    OrderRow,
    Source,
    State,
    order_reference,
)
from ledger.flows.orders.service import (
    cancel_order,
    cancel_order_in,
    create_order,
    create_order_in,
    deliver_order,
    deliver_order_in,
    dispatch_order,
    dispatch_order_in,
    dispute_order,
    dispute_order_in,
    extend_auto_release,
    extend_auto_release_in,
    get_delivery_methods,
    get_order,
    get_order_in,
    list_agent_orders,
    list_orders,
    pay_order,
    pay_order_by_pin,
    pay_order_in,
    refund_order,
    refund_order_in,
    release_order,
    release_order_in,
    resolve_dispute,
    resolve_dispute_in,
    set_delivery_method,
)
from ledger.flows.orders.steps import delivery_method_in
from ledger.flows.orders.sweep import SWEEP_RETRY_INTERVAL_US, sweep_orders
from ledger.limits import AMOUNT_MAX_MINOR, REASON_LENGTH_MAX
from ledger.limits import LIST_PAGE_SIZE_MAX as ORDERS_PAGE_MAX
from ledger.limits import SWEEP_BATCH_MAX as SWEEP_LIMIT_MAX

__all__ = [
    "AMOUNT_MAX_MINOR",
    "AUTO_RELEASE_DAYS_MAX",
    "CASH_RECEIVED_CODE",
    "CASH_RETURNED_CODE",
    "DELIVERY_METHODS",
    "DISPATCH_DEADLINE_HOURS_MAX",
    "DISPATCH_EXPIRED",
    "EXTENSIONS_MAX",
    "EXTENSION_DAYS_MAX",
    "ORDERS_PAGE_MAX",
    "PARTIAL_DELIVERIES_MAX",
    "PAYMENT_CODE",
    "REASON_LENGTH_MAX",
    "REFERENCE_DIGITS",
    "REFUND_CODE",
    "REFUND_WINDOW_DAYS_MAX",
    "RELEASE_CODE",
    "REVERSAL_CODE",
    "SWEEP_LIMIT_MAX",
    "SWEEP_RETRY_INTERVAL_US",
    "Decision",
    "DeliveryMethod",
    "Order",
    "OrderRow",
    "Source",
    "State",
    "cancel_order",
    "cancel_order_in",
    "create_order",
    "create_order_in",
    "deliver_order",
    "deliver_order_in",
    "delivery_method_in",
    "dispatch_order",
    "dispatch_order_in",
    "dispute_order",
    "dispute_order_in",
    "extend_auto_release",
    "extend_auto_release_in",
    "get_delivery_methods",
    "get_order",
    "get_order_in",
    "list_agent_orders",
    "list_orders",
    "order_reference",
    "pay_order",
    "pay_order_by_pin",
    "pay_order_in",
    "refund_order",
    "refund_order_in",
    "release_order",
    "release_order_in",
    "resolve_dispute",
    "resolve_dispute_in",
    "set_delivery_method",
    "sweep_orders",
]
