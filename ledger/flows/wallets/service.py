"""The wallets flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.wallets`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ledger.core.errors import InvariantViolation
from ledger.core.tx import Tx
from ledger.core.values import Account, Result, Status, Transfer, TransferFlags
from ledger.flows import events, limits, parties
from ledger.flows.parties import AccountOwner, Kind, Party, Role
from ledger.flows.wallets import repository


class Movement(StrEnum):
    """What a transfer did to a wallet, as the villager reads it."""

    CREDIT = "credit"
    DEBIT = "debit"
    HOLD = "hold"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class Reference:
    """The operation a batch of transfers belongs to, named on the receipts."""

    operation: str
    """``order``, ``cash_in``, ``cash_out``, ``suspense``, ``float_top_up`` ..."""
    operation_id: uuid.UUID | None


_METADATA_OPERATIONS = (
    ("order_id", "order"),
    ("suspense_id", "suspense"),
    ("topup_id", "float_top_up"),
    ("float_transfer_id", "float_transfer"),
    ("payout_id", "payout"),
)


def reference_of(transfers: Iterable[Transfer]) -> Reference | None:
    """The operation the flows' transfer metadata names (``operation_id`` with its
    ``leg`` prefix, ``order_id``, ``suspense_id`` ...), or ``None``."""
    for transfer in transfers:
        meta = transfer.metadata or {}
        if "operation_id" in meta:
            operation = meta.get("leg", "").split(":")[0] or "operation"
            return Reference(operation, uuid.UUID(meta["operation_id"]))
        for key, operation in _METADATA_OPERATIONS:
            if key in meta:
                return Reference(operation, uuid.UUID(meta[key]))
    return None


@dataclass(frozen=True, slots=True)
class _Move:
    """One created transfer (or one lapsed hold) with its accounts and amounts resolved."""

    transfer_id: uuid.UUID
    debit: uuid.UUID
    credit: uuid.UUID
    kind: str
    """``plain``, ``pending``, ``post``, ``void`` or ``expired``."""
    amount_minor: int
    """Moved (plain), held (pending), posted (post) or released (void, expired)."""
    held_minor: int
    """The hold's amount (post, void, expired); 0 otherwise."""

    def movement(self, side: str) -> Movement:
        if self.kind == "pending":
            return Movement.HOLD
        if self.kind in ("void", "expired"):
            return Movement.RELEASE
        return Movement.CREDIT if side == "credit" else Movement.DEBIT

    def effect(self, side: str) -> tuple[int, int]:
        """What this move added to the wallet's (posted balance, pending debits)."""
        if side == "credit":
            return (self.amount_minor if self.kind in ("plain", "post") else 0), 0
        if self.kind == "plain":
            return -self.amount_minor, 0
        if self.kind == "pending":
            return 0, self.amount_minor
        if self.kind == "post":
            return -self.amount_minor, -self.held_minor
        if self.kind == "void":
            return 0, -self.held_minor
        return 0, 0  # expired: the lookup already leaves the lapsed hold out


_MOVING = (Status.CREATED, Status.PENDING_TRANSFER_EXPIRED)
_CREDITING = ("plain", "pending", "post")


def _kind(transfer: Transfer, status: Status) -> str | None:
    flags = transfer.flags
    if TransferFlags.VOID_PENDING in flags:
        return "void" if status is Status.CREATED else "expired"
    if status is not Status.CREATED:
        return None
    if TransferFlags.POST_PENDING in flags:
        return "post"
    return "pending" if TransferFlags.PENDING in flags else "plain"


def _moves(tx: Tx, transfers: Sequence[Transfer], results: Sequence[Result]) -> list[_Move]:
    """The created transfers (and lapsed holds) of the batch, in order, resolved."""
    chosen = [
        (transfers[r.index], kind)
        for r in results
        if r.status in _MOVING and (kind := _kind(transfers[r.index], r.status)) is not None
    ]
    holds = repository.select_holds(
        tx, [t.pending_id for t, _ in chosen if t.pending_id is not None]
    )
    moves: list[_Move] = []
    for t, kind in chosen:
        if t.pending_id is None:
            if t.debit_account_id is None or t.credit_account_id is None or t.amount is None:
                raise InvariantViolation(f"transfer {t.id} was created without its accounts")
            moves.append(_Move(t.id, t.debit_account_id, t.credit_account_id, kind, t.amount, 0))
            continue
        hold = holds[t.pending_id]  # the core found it, in this transaction
        posted = hold.amount_minor if t.amount is None or kind != "post" else t.amount
        transfer_id = t.pending_id if kind == "expired" else t.id
        moves.append(
            _Move(
                transfer_id,
                hold.debit_account_id,
                hold.credit_account_id,
                kind,
                posted,
                hold.amount_minor,
            )
        )
    return moves


def _counterparty(owner: AccountOwner) -> dict[str, Any]:
    return {
        "account_id": str(owner.account_id),
        "party_id": str(owner.party_id),
        "kind": owner.kind,
        "name": owner.name,
        "role": owner.role,
    }


def _is_wallet(owner: AccountOwner | None) -> bool:
    return owner is not None and owner.role == Role.WALLET and owner.kind == Kind.VILLAGER


def after_transfers_in(
    tx: Tx,
    transfers: Sequence[Transfer],
    results: Sequence[Result],
    *,
    reference: Reference | None = None,
) -> None:
    """Right after ``tx.create_transfers(transfers)`` answered ``results``: check the KYC
    maximum of every wallet the batch credited (:class:`Refused`
    ``limit_exceeded_balance``) and write a receipt for every movement of a wallet (see
    the module docstring). ``reference`` names the operation (default: what the
    transfers' metadata names, :func:`reference_of`)."""
    moves = _moves(tx, transfers, results)
    if not moves:
        return
    owners = parties.account_owners(tx, sorted({a for m in moves for a in (m.debit, m.credit)}))
    wallets = {a: o for a, o in owners.items() if _is_wallet(o)}
    if not wallets:
        return
    credited = {m.credit for m in moves if m.credit in wallets and m.kind in _CREDITING}
    for account in sorted(credited):
        owner = wallets[account]
        villager = Party(
            owner.party_id,
            Kind.VILLAGER,
            owner.name,
            owner.currency,
            owner.kyc_tier,
            {Role.WALLET: account},
        )
        limits.check_balance_in(tx, villager=villager)
    _receipts(tx, moves, wallets, owners, reference or reference_of(transfers))


def _receipts(
    tx: Tx,
    moves: Sequence[_Move],
    wallets: Mapping[uuid.UUID, AccountOwner],
    owners: Mapping[uuid.UUID, AccountOwner],
    reference: Reference | None,
) -> None:
    """Emit one receipt per wallet side of each move, with the balances after it."""
    found = {a.id: a for a in tx.lookup_accounts(sorted(wallets))}
    state = {a: _state(found[a]) for a in wallets}
    payloads: list[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]] = []
    for move in reversed(moves):
        for side, account, other in (
            ("credit", move.credit, move.debit),
            ("debit", move.debit, move.credit),
        ):
            if account not in wallets:
                continue
            balance, pending = state[account]
            payload = _payload(move, side, other, owners.get(other), reference)
            payload.update(
                villager_id=str(wallets[account].party_id),
                account_id=str(account),
                currency=found[account].currency,
                balance_minor=balance,
                available_minor=balance - pending,
            )
            payloads.append((wallets[account].party_id, move.transfer_id, payload))
            d_balance, d_pending = move.effect(side)
            state[account] = (balance - d_balance, pending - d_pending)
    for party_id, transfer_id, payload in reversed(payloads):
        events.emit(tx, events.WALLET_RECEIPT, payload, party_id=party_id, subject_id=transfer_id)


def _state(account: Account) -> tuple[int, int]:
    return account.credits_posted - account.debits_posted, account.debits_pending


def _payload(
    move: _Move,
    side: str,
    other: uuid.UUID,
    owner: AccountOwner | None,
    reference: Reference | None,
) -> dict[str, Any]:
    counterparty = (
        _counterparty(owner)
        if owner is not None
        else {"account_id": str(other), "party_id": None, "kind": None, "name": None, "role": None}
    )
    released = move.held_minor - move.amount_minor if move.kind == "post" else 0
    return {
        "movement": move.movement(side).value,
        "side": side,
        "amount_minor": move.amount_minor,
        "released_minor": released,
        "expired": move.kind == "expired",
        "counterparty": counterparty,
        "reference": {
            "transfer_id": str(move.transfer_id),
            "operation": None if reference is None else reference.operation,
            "operation_id": None
            if reference is None or reference.operation_id is None
            else str(reference.operation_id),
        },
    }
