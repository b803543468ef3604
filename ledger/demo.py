"""`vledger demo`: one village day through the ledger core, on any ledger database.

A float top-up, cash-ins, a payment between villagers, three storefront orders held in
escrow (one delivered in part and released with a platform fee, one cancelled, one never
confirmed that expires), a cash-out with a fee, and the refusals the core is there for:
an overdraw, a linked chain that fails as a whole, and a replay that changes nothing.

Every run uses fresh ids, so it can run again and again on the same database. The demo
checks each answer it gets against the one it expects, then runs the integrity check;
it answers 0 only when both hold. The ledger's clock is the demo's own: the day starts
``DAY_LENGTH_S`` before the wall clock and is moved forward by hand for the expiry, so
nothing is stamped in the future.

Amounts are ``int`` minor units throughout; they are formatted with integer arithmetic.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

from ledger import (
    Account,
    AccountFlags,
    Ledger,
    Result,
    Status,
    Transfer,
    TransferFlags,
    open_ledger,
)

CURRENCY = "KES"
CURRENCY_MINOR_DIGITS = 2
"""The demo runs in one currency; KES has two minor-unit digits (cents)."""

HOLD_TIMEOUT_S = 900
"""The never-confirmed checkout's hold expires after 15 minutes."""

DAY_LENGTH_S = HOLD_TIMEOUT_S + 60
"""How far before the wall clock the demo's day starts (long enough for the expiry)."""

# Account codes (the kind of account).
CODE_WALLET = 1
CODE_AGENT_FLOAT = 2
CODE_AGENT_CASH = 3
CODE_ESCROW = 4
CODE_SELLER_PROCEEDS = 5
CODE_FEES = 6
CODE_PROVIDER_CLEARING = 7

# Transfer codes (why money moved).
CODE_FLOAT_TOP_UP = 101
CODE_CASH_IN = 102
CODE_CASH_OUT = 103
CODE_PAYMENT = 104
CODE_ORDER_HOLD = 105
CODE_ORDER_RELEASE = 106
CODE_FEE = 107

DEBITS_LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
CREDITS_LIMITED = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
NO_FLAGS = TransferFlags(0)


def format_amount(amount_minor: int, currency: str = CURRENCY) -> str:
    """``123456`` -> ``KES 1,234.56``; integer arithmetic only."""
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), 10**CURRENCY_MINOR_DIGITS)
    text = f"{major:,}"
    if CURRENCY_MINOR_DIGITS:
        text += f".{minor:0{CURRENCY_MINOR_DIGITS}d}"
    return f"{currency} {sign}{text}"


class DemoClock:
    """The ledger's clock during the demo: timezone-aware UTC, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)


class UnexpectedAnswer(Exception):
    """The ledger answered a demo step otherwise than the demo expects."""


@dataclass(frozen=True)
class DemoAccount:
    """One of the day's accounts; ``debit_normal`` says which side its balance is on."""

    name: str
    code: int
    flags: AccountFlags
    debit_normal: bool = False
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass
class VillageDay:
    """The accounts of one demo run and the steps it takes on a ledger."""

    led: Ledger
    clock: DemoClock
    out: TextIO
    accounts: dict[str, DemoAccount] = field(default_factory=dict)

    # -- helpers ------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def id_of(self, name: str) -> uuid.UUID:
        return self.accounts[name].id

    def transfer(
        self,
        debit: str,
        credit: str,
        amount_minor: int,
        code: int,
        flags: TransferFlags = NO_FLAGS,
        *,
        timeout_s: int = 0,
    ) -> Transfer:
        return Transfer(
            id=uuid.uuid4(),
            debit_account_id=self.id_of(debit),
            credit_account_id=self.id_of(credit),
            amount=amount_minor,
            currency=CURRENCY,
            code=code,
            flags=flags,
            timeout_s=timeout_s,
        )

    def resolve(
        self,
        hold: Transfer,
        flags: TransferFlags,
        amount_minor: int | None = None,
    ) -> Transfer:
        """A post or void of ``hold``: accounts and currency come from the hold."""
        return Transfer(
            id=uuid.uuid4(),
            debit_account_id=None,
            credit_account_id=None,
            amount=amount_minor,
            currency=None,
            code=hold.code,
            flags=flags,
            pending_id=hold.id,
        )

    def submit(self, step: str, transfers: Sequence[Transfer], expected: Sequence[Status]) -> str:
        """Create ``transfers``; answer their statuses as text, or raise if unexpected."""
        results: list[Result] = self.led.create_transfers(list(transfers))
        statuses = [result.status for result in results]
        if statuses != list(expected):
            got = ", ".join(statuses)
            want = ", ".join(expected)
            raise UnexpectedAnswer(f"{step}: the ledger answered [{got}], expected [{want}]")
        return ", ".join(statuses)

    def balance_minor(self, name: str) -> int:
        """The posted balance on the account's normal side."""
        account = self.accounts[name]
        [found] = self.led.lookup_accounts([account.id])
        if account.debit_normal:
            return found.debits_posted - found.credits_posted
        return found.credits_posted - found.debits_posted

    # -- the day ------------------------------------------------------------------

    def open_accounts(self) -> None:
        day = [
            DemoAccount("Amina (wallet)", CODE_WALLET, DEBITS_LIMITED),
            DemoAccount("Baraka (wallet)", CODE_WALLET, DEBITS_LIMITED),
            DemoAccount("Chebet (wallet)", CODE_WALLET, DEBITS_LIMITED),
            DemoAccount("agent float", CODE_AGENT_FLOAT, DEBITS_LIMITED),
            DemoAccount("agent cash", CODE_AGENT_CASH, CREDITS_LIMITED, debit_normal=True),
            DemoAccount("storefront escrow", CODE_ESCROW, DEBITS_LIMITED),
            DemoAccount("seller proceeds", CODE_SELLER_PROCEEDS, DEBITS_LIMITED),
            DemoAccount("platform fee income", CODE_FEES, DEBITS_LIMITED),
            DemoAccount("provider clearing", CODE_PROVIDER_CLEARING, AccountFlags(0), True),
        ]
        self.accounts = {account.name: account for account in day}
        results = self.led.create_accounts(
            [
                Account(
                    id=account.id,
                    currency=CURRENCY,
                    code=account.code,
                    flags=account.flags,
                    metadata={"name": account.name, "demo": "village day"},
                )
                for account in day
            ]
        )
        refused = [
            f"{day[r.index].name}: {r.status}" for r in results if r.status != Status.CREATED
        ]
        if refused:
            raise UnexpectedAnswer(f"opening accounts: {'; '.join(refused)}")
        wallets = sum(1 for account in day if account.code == CODE_WALLET)
        others = ", ".join(account.name for account in day if account.code != CODE_WALLET)
        self.say(f"opened {len(day)} {CURRENCY} accounts: {wallets} villager wallets, {others}")

    def top_up_float(self, amount_minor: int) -> None:
        status = self.submit(
            "float top-up",
            [self.transfer("provider clearing", "agent float", amount_minor, CODE_FLOAT_TOP_UP)],
            [Status.CREATED],
        )
        self.say(
            f"float top-up at the bank: {format_amount(amount_minor)} -> agent float: {status}"
        )

    def cash_in(self, who: str, amount_minor: int) -> None:
        """The agent's float pays the wallet; the agent's cash drawer grows (all or nothing)."""
        wallet = f"{who} (wallet)"
        status = self.submit(
            f"cash-in {who}",
            [
                self.transfer(
                    "agent float", wallet, amount_minor, CODE_CASH_IN, TransferFlags.LINKED
                ),
                self.transfer("agent cash", "provider clearing", amount_minor, CODE_CASH_IN),
            ],
            [Status.CREATED, Status.CREATED],
        )
        self.say(f"cash-in {who}: {format_amount(amount_minor)}: {status}")

    def pay(self, payer: str, payee: str, amount_minor: int) -> Transfer:
        payment = self.transfer(
            f"{payer} (wallet)", f"{payee} (wallet)", amount_minor, CODE_PAYMENT
        )
        status = self.submit(f"{payer} pays {payee}", [payment], [Status.CREATED])
        self.say(f"{payer} pays {payee} {format_amount(amount_minor)}: {status}")
        return payment

    def order_delivered_in_part(
        self, who: str, ordered_minor: int, delivered_minor: int, fee_minor: int
    ) -> None:
        hold = self.transfer(
            f"{who} (wallet)",
            "storefront escrow",
            ordered_minor,
            CODE_ORDER_HOLD,
            TransferFlags.PENDING,
        )
        status = self.submit("order 1 hold", [hold], [Status.CREATED])
        self.say(f"order 1: {who}'s {format_amount(ordered_minor)} held in escrow: {status}")
        post = self.resolve(hold, TransferFlags.POST_PENDING, delivered_minor)
        status = self.submit("order 1 post", [post], [Status.CREATED])
        released = format_amount(ordered_minor - delivered_minor)
        self.say(
            f"order 1 delivered in part: {format_amount(delivered_minor)} posted, "
            f"{released} back to {who}: {status}"
        )
        status = self.submit(
            "order 1 release",
            [
                self.transfer(
                    "storefront escrow",
                    "seller proceeds",
                    delivered_minor - fee_minor,
                    CODE_ORDER_RELEASE,
                    TransferFlags.LINKED,
                ),
                self.transfer("storefront escrow", "platform fee income", fee_minor, CODE_FEE),
            ],
            [Status.CREATED, Status.CREATED],
        )
        self.say(
            f"order 1 released: {format_amount(delivered_minor - fee_minor)} to the seller, "
            f"{format_amount(fee_minor)} platform fee: {status}"
        )

    def order_cancelled(self, who: str, amount_minor: int) -> None:
        hold = self.transfer(
            f"{who} (wallet)",
            "storefront escrow",
            amount_minor,
            CODE_ORDER_HOLD,
            TransferFlags.PENDING,
        )
        void = self.resolve(hold, TransferFlags.VOID_PENDING)
        status = self.submit("order 2", [hold, void], [Status.CREATED, Status.CREATED])
        self.say(
            f"order 2: {who}'s {format_amount(amount_minor)} held, cancelled, voided: {status}"
        )

    def order_never_confirmed(self, who: str, amount_minor: int) -> None:
        hold = self.transfer(
            f"{who} (wallet)",
            "storefront escrow",
            amount_minor,
            CODE_ORDER_HOLD,
            TransferFlags.PENDING,
            timeout_s=HOLD_TIMEOUT_S,
        )
        status = self.submit("order 3 hold", [hold], [Status.CREATED])
        self.say(
            f"order 3: {who}'s {format_amount(amount_minor)} held for {HOLD_TIMEOUT_S} s, "
            f"never confirmed: {status}"
        )
        self.clock.advance(HOLD_TIMEOUT_S + 1)
        voided = self.led.expire_pending()
        if voided < 1:
            raise UnexpectedAnswer(f"expire_pending voided {voided} holds, expected at least 1")
        [found] = self.led.lookup_transfers([hold.id])
        self.say(
            f"clock +{HOLD_TIMEOUT_S + 1} s: expire_pending voided {voided} hold(s); "
            f"{who}'s {format_amount(found.amount or 0)} is free again"
        )

    def cash_out(self, who: str, amount_minor: int, fee_minor: int) -> None:
        """Wallet pays the float back and a fee; the agent's cash drawer shrinks."""
        wallet = f"{who} (wallet)"
        status = self.submit(
            f"cash-out {who}",
            [
                self.transfer(
                    wallet, "agent float", amount_minor, CODE_CASH_OUT, TransferFlags.LINKED
                ),
                self.transfer(
                    "provider clearing",
                    "agent cash",
                    amount_minor,
                    CODE_CASH_OUT,
                    TransferFlags.LINKED,
                ),
                self.transfer(wallet, "platform fee income", fee_minor, CODE_FEE),
            ],
            [Status.CREATED] * 3,
        )
        self.say(
            f"cash-out {who}: {format_amount(amount_minor)} "
            f"(fee {format_amount(fee_minor)}): {status}"
        )

    def overdraw(self, who: str, payee: str, amount_minor: int) -> None:
        payment = self.transfer(f"{who} (wallet)", f"{payee} (wallet)", amount_minor, CODE_PAYMENT)
        status = self.submit("overdraw", [payment], [Status.EXCEEDS_CREDITS])
        self.say(f"{who} tries to pay {payee} {format_amount(amount_minor)}: refused, {status}")

    def failing_chain(self, who: str, payee: str, amount_minor: int, fee_minor: int) -> None:
        before = self.balance_minor(f"{who} (wallet)")
        status = self.submit(
            "linked chain",
            [
                self.transfer(
                    f"{who} (wallet)",
                    f"{payee} (wallet)",
                    amount_minor,
                    CODE_PAYMENT,
                    TransferFlags.LINKED,
                ),
                self.transfer(f"{who} (wallet)", "platform fee income", fee_minor, CODE_FEE),
            ],
            [Status.LINKED_EVENT_FAILED, Status.EXCEEDS_CREDITS],
        )
        if self.balance_minor(f"{who} (wallet)") != before:
            raise UnexpectedAnswer("linked chain: a failed chain moved money")
        self.say(
            f"{who} pays {payee} {format_amount(amount_minor)} linked with a "
            f"{format_amount(fee_minor)} fee that would overdraw: {status}; nothing moved"
        )

    def replay(self, payment: Transfer) -> None:
        status = self.submit("replay", [payment], [Status.EXISTS])
        self.say(f"the same payment sent again (same id): {status}; nothing moved")

    def print_balances(self) -> None:
        self.say("balances (posted):")
        rows = [
            (name, format_amount(self.balance_minor(name)).split(" ", 1)) for name in self.accounts
        ]
        name_width = max(len(name) for name, _ in rows)
        number_width = max(len(number) for _, (_, number) in rows)
        for name, (currency, number) in rows:
            self.say(f"  {name:<{name_width}}  {currency} {number:>{number_width}}")


def run_demo(url: str, out: TextIO | None = None, clock: DemoClock | None = None) -> int:
    """Run the village day on the ledger at ``url``; answer the process exit code.

    0: every step answered as expected and the integrity check is clean (the last line
    printed is ``integrity: ok``); 1: otherwise, with the reason printed.
    """
    out = out or sys.stdout
    clock = clock or DemoClock(datetime.now(UTC) - timedelta(seconds=DAY_LENGTH_S))
    led = open_ledger(url, migrate=True, clock=clock)
    try:
        print(f"Village Ledger demo: one village day on {led.dialect}", file=out)
        day = VillageDay(led, clock, out)
        try:
            day.open_accounts()
            day.top_up_float(5_000_000)
            day.cash_in("Amina", 120_000)
            day.cash_in("Baraka", 80_000)
            day.cash_in("Chebet", 50_000)
            payment = day.pay("Amina", "Baraka", 15_000)
            day.order_delivered_in_part("Amina", 90_000, 60_000, 3_000)
            day.order_cancelled("Baraka", 40_000)
            day.order_never_confirmed("Chebet", 25_000)
            day.cash_out("Baraka", 20_000, 500)
            day.overdraw("Chebet", "Amina", 500_000)
            day.failing_chain("Chebet", "Amina", 30_000, 25_000)
            day.replay(payment)
            day.print_balances()
        except UnexpectedAnswer as exc:
            print(f"demo failed: {exc}", file=out)
            return 1
        report = led.check_integrity()
        if not report.ok:
            print("integrity: FAILED", file=out)
            for problem in report.problems:
                print(f"  {problem}", file=out)
            return 1
        print("integrity: ok", file=out)
        return 0
    finally:
        led.close()
