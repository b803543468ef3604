"""The state machine of the ledger: applies a batch to loaded state, in memory.

This is TigerBeetle's ``create_accounts`` / ``create_transfers`` logic carried into
Python. It knows nothing of databases: a store loads the accounts, the transfers and the
holds that a batch names (locking the accounts), hands them to :class:`TransferBatch`,
and writes back what it produced, in one database transaction. The same code runs for
SQLite and PostgreSQL, so both engines answer alike.

Guarantees, given correctly loaded state:

* statuses are checked in the precedence order of ``Status``;
* a linked chain is all or nothing (an undo log restores the state of a failed chain);
* a transfer changes its two accounts' counters by the same amount, so per-currency
  debits equal credits, posted and pending;
* limit flags are checked against posted plus pending amounts, so a hold can never push
  an account past its limit when it is posted;
* a hold resolves once: post, void or expiry;
* a reversal moves back at most what its target posted, less every earlier reversal of
  it (those in the database, and those earlier in the batch whose chain did not fail).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from ledger.core import currency as iso4217
from ledger.core.values import (
    COUNTER_MAX,
    SPENDING_STATUSES,
    Account,
    AccountFlags,
    Result,
    Status,
    Transfer,
    TransferFlags,
)

LINKED = TransferFlags.LINKED.value
PENDING = TransferFlags.PENDING.value
POST_PENDING = TransferFlags.POST_PENDING.value
VOID_PENDING = TransferFlags.VOID_PENDING.value
RESOLVING = POST_PENDING | VOID_PENDING
KIND_FLAGS = PENDING | POST_PENDING | VOID_PENDING

ACCOUNT_LINKED = AccountFlags.LINKED.value
DEBITS_MUST_NOT_EXCEED_CREDITS = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS.value
CREDITS_MUST_NOT_EXCEED_DEBITS = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS.value

EXPIRY_NAMESPACE = uuid.UUID("5b0d6c1e-0f4b-4d5e-9a37-6c1d2f0e7a11")

OPEN = 0
POSTED = 1
VOIDED = 2
EXPIRED = 3


def expiry_void_id(hold_id: uuid.UUID) -> uuid.UUID:
    """The id of the void that expiry writes for ``hold_id``: the same on every run."""
    return uuid.uuid5(EXPIRY_NAMESPACE, hold_id.hex)


def chains(linked: Sequence[int]) -> Iterator[tuple[int, int | None]]:
    """The chains of a batch as ``(start, end)``, inclusive, from each event's linked
    flag: an event without the flag ends its chain (alone, it is a chain of one). A last
    chain left open is ``(start, None)``, and nothing after it."""
    start = 0
    while start < len(linked):
        end = start
        while end < len(linked) and linked[end]:
            end += 1
        if end == len(linked):
            yield start, None
            return
        yield start, end
        start = end + 1


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    """How a linked chain ended: ``failed_at`` the event that failed it (``None`` when it
    held) and ``status`` that event's status, or the whole chain's when it held."""

    failed_at: int | None
    status: Status


def chain_outcome(create: Callable[[int], Status], start: int, end: int) -> ChainOutcome:
    """Run ``create(index)`` over a chain until it fails, by TigerBeetle's rule: a chain
    that only replays (every event ``exists``) answers ``exists``; one that mixes
    ``exists`` with anything else fails at its first ``exists``; otherwise the first
    refusal fails it."""
    first_exists: int | None = None
    any_created = False
    for index in range(start, end + 1):
        status = create(index)
        if status is Status.CREATED:
            if first_exists is not None:
                return ChainOutcome(first_exists, Status.EXISTS)
            any_created = True
        elif status is Status.EXISTS:
            if any_created:
                return ChainOutcome(index, Status.EXISTS)
            first_exists = index if first_exists is None else first_exists
        elif first_exists is not None:
            return ChainOutcome(first_exists, Status.EXISTS)
        else:
            return ChainOutcome(index, status)
    return ChainOutcome(None, Status.CREATED if first_exists is None else Status.EXISTS)


def fill_chain(statuses: list[Status], start: int, end: int, outcome: ChainOutcome) -> None:
    """Write a chain's statuses: all its own when it held; else ``linked_event_failed``
    for every event but the one that failed it."""
    if outcome.failed_at is None:
        statuses[start : end + 1] = [outcome.status] * (end + 1 - start)
        return
    statuses[start : end + 1] = [Status.LINKED_EVENT_FAILED] * (end + 1 - start)
    statuses[outcome.failed_at] = outcome.status


def shape_status(t: Transfer, kind: int) -> Status | None:
    """The first refusal a transfer earns from its own fields alone (flags, ids, timeout,
    amount, code), in CORE_API's order; ``None`` when its shape is sound."""
    if kind & (kind - 1):
        return Status.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if t.debit_account_id is not None and t.debit_account_id == t.credit_account_id:
        return Status.ACCOUNTS_MUST_BE_DIFFERENT
    if kind & RESOLVING:
        if t.pending_id is None:
            return Status.PENDING_ID_MUST_NOT_BE_ZERO
        if t.pending_id == t.id:
            return Status.PENDING_ID_MUST_BE_DIFFERENT
    elif t.pending_id is not None:
        return Status.PENDING_ID_MUST_BE_ZERO
    if t.timeout_s and not kind & PENDING:
        return Status.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
    if t.amount == 0:
        return Status.AMOUNT_MUST_NOT_BE_ZERO
    if t.code == 0:
        return Status.CODE_MUST_NOT_BE_ZERO
    return None


class AccountState:
    """An account's row as loaded and locked for one batch; the engine mutates it."""

    __slots__ = (
        "credits_pending",
        "credits_posted",
        "currency",
        "debits_pending",
        "debits_posted",
        "flags",
        "id",
        "original",
        "timestamp_us",
    )

    def __init__(
        self,
        id: uuid.UUID,
        currency: str,
        flags: int,
        debits_pending: int,
        debits_posted: int,
        credits_pending: int,
        credits_posted: int,
        timestamp_us: int,
    ) -> None:
        self.id = id
        self.currency = currency
        self.flags = flags
        self.debits_pending = debits_pending
        self.debits_posted = debits_posted
        self.credits_pending = credits_pending
        self.credits_posted = credits_posted
        self.timestamp_us = timestamp_us
        self.original = (debits_pending, debits_posted, credits_pending, credits_posted)

    def counters(self) -> tuple[int, int, int, int]:
        return (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted)

    def restore(self, counters: tuple[int, int, int, int]) -> None:
        (self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted) = (
            counters
        )

    @property
    def changed(self) -> bool:
        return self.counters() != self.original


@dataclass(slots=True)
class StoredTransfer:
    """What the engine needs to know of a transfer that already exists.

    ``hold_amount`` is set on posts and voids (the amount of the hold they resolve), so
    that a replay leaving ``amount`` unset compares equal to it. ``resolution`` is set on
    holds: ``OPEN``, ``POSTED``, ``VOIDED`` or ``EXPIRED``. ``reverses_id`` is the
    transfer a reversal moves money back from.
    """

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    amount_requested: int | None
    currency: str
    code: int
    flags: int
    pending_id: uuid.UUID | None
    timeout_s: int
    expires_at_us: int | None
    reverses_id: uuid.UUID | None = None
    hold_amount: int | None = None
    resolution: int = OPEN

    @property
    def posted_money(self) -> bool:
        """A plain transfer or a post of a hold: what a reversal may move back.

        Not a hold, a void (nor an expiry's), nor a reversal itself."""
        return not self.flags & (PENDING | VOID_PENDING) and self.reverses_id is None


TransferRow = tuple[
    uuid.UUID,  # id
    uuid.UUID,  # debit_account_id
    uuid.UUID,  # credit_account_id
    int,  # amount
    int | None,  # amount_requested
    str,  # currency
    int,  # code
    int,  # flags
    uuid.UUID | None,  # pending_id
    int,  # timeout_s
    int | None,  # expires_at_us
    uuid.UUID | None,  # reverses_id
    str | None,  # metadata (JSON)
    int,  # created_at_us
    int,  # debit account's debits_posted after this transfer
    int,  # debit account's credits_posted after this transfer
    int,  # credit account's debits_posted after this transfer
    int,  # credit account's credits_posted after this transfer
]
"""A new row of ``transfers``, in the column order the stores insert."""

HoldRow = tuple[uuid.UUID, uuid.UUID, uuid.UUID, int, int | None]
"""A new row of ``pending_holds``: hold id, debit, credit, amount, expires_at_us."""


@dataclass(slots=True)
class Loaded:
    """The state a store loads (and locks) for one batch."""

    accounts: dict[uuid.UUID, AccountState]
    existing: dict[uuid.UUID, StoredTransfer]
    """Transfers of the batch's ids that already exist."""
    holds: dict[uuid.UUID, StoredTransfer]
    """Transfers the batch names as ``pending_id``, with their resolution."""
    spent: set[uuid.UUID]
    """Ids of the batch that an earlier refusal spent."""
    expired_holds: list[StoredTransfer]
    """Open holds past their timeout whose accounts are both loaded: voided first."""
    targets: dict[uuid.UUID, StoredTransfer] = field(default_factory=dict)
    """Transfers the batch names as ``reverses_id`` that exist."""
    reversed_amounts: dict[uuid.UUID, int] = field(default_factory=dict)
    """Per target: the sum of the reversals of it already in the database, read after the
    reversals' accounts were locked (so two batches cannot both spend the same rest)."""


@dataclass(slots=True)
class Outcome:
    """What a batch produced, for the store to write in the same transaction."""

    results: list[Result]
    timestamp_us: int
    transfer_rows: list[TransferRow] = field(default_factory=list)
    spent_ids: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    holds_opened: list[HoldRow] = field(default_factory=list)
    holds_closed: list[uuid.UUID] = field(default_factory=list)
    accounts_changed: list[AccountState] = field(default_factory=list)
    expired_count: int = 0


def metadata_json(metadata: dict[str, str] | None) -> str | None:
    if not metadata:
        return None
    return json.dumps(metadata, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class TransferBatch:
    """Applies one batch of transfers (and due expiries) to loaded state.

    ``now_us`` is the ledger clock (expiry is judged against it); ``timestamp_us`` is the
    ``created_at`` given to every row of the batch, never earlier than any loaded
    account's last change, so that per account, time order is application order.
    """

    __slots__ = (
        "_created",
        "_created_order",
        "_hold_changes",
        "_holds",
        "_holds_opened",
        "_loaded",
        "_reversed",
        "_rows",
        "_spent",
        "_touched",
        "now_us",
        "timestamp_us",
    )

    def __init__(self, loaded: Loaded, now_us: int) -> None:
        self._loaded = loaded
        self.now_us = now_us
        self.timestamp_us = max(
            [now_us, *(account.timestamp_us for account in loaded.accounts.values())]
        )
        self._created: dict[uuid.UUID, StoredTransfer] = {}
        self._created_order: list[uuid.UUID] = []
        self._holds: dict[uuid.UUID, StoredTransfer] = dict(loaded.holds)
        self._spent: dict[uuid.UUID, Status] = {}
        self._rows: list[TransferRow] = []
        self._holds_opened: dict[uuid.UUID, HoldRow] = {}
        self._hold_changes: list[tuple[StoredTransfer, int]] = []
        self._touched: dict[uuid.UUID, tuple[int, int, int, int]] | None = None
        self._reversed: dict[uuid.UUID, int] = dict(loaded.reversed_amounts)
        """Per target: what its reversals took so far, in the database and this batch."""

    # -- the batch --------------------------------------------------------------------

    def run(self, transfers: Sequence[Transfer]) -> Outcome:
        expired_count = self._expire_due()
        results = self._run_chains(transfers)
        return self._outcome(results, expired_count)

    def _run_chains(self, transfers: Sequence[Transfer]) -> list[Result]:
        statuses: list[Status] = [Status.CREATED] * len(transfers)
        for start, end in chains([t.flags.value & LINKED for t in transfers]):
            if end is None:
                statuses[start:] = [Status.LINKED_EVENT_CHAIN_OPEN] * (len(transfers) - start)
            elif start == end:
                statuses[start] = self._create_alone(transfers[start])
            else:
                self._run_chain(transfers, start, end, statuses)
        return [Result(index, status) for index, status in enumerate(statuses)]

    def _create_alone(self, t: Transfer) -> Status:
        status = self._create(t)
        if status in SPENDING_STATUSES:
            self._spend(t.id, status)
        return status

    def _run_chain(
        self, transfers: Sequence[Transfer], start: int, end: int, statuses: list[Status]
    ) -> None:
        """All of ``transfers[start:end + 1]`` or none of it (:func:`chain_outcome`)."""
        mark = self._mark()
        outcome = chain_outcome(lambda index: self._create(transfers[index]), start, end)
        fill_chain(statuses, start, end, outcome)
        if outcome.failed_at is None:
            self._touched = None
            return
        self._rollback(mark)
        if outcome.status in SPENDING_STATUSES:
            self._spend(transfers[outcome.failed_at].id, outcome.status)

    # -- undo log for chains ----------------------------------------------------------

    def _mark(self) -> tuple[int, int, int]:
        self._touched = {}
        return (len(self._rows), len(self._hold_changes), len(self._created_order))

    def _rollback(self, mark: tuple[int, int, int]) -> None:
        """Undo everything since ``mark``: counters, rows, hold states, created ids, and
        what the undone reversals took of their targets."""
        rows, hold_changes, created = mark
        assert self._touched is not None
        for account_id, counters in self._touched.items():
            self._loaded.accounts[account_id].restore(counters)
        self._touched = None
        del self._rows[rows:]
        for hold, resolution in reversed(self._hold_changes[hold_changes:]):
            hold.resolution = resolution
            if hold.id in self._created and hold.id not in self._created_order[created:]:
                # reopened: it was opened earlier in this batch and settled in the chain
                self._holds_opened[hold.id] = self._hold_row(hold)
        del self._hold_changes[hold_changes:]
        for transfer_id in self._created_order[created:]:
            undone = self._created.pop(transfer_id)
            if undone.reverses_id is not None:
                self._reversed[undone.reverses_id] -= undone.amount
            self._holds.pop(transfer_id, None)
            self._holds_opened.pop(transfer_id, None)
        del self._created_order[created:]

    def _touch(self, account: AccountState) -> None:
        touched = self._touched
        if touched is not None and account.id not in touched:
            touched[account.id] = account.counters()

    def _spend(self, transfer_id: uuid.UUID, status: Status) -> None:
        if transfer_id not in self._spent:
            self._spent[transfer_id] = status

    # -- one transfer -----------------------------------------------------------------

    def _create(self, t: Transfer) -> Status:
        flags = t.flags.value
        existing = self._created.get(t.id) or self._loaded.existing.get(t.id)
        if existing is not None:
            return self._compare_existing(t, flags, existing)
        if t.id in self._spent or t.id in self._loaded.spent:
            return Status.ID_ALREADY_FAILED
        refused = shape_status(t, flags & KIND_FLAGS)
        if refused is not None:
            return refused
        if flags & RESOLVING:
            if t.reverses_id is not None:
                # A post or void skips the account and currency statuses that precede.
                return Status.REVERSAL_MUST_BE_PLAIN
            return self._resolve(t, flags)
        return self._move(t, flags)

    def _reversal_status(self, t: Transfer, flags: int) -> Status:
        """The reversal statuses, in CORE_API's order; ``created`` when all pass."""
        assert t.reverses_id is not None and t.amount is not None
        if flags & PENDING:
            return Status.REVERSAL_MUST_BE_PLAIN
        target = self._created.get(t.reverses_id) or self._loaded.targets.get(t.reverses_id)
        if target is None:
            return Status.REVERSAL_NOT_FOUND
        if not target.posted_money:
            return Status.REVERSAL_TARGET_NOT_POSTED
        if (
            t.debit_account_id != target.credit_account_id
            or t.credit_account_id != target.debit_account_id
        ):
            return Status.REVERSAL_MUST_SWAP_ACCOUNTS
        if t.amount > target.amount - self._reversed.get(target.id, 0):
            return Status.EXCEEDS_REVERSIBLE_AMOUNT
        return Status.CREATED

    def _move(self, t: Transfer, flags: int) -> Status:
        """A plain transfer or a new hold."""
        accounts = self._loaded.accounts
        assert t.debit_account_id is not None and t.credit_account_id is not None
        assert t.amount is not None and t.currency is not None
        dr = accounts.get(t.debit_account_id)
        if dr is None:
            return Status.DEBIT_ACCOUNT_NOT_FOUND
        cr = accounts.get(t.credit_account_id)
        if cr is None:
            return Status.CREDIT_ACCOUNT_NOT_FOUND
        if dr.currency != cr.currency:
            return Status.ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY
        if t.currency != dr.currency:
            return Status.CURRENCY_MUST_MATCH_ACCOUNTS
        if t.reverses_id is not None:
            reversal = self._reversal_status(t, flags)
            if reversal is not Status.CREATED:
                return reversal
        amount = t.amount
        dr_debits = dr.debits_pending + dr.debits_posted + amount
        if dr_debits > COUNTER_MAX:
            return Status.OVERFLOWS_DEBITS
        cr_credits = cr.credits_pending + cr.credits_posted + amount
        if cr_credits > COUNTER_MAX:
            return Status.OVERFLOWS_CREDITS
        if dr.flags & DEBITS_MUST_NOT_EXCEED_CREDITS and dr_debits > dr.credits_posted:
            return Status.EXCEEDS_CREDITS
        if cr.flags & CREDITS_MUST_NOT_EXCEED_DEBITS and cr_credits > cr.debits_posted:
            return Status.EXCEEDS_DEBITS
        expires_at_us = self._add_amount(dr, cr, amount, flags, t.timeout_s)
        stored = StoredTransfer(
            id=t.id,
            debit_account_id=dr.id,
            credit_account_id=cr.id,
            amount=amount,
            amount_requested=None,
            currency=dr.currency,
            code=t.code,
            flags=flags,
            pending_id=None,
            timeout_s=t.timeout_s,
            expires_at_us=expires_at_us,
            reverses_id=t.reverses_id,
        )
        self._created[t.id] = stored
        self._created_order.append(t.id)
        if flags & PENDING:
            self._holds[t.id] = stored
            self._holds_opened[t.id] = self._hold_row(stored)
        if t.reverses_id is not None:
            self._reversed[t.reverses_id] = self._reversed.get(t.reverses_id, 0) + amount
        self._append_row(stored, dr, cr, metadata_json(t.metadata))
        return Status.CREATED

    def _add_amount(
        self, dr: AccountState, cr: AccountState, amount: int, flags: int, timeout_s: int
    ) -> int | None:
        """Add a new transfer's amount to its accounts; answer a hold's expiry moment."""
        self._touch(dr)
        self._touch(cr)
        if not flags & PENDING:
            dr.debits_posted += amount
            cr.credits_posted += amount
            return None
        dr.debits_pending += amount
        cr.credits_pending += amount
        return self.timestamp_us + timeout_s * 1_000_000 if timeout_s else None

    def _resolve(self, t: Transfer, flags: int) -> Status:
        """A post or void of a hold."""
        assert t.pending_id is not None
        hold = self._holds.get(t.pending_id) or self._created.get(t.pending_id)
        if hold is None:
            return Status.PENDING_TRANSFER_NOT_FOUND
        if not hold.flags & PENDING:
            return Status.PENDING_TRANSFER_NOT_PENDING
        if t.debit_account_id is not None and t.debit_account_id != hold.debit_account_id:
            return Status.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
        if t.credit_account_id is not None and t.credit_account_id != hold.credit_account_id:
            return Status.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
        if t.currency is not None and t.currency != hold.currency:
            return Status.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY
        if t.amount is not None and t.amount > hold.amount:
            return Status.EXCEEDS_PENDING_TRANSFER_AMOUNT
        if hold.resolution == POSTED:
            return Status.PENDING_TRANSFER_ALREADY_POSTED
        if hold.resolution == VOIDED:
            return Status.PENDING_TRANSFER_ALREADY_VOIDED
        if hold.resolution == EXPIRED:
            return Status.PENDING_TRANSFER_EXPIRED
        if hold.expires_at_us is not None and self.now_us >= hold.expires_at_us:
            return Status.PENDING_TRANSFER_EXPIRED
        posted = t.amount if t.amount is not None else hold.amount
        self._settle(
            hold,
            resolution=POSTED if flags & POST_PENDING else VOIDED,
            transfer_id=t.id,
            flags=flags,
            code=t.code,
            amount_posted=posted if flags & POST_PENDING else 0,
            amount_requested=t.amount,
            metadata=metadata_json(t.metadata),
        )
        return Status.CREATED

    def _settle(
        self,
        hold: StoredTransfer,
        *,
        resolution: int,
        transfer_id: uuid.UUID,
        flags: int,
        code: int,
        amount_posted: int,
        amount_requested: int | None,
        metadata: str | None,
    ) -> None:
        """Resolve ``hold`` once: release its pending amounts, post ``amount_posted``."""
        accounts = self._loaded.accounts
        dr = accounts[hold.debit_account_id]
        cr = accounts[hold.credit_account_id]
        self._touch(dr)
        self._touch(cr)
        dr.debits_pending -= hold.amount
        cr.credits_pending -= hold.amount
        dr.debits_posted += amount_posted
        cr.credits_posted += amount_posted
        self._hold_changes.append((hold, hold.resolution))
        hold.resolution = resolution
        self._holds_opened.pop(hold.id, None)
        stored = StoredTransfer(
            id=transfer_id,
            debit_account_id=dr.id,
            credit_account_id=cr.id,
            amount=amount_posted if resolution == POSTED else hold.amount,
            amount_requested=amount_requested,
            currency=hold.currency,
            code=code,
            flags=flags,
            pending_id=hold.id,
            timeout_s=0,
            expires_at_us=None,
            hold_amount=hold.amount,
        )
        self._created[transfer_id] = stored
        self._created_order.append(transfer_id)
        self._append_row(stored, dr, cr, metadata)

    def _expire_due(self) -> int:
        """Void the loaded open holds whose timeout has passed, before the batch."""
        count = 0
        for hold in self._loaded.expired_holds:
            if hold.resolution != OPEN or hold.expires_at_us is None:
                continue
            if hold.expires_at_us > self.now_us:
                continue
            self._settle(
                hold,
                resolution=EXPIRED,
                transfer_id=expiry_void_id(hold.id),
                flags=VOID_PENDING,
                code=hold.code,
                amount_posted=0,
                amount_requested=None,
                metadata=None,
            )
            count += 1
        return count

    @staticmethod
    def _hold_row(hold: StoredTransfer) -> HoldRow:
        return (
            hold.id,
            hold.debit_account_id,
            hold.credit_account_id,
            hold.amount,
            hold.expires_at_us,
        )

    def _append_row(
        self,
        stored: StoredTransfer,
        dr: AccountState,
        cr: AccountState,
        metadata: str | None,
    ) -> None:
        self._rows.append(
            (
                stored.id,
                dr.id,
                cr.id,
                stored.amount,
                stored.amount_requested,
                stored.currency,
                stored.code,
                stored.flags,
                stored.pending_id,
                stored.timeout_s,
                stored.expires_at_us,
                stored.reverses_id,
                metadata,
                self.timestamp_us,
                dr.debits_posted,
                dr.credits_posted,
                cr.debits_posted,
                cr.credits_posted,
            )
        )

    def _compare_existing(self, t: Transfer, flags: int, e: StoredTransfer) -> Status:
        if flags != e.flags:
            return Status.EXISTS_WITH_DIFFERENT_FLAGS
        if t.pending_id != e.pending_id:
            return Status.EXISTS_WITH_DIFFERENT_PENDING_ID
        if t.timeout_s != e.timeout_s:
            return Status.EXISTS_WITH_DIFFERENT_TIMEOUT
        resolving = e.flags & RESOLVING
        if t.debit_account_id != e.debit_account_id and not (
            resolving and t.debit_account_id is None
        ):
            return Status.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
        if t.credit_account_id != e.credit_account_id and not (
            resolving and t.credit_account_id is None
        ):
            return Status.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
        if resolving:
            asked = t.amount if t.amount is not None else e.hold_amount
            first = e.amount_requested if e.amount_requested is not None else e.hold_amount
            if asked != first:
                return Status.EXISTS_WITH_DIFFERENT_AMOUNT
        elif t.amount != e.amount:
            return Status.EXISTS_WITH_DIFFERENT_AMOUNT
        if t.code != e.code:
            return Status.EXISTS_WITH_DIFFERENT_CODE
        if t.reverses_id != e.reverses_id:
            return Status.EXISTS_WITH_DIFFERENT_REVERSES_ID
        return Status.EXISTS

    # -- the outcome ------------------------------------------------------------------

    def _outcome(self, results: list[Result], expired_count: int) -> Outcome:
        # A hold opened and settled in this same batch never reaches pending_holds.
        closed = [hold.id for hold, _ in self._hold_changes if hold.id not in self._created]
        return Outcome(
            results=results,
            timestamp_us=self.timestamp_us,
            transfer_rows=self._rows,
            spent_ids=[(transfer_id, str(status)) for transfer_id, status in self._spent.items()],
            holds_opened=list(self._holds_opened.values()),
            holds_closed=closed,
            accounts_changed=[a for a in self._loaded.accounts.values() if a.changed],
            expired_count=expired_count,
        )


# -- accounts -------------------------------------------------------------------------


@dataclass(slots=True)
class StoredAccount:
    id: uuid.UUID
    currency: str
    code: int
    flags: int


def create_accounts_in_memory(
    accounts: Sequence[Account], existing: dict[uuid.UUID, StoredAccount]
) -> tuple[list[Result], list[Account]]:
    """Statuses for ``accounts`` given those that exist; and the accounts to insert."""
    statuses: list[Status] = [Status.CREATED] * len(accounts)
    created: dict[uuid.UUID, Account] = {}

    def create(index: int) -> Status:
        a = accounts[index]
        found = existing.get(a.id)
        if (c := created.get(a.id)) is not None:
            found = StoredAccount(c.id, c.currency, c.code, c.flags.value)
        status = account_status(a, found)
        if status is Status.CREATED:
            created[a.id] = a
        return status

    for start, end in chains([a.flags.value & ACCOUNT_LINKED for a in accounts]):
        if end is None:
            statuses[start:] = [Status.LINKED_EVENT_CHAIN_OPEN] * (len(accounts) - start)
            break
        before = set(created)
        outcome = chain_outcome(create, start, end)
        fill_chain(statuses, start, end, outcome)
        if outcome.failed_at is not None:
            for account_id in set(created) - before:
                del created[account_id]
    return [Result(i, s) for i, s in enumerate(statuses)], list(created.values())


def account_status(a: Account, found: StoredAccount | None) -> Status:
    """The status of creating ``a`` when ``found`` already exists with its id (or none)."""
    flags = a.flags.value
    if found is not None:
        if flags != found.flags:
            return Status.EXISTS_WITH_DIFFERENT_FLAGS
        if a.currency != found.currency:
            return Status.EXISTS_WITH_DIFFERENT_CURRENCY
        if a.code != found.code:
            return Status.EXISTS_WITH_DIFFERENT_CODE
        return Status.EXISTS
    limits = DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS
    if flags & limits == limits:
        return Status.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if a.code == 0:
        return Status.CODE_MUST_NOT_BE_ZERO
    if not iso4217.is_supported(a.currency):
        return Status.CURRENCY_NOT_SUPPORTED
    return Status.CREATED


def reversal_targets_named(transfers: Iterable[Transfer]) -> set[uuid.UUID]:
    """The ids a batch names as ``reverses_id`` (the stores load them and their sums)."""
    return {t.reverses_id for t in transfers if t.reverses_id is not None}


def ids_named(transfers: Iterable[Transfer]) -> tuple[set[uuid.UUID], set[uuid.UUID]]:
    """The account ids and the hold ids a batch names."""
    account_ids: set[uuid.UUID] = set()
    pending_ids: set[uuid.UUID] = set()
    for t in transfers:
        if t.debit_account_id is not None:
            account_ids.add(t.debit_account_id)
        if t.credit_account_id is not None:
            account_ids.add(t.credit_account_id)
        if t.pending_id is not None:
            pending_ids.add(t.pending_id)
    return account_ids, pending_ids
