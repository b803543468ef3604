"""`vledger demo`: one village day, told once, taken through the flows or the signed API.

Two storefronts, two agents and three villagers in Kenya shillings (two raised to tier1
and the fee schedules published, each by two operators), float top-ups and an
agent-to-agent float transfer with the low-float alarm, cash-ins (one refused by a KYC
limit), four escrowed orders (released with the fee split, paid in cash and delivered in
part with a dispute over the rest, cancelled, auto-released by the sweeper), a replayed
request, cash-outs (one refused without the villager's consent; confirmed with her
withdrawal code, which then does not work twice; cancelled; started with her PIN and
timed out; one below the minimum), an agent's phone syncing a signed offline batch (a
cash-out with an offline withdrawal code; one record becomes an exception, and the batch
re-sent changes nothing), provider money parked in suspense (one item reassigned, one
returned by two operators, one left with its return proposed), and two settlement
windows (a payout fails, and the next window pays it). Then the back office's day: the
agents' closing cash counts (a shortfall two operators post, an excess left waiting),
last month's commission paid through the bank by two operators, a float alarm left
ringing, and a storefront's webhook deliveries queued; so that every page of the console
(``/console/``) has something on it after the demo. Then the balances, the events the
day wrote, and the integrity check, whose ``integrity: ok`` is the last line.

Maker-checker steps take two operator principals (the desk makes them, as it makes the
storefronts' and agents'): the first proposes, the second approves, through the same flow
functions the routes call (over HTTP, through the signed routes): raising Amina and
Baraka to tier1 (``kyc_tier``), publishing each fee schedule (``fee_schedule``),
returning suspense money, posting a cash-count shortfall and paying commission through
the bank.

The story (:class:`VillageDay`) takes its steps at a :class:`Desk`: :class:`DirectDesk`
calls the flows in this process (``vledger demo --direct``, :func:`run_demo`);
``vledger.demo_http.HttpDesk`` sends each step as a signed request to the API
(``vledger demo``). Both sit at the edge, in ``vledger/``, beside the command line:
``ledger/`` imports neither. Steps that have no route run on the ledger in both cases,
and the story says so when the rest of the day goes over HTTP: the sweepers, the
webhook fan-out and SMS queueing (the service's own background work), reading the outbox
and the villagers' one-time codes (their phones' side), and parking suspense.

Parking has no route on purpose, and the service has no other path that parks: money
reaches suspense when a provider's statement shows a deposit no transfer claims (the
``statement`` job flags the line ``statement_only``, "park in suspense", and never moves
money), and :func:`ledger.flows.suspense.park` books it. A route where one operator types
a provider, a reference and an amount into suspense, and then reassigns it
(``POST /v1/suspense/{id}/reassign``, one operator's act) to any wallet, would let one
person create wallet money with no second operator; parking over the API needs a
maker-checker design (a proposal naming a statement line of a reconciliation run) that
the back office does not have yet. So the demo parks three bank deposits the way
reconciliation's operator does today: with the flow, on the ledger.

Cash counts write their run's files under the service's reports folder (``reports/``, as
``vledger serve`` does), where the console's run pages find them.

Every run uses fresh ids, so it runs again and again on the same database. The demo
checks each answer against the one it expects and answers 0 only when all hold and the
integrity check is clean. Timers are run by the sweepers *as of* a later moment (five
days on for the orders, past the timeout for the cash-out); nothing is stamped in the
future, because the ledger's clock is the wall clock.

Amounts are ``int`` minor units throughout; they are formatted with integer arithmetic.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import webhooks
from api import principals
from api.settings import Settings
from ledger import Ledger, open_ledger
from ledger.core import currency as iso4217
from ledger.core.errors import EdgeError
from ledger.core.store import to_us
from ledger.flows import (
    agent_float,
    cash,
    commission,
    consent,
    events,
    fees,
    kyc,
    offline,
    orders,
    parties,
    pickup,
    proposals,
    settlement,
    suspense,
    ussd,
    villagers,
)
from ledger.flows.commission import Month
from ledger.flows.errors import FlowError
from ledger.flows.parties import Kind, Party, Role, tills
from ledger.limits import LIST_PAGE_SIZE_MAX
from reconciliation import cash_count, uploads
from sms import repository as sms_repository
from sms.delivery import queue_new
from sms.settings import SmsSettings

CURRENCY = "KES"
PROVIDER = "BANK"
PIN = "4827"
"""Every villager's PIN in the demo (they set it with their activation code)."""
"""The bank where agents deposit cash for float and storefronts are paid out."""

FEE_SCHEDULES: dict[str, dict[str, Any]] = {
    # 2% of an order, at least KES 10, at most KES 500; 16% of the fee is tax and a
    # fifth goes to the agent who took a cash payment.
    "order": {
        "bands": [{"up_to_minor": None, "bps": 200, "min_minor": 1_000, "max_minor": 50_000}],
        "split_bps": {"tax": 1_600, "agent_commission": 2_000},
    },
    # Cash-in is free for the villager; the platform pays the agent 0.5% (at most KES 50).
    "cash_in": {
        "bands": [{"up_to_minor": None, "fixed_minor": 0}],
        "platform_commission": {"bps": 50, "max_minor": 5_000},
    },
    # Cash-out: KES 30 up to KES 1,000, then 1% (at most KES 300); half to the agent.
    "cash_out": {
        "bands": [
            {"up_to_minor": 100_000, "fixed_minor": 3_000},
            {"up_to_minor": None, "bps": 100, "min_minor": 3_000, "max_minor": 30_000},
        ],
        "split_bps": {"tax": 1_600, "agent_commission": 5_000},
    },
}

WEBHOOK_URL = "http://127.0.0.1:9/hooks"
"""Mbegu Seeds' webhook endpoint: on this machine, a port nothing listens on (discard),
so the deliveries the service's worker makes later fail there and show in the console;
no demo event leaves the machine."""
DEMO_WEBHOOKS = webhooks.WebhookSettings(
    worker_enabled=False, target_networks_allowed=("127.0.0.0/8",)
)
"""No webhook worker (the day's deliveries wait for the service), and a target on this
machine allowed (:data:`WEBHOOK_URL`)."""
FAN_OUT_PASSES = 5
"""Fan-out passes run after the day, as the worker runs them one after another."""

ORDER_AUTO_RELEASE_AFTER = timedelta(days=5, seconds=1)
"""The sweeper runs as of this long after dispatch (pickup points release after 5 days)."""
_ORDER_REFERENCE = re.compile(
    rf"\b(order|oda|oda yako) [0-9A-F]{{{orders.REFERENCE_DIGITS}}}\b", re.IGNORECASE
)
"""An order's reference in an SMS (English, Swahili), shown as ``<ref>``."""


def format_amount(amount_minor: int, currency: str = CURRENCY) -> str:
    """``123456`` -> ``KES 1,234.56``; integer arithmetic only."""
    digits = iso4217.minor_digits(currency)
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), 10**digits)
    text = f"{major:,}"
    if digits:
        text += f".{minor:0{digits}d}"
    return f"{currency} {sign}{text}"


def kes(major: int) -> int:
    """Whole shillings in minor units (cents)."""
    return major * 100


class UnexpectedAnswer(EdgeError):
    """The ledger answered a demo step otherwise than the demo expects."""


class StepRefused(EdgeError):
    """A desk refused a step with a refusal ``code``: the API's problem+json ``code`` and
    its HTTP ``status`` (the flows' own refusals are :class:`FlowError`)."""

    def __init__(self, code: str, detail: str, *, status: int) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.code = code
        self.status = status


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# -- what a desk answers: the fields the story reads, from a flow's object or the API's JSON


@dataclass(frozen=True, slots=True)
class OrderSeen:
    """An order as a step left it; ``state`` is an :class:`orders.State` value."""

    state: str
    paid_minor: int
    released_minor: int
    refunded_minor: int


@dataclass(frozen=True, slots=True)
class CashOutSeen:
    """A cash-out; ``state`` is a :class:`cash.CashOutState` value."""

    id: uuid.UUID
    state: str
    fee_minor: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class FloatSeen:
    """An agent's float now, and whether its low-float alarm is armed."""

    available_minor: int
    low_armed: bool


@dataclass(frozen=True, slots=True)
class SyncSeen:
    """What an offline sync answered."""

    applied: int
    exceptions: int
    stored_now: int
    replayed: int
    reasons: tuple[str, ...]
    """The exceptions' reasons, in the batch's order."""


@dataclass(frozen=True, slots=True)
class PayoutSeen:
    """One payout of a settlement window."""

    id: uuid.UUID
    storefront_id: uuid.UUID
    amount_minor: int


@dataclass(frozen=True, slots=True)
class ReportSeen:
    """A settlement window's report: its state, payouts, what was paid, whether it ties."""

    window_state: str
    lines: int
    paid_total_minor: int
    ties: bool


@dataclass(frozen=True, slots=True)
class CommissionSeen:
    """A month's commission payout: where it went, to how many agents, how much."""

    to: str
    provider: str | None
    lines_count: int
    total_minor: int


ORDER_ACTS: dict[str, Callable[..., orders.Order]] = {
    "pay": orders.pay_order,
    "dispatch": orders.dispatch_order,
    "deliver": orders.deliver_order,
    "release": orders.release_order,
    "dispute": orders.dispute_order,
    "resolve": orders.resolve_dispute,
    "cancel": orders.cancel_order,
}
"""The order steps of the day, by their name in the API's path (``/v1/orders/{id}/pay``)."""


class Desk(Protocol):
    """Where the day's steps are taken. ``by`` names the storefront or agent (its party
    id) that takes an order step; ``None`` is the operator. A refusal raises
    :class:`FlowError` or :class:`StepRefused`; every id is the caller's, fresh per run."""

    over_http: bool
    """True when the steps go over the signed API (the story then says which do not)."""

    def ussd(self, *, session_id: str, phone: str, text: str) -> str:
        """One step of a dialled USSD session: the screen as the aggregator gets it
        (``CON ...`` or ``END ...``)."""
        ...

    def onboard(self, *, kind: Kind, name: str, kyc_tier: str | None) -> Party: ...
    def register_villager(self, *, agent_id: uuid.UUID, name: str, phone: str) -> uuid.UUID:
        """The agent registers a villager at its station (tier0, no PIN yet); her id."""
        ...

    def top_up_float(self, *, agent_id: uuid.UUID, amount_minor: int) -> None: ...
    def set_float_threshold(self, *, agent_id: uuid.UUID, threshold_minor: int) -> None: ...
    def float_of(self, agent_id: uuid.UUID) -> FloatSeen: ...
    def transfer_float(
        self, *, from_agent_id: uuid.UUID, to_agent_id: uuid.UUID, amount_minor: int
    ) -> None: ...
    def cash_in(self, *, agent_id: uuid.UUID, villager_id: uuid.UUID, amount_minor: int) -> int:
        """The agent's commission."""
        ...

    def create_order(
        self,
        *,
        storefront_id: uuid.UUID,
        villager_id: uuid.UUID,
        amount_minor: int,
        delivery_method: str,
        agent_id: uuid.UUID | None,
    ) -> uuid.UUID: ...
    def order_step(
        self,
        step: str,
        order_id: uuid.UUID,
        *,
        by: uuid.UUID | None,
        step_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> OrderSeen:
        """One of :data:`ORDER_ACTS`; the same ``step_id`` again is the same request."""
        ...

    def get_order(self, order_id: uuid.UUID) -> OrderSeen: ...
    def request_cash_out(
        self,
        *,
        agent_id: uuid.UUID,
        villager_id: uuid.UUID,
        amount_minor: int,
        consent_code: str | None,
    ) -> CashOutSeen: ...
    def confirm_cash_out(self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID) -> CashOutSeen: ...
    def cancel_cash_out(
        self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID, reason: str
    ) -> CashOutSeen: ...
    def get_cash_out(self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID) -> CashOutSeen: ...
    def register_device(
        self,
        *,
        device_id: uuid.UUID,
        agent_id: uuid.UUID,
        public_key: bytes,
        allowance_minor: int,
    ) -> None: ...
    def sync(
        self,
        *,
        device_id: uuid.UUID,
        agent_id: uuid.UUID,
        records: Sequence[offline.SignedRecord],
    ) -> SyncSeen: ...
    def open_windows(self) -> list[uuid.UUID]:
        """The ids of the currency's open settlement windows, oldest first."""
        ...

    def open_window(self, window_id: uuid.UUID) -> None: ...
    def close_window(self, window_id: uuid.UUID) -> None: ...
    def payouts(self, window_id: uuid.UUID) -> list[PayoutSeen]: ...
    def fail_payout(self, payout_id: uuid.UUID, *, reason: str) -> None: ...
    def confirm_payout(self, payout_id: uuid.UUID, *, provider_reference: str) -> None: ...
    def window_report(self, window_id: uuid.UUID) -> ReportSeen: ...
    def posted(self, account_id: uuid.UUID) -> tuple[int, int]:
        """The account's (debits posted, credits posted)."""
        ...

    # the back office: two operators, a maker and a checker (maker-checker)
    def propose_tier(self, villager_id: uuid.UUID, *, tier: str) -> uuid.UUID:
        """The first operator proposes moving the villager to ``tier`` (above tier0: a
        proposal of kind ``kyc_tier``); the proposal's id."""
        ...

    def fee_schedule_in_effect(self, product: str) -> bool:
        """Whether a version of the product's schedule in :data:`CURRENCY` is in effect."""
        ...

    def propose_fee_schedule(self, *, product: str, rules: dict[str, Any]) -> uuid.UUID:
        """The first operator proposes the product's next schedule version (in effect from
        its approval; kind ``fee_schedule``); the proposal's id."""
        ...

    def register_webhook(self, *, storefront_id: uuid.UUID, event_types: Sequence[str]) -> None:
        """The storefront registers :data:`WEBHOOK_URL` for its events."""
        ...

    def reassign_suspense(self, suspense_id: uuid.UUID, *, villager_id: uuid.UUID) -> str:
        """The first operator moves a parked item to the villager's wallet; its state."""
        ...

    def propose_return(self, suspense_id: uuid.UUID, *, reason: str) -> uuid.UUID:
        """The first operator proposes returning a parked item; the proposal's id."""
        ...

    def approve(self, proposal_id: uuid.UUID, *, as_maker: bool = False) -> Any:
        """The second operator approves the proposal (``as_maker``: the first one tries,
        and is refused); what applying it answered."""
        ...

    def count_cash(
        self, *, agent_id: uuid.UUID, denominations: dict[str, int], comment: str
    ) -> uuid.UUID | None:
        """The agent hands in its cash count (now): the variance it proposed, if any."""
        ...

    def propose_variance_approval(self, variance_id: uuid.UUID) -> uuid.UUID:
        """The first operator proposes approving a variance; the proposal's id."""
        ...

    def request_commission_payout(self, *, month: str) -> uuid.UUID | None:
        """The first operator asks to pay ``month``'s commission through the bank: the
        proposal's id, or None when the month was paid already."""
        ...

    def commission_payout(self, *, month: str) -> CommissionSeen: ...
    def summary(self) -> list[str]:
        """Lines printed after the day, before the integrity check."""
        ...


def order_seen(o: orders.Order) -> OrderSeen:
    return OrderSeen(o.state.value, o.paid_minor, o.released_minor, o.refunded_minor)


def cash_out_seen(c: cash.CashOut) -> CashOutSeen:
    return CashOutSeen(c.id, c.state.value, c.fee_minor, c.expires_at)


@dataclass
class DirectDesk:
    """The steps as calls of the flows in this process (``vledger demo --direct``)."""

    led: Ledger
    over_http: bool = False
    maker_id: uuid.UUID = field(init=False)
    """The first operator: proposes."""
    checker_id: uuid.UUID = field(init=False)
    """The second operator: approves."""
    tag: str = field(init=False)
    """This run's mark in its principals' names."""

    def __post_init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        operator = principals.Role.OPERATOR
        self.maker_id = demo_principal(self.led, operator, f"demo {self.tag} operator")
        self.checker_id = demo_principal(self.led, operator, f"demo {self.tag} second operator")

    def ussd(self, *, session_id: str, phone: str, text: str) -> str:
        return ussd.answer(self.led, session_id=session_id, phone=phone, text=text).wire

    def onboard(self, *, kind: Kind, name: str, kyc_tier: str | None) -> Party:
        party_id = new_id()
        if kind in PARTY_ROLES:  # as over HTTP: a storefront or agent is a principal
            party_id = demo_principal(self.led, PARTY_ROLES[kind], f"demo {self.tag} {name}")
        return parties.onboard(
            self.led, party_id=party_id, kind=kind, name=name, currency=CURRENCY, kyc_tier=kyc_tier
        )

    def register_villager(self, *, agent_id: uuid.UUID, name: str, phone: str) -> uuid.UUID:
        made = villagers.register_villager(
            self.led,
            villager_id=new_id(),
            agent_id=agent_id,
            phone=phone,
            name=name,
            currency=CURRENCY,
            language="sw",
        )
        return made.id

    def top_up_float(self, *, agent_id: uuid.UUID, amount_minor: int) -> None:
        agent_float.top_up_float(
            self.led,
            topup_id=new_id(),
            agent_id=agent_id,
            amount_minor=amount_minor,
            provider=PROVIDER,
        )

    def set_float_threshold(self, *, agent_id: uuid.UUID, threshold_minor: int) -> None:
        agent_float.set_float_threshold(
            self.led, agent_id=agent_id, threshold_minor=threshold_minor
        )

    def float_of(self, agent_id: uuid.UUID) -> FloatSeen:
        status = agent_float.get_float(self.led, agent_id=agent_id)
        return FloatSeen(status.available_minor, status.low_armed)

    def transfer_float(
        self, *, from_agent_id: uuid.UUID, to_agent_id: uuid.UUID, amount_minor: int
    ) -> None:
        agent_float.transfer_float(
            self.led,
            transfer_id=new_id(),
            from_agent_id=from_agent_id,
            to_agent_id=to_agent_id,
            amount_minor=amount_minor,
        )

    def cash_in(self, *, agent_id: uuid.UUID, villager_id: uuid.UUID, amount_minor: int) -> int:
        done = cash.cash_in(
            self.led,
            cash_in_id=new_id(),
            agent_id=agent_id,
            villager_id=villager_id,
            amount_minor=amount_minor,
        )
        return done.commission_minor

    def create_order(
        self,
        *,
        storefront_id: uuid.UUID,
        villager_id: uuid.UUID,
        amount_minor: int,
        delivery_method: str,
        agent_id: uuid.UUID | None,
    ) -> uuid.UUID:
        order_id = new_id()
        orders.create_order(
            self.led,
            order_id=order_id,
            storefront_id=storefront_id,
            currency=CURRENCY,
            amount_minor=amount_minor,
            delivery_method=delivery_method,
            villager_id=villager_id,
            agent_id=agent_id,
        )
        return order_id

    def order_step(
        self,
        step: str,
        order_id: uuid.UUID,
        *,
        by: uuid.UUID | None,
        step_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> OrderSeen:
        act = ORDER_ACTS[step]
        done = act(self.led, step_id=step_id or new_id(), order_id=order_id, **fields)
        return order_seen(done)

    def get_order(self, order_id: uuid.UUID) -> OrderSeen:
        return order_seen(orders.get_order(self.led, order_id=order_id))

    def request_cash_out(
        self,
        *,
        agent_id: uuid.UUID,
        villager_id: uuid.UUID,
        amount_minor: int,
        consent_code: str | None,
    ) -> CashOutSeen:
        made = cash.request_cash_out(
            self.led,
            cash_out_id=new_id(),
            agent_id=agent_id,
            villager_id=villager_id,
            amount_minor=amount_minor,
            consent_code=consent_code,
        )
        return cash_out_seen(made)

    def confirm_cash_out(self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID) -> CashOutSeen:
        done = cash.confirm_cash_out(self.led, cash_out_id=cash_out_id, agent_id=agent_id)
        return cash_out_seen(done)

    def cancel_cash_out(
        self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID, reason: str
    ) -> CashOutSeen:
        return cash_out_seen(cash.cancel_cash_out(self.led, cash_out_id=cash_out_id, reason=reason))

    def get_cash_out(self, cash_out_id: uuid.UUID, *, agent_id: uuid.UUID) -> CashOutSeen:
        return cash_out_seen(cash.get_cash_out(self.led, cash_out_id))

    def register_device(
        self,
        *,
        device_id: uuid.UUID,
        agent_id: uuid.UUID,
        public_key: bytes,
        allowance_minor: int,
    ) -> None:
        offline.register_device(
            self.led,
            device_id=device_id,
            agent_id=agent_id,
            public_key=public_key,
            allowance_minor=allowance_minor,
        )

    def sync(
        self,
        *,
        device_id: uuid.UUID,
        agent_id: uuid.UUID,
        records: Sequence[offline.SignedRecord],
    ) -> SyncSeen:
        report = offline.sync(self.led, device_id=device_id, records=records)
        reasons = tuple(r.reason for r in report.records if r.reason)
        return SyncSeen(
            report.applied, report.exceptions, report.stored_now, report.replayed, reasons
        )

    def open_windows(self) -> list[uuid.UUID]:
        found = settlement.list_windows(
            self.led, currency=CURRENCY, state=settlement.WindowState.OPEN
        )
        return [w.id for w in found]

    def open_window(self, window_id: uuid.UUID) -> None:
        settlement.open_window(self.led, window_id=window_id, currency=CURRENCY)

    def close_window(self, window_id: uuid.UUID) -> None:
        settlement.close_window(self.led, window_id=window_id, provider=PROVIDER)

    def payouts(self, window_id: uuid.UUID) -> list[PayoutSeen]:
        return [
            PayoutSeen(p.id, p.storefront_id, p.amount_minor)
            for p in settlement.list_payouts(self.led, window_id=window_id)
        ]

    def fail_payout(self, payout_id: uuid.UUID, *, reason: str) -> None:
        settlement.fail_payout(self.led, payout_id=payout_id, reason=reason)

    def confirm_payout(self, payout_id: uuid.UUID, *, provider_reference: str) -> None:
        settlement.confirm_payout(
            self.led, payout_id=payout_id, provider_reference=provider_reference
        )

    def window_report(self, window_id: uuid.UUID) -> ReportSeen:
        report = settlement.window_report(self.led, window_id=window_id)
        return ReportSeen(
            report.window.state.value, len(report.lines), report.paid_total_minor, report.ties
        )

    def posted(self, account_id: uuid.UUID) -> tuple[int, int]:
        [account] = self.led.lookup_accounts([account_id])
        return account.debits_posted, account.credits_posted

    def propose_tier(self, villager_id: uuid.UUID, *, tier: str) -> uuid.UUID:
        made = kyc.change_tier(
            self.led,
            proposal_id=new_id(),
            villager_id=villager_id,
            tier=tier,
            operator_id=self.maker_id,
        )
        if not isinstance(made, proposals.Proposal):
            raise UnexpectedAnswer(f"moving a villager to {tier} made no proposal")
        return made.id

    def fee_schedule_in_effect(self, product: str) -> bool:
        try:
            self.led.transact(
                lambda tx: fees.schedule_in_effect(tx, product=product, currency=CURRENCY)
            )
        except FlowError:
            return False
        return True

    def propose_fee_schedule(self, *, product: str, rules: dict[str, Any]) -> uuid.UUID:
        made = fees.propose_schedule(
            self.led,
            proposal_id=new_id(),
            product=product,
            currency=CURRENCY,
            rules=rules,
            effective_at=None,
            proposed_by=self.maker_id,
        )
        return made.id

    def register_webhook(self, *, storefront_id: uuid.UUID, event_types: Sequence[str]) -> None:
        webhooks.create_endpoint(
            self.led,
            principal_id=storefront_id,
            url=WEBHOOK_URL,
            event_types=event_types,
            description="the demo's shop system",
            settings=DEMO_WEBHOOKS,
        )

    def reassign_suspense(self, suspense_id: uuid.UUID, *, villager_id: uuid.UUID) -> str:
        moved = suspense.reassign(self.led, suspense_id=suspense_id, to_villager_id=villager_id)
        return moved.state.value

    def propose_return(self, suspense_id: uuid.UUID, *, reason: str) -> uuid.UUID:
        made = suspense.propose_return(
            self.led,
            proposal_id=new_id(),
            suspense_id=suspense_id,
            reason=reason,
            proposed_by=self.maker_id,
        )
        return made.id

    def approve(self, proposal_id: uuid.UUID, *, as_maker: bool = False) -> Any:
        approver = self.maker_id if as_maker else self.checker_id
        return proposals.approve(self.led, proposal_id=proposal_id, approver=approver).result

    def count_cash(
        self, *, agent_id: uuid.UUID, denominations: dict[str, int], comment: str
    ) -> uuid.UUID | None:
        body = count_body(self.led.now(), denominations, comment)
        out = Path(Settings().reports_dir)
        _, variance = uploads.submit_count(self.led, agent_id=agent_id, body=body, out=out)
        return None if variance is None else variance.id

    def propose_variance_approval(self, variance_id: uuid.UUID) -> uuid.UUID:
        made, _ = cash_count.propose_approval(
            self.led, proposal_id=new_id(), variance_id=variance_id, proposed_by=self.maker_id
        )
        return made.id

    def request_commission_payout(self, *, month: str) -> uuid.UUID | None:
        made = commission.request_payout(
            self.led,
            proposal_id=new_id(),
            month=month,
            currency=CURRENCY,
            to=commission.Destination.PROVIDER,
            provider=PROVIDER,
            operator_id=self.maker_id,
        )
        return made.id if isinstance(made, proposals.Proposal) else None

    def commission_payout(self, *, month: str) -> CommissionSeen:
        found = commission.get_payout(self.led, payout_id=commission.payout_id_of(month, CURRENCY))
        return CommissionSeen(
            found.destination.value, found.provider, found.lines_count, found.total_minor
        )

    def summary(self) -> list[str]:
        return []


PARTY_ROLES = {Kind.STOREFRONT: principals.Role.STOREFRONT, Kind.AGENT: principals.Role.AGENT}
"""The principal role of a storefront or agent party (its party id is its principal's)."""


def demo_principal(led: Ledger, role: principals.Role, name: str) -> uuid.UUID:
    """A demo principal with a fresh Ed25519 key (its private half dropped: the direct
    desk acts in this process; the HTTP desk keeps its own in memory)."""
    private = Ed25519PrivateKey.generate()
    key = principals.add_key(
        led,
        role=role,
        name=name,
        alg=principals.Alg.ED25519,
        material=private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
    )
    return key.principal_id


def count_body(counted_at: datetime, denominations: dict[str, int], comment: str) -> bytes:
    """A cash count as the agent's phone hands it in (the ``cash-count`` job's JSON)."""
    count = {
        "counted_at": counted_at.isoformat(),
        "currency": CURRENCY,
        "denominations": denominations,
        "comment": comment,
    }
    return json.dumps(count).encode()


def denominations_of(amount_minor: int) -> dict[str, int]:
    """``amount_minor`` of KES as 1,000 notes, shilling coins and cents (a count's
    ``denominations``: values in major units)."""
    major, cents = divmod(amount_minor, 100)
    notes, coins = divmod(major, 1_000)
    found = {"1000": notes, "1": coins, "0.01": cents}
    return {value: n for value, n in found.items() if n}


def last_month(now: datetime) -> str:
    """The UTC month before ``now``'s, ``YYYY-MM``."""
    this = Month.of(now)
    index = this.year * 12 + this.month - 2
    return Month(index // 12, index % 12 + 1).text


def new_phone() -> str:
    """A Kenyan mobile number for a villager of this run (fresh every run)."""
    return f"+25471{secrets.randbelow(10**7):07d}"


# -- the story ------------------------------------------------------------------------


@dataclass
class VillageDay:
    """The parties of one demo run and the steps it takes at a desk. ``led`` is the
    ledger itself: the steps without a route, the outbox and the integrity checks."""

    led: Ledger
    desk: Desk
    out: TextIO
    people: dict[str, Party] = field(default_factory=dict)

    # -- helpers ------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def on_the_ledger(self, what: str) -> None:
        """Say, when the day goes over HTTP, that the next step does not (it has no route)."""
        if self.desk.over_http:
            self.say(f"[on the ledger directly, no HTTP route: {what}]")

    def expect(self, what: str, got: object, want: object) -> None:
        if got != want:
            raise UnexpectedAnswer(f"{what}: got {got!r}, expected {want!r}")

    @contextmanager
    def refused(self, what: str, code: str) -> Iterator[None]:
        """The step inside must be refused with ``code`` and change nothing."""
        before = self.led.check_integrity()
        try:
            yield
        except (FlowError, StepRefused) as exc:
            self.expect(f"{what}: refusal", exc.code, code)
            how = f" (HTTP {exc.status} problem+json)" if isinstance(exc, StepRefused) else ""
            self.say(f"{what}: refused, {exc.code}{how}")
            self.expect(f"{what}: integrity", self.led.check_integrity().ok, before.ok)
            return
        raise UnexpectedAnswer(f"{what}: went through, expected refusal {code}")

    def id_of(self, who: str) -> uuid.UUID:
        return self.people[who].id

    def balance(self, who: str, role: str) -> int:
        """The posted balance of a party's account, on its normal side."""
        debits, credits = self.desk.posted(self.people[who].account(role))
        if role == Role.CASH:
            return debits - credits
        return credits - debits

    # -- the day ------------------------------------------------------------------

    def onboard(self) -> None:
        cast = [
            ("Mbegu Seeds", Kind.STOREFRONT, None),
            ("Duka Solar", Kind.STOREFRONT, None),
            ("Wanjiru's shop", Kind.AGENT, None),
            ("Kamau's kiosk", Kind.AGENT, None),
        ]
        for name, kind, tier in cast:
            self.people[name] = self.desk.onboard(kind=kind, name=name, kyc_tier=tier)
        phones = {}
        for name in ("Amina", "Baraka", "Chebet"):
            phones[name] = new_phone()
            villager_id = self.desk.register_villager(
                agent_id=self.id_of("Wanjiru's shop"), name=name, phone=phones[name]
            )
            wallet = {str(Role.WALLET): parties.account_id(villager_id, Role.WALLET)}
            self.people[name] = Party(
                villager_id, Kind.VILLAGER, name, CURRENCY, villagers.REGISTRATION_TIER, wallet
            )
        self.say(
            "onboarded 2 storefronts (Mbegu Seeds, Duka Solar), 2 agents (Wanjiru's shop,"
            " Kamau's kiosk); Wanjiru's shop registers 3 villagers (Amina, Baraka, Chebet)"
        )
        self.desk.register_webhook(storefront_id=self.id_of("Mbegu Seeds"), event_types=["order.*"])
        self.say(
            f"Mbegu Seeds registers a webhook endpoint for its order events ({WEBHOOK_URL},"
            " on this machine)"
        )
        self.on_the_ledger(
            "each villager sets a PIN with the code sent to her phone (or on the USSD menu)"
        )
        for name in ("Amina", "Baraka", "Chebet"):
            code = self._activation_code(self.id_of(name))
            villagers.activate(self.led, phone=phones[name], activation_code=code, pin=PIN)
        self.raise_tiers(("Amina", "Baraka"), "tier1")
        self.publish_fee_schedules()

    def raise_tiers(self, names: Sequence[str], tier: str) -> None:
        """The first operator proposes each villager's move above tier0; the second approves."""
        for name in names:
            raised = self.desk.approve(self.desk.propose_tier(self.id_of(name), tier=tier))
            self.expect(f"{name}'s tier", raised["kyc_tier"], tier)
            self.people[name] = replace(self.people[name], kyc_tier=tier)
        self.say(
            f"the villagers set their PINs; an operator proposes {' and '.join(names)} for"
            f" {tier}, a second approves (Chebet stays {villagers.REGISTRATION_TIER})"
        )

    def publish_fee_schedules(self) -> None:
        """Each schedule not yet in effect: the first operator proposes it, the second
        approves, and it is in effect from the approval (a database that has them, from
        an earlier run, gets none)."""
        published = []
        for product, rules in FEE_SCHEDULES.items():
            if not self.desk.fee_schedule_in_effect(product):
                proposal = self.desk.propose_fee_schedule(product=product, rules=rules)
                done = self.desk.approve(proposal)
                self.expect(f"the {product} schedule", done["product"], product)
                published.append(product)
        self.say(
            f"fee schedules published: {', '.join(published)} (each proposed by one operator,"
            " approved by another)"
            if published
            else "fee schedules already in effect: order, cash_in, cash_out"
        )

    def _activation_code(self, villager_id: uuid.UUID) -> str:
        """The activation code the outbox holds for the villager's phone (the SMS issue
        carries it)."""
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=villager_id, limit=LIST_PAGE_SIZE_MAX)
        )
        codes = [e.payload["code"] for e in found if e.type == events.VILLAGER_ACTIVATION_CODE]
        return str(codes[-1])

    def _dial_withdrawal_code(self, who: str, agent_id: uuid.UUID, major: int) -> str:
        """The villager dials the USSD menu (through the aggregator's callback over HTTP,
        or :func:`ledger.flows.ussd.answer`): 5 Withdraw cash, her PIN, the agent's till
        number, the amount, 1 Confirm; the code on the last screen (printed masked)."""
        self.on_the_ledger(f"{who}'s phone number and the agent's till number")
        phone = villagers.get_villager(self.led, self.id_of(who)).phone
        till = self.led.transact(lambda tx: tills.till_of_in(tx, agent_id))
        session_id = f"demo_{new_id().hex}"
        inputs: list[str] = []
        screen = self.desk.ussd(session_id=session_id, phone=phone, text="")
        for key in ("5", PIN, till, str(major), "1"):
            inputs.append(key)
            screen = self.desk.ussd(session_id=session_id, phone=phone, text="*".join(inputs))
        found = re.match(r"END [^:\n]+: (\d{6})\n", screen)  # in her language
        self.expect("a withdrawal code on the USSD screen", screen if found is None else "", "")
        assert found is not None
        again = self.desk.ussd(session_id=session_id, phone=phone, text="*".join(inputs))
        self.expect("a replayed USSD step answers the same", again, screen)
        shown = screen.replace(found.group(1), "######").replace(till, "<till>")
        self.say(
            f"{who} dials *384*55#: 5 (withdraw cash), PIN, Wanjiru's till number,"
            f" {major:,}, 1 Confirm; the last screen: {shown.replace(chr(10), ' | ')}"
        )
        self.say("the aggregator repeats that step: the same screen, no second code")
        return found.group(1)

    def _sms_of(self, who: str) -> None:
        """The villager's SMS as the worker would queue them (``vledger sms outbox``), the
        one-time codes masked; dates and times shown as dd/mm/yyyy hh:mm and an order's
        reference as ``<ref>`` (the day's ids are new each run)."""
        self.on_the_ledger(f"{who}'s SMS, rendered from the outbox (no gateway)")
        queue_new(self.led, now_us=to_us(self.led.now()), settings=SmsSettings.from_env())
        villager_id = self.id_of(who)
        found = self.led.transact(
            lambda tx: sms_repository.newest_messages(tx, state=None, limit=LIST_PAGE_SIZE_MAX)
        )
        for message in found:
            if message.party_id == villager_id:
                text = re.sub(r"\d{2}/\d{2}/\d{4}", "dd/mm/yyyy", message.text_shown)
                text = re.sub(r"\d{1,2}:\d{2}", "hh:mm", text)
                text = re.sub(_ORDER_REFERENCE, r"\1 <ref>", text)
                self.say(f"SMS to {who} ({message.event_type}): {text}")

    def _code(
        self,
        who: str,
        agent_id: uuid.UUID,
        amount_minor: int,
        purpose: consent.Purpose = consent.Purpose.WITHDRAWAL,
    ) -> str:
        """A one-time code the villager makes with her PIN (or on the USSD menu)."""
        made = consent.make_code(
            self.led,
            villager_id=self.id_of(who),
            pin=PIN,
            purpose=purpose,
            amount_minor=amount_minor,
            agent_id=agent_id,
        )
        return made.code

    def float_morning(self) -> None:
        for agent, amount_minor in (
            ("Wanjiru's shop", kes(50_000)),
            ("Kamau's kiosk", kes(10_000)),
        ):
            self.desk.top_up_float(agent_id=self.id_of(agent), amount_minor=amount_minor)
            self.say(f"{agent} deposits {format_amount(amount_minor)} at the bank: float topped up")
        self.desk.set_float_threshold(
            agent_id=self.id_of("Kamau's kiosk"), threshold_minor=kes(8_000)
        )
        self.say(f"Kamau's kiosk sets a low-float alarm at {format_amount(kes(8_000))}")

    def cash_ins(self) -> None:
        for villager, agent, amount_minor in (
            ("Amina", "Wanjiru's shop", kes(12_000)),
            ("Baraka", "Wanjiru's shop", kes(8_000)),
            ("Chebet", "Kamau's kiosk", kes(3_000)),
        ):
            commission = self.desk.cash_in(
                agent_id=self.id_of(agent),
                villager_id=self.id_of(villager),
                amount_minor=amount_minor,
            )
            self.say(
                f"cash-in: {villager} hands {format_amount(amount_minor)} to {agent};"
                f" wallet credited, agent earns {format_amount(commission)}"
            )
        kamau = self.people["Kamau's kiosk"]
        rang = self._events_of(events.FLOAT_LOW, kamau.id)
        self.expect("low-float alarm", len(rang), 1)
        low = self.desk.float_of(kamau.id)
        self.expect("alarm rung", low.low_armed, False)
        self.say(f"float.low: {kamau.name}'s float is down to {format_amount(low.available_minor)}")
        self.desk.transfer_float(
            from_agent_id=self.id_of("Wanjiru's shop"),
            to_agent_id=kamau.id,
            amount_minor=kes(5_000),
        )
        status = self.desk.float_of(kamau.id)
        self.expect("alarm re-armed", status.low_armed, True)
        self.say(
            f"Wanjiru's shop passes {format_amount(kes(5_000))} of float to {kamau.name}:"
            f" float {format_amount(status.available_minor)}, alarm re-armed"
        )
        with self.refused(
            f"cash-in of {format_amount(kes(6_000))} for Chebet (tier0)",
            "limit_exceeded_per_transaction",
        ):
            self.desk.cash_in(
                agent_id=kamau.id, villager_id=self.id_of("Chebet"), amount_minor=kes(6_000)
            )

    def _order(
        self, shop: str, villager: str, amount_minor: int, method: str, agent: str | None = None
    ) -> uuid.UUID:
        return self.desk.create_order(
            storefront_id=self.id_of(shop),
            villager_id=self.id_of(villager),
            amount_minor=amount_minor,
            delivery_method=method,
            agent_id=self.id_of(agent) if agent else None,
        )

    def _pay_code(self, who: str, order_id: uuid.UUID, amount_minor: int) -> str:
        """The pay code the villager makes with her PIN for one order (or on the USSD menu)."""
        self.on_the_ledger(
            f"{who} makes a pay code for the order with her PIN (or on the USSD menu)"
        )
        made = consent.make_code(
            self.led,
            villager_id=self.id_of(who),
            pin=PIN,
            purpose=consent.Purpose.PAYMENT,
            amount_minor=amount_minor,
            order_id=order_id,
        )
        return made.code

    def _pickup_code(self, who: str, order_id: uuid.UUID) -> str:
        """The pickup code the outbox holds for the villager's phone (the SMS issue
        carries it), which she shows at the station."""
        self.on_the_ledger(f"{who}'s pickup code, read from the outbox (her SMS carries it too)")
        found = self.led.transact(
            lambda tx: events.read_events(
                tx, party_id=self.id_of(who), subject_id=order_id, limit=LIST_PAGE_SIZE_MAX
            )
        )
        return str([e.payload["code"] for e in found if e.type == pickup.PICKUP_CODE_EVENT][-1])

    def _step(self, step: str, order_id: uuid.UUID, by: str | None, **kw: Any) -> OrderSeen:
        """An order step taken by the storefront or agent ``by`` (None: the operator)."""
        actor = self.id_of(by) if by else None
        return self.desk.order_step(step, order_id, by=actor, **kw)

    def orders_of_the_day(self) -> uuid.UUID:
        """Four orders: paid, delivered, released; paid in cash and partly refused;
        cancelled; left unconfirmed (the pickup-point order the sweep releases, returned)."""
        self._seeds_released()
        self._lamp_disputed()
        self._hoe_cancelled()
        return self._beans_unconfirmed()

    def _seeds_released(self) -> None:
        """1. Seeds paid from the wallet, delivered, released: the fee splits three ways.
        No agent takes the payment (over HTTP the operator acts for the wallet), so no
        agent's commission comes out of the fee."""
        wallet = orders.Source.WALLET
        seeds = self._order("Mbegu Seeds", "Amina", kes(1_200), "courier")
        pay_step = new_id()
        code = self._pay_code("Amina", seeds, kes(1_200))
        self._step("pay", seeds, None, step_id=pay_step, source=wallet, consent_code=code)
        self.say(
            f"order 1: Amina pays Mbegu Seeds {format_amount(kes(1_200))} from her wallet:"
            " held in escrow"
        )
        again = self._step("pay", seeds, None, step_id=pay_step, source=wallet, consent_code=code)
        self.expect(
            "replayed payment", (again.state, again.paid_minor), (orders.State.PAID, kes(1_200))
        )
        self.expect("wallet after replay", self.balance("Amina", Role.WALLET), kes(12_000 - 1_200))
        self.say(
            "order 1: the same payment sent again (same step id): the same answer, nothing moved"
        )
        self._step("dispatch", seeds, "Mbegu Seeds")
        self._step("deliver", seeds, "Wanjiru's shop")
        released = self._step("release", seeds, "Wanjiru's shop")
        self.expect("order 1 state", released.state, orders.State.RELEASED)
        seller = self.balance("Mbegu Seeds", Role.PROCEEDS)
        self.say(
            f"order 1 delivered and released: seller {format_amount(seller)},"
            " the 2% fee split into tax and platform income"
        )

    def _lamp_disputed(self) -> None:
        """2. A solar lamp paid in cash at the agent; half delivered, a dispute over the
        rest."""
        lamp = self._order("Duka Solar", "Baraka", kes(4_500), "agent_delivery", "Wanjiru's shop")
        self._step("pay", lamp, "Wanjiru's shop", source=orders.Source.CASH)
        self.say(
            f"order 2: Baraka pays Duka Solar {format_amount(kes(4_500))} in cash at Wanjiru's shop"
        )
        self._step("dispatch", lamp, "Duka Solar")
        shown = self._pickup_code("Baraka", lamp)
        part = self._step(
            "deliver", lamp, "Wanjiru's shop", amount_minor=kes(3_000), pickup_code=shown
        )
        self.expect("order 2 released part", part.released_minor, kes(3_000))
        self.say(
            f"order 2: the lamp arrives, the panel does not: {format_amount(kes(3_000))} released"
        )
        self._step("dispute", lamp, "Wanjiru's shop", reason="solar panel missing")
        refunded = self._step("resolve", lamp, None, decision=orders.Decision.REFUND)
        self.expect("order 2 refunded", refunded.refunded_minor, kes(1_500))
        self.say(
            f"order 2: Baraka disputes the missing panel; resolved for him:"
            f" {format_amount(kes(1_500))} back in cash through the agent"
        )

    def _hoe_cancelled(self) -> None:
        """3. Cancelled before dispatch: the hold goes back whole."""
        wallet = orders.Source.WALLET
        hoe = self._order("Mbegu Seeds", "Amina", kes(900), "courier")
        code = self._pay_code("Amina", hoe, kes(900))
        self._step("pay", hoe, None, source=wallet, consent_code=code)
        cancelled = self._step("cancel", hoe, "Mbegu Seeds")
        self.expect("order 3 state", cancelled.state, orders.State.CANCELLED)
        self.say(
            f"order 3: Amina orders a hoe for {format_amount(kes(900))}, then cancels:"
            " escrow voided"
        )

    def _beans_unconfirmed(self) -> uuid.UUID:
        """4. A pickup-point order nobody confirms: the sweeper releases it after 5 days
        (:meth:`sweep_orders`); paying it again is refused."""
        wallet = orders.Source.WALLET
        beans = self._order("Mbegu Seeds", "Chebet", kes(500), "pickup_point")
        code = self._pay_code("Chebet", beans, kes(500))
        self._step("pay", beans, None, source=wallet, consent_code=code)
        self._step("dispatch", beans, "Mbegu Seeds")
        with self.refused("order 4 paid a second time (a new step id)", "order_not_payable"):
            self._step("pay", beans, None, source=wallet, consent_code=code)
        return beans

    def sweep_orders(self, beans: uuid.UUID) -> None:
        self.on_the_ledger("the operator's sweep of the order timers")
        as_of = self.led.now() + ORDER_AUTO_RELEASE_AFTER
        released = orders.sweep_orders(self.led, now=as_of)
        order = self.desk.get_order(beans)
        self.expect("order 4 auto-released", order.state, orders.State.RELEASED)
        self.say(
            f"sweeper as of 5 days later: {released} order(s) auto-released,"
            " Chebet's beans among them"
        )

    def cash_outs(self) -> None:
        wanjiru = self.id_of("Wanjiru's shop")
        with self.refused("cash-out without the villager's consent", "consent_required"):
            self.desk.request_cash_out(
                agent_id=wanjiru,
                villager_id=self.id_of("Baraka"),
                amount_minor=kes(2_000),
                consent_code=None,
            )
        code = self._dial_withdrawal_code("Baraka", wanjiru, 2_000)
        baraka = self.desk.request_cash_out(
            agent_id=wanjiru,
            villager_id=self.id_of("Baraka"),
            amount_minor=kes(2_000),
            consent_code=code,
        )
        done = self.desk.confirm_cash_out(baraka.id, agent_id=wanjiru)
        self.expect("cash-out confirmed", done.state, cash.CashOutState.COMPLETED)
        self.say(
            f"cash-out: Baraka asks Wanjiru's shop for {format_amount(kes(2_000))} with his"
            f" code (fee {format_amount(done.fee_minor)}): held, cash handed over, confirmed"
        )
        with self.refused("the same code again", "consent_invalid"):
            self.desk.request_cash_out(
                agent_id=wanjiru,
                villager_id=self.id_of("Baraka"),
                amount_minor=kes(2_000),
                consent_code=code,
            )
        self._sms_of("Baraka")
        self.on_the_ledger("Amina makes a withdrawal code with her PIN (or on the USSD menu)")
        amina = self.desk.request_cash_out(
            agent_id=wanjiru,
            villager_id=self.id_of("Amina"),
            amount_minor=kes(1_000),
            consent_code=self._code("Amina", wanjiru, kes(1_000)),
        )
        cancelled = self.desk.cancel_cash_out(amina.id, agent_id=wanjiru, reason="changed her mind")
        self.expect("cash-out cancelled", cancelled.state, cash.CashOutState.CANCELLED)
        self.say(
            f"cash-out: Amina asks Wanjiru's shop for {format_amount(kes(1_000))}, then"
            " cancels: hold voided"
        )
        self.cash_outs_at_kamau()

    def cash_outs_at_kamau(self) -> None:
        kamau = self.id_of("Kamau's kiosk")
        self.on_the_ledger(
            "Chebet starts a withdrawal at Kamau's kiosk with her PIN (or on the USSD menu)"
        )
        started = cash.start_withdrawal(
            self.led,
            cash_out_id=new_id(),
            villager_id=self.id_of("Chebet"),
            pin=PIN,
            agent_id=kamau,
            amount_minor=kes(1_000),
        )
        chebet = self.desk.get_cash_out(started.id, agent_id=kamau)
        if chebet.expires_at is None:
            raise UnexpectedAnswer("a requested cash-out has no expiry")
        self.on_the_ledger("the operator's sweep of expired cash-outs")
        expired = cash.sweep_cash_outs(self.led, now=chebet.expires_at + timedelta(seconds=1))
        state = self.desk.get_cash_out(chebet.id, agent_id=kamau).state
        self.expect("cash-out expired", state, cash.CashOutState.EXPIRED)
        self.say(
            f"cash-out: Chebet starts one at Kamau's kiosk for {format_amount(kes(1_000))}"
            f" with her PIN and never comes; the sweeper past the timeout: {expired} expired,"
            " hold voided"
        )
        self.on_the_ledger("Chebet makes a withdrawal code with her PIN (or on the USSD menu)")
        small = self._code("Chebet", kamau, kes(20))
        with self.refused(f"cash-out of {format_amount(kes(20))}", "below_minimum"):
            self.desk.request_cash_out(
                agent_id=kamau,
                villager_id=self.id_of("Chebet"),
                amount_minor=kes(20),
                consent_code=small,
            )

    def offline_batch(self) -> None:
        wanjiru = self.id_of("Wanjiru's shop")
        phone = Ed25519PrivateKey.generate()
        device_id = new_id()
        self.desk.register_device(
            device_id=device_id,
            agent_id=wanjiru,
            public_key=phone.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            allowance_minor=kes(5_000),
        )
        self.say(
            f"Wanjiru's phone registers its Ed25519 key; offline allowance"
            f" {format_amount(kes(5_000))} held on her float"
        )
        self.on_the_ledger(
            "Baraka makes an offline withdrawal code with his PIN (not on the USSD menu)"
        )
        offline_code = self._code("Baraka", wanjiru, kes(500), consent.Purpose.OFFLINE_WITHDRAWAL)
        self.say(
            f"Baraka makes an offline withdrawal code for {format_amount(kes(500))} at"
            " Wanjiru's shop: the amount and its fee are held on his wallet now (24 hours)"
        )
        captured = self.led.now().replace(microsecond=0)
        batch = [
            ("Amina", offline.RecordKind.CASH_IN, kes(1_000), None),
            ("Baraka", offline.RecordKind.CASH_OUT, kes(500), offline_code),
            ("Chebet", offline.RecordKind.CASH_IN, kes(4_500), None),  # more than is left
        ]
        signed = [
            offline.sign_record(
                phone,
                offline.OfflineRecord(
                    record_id=new_id(),
                    device_id=device_id,
                    agent_id=wanjiru,
                    villager_id=self.id_of(who),
                    kind=kind,
                    amount_minor=amount_minor,
                    currency=CURRENCY,
                    seq=seq,
                    captured_at=captured + timedelta(minutes=seq),
                    consent_code=code,
                    version=2,
                ),
            )
            for seq, (who, kind, amount_minor, code) in enumerate(batch, start=1)
        ]
        report = self.desk.sync(device_id=device_id, agent_id=wanjiru, records=signed)
        self.expect("offline applied", report.applied, 2)
        self.expect("offline exceptions", report.exceptions, 1)
        self.say(
            f"offline batch of 3 signed records synced: {report.applied} applied,"
            f" {report.exceptions} exception ({', '.join(report.reasons)}) kept for"
            " reconciliation"
        )
        again = self.desk.sync(device_id=device_id, agent_id=wanjiru, records=signed)
        self.expect("offline re-sent", (again.stored_now, again.replayed), (0, 3))
        self.say("the same batch sent again: 0 stored, 3 already known; nothing moved")

    def _park(self, amount_minor: int, note: str) -> uuid.UUID:
        item = suspense.park(
            self.led,
            suspense_id=new_id(),
            currency=CURRENCY,
            provider=PROVIDER,
            provider_reference=f"DEP-{uuid.uuid4().hex[:10].upper()}",
            amount_minor=amount_minor,
            note=note,
        )
        self.say(
            f"{format_amount(item.amount_minor)} arrives at the bank with reference"
            f" {item.provider_reference} and no wallet: parked in suspense"
        )
        return item.id

    def suspense(self) -> None:
        """Three deposits nobody matched: one is Amina's (an operator moves it), one goes
        back to the sender (two operators: one proposes, the other approves; the maker
        cannot), one waits with its return proposed."""
        self.on_the_ledger(
            "reconciliation parks the bank's deposits nobody matched (no route parks: see"
            " vledger.demo)"
        )
        first = self._park(kes(750), "deposit with no wallet number")
        second = self._park(kes(1_300), "sender typed a wrong account")
        third = self._park(kes(420), "deposit with no wallet number")
        state = self.desk.reassign_suspense(first, villager_id=self.id_of("Amina"))
        self.say(f"an operator finds the first is Amina's: reassigned to her wallet ({state})")
        proposal = self.desk.propose_return(second, reason="the sender asked for it back")
        self.say("the sender of the second asks for it back: an operator proposes returning it")
        with self.refused("the same operator approving the return", "proposal_maker_cannot_decide"):
            self.desk.approve(proposal, as_maker=True)
        result = self.desk.approve(proposal)
        self.expect("the return", result["state"], suspense.SuspenseState.RETURNED)
        self.say("a second operator approves: the money goes back through the bank (returned)")
        self.desk.propose_return(third, reason="nobody has claimed it")
        self.say("the third's return is proposed too; it waits for a second operator")

    def settle(self) -> None:
        duka = self.id_of("Duka Solar")
        first = self._close_window()
        failed = 0
        for payout in self.desk.payouts(first):
            if payout.storefront_id == duka:
                self.desk.fail_payout(payout.id, reason="account number rejected")
                failed = payout.amount_minor
            else:
                self.desk.confirm_payout(payout.id, provider_reference=f"PAY-{payout.id.hex[:12]}")
        self.expect("Duka Solar's payout failed", failed > 0, True)
        report = self.desk.window_report(first)
        self.expect("window 1 ties", report.ties, True)
        self.say(
            f"settlement window 1 closed: {report.lines} payout(s),"
            f" {format_amount(report.paid_total_minor)} paid,"
            f" Duka Solar's {format_amount(failed)} failed; report ties to the ledger"
        )
        second = self._close_window()
        for payout in self.desk.payouts(second):
            self.desk.confirm_payout(payout.id, provider_reference=f"PAY-{payout.id.hex[:12]}")
        report = self.desk.window_report(second)
        self.expect("window 2 ties", report.ties, True)
        self.expect("window 2 pays Duka Solar", report.paid_total_minor >= failed, True)
        self.say(
            f"settlement window 2 closed: Duka Solar's {format_amount(failed)} paid now;"
            f" {report.window_state}, report ties"
        )

    def cash_counts(self) -> None:
        """Each agent counts its cash at closing: Wanjiru's is short (two operators agree to
        post it), Kamau's is over (it waits for the operators)."""
        for agent, off_minor in (("Wanjiru's shop", -kes(50)), ("Kamau's kiosk", kes(20))):
            books = self.balance(agent, Role.CASH)
            variance = self.desk.count_cash(
                agent_id=self.id_of(agent),
                denominations=denominations_of(books + off_minor),
                comment="closing count",
            )
            if variance is None:
                raise UnexpectedAnswer(f"{agent}'s count proposed no variance")
            side = "short" if off_minor < 0 else "over"
            self.say(
                f"{agent} counts its cash at closing: {format_amount(books + off_minor)}"
                f" against {format_amount(books)} in the books, {format_amount(abs(off_minor))}"
                f" {side}: a variance"
            )
            if off_minor < 0:
                proposal = self.desk.propose_variance_approval(variance)
                result = self.desk.approve(proposal)
                self.expect("the variance", result["state"], "approved")
                self.say(
                    "an operator proposes posting it, a second approves: the shortfall is posted"
                )
        self.say("Kamau's variance waits for the operators")

    def commission(self) -> None:
        """Last month's agent commission goes out through the bank: money leaving the
        platform, so one operator proposes the payout and another approves it (a month is
        paid once: on a database that has it, the request answers that payout)."""
        month = last_month(self.led.now())
        proposal = self.desk.request_commission_payout(month=month)
        if proposal is not None:
            self.desk.approve(proposal)
        paid = self.desk.commission_payout(month=month)
        self.expect("the payout's destination", (paid.to, paid.provider), ("provider", PROVIDER))
        self.say(
            f"last month's agent commission ({month}) is paid through the bank, proposed by one"
            f" operator and approved by another: {paid.lines_count} agent(s),"
            f" {format_amount(paid.total_minor)}"
        )

    def float_alarm(self) -> None:
        kamau = self.id_of("Kamau's kiosk")
        threshold = kes(15_000)
        self.desk.set_float_threshold(agent_id=kamau, threshold_minor=threshold)
        now = self.desk.float_of(kamau)
        self.expect("Kamau's float below the alarm", now.available_minor < threshold, True)
        self.say(
            f"Kamau's kiosk raises its low-float alarm to {format_amount(threshold)}: its float"
            f" ({format_amount(now.available_minor)}) is below it, so the back office lists it"
        )

    def fan_out(self) -> None:
        self.on_the_ledger("the webhook worker's fan-out (the service delivers them later)")
        for _ in range(FAN_OUT_PASSES):
            webhooks.fan_out(self.led, now_us=to_us(self.led.now()), settings=DEMO_WEBHOOKS)
        self.say("Mbegu Seeds' order events are queued as webhook deliveries to its endpoint")

    def _close_window(self) -> uuid.UUID:
        open_now = self.desk.open_windows()
        window_id = open_now[0] if open_now else new_id()
        if not open_now:
            self.desk.open_window(window_id)
        self.desk.close_window(window_id)
        return window_id

    def _events_of(self, kind: str | None, party_id: uuid.UUID) -> list[events.Event]:
        """The party's events (of one kind, if given); a demo party has fewer than a page."""
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=party_id, limit=LIST_PAGE_SIZE_MAX)
        )
        return [e for e in found if kind is None or e.type == kind]

    def print_balances(self) -> None:
        rows = [
            ("Amina", "wallet", Role.WALLET),
            ("Baraka", "wallet", Role.WALLET),
            ("Chebet", "wallet", Role.WALLET),
            ("Wanjiru's shop", "float", Role.FLOAT),
            ("Wanjiru's shop", "cash on hand", Role.CASH),
            ("Wanjiru's shop", "commission", Role.COMMISSION),
            ("Kamau's kiosk", "float", Role.FLOAT),
            ("Kamau's kiosk", "cash on hand", Role.CASH),
            ("Mbegu Seeds", "proceeds", Role.PROCEEDS),
            ("Duka Solar", "proceeds", Role.PROCEEDS),
        ]
        self.say("balances (posted):")
        lines = [
            (f"{who} {what}", format_amount(self.balance(who, role))) for who, what, role in rows
        ]
        width = max(len(name) for name, _ in lines)
        number = max(len(amount) for _, amount in lines)
        for name, amount in lines:
            self.say(f"  {name:<{width}}  {amount:>{number}}")

    def print_events(self) -> None:
        self.on_the_ledger("reading the outbox (the API delivers events as webhooks)")
        counts: dict[str, int] = {}
        for party in self.people.values():
            for event in self._events_of(None, party.id):
                counts[event.type] = counts.get(event.type, 0) + 1
        shown = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
        self.say(f"events in the outbox for today's parties: {shown}")


def run_day(led: Ledger, desk: Desk, out: TextIO) -> int:
    """Tell the village day at ``desk``, then check the ledger's integrity; answer the
    process exit code: 0 when every step answered as expected and the check is clean
    (the last line printed is ``integrity: ok``), 1 otherwise, with the reason printed."""
    day = VillageDay(led, desk, out)
    try:
        day.onboard()
        day.float_morning()
        day.cash_ins()
        beans = day.orders_of_the_day()
        day.cash_outs()
        day.offline_batch()
        day.suspense()
        day.sweep_orders(beans)
        day.settle()
        day.cash_counts()
        day.commission()
        day.float_alarm()
        day.fan_out()
        day.print_balances()
        day.print_events()
    except (UnexpectedAnswer, FlowError, StepRefused) as exc:
        print(f"demo failed: {exc}", file=out)
        return 1
    for line in desk.summary():
        print(line, file=out)
    report = led.check_integrity()
    if not report.ok:
        print("integrity: FAILED", file=out)
        for problem in report.problems:
            print(f"  {problem}", file=out)
        return 1
    print("integrity: ok", file=out)
    return 0


def run_demo(url: str, out: TextIO | None = None) -> int:
    """Run the village day through the flows in this process on the ledger at ``url``
    (migrated first); the exit code of :func:`run_day`."""
    out = out or sys.stdout
    led = open_ledger(url, migrate=True)
    try:
        print(f"Village Ledger demo: one village day on {led.dialect}", file=out)
        return run_day(led, DirectDesk(led), out)
    finally:
        led.close()
