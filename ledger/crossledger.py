"""Transfers between two ledgers (two databases): paired holds, posted on both sides or
voided on both, by a coordinator that may crash anywhere (``docs/SCALING.md``).

A ledger per region (or per currency) is a database of its own, with every invariant of
the core inside it. A payment from a payer on ledger ``east`` to a payee on ledger
``west`` cannot be one transaction, so it goes as an *intent* carried by holds:

1. **source hold** on ``east`` (the intent itself): debit the payer, credit ``east``'s
   *outbound* account for ``west``; pending, no timeout. Its metadata names the intent,
   the target ledger and the payee. Refused (the payer is short): nothing is in flight,
   :class:`~ledger.flows.errors.Refused`.
2. **target hold** on ``west`` (the target's vote): debit ``west``'s *inbound* account
   for ``east``, credit the payee; pending, no timeout. Created (or ``exists``) is a yes;
   any refusal but an overflow is a no (a closed or limited payee, an unknown account).
3. **decision**: yes -> post the source hold, then the target hold; no -> void the
   source hold (the target has nothing to void).

Where the log lives and why no table is needed: the intent is the source hold, written
by the source ledger in the one transaction that reserves the payer's money, so an
intent without its reservation (or the reverse) cannot exist. The decision is the target
hold's outcome, durable in the target's database before either side is posted or voided,
and it never changes: a created hold stays (no timeout), and a refused id stays refused
(the core spends the id of a refusal that could change later, so a retry answers
``id_already_failed``; the other refusals are fixed by the accounts' currencies, which
never change). Overflows are the one refusal that could change: they leave the intent in
flight for the next pass. So any number of coordinators, crashed and restarted in any
order, compute the same decision, and every step has an id derived from the intent id
(uuid5), so repeating it answers ``exists`` and moves nothing.

Recovery needs no list of its own either: an unfinished intent is an open hold on an
outbound account (its source side not yet resolved) or on an inbound account (its target
side not yet posted); :meth:`Coordinator.recover` reads both through the published view
``journal_transfers`` and finishes each one.

What each ledger keeps on its own: every transfer is an ordinary transfer of one ledger,
so debits equal credits in each, and limits hold in each. Across the two, for the link
``east -> west`` in one currency, the money in flight is
``outbound.credits_pending + outbound.credits_posted - inbound.debits_posted`` (the
source side reserved or posted, the target side not yet posted); customers' money plus
that is constant (``tests/test_crossledger_simulation.py``). ``outbound`` on ``east``
and ``inbound`` on ``west`` then hold what ``east`` owes ``west``: the regions settle it
between themselves outside the ledger, as a settlement window does.

Not here: cancelling an intent whose target cannot be reached (a coordinator that has not
heard the target's vote must wait: voiding the source alone could pair with a target
hold that lands later), exchange between currencies (two links and a rate), and an
outbox event for the payee's receipt.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.tx import Tx
from ledger.core.values import Account, Result, Status, Transfer, TransferFlags
from ledger.flows.errors import Conflict, Refused
from ledger.limits import AMOUNT_MAX_MINOR

__all__ = [
    "CROSS_NAMESPACE",
    "CROSS_TRANSFER_CODE",
    "INBOUND_ACCOUNT_CODE",
    "LEDGER_NAME_PATTERN",
    "OUTBOUND_ACCOUNT_CODE",
    "RECOVERY_PAGE_MAX",
    "SOURCE_HOLD",
    "SOURCE_POST",
    "SOURCE_VOID",
    "TARGET_HOLD",
    "TARGET_POST",
    "Coordinator",
    "CrossTransfer",
    "LedgerPort",
    "Link",
    "Outcome",
    "State",
    "inbound_account_id",
    "intent_of",
    "leg_id",
    "open_link",
    "source_hold",
    "outbound_account_id",
]

T = TypeVar("T")

CROSS_NAMESPACE = uuid.UUID("9d3b6f2a-4c1e-4a7d-8e25-0f6b1c7d3e94")
"""Namespace of the derived ids: settlement accounts and each leg of an intent."""
CROSS_TRANSFER_CODE = 931
"""Core transfer ``code`` of every leg of a cross-ledger transfer."""
OUTBOUND_ACCOUNT_CODE = 451
"""A ledger's account for money sent to one peer ledger in one currency (credited)."""
INBOUND_ACCOUNT_CODE = 452
"""A ledger's account for money received from one peer ledger in one currency (debited)."""
LEDGER_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""A ledger's name (part of every derived id, so never renamed): at most 32 characters."""
RECOVERY_PAGE_MAX = 1000
"""Open holds read per query while recovering (the scan pages by ``seq``)."""

# The legs of an intent, each a transfer id derived by :func:`leg_id`.
SOURCE_HOLD = "source_hold"
TARGET_HOLD = "target_hold"
SOURCE_POST = "source_post"
SOURCE_VOID = "source_void"
TARGET_POST = "target_post"

_PENDING = TransferFlags.PENDING.value
_OK = frozenset({Status.CREATED, Status.EXISTS})
_TRANSIENT = frozenset({Status.OVERFLOWS_DEBITS, Status.OVERFLOWS_CREDITS})
_CLASHES = frozenset(s for s in Status if s.value.startswith("exists_with_different_"))


class LedgerPort(Protocol):
    """What the coordinator uses of a :class:`~ledger.Ledger` (a test wraps one in this)."""

    def create_accounts(self, accounts: Sequence[Account]) -> list[Result]: ...

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[Result]: ...

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[Transfer]: ...

    def transact(self, work: Callable[[Tx], T]) -> T: ...


class State(StrEnum):
    POSTED = "posted"
    """Both holds posted: the payee has the money."""
    VOIDED = "voided"
    """The source hold voided (the target refused): the payer has the money back."""
    IN_FLIGHT = "in_flight"
    """Not decided yet (the target hold overflowed): the next recovery tries again."""


@dataclass(frozen=True, slots=True)
class Outcome:
    intent_id: uuid.UUID
    state: State
    target_status: Status
    """What the target ledger answered to its hold (``exists`` on a replay)."""


@dataclass(frozen=True, slots=True)
class Link:
    """Two ledgers that pay each other in one currency (both directions)."""

    a: str
    b: str
    currency: str


@dataclass(frozen=True, slots=True)
class CrossTransfer:
    """A payment from ``payer_id`` on ledger ``source`` to ``payee_id`` on ``target``."""

    intent_id: uuid.UUID
    """The client's id: the idempotency key of the whole payment."""
    source: str
    target: str
    payer_id: uuid.UUID
    payee_id: uuid.UUID
    amount_minor: int
    currency: str


def leg_id(intent_id: uuid.UUID, leg: str) -> uuid.UUID:
    """The transfer id of one leg of an intent (the same on every coordinator)."""
    return uuid.uuid5(CROSS_NAMESPACE, f"{intent_id}:{leg}")


def outbound_account_id(home: str, peer: str, currency: str) -> uuid.UUID:
    """``home``'s account for money sent to ``peer`` in ``currency`` (on ``home``)."""
    return uuid.uuid5(CROSS_NAMESPACE, f"outbound:{home}:{peer}:{currency}")


def inbound_account_id(home: str, peer: str, currency: str) -> uuid.UUID:
    """``home``'s account for money received from ``peer`` in ``currency`` (on ``home``)."""
    return uuid.uuid5(CROSS_NAMESPACE, f"inbound:{home}:{peer}:{currency}")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not LEDGER_NAME_PATTERN.fullmatch(name):
        raise MalformedRequest(f"a ledger name matches {LEDGER_NAME_PATTERN.pattern}: {name!r}")


def open_link(ledgers: Mapping[str, LedgerPort], link: Link) -> None:
    """Create the four settlement accounts of ``link`` (idempotent)."""
    for home, peer in ((link.a, link.b), (link.b, link.a)):
        _check_name(home)
        accounts = [
            Account(
                account_id(home, peer, link.currency), link.currency, code, metadata={"peer": peer}
            )
            for account_id, code in (
                (outbound_account_id, OUTBOUND_ACCOUNT_CODE),
                (inbound_account_id, INBOUND_ACCOUNT_CODE),
            )
        ]
        for result in ledgers[home].create_accounts(accounts):
            if result.status not in _OK:
                raise InvariantViolation(f"settlement account on {home}: {result.status}")


def _metadata(intent: CrossTransfer) -> dict[str, str]:
    return {
        "cross_intent": str(intent.intent_id),
        "source": intent.source,
        "target": intent.target,
        "payer": str(intent.payer_id),
        "payee": str(intent.payee_id),
    }


def source_hold(intent: CrossTransfer) -> Transfer:
    """The intent as the source ledger keeps it: its hold (pending, no timeout)."""
    return Transfer(
        leg_id(intent.intent_id, SOURCE_HOLD),
        intent.payer_id,
        outbound_account_id(intent.source, intent.target, intent.currency),
        intent.amount_minor,
        intent.currency,
        CROSS_TRANSFER_CODE,
        TransferFlags.PENDING,
        metadata=_metadata(intent),
    )


def _target_hold(intent: CrossTransfer) -> Transfer:
    return Transfer(
        leg_id(intent.intent_id, TARGET_HOLD),
        inbound_account_id(intent.target, intent.source, intent.currency),
        intent.payee_id,
        intent.amount_minor,
        intent.currency,
        CROSS_TRANSFER_CODE,
        TransferFlags.PENDING,
        metadata=_metadata(intent),
    )


def _resolution(intent_id: uuid.UUID, leg: str, hold: str, flag: TransferFlags) -> Transfer:
    return Transfer(
        leg_id(intent_id, leg),
        None,
        None,
        None,
        None,
        CROSS_TRANSFER_CODE,
        flag,
        pending_id=leg_id(intent_id, hold),
    )


def intent_of(hold: Transfer) -> CrossTransfer:
    """The intent a source or target hold carries (its metadata and its own fields)."""
    meta = hold.metadata or {}
    if hold.amount is None or hold.currency is None or "cross_intent" not in meta:
        raise InvariantViolation(f"transfer {hold.id} is no cross-ledger hold")
    return CrossTransfer(
        uuid.UUID(meta["cross_intent"]),
        meta["source"],
        meta["target"],
        uuid.UUID(meta["payer"]),
        uuid.UUID(meta["payee"]),
        hold.amount,
        hold.currency,
    )


class Coordinator:
    """Drives intents between the named ledgers of ``links``. Holds no state of its own:
    a fresh one after a crash calls :meth:`recover` and carries on."""

    def __init__(self, ledgers: Mapping[str, LedgerPort], links: Iterable[Link]) -> None:
        self._ledgers = dict(ledgers)
        self._links = tuple(links)
        for link in self._links:
            for name in (link.a, link.b):
                _check_name(name)
                if name not in self._ledgers:
                    raise MalformedRequest(f"link names ledger {name!r}, which was not given")

    def transfer(self, intent: CrossTransfer) -> Outcome:
        """Start the intent and carry it to its end (or leave it in flight on an overflow).
        A replay of the same intent answers as the first time did."""
        self.start(intent)
        return self._finish(intent)

    def start(self, intent: CrossTransfer) -> None:
        """Write the intent: the source hold. :class:`Refused` if the source refuses it
        (the payer is short), :class:`Conflict` if the intent id was used for another
        payment; nothing is in flight then."""
        self._check(intent)
        source = self._ledgers[intent.source]
        [result] = source.create_transfers([source_hold(intent)])
        if result.status is Status.EXISTS:
            # The core compares a hold's fields, not its metadata: the payee is only there.
            [hold] = source.lookup_transfers([leg_id(intent.intent_id, SOURCE_HOLD)])
            if intent_of(hold) != intent:
                raise Conflict("cross_intent_reused", "another payment has this id")
        if result.status in _CLASHES:
            raise Conflict("cross_intent_reused", f"another payment has this id: {result.status}")
        if result.status not in _OK:
            raise Refused("cross_transfer_refused", f"the source ledger said {result.status}")

    def _finish(self, intent: CrossTransfer) -> Outcome:
        """Ask the target's vote (again: it answers as the first time), then resolve the
        source side and the target side by it. Only for an intent whose source hold was
        created: a target hold without one could never be posted."""
        [vote] = self._ledgers[intent.target].create_transfers([_target_hold(intent)])
        status = vote.status
        if status in _CLASHES:
            raise InvariantViolation(f"target hold of {intent.intent_id}: {status}")
        if status in _TRANSIENT:
            return Outcome(intent.intent_id, State.IN_FLIGHT, status)
        if status in _OK:
            self._resolve(intent.source, intent.intent_id, SOURCE_POST, SOURCE_HOLD)
            self._resolve(intent.target, intent.intent_id, TARGET_POST, TARGET_HOLD)
            return Outcome(intent.intent_id, State.POSTED, status)
        self._resolve(intent.source, intent.intent_id, SOURCE_VOID, SOURCE_HOLD)
        return Outcome(intent.intent_id, State.VOIDED, status)

    def recover(self) -> list[Outcome]:
        """Finish every unfinished intent of the links; their outcomes."""
        return [self._finish(intent) for intent in self.unfinished()]

    def unfinished(self) -> list[CrossTransfer]:
        """Intents with an open hold on either side, each once, oldest first per ledger."""
        found: dict[uuid.UUID, CrossTransfer] = {}
        for link in self._links:
            for source, target in ((link.a, link.b), (link.b, link.a)):
                outbound = outbound_account_id(source, target, link.currency)
                inbound = inbound_account_id(target, source, link.currency)
                for hold in self._open_holds(source, "credit_account_id", outbound):
                    found.setdefault(intent_of(hold).intent_id, intent_of(hold))
                for hold in self._open_holds(target, "debit_account_id", inbound):
                    found.setdefault(intent_of(hold).intent_id, intent_of(hold))
        return list(found.values())

    def _open_holds(self, name: str, side: str, account_id: uuid.UUID) -> list[Transfer]:
        ledger = self._ledgers[name]
        holds: list[Transfer] = []
        after_seq = 0
        while True:
            page = ledger.transact(_open_hold_page(side, account_id, after_seq))
            holds += ledger.lookup_transfers([hold_id for _, hold_id in page])
            if len(page) < RECOVERY_PAGE_MAX:
                return holds
            after_seq = page[-1][0]

    def _resolve(self, name: str, intent_id: uuid.UUID, leg: str, hold: str) -> None:
        flag = TransferFlags.VOID_PENDING if leg == SOURCE_VOID else TransferFlags.POST_PENDING
        [result] = self._ledgers[name].create_transfers([_resolution(intent_id, leg, hold, flag)])
        if result.status not in _OK:
            # The decision never changes, so the other resolution cannot be there: a bug,
            # or a hand that resolved a cross-ledger hold outside the coordinator.
            raise InvariantViolation(f"{leg} of {intent_id} on {name}: {result.status}")

    def _check(self, intent: CrossTransfer) -> None:
        if not isinstance(intent.intent_id, uuid.UUID):
            raise MalformedRequest("intent_id must be a UUID")
        amount = intent.amount_minor
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise MalformedRequest("amount_minor must be an int")
        if not 1 <= amount <= AMOUNT_MAX_MINOR:
            raise MalformedRequest(f"amount_minor must be within 1..{AMOUNT_MAX_MINOR}")
        pair = ({intent.source, intent.target}, intent.currency)
        if not any(({k.a, k.b}, k.currency) == pair for k in self._links):
            raise Refused(
                "cross_link_unknown",
                f"no link {intent.source} <-> {intent.target} in {intent.currency}",
            )


def _open_hold_page(
    side: str, account_id: uuid.UUID, after_seq: int
) -> Callable[[Tx], list[tuple[int, uuid.UUID]]]:
    """A read of (seq, id) of open cross-ledger holds whose ``side`` is ``account_id``,
    after ``after_seq``; open = pending with no post or void naming it (no timeout
    expires them)."""
    if side not in ("debit_account_id", "credit_account_id"):
        raise MalformedRequest(f"side must name an account column, not {side!r}")
    return lambda tx: _select_open_holds(tx, side, account_id, after_seq)


def _select_open_holds(
    tx: Tx, side: str, account_id: uuid.UUID, after_seq: int
) -> list[tuple[int, uuid.UUID]]:
    rows = tx.execute(
        f"SELECT h.seq, h.id FROM journal_transfers h WHERE h.{side} = :account"
        " AND h.code = :code AND (h.flags & :pending) = :pending AND h.seq > :after"
        " AND NOT EXISTS (SELECT 1 FROM journal_transfers r WHERE r.pending_id = h.id)"
        " ORDER BY h.seq LIMIT :limit",
        {
            "account": account_id,
            "code": CROSS_TRANSFER_CODE,
            "pending": _PENDING,
            "after": after_seq,
            "limit": RECOVERY_PAGE_MAX,
        },
    )
    return [(int(seq), hold_id) for seq, hold_id in rows]
