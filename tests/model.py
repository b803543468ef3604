"""A plain reference model of the ledger core, for the stateful and self tests.

It follows ``shared/CORE_API.md`` plus the team's decisions where that page is silent,
and is written to be obviously right rather than fast or clever:

- accounts, transfers, spent ids and hold states live in plain dicts and sets;
- a status is not found by a chain of early returns, as the engine does: the model lists
  every rule an event breaks, each rule a predicate of its own that reads the state, and
  answers the broken rule that comes first in CORE_API's list of statuses
  (``TRANSFER_PRECEDENCE``, ``ACCOUNT_PRECEDENCE``): precedence is data, not code order;
- a chain (a lone event is a chain of one) runs on the live state after a deep copy of
  the whole state; when the chain fails the copy is put back;
- pending counters are never stored: they are summed from the holds that still count at
  the moment asked (pending, and not expired on the clock);
- time is passed in by the caller (the same ``now`` the ledger's clock answers);
- what a transfer has left to reverse is its posted amount less the sum of the created
  transfers that name it in ``reverses_id``, summed afresh each time it is asked.

The model shares only the value types and the ``Status`` names with ``ledger``; none of
the ledger's logic.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from ledger import Account, AccountFlags, Status, Transfer, TransferFlags

E = TypeVar("E", Account, Transfer)

COUNTER_MAX = 2**63 - 1
"""No counter may pass this; an amount must be below 2**63."""

CURRENCIES_ACTIVE = frozenset({"KES", "UGX", "TZS", "USD", "EUR", "CNY"})
"""Active ISO 4217 codes the tests use."""

CURRENCIES_NOT_SUPPORTED = frozenset({"XXX", "XTS", "HRK", "kes", "KSH", "", "EURO"})
"""Codes the tests use that the ledger must refuse: testing/withdrawn/misspelt."""

SPENDING = frozenset(
    {
        Status.DEBIT_ACCOUNT_NOT_FOUND,
        Status.CREDIT_ACCOUNT_NOT_FOUND,
        Status.PENDING_TRANSFER_NOT_FOUND,
        Status.REVERSAL_NOT_FOUND,
        Status.EXCEEDS_CREDITS,
        Status.EXCEEDS_DEBITS,
    }
)
"""Refusals that spend the transfer id (a later resubmission: ``id_already_failed``)."""

TRANSFER_PRECEDENCE: tuple[str, ...] = (
    "created",
    "linked_event_failed",
    "linked_event_chain_open",
    "exists_with_different_flags",
    "exists_with_different_pending_id",
    "exists_with_different_timeout",
    "exists_with_different_debit_account_id",
    "exists_with_different_credit_account_id",
    "exists_with_different_amount",
    "exists_with_different_code",
    "exists_with_different_reverses_id",
    "exists",
    "id_already_failed",
    "flags_are_mutually_exclusive",
    "accounts_must_be_different",
    "pending_id_must_be_zero",
    "pending_id_must_not_be_zero",
    "pending_id_must_be_different",
    "timeout_reserved_for_pending_transfer",
    "amount_must_not_be_zero",
    "code_must_not_be_zero",
    "debit_account_not_found",
    "credit_account_not_found",
    "accounts_must_have_the_same_currency",
    "currency_must_match_accounts",
    "reversal_must_be_plain",
    "reversal_not_found",
    "reversal_target_not_posted",
    "reversal_must_swap_accounts",
    "exceeds_reversible_amount",
    "pending_transfer_not_found",
    "pending_transfer_not_pending",
    "pending_transfer_has_different_debit_account_id",
    "pending_transfer_has_different_credit_account_id",
    "pending_transfer_has_different_currency",
    "exceeds_pending_transfer_amount",
    "pending_transfer_already_posted",
    "pending_transfer_already_voided",
    "pending_transfer_expired",
    "overflows_debits",
    "overflows_credits",
    "exceeds_credits",
    "exceeds_debits",
)
"""CORE_API's transfer statuses, top first (the model's checks follow this order)."""

ACCOUNT_PRECEDENCE: tuple[str, ...] = (
    "created",
    "linked_event_failed",
    "linked_event_chain_open",
    "exists_with_different_flags",
    "exists_with_different_currency",
    "exists_with_different_code",
    "exists",
    "flags_are_mutually_exclusive",
    "code_must_not_be_zero",
    "currency_not_supported",
)
"""CORE_API's account statuses, top first."""

RESOLVING = TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING
LIMIT_FLAGS = (
    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
)

# Hold states.
HOLD_PENDING = "pending"
HOLD_POSTED = "posted"
HOLD_VOIDED = "voided"
HOLD_EXPIRED = "expired"  # voided by expire_pending


def is_supported_currency(currency: str) -> bool:
    if currency in CURRENCIES_ACTIVE:
        return True
    if currency in CURRENCIES_NOT_SUPPORTED:
        return False
    raise AssertionError(f"the model knows nothing of currency {currency!r}")


def is_resolving(flags: TransferFlags) -> bool:
    return bool(flags & RESOLVING)


def check_transfer_args(t: Transfer) -> None:
    """Raise ``ValueError`` where CORE_API calls a transfer malformed."""
    if t.amount is not None and not 0 <= t.amount < 2**63:
        raise ValueError(f"amount out of range: {t.amount}")
    if not is_resolving(t.flags) and None in (
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.currency,
    ):
        raise ValueError(
            "a transfer that is neither post nor void needs accounts, amount, currency"
        )


def first_broken(
    rules: dict[Status, bool], precedence: Sequence[str], otherwise: Status = Status.CREATED
) -> Status:
    """Of the rules broken (those whose value is true), the one ``precedence`` lists
    first; ``otherwise`` when none is."""
    broken = [status for status, is_broken in rules.items() if is_broken]
    return min(broken, key=lambda status: precedence.index(status.value), default=otherwise)


@dataclass
class ModelAccount:
    id: uuid.UUID
    currency: str
    code: int
    flags: AccountFlags
    created_at: datetime
    debits_posted: int = 0
    credits_posted: int = 0


@dataclass
class ModelTransfer:
    """A created transfer as it reads back (a post/void: the hold's accounts and currency)."""

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    currency: str
    code: int
    flags: TransferFlags
    pending_id: uuid.UUID | None
    timeout_s: int
    created_at: datetime
    amount_asked: int
    """The amount a resubmission is compared with: the amount given, or for a post or void
    that gave none, the hold's. It differs from ``amount`` only on a void that gave a
    smaller amount than the hold's (the void still releases, and reads back, all of it)."""
    reverses_id: uuid.UUID | None = None

    @property
    def expires_at(self) -> datetime | None:
        if self.timeout_s == 0:
            return None
        return self.created_at + timedelta(seconds=self.timeout_s)


@dataclass
class ModelState:
    accounts: dict[uuid.UUID, ModelAccount] = field(default_factory=dict)
    transfers: dict[uuid.UUID, ModelTransfer] = field(default_factory=dict)
    """Created transfers, in the order applied (dicts keep insertion order)."""
    spent: set[uuid.UUID] = field(default_factory=set)
    holds: dict[uuid.UUID, str] = field(default_factory=dict)
    """Hold id -> pending / posted / voided / expired."""
    posted_history: list[tuple[datetime, uuid.UUID, int, int]] = field(default_factory=list)
    """(moment, account, debits_posted added, credits_posted added), for ``balance_at``."""
    last_transfers_call_at: datetime | None = None
    """When ``create_transfers`` was last called: the ledger may void holds that had
    expired by then as part of that call, so a later sweep need not count them."""


class LedgerModel:
    """The reference model. Every call takes the moment ``now`` of the ledger's clock."""

    def __init__(self) -> None:
        self.state = ModelState()

    # -- reads ------------------------------------------------------------------------

    def hold_counts(self, hold: ModelTransfer, now: datetime) -> bool:
        """A hold counts in pending counters and limits while pending and not expired."""
        if self.state.holds.get(hold.id) != HOLD_PENDING:
            return False
        expires_at = hold.expires_at
        return expires_at is None or now < expires_at

    def hold_expired_on_clock(self, hold: ModelTransfer, now: datetime) -> bool:
        expires_at = hold.expires_at
        return expires_at is not None and now >= expires_at

    def pending(self, account_id: uuid.UUID, now: datetime) -> tuple[int, int]:
        """(debits_pending, credits_pending) of an account at ``now``."""
        debits = credits = 0
        for hold_id in self.state.holds:
            hold = self.state.transfers[hold_id]
            if not self.hold_counts(hold, now):
                continue
            if hold.debit_account_id == account_id:
                debits += hold.amount
            if hold.credit_account_id == account_id:
                credits += hold.amount
        return debits, credits

    def lookup_accounts(self, ids: Sequence[uuid.UUID], now: datetime) -> list[Account]:
        found: list[Account] = []
        for account_id in ids:
            a = self.state.accounts.get(account_id)
            if a is None:
                continue
            debits_pending, credits_pending = self.pending(a.id, now)
            found.append(
                Account(
                    id=a.id,
                    currency=a.currency,
                    code=a.code,
                    flags=a.flags,
                    debits_pending=debits_pending,
                    debits_posted=a.debits_posted,
                    credits_pending=credits_pending,
                    credits_posted=a.credits_posted,
                    created_at=a.created_at,
                )
            )
        return found

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[Transfer]:
        found: list[Transfer] = []
        for transfer_id in ids:
            t = self.state.transfers.get(transfer_id)
            if t is None:
                continue
            found.append(
                Transfer(
                    id=t.id,
                    debit_account_id=t.debit_account_id,
                    credit_account_id=t.credit_account_id,
                    amount=t.amount,
                    currency=t.currency,
                    code=t.code,
                    flags=t.flags,
                    pending_id=t.pending_id,
                    timeout_s=t.timeout_s,
                    reverses_id=t.reverses_id,
                    created_at=t.created_at,
                )
            )
        return found

    def account_transfers(self, account_id: uuid.UUID) -> list[uuid.UUID]:
        """Ids of the created transfers touching the account, in the order applied."""
        return [
            t.id
            for t in self.state.transfers.values()
            if account_id in (t.debit_account_id, t.credit_account_id)
        ]

    def balance_at(self, account_id: uuid.UUID, at: datetime) -> tuple[int, int] | None:
        """(debits_posted, credits_posted) as of ``at``, inclusive; None if unknown."""
        if account_id not in self.state.accounts:
            return None
        debits = credits = 0
        for moment, touched, debit_delta, credit_delta in self.state.posted_history:
            if touched == account_id and moment <= at:
                debits += debit_delta
                credits += credit_delta
        return debits, credits

    def expiry_horizon(self) -> datetime | None:
        """The latest expiry moment of any hold still pending, if any."""
        moments = [
            expires_at
            for hold_id, state in self.state.holds.items()
            if state == HOLD_PENDING
            and (expires_at := self.state.transfers[hold_id].expires_at) is not None
        ]
        return max(moments, default=None)

    # -- accounts ---------------------------------------------------------------------

    def account_status(self, a: Account) -> Status:
        """The first broken rule of creating ``a``, by CORE_API's precedence."""
        existing = self.state.accounts.get(a.id)
        if existing is not None:
            differs = {
                Status.EXISTS_WITH_DIFFERENT_FLAGS: a.flags != existing.flags,
                Status.EXISTS_WITH_DIFFERENT_CURRENCY: a.currency != existing.currency,
                Status.EXISTS_WITH_DIFFERENT_CODE: a.code != existing.code,
            }
            return first_broken(differs, ACCOUNT_PRECEDENCE, otherwise=Status.EXISTS)
        rules = {
            Status.FLAGS_ARE_MUTUALLY_EXCLUSIVE: a.flags & LIMIT_FLAGS == LIMIT_FLAGS,
            Status.CODE_MUST_NOT_BE_ZERO: a.code == 0,
            Status.CURRENCY_NOT_SUPPORTED: not is_supported_currency(a.currency),
        }
        return first_broken(rules, ACCOUNT_PRECEDENCE)

    def apply_account(self, a: Account, now: datetime) -> None:
        self.state.accounts[a.id] = ModelAccount(
            id=a.id, currency=a.currency, code=a.code, flags=a.flags, created_at=now
        )

    def create_accounts(self, accounts: Sequence[Account], now: datetime) -> list[Status]:
        def status(a: Account) -> Status:
            return self.account_status(a)

        def apply(a: Account) -> None:
            self.apply_account(a, now)

        linked = [bool(a.flags & AccountFlags.LINKED) for a in accounts]
        return self._run_chains(list(accounts), linked, status, apply, spends=lambda _: None)

    # -- transfers --------------------------------------------------------------------

    def exists_status(self, t: Transfer, e: ModelTransfer) -> Status:
        """A resubmitted id against the created transfer: the first field that differs,
        by CORE_API's precedence, else ``exists``. A post or void that leaves accounts or
        amount unset means the hold's."""
        debit, credit, amount = t.debit_account_id, t.credit_account_id, t.amount
        hold = self.state.transfers.get(t.pending_id) if t.pending_id is not None else None
        if is_resolving(t.flags) and hold is not None:
            # A hold the model never saw (a replay with another pending_id) fills nothing:
            # the differing pending_id is answered before accounts or amount matter.
            debit = hold.debit_account_id if debit is None else debit
            credit = hold.credit_account_id if credit is None else credit
            amount = hold.amount if amount is None else amount
        differs = {
            Status.EXISTS_WITH_DIFFERENT_FLAGS: t.flags != e.flags,
            Status.EXISTS_WITH_DIFFERENT_PENDING_ID: t.pending_id != e.pending_id,
            Status.EXISTS_WITH_DIFFERENT_TIMEOUT: t.timeout_s != e.timeout_s,
            Status.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID: debit != e.debit_account_id,
            Status.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID: credit != e.credit_account_id,
            Status.EXISTS_WITH_DIFFERENT_AMOUNT: amount != e.amount_asked,
            Status.EXISTS_WITH_DIFFERENT_CODE: t.code != e.code,
            Status.EXISTS_WITH_DIFFERENT_REVERSES_ID: t.reverses_id != e.reverses_id,
        }
        return first_broken(differs, TRANSFER_PRECEDENCE, otherwise=Status.EXISTS)

    def transfer_status(self, t: Transfer, now: datetime) -> Status:
        """The status of one transfer against the current state: of every rule it
        breaks, the one CORE_API lists first."""
        existing = self.state.transfers.get(t.id)
        if existing is not None:
            return self.exists_status(t, existing)
        rules = {
            Status.ID_ALREADY_FAILED: t.id in self.state.spent,
            **self._shape_rules(t),
            **self._account_rules(t),
            **self._reversal_rules(t),
            **self._hold_rules(t, now),
            **self._counter_rules(t, now),
        }
        return first_broken(rules, TRANSFER_PRECEDENCE)

    @staticmethod
    def _shape_rules(t: Transfer) -> dict[Status, bool]:
        """The rules a transfer's own fields break."""
        kinds = t.flags & (TransferFlags.PENDING | RESOLVING)
        resolving = is_resolving(t.flags)
        return {
            Status.FLAGS_ARE_MUTUALLY_EXCLUSIVE: bin(kinds.value).count("1") > 1,
            Status.ACCOUNTS_MUST_BE_DIFFERENT: t.debit_account_id is not None
            and t.debit_account_id == t.credit_account_id,
            Status.PENDING_ID_MUST_BE_ZERO: not resolving and t.pending_id is not None,
            Status.PENDING_ID_MUST_NOT_BE_ZERO: resolving and t.pending_id is None,
            Status.PENDING_ID_MUST_BE_DIFFERENT: resolving and t.pending_id == t.id,
            Status.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER: t.timeout_s != 0
            and not t.flags & TransferFlags.PENDING,
            Status.AMOUNT_MUST_NOT_BE_ZERO: t.amount == 0,
            Status.CODE_MUST_NOT_BE_ZERO: t.code == 0,
        }

    def _account_rules(self, t: Transfer) -> dict[Status, bool]:
        """A new movement's accounts and currency (a post or void takes its hold's)."""
        if is_resolving(t.flags):
            return {}
        debit = self.state.accounts.get(t.debit_account_id)
        credit = self.state.accounts.get(t.credit_account_id)
        both = debit is not None and credit is not None
        return {
            Status.DEBIT_ACCOUNT_NOT_FOUND: debit is None,
            Status.CREDIT_ACCOUNT_NOT_FOUND: credit is None,
            Status.ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY: both and debit.currency != credit.currency,
            Status.CURRENCY_MUST_MATCH_ACCOUNTS: debit is not None and t.currency != debit.currency,
        }

    def _reversal_rules(self, t: Transfer) -> dict[Status, bool]:
        """What a reversal must be: plain, of a transfer that posted money, with the
        accounts swapped, within what is left to reverse."""
        if t.reverses_id is None:
            return {}
        target = self.state.transfers.get(t.reverses_id)
        plain = not t.flags & (TransferFlags.PENDING | RESOLVING)
        found = target is not None
        return {
            Status.REVERSAL_MUST_BE_PLAIN: not plain,
            Status.REVERSAL_NOT_FOUND: not found,
            Status.REVERSAL_TARGET_NOT_POSTED: found and self.posted_money(target) == 0,
            Status.REVERSAL_MUST_SWAP_ACCOUNTS: found
            and (t.debit_account_id, t.credit_account_id)
            != (target.credit_account_id, target.debit_account_id),
            Status.EXCEEDS_REVERSIBLE_AMOUNT: found and (t.amount or 0) > self.reversible(target),
        }

    def _hold_rules(self, t: Transfer, now: datetime) -> dict[Status, bool]:
        """A post or void against the hold it names."""
        if not is_resolving(t.flags) or t.pending_id is None:
            return {}
        hold = self.state.transfers.get(t.pending_id)
        if hold is None:
            return {Status.PENDING_TRANSFER_NOT_FOUND: True}
        state = self.state.holds.get(hold.id)
        return {
            Status.PENDING_TRANSFER_NOT_PENDING: not hold.flags & TransferFlags.PENDING,
            Status.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID: t.debit_account_id
            not in (None, hold.debit_account_id),
            Status.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID: t.credit_account_id
            not in (None, hold.credit_account_id),
            Status.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY: t.currency not in (None, hold.currency),
            Status.EXCEEDS_PENDING_TRANSFER_AMOUNT: (t.amount or 0) > hold.amount,
            Status.PENDING_TRANSFER_ALREADY_POSTED: state == HOLD_POSTED,
            Status.PENDING_TRANSFER_ALREADY_VOIDED: state == HOLD_VOIDED,
            Status.PENDING_TRANSFER_EXPIRED: state == HOLD_EXPIRED
            or (state == HOLD_PENDING and self.hold_expired_on_clock(hold, now)),
        }

    def _counter_rules(self, t: Transfer, now: datetime) -> dict[Status, bool]:
        """A new movement's counters: no overflow, and each account's limit flag."""
        debit = self.state.accounts.get(t.debit_account_id)
        credit = self.state.accounts.get(t.credit_account_id)
        if is_resolving(t.flags) or debit is None or credit is None or t.amount is None:
            return {}
        debits_after = self.pending(debit.id, now)[0] + debit.debits_posted + t.amount
        credits_after = self.pending(credit.id, now)[1] + credit.credits_posted + t.amount
        return {
            Status.OVERFLOWS_DEBITS: debits_after > COUNTER_MAX,
            Status.OVERFLOWS_CREDITS: credits_after > COUNTER_MAX,
            Status.EXCEEDS_CREDITS: bool(debit.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            and debits_after > debit.credits_posted,
            Status.EXCEEDS_DEBITS: bool(credit.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)
            and credits_after > credit.debits_posted,
        }

    def posted_money(self, t: ModelTransfer) -> int:
        """What ``t`` posted that a reversal may move back: a plain transfer's amount, a
        post's posted amount; 0 for a hold, a void or a reversal."""
        if t.reverses_id is not None:
            return 0
        if t.flags & (TransferFlags.PENDING | TransferFlags.VOID_PENDING):
            return 0
        return t.amount

    def reversible(self, target: ModelTransfer) -> int:
        """What is left of ``target`` to reverse: posted less every created reversal of it."""
        taken = sum(t.amount for t in self.state.transfers.values() if t.reverses_id == target.id)
        return self.posted_money(target) - taken

    def apply_transfer(self, t: Transfer, now: datetime) -> None:
        """Apply a transfer whose status is ``created``."""
        s = self.state
        if is_resolving(t.flags):
            assert t.pending_id is not None
            hold = s.transfers[t.pending_id]
            posting = bool(t.flags & TransferFlags.POST_PENDING)
            amount_asked = hold.amount if t.amount is None else t.amount
            if posting:
                amount = amount_asked
                s.holds[hold.id] = HOLD_POSTED
                self._post(hold.debit_account_id, hold.credit_account_id, amount, now)
            else:
                amount = hold.amount
                s.holds[hold.id] = HOLD_VOIDED
            debit_id, credit_id, currency = (
                hold.debit_account_id,
                hold.credit_account_id,
                hold.currency,
            )
        else:
            assert t.debit_account_id is not None and t.credit_account_id is not None
            assert t.amount is not None and t.currency is not None
            amount = amount_asked = t.amount
            debit_id, credit_id, currency = t.debit_account_id, t.credit_account_id, t.currency
            if t.flags & TransferFlags.PENDING:
                s.holds[t.id] = HOLD_PENDING
            else:
                self._post(debit_id, credit_id, amount, now)
        s.transfers[t.id] = ModelTransfer(
            id=t.id,
            debit_account_id=debit_id,
            credit_account_id=credit_id,
            amount=amount,
            currency=currency,
            code=t.code,
            flags=t.flags,
            pending_id=t.pending_id,
            timeout_s=t.timeout_s,
            created_at=now,
            amount_asked=amount_asked,
            reverses_id=t.reverses_id,
        )

    def _post(self, debit_id: uuid.UUID, credit_id: uuid.UUID, amount: int, now: datetime) -> None:
        s = self.state
        s.accounts[debit_id].debits_posted += amount
        s.accounts[credit_id].credits_posted += amount
        s.posted_history.append((now, debit_id, amount, 0))
        s.posted_history.append((now, credit_id, 0, amount))

    def create_transfers(self, transfers: Sequence[Transfer], now: datetime) -> list[Status]:
        """One status per transfer; raises ``ValueError`` (changing nothing) if malformed."""
        for t in transfers:
            check_transfer_args(t)

        def status(t: Transfer) -> Status:
            return self.transfer_status(t, now)

        def apply(t: Transfer) -> None:
            self.apply_transfer(t, now)

        def spends(t: Transfer) -> None:
            self.state.spent.add(t.id)

        linked = [bool(t.flags & TransferFlags.LINKED) for t in transfers]
        answers = self._run_chains(list(transfers), linked, status, apply, spends)
        self.state.last_transfers_call_at = now
        return answers

    def expirable(self, now: datetime) -> list[ModelTransfer]:
        """The holds still pending whose expiry moment is at or before ``now``."""
        found = []
        for hold_id, state in self.state.holds.items():
            hold = self.state.transfers[hold_id]
            if state == HOLD_PENDING and hold.expires_at is not None and hold.expires_at <= now:
                found.append(hold)
        return found

    def expire_pending_least(self, now: datetime) -> int:
        """The fewest holds ``expire_pending(now)`` may answer (call before it).

        The sweeper voids the holds that expired by ``now``. CORE_API lets the ledger
        write those voids earlier, too (it does, for the accounts a ``create_transfers``
        call touches), so only the holds that expired after the last such call are sure
        to be left for the sweeper.
        """
        last_call = self.state.last_transfers_call_at
        return sum(
            1
            for hold in self.expirable(now)
            if last_call is None or (hold.expires_at is not None and hold.expires_at > last_call)
        )

    def expire_pending(self, now: datetime) -> int:
        """Void (as expired) every pending hold whose expiry moment is at or before ``now``;
        answers how many, the most the ledger's sweep may answer."""
        expirable = self.expirable(now)
        for hold in expirable:
            self.state.holds[hold.id] = HOLD_EXPIRED
        return len(expirable)

    # -- chains -----------------------------------------------------------------------

    def _run_chains(
        self,
        events: list[E],
        linked: list[bool],
        status: Callable[[E], Status],
        apply: Callable[[E], None],
        spends: Callable[[E], None],
    ) -> list[Status]:
        results: list[Status] = []
        start = 0
        while start < len(events):
            end = start
            while end < len(events) and linked[end]:
                end += 1
            if end == len(events):
                # The call ends inside a chain: every event of it answers chain_open.
                results.extend([Status.LINKED_EVENT_CHAIN_OPEN] * (end - start))
                break
            results.extend(self._run_chain(events[start : end + 1], status, apply, spends))
            start = end + 1
        return results

    def _run_chain(
        self,
        chain: list[E],
        status: Callable[[E], Status],
        apply: Callable[[E], None],
        spends: Callable[[E], None],
    ) -> list[Status]:
        saved = copy.deepcopy(self.state)
        statuses: list[Status] = []
        for event in chain:
            answer = status(event)
            statuses.append(answer)
            if answer == Status.CREATED:
                apply(event)
            elif answer != Status.EXISTS:
                break  # the chain fails here
        failed_at = len(statuses) - 1 if statuses[-1] not in _PASSING else None
        exists_at = [i for i, answer in enumerate(statuses) if answer == Status.EXISTS]
        if failed_at is None and len(exists_at) == len(chain):
            return statuses  # a full replay: every event answers exists
        if failed_at is None and not exists_at:
            return statuses  # every event created
        self.state = saved
        keeper = exists_at[0] if exists_at else failed_at
        assert keeper is not None
        results = [Status.LINKED_EVENT_FAILED] * len(chain)
        results[keeper] = statuses[keeper]
        if not exists_at and statuses[keeper] in SPENDING:
            spends(chain[keeper])
        return results


_PASSING = frozenset({Status.CREATED, Status.EXISTS})
