"""Who may see and move what: account ownership and the role rules.

* storefront, agent: create accounts (they own them), see their own accounts and the
  transfers touching them, and create transfers debiting their own accounts (a post or
  void: the hold's debit account); crediting any existing account is allowed (paying);
* auditor: reads everything, writes nothing (403 on every write);
* operator: reads everything, writes any transfer, revokes keys, onboards parties.

A storefront's or an agent's party (``ledger.flows.parties``) has its principal's id:
the principal reads the party's accounts (escrow, float ...) but moves their money only
through the flows (orders, devices), never with a raw transfer.

Another tenant's object answers exactly as an object that does not exist (404).
Ownership rows never change (a trigger refuses UPDATE and DELETE on ``account_owners``),
and neither do transfers, so checking them before the ledger call (outside its
transaction) cannot race with anything. For the same reason an owner once read is true
for ever: :class:`Owners` remembers the owners it read (a bounded LRU per process), and
never remembers that an account has no owner (it may be created a moment later).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence

from api.principals import ApiKey, Role
from api.problems import ApiError
from ledger import Ledger, Transfer, TransferFlags
from ledger.core.tx import Tx
from ledger.flows import parties

READ_ALL = frozenset({Role.AUDITOR, Role.OPERATOR})
WRITERS = frozenset({Role.STOREFRONT, Role.AGENT, Role.OPERATOR})
OWNERS_CACHED_MAX = 100_000
"""The most account owners one process remembers (least recently used forgotten first)."""


def require_role(caller: ApiKey, allowed: frozenset[Role]) -> None:
    if caller.role not in allowed:
        raise ApiError("forbidden", f"a {caller.role.value} key may not do this")


def owner_of(tx: Tx, account_id: uuid.UUID) -> uuid.UUID | None:
    row = tx.one(
        "SELECT principal_id FROM account_owners WHERE account_id = :account_id",
        {"account_id": account_id},
    )
    if row is None:
        return None
    owner: uuid.UUID = row[0]
    return owner


def reads(tx: Tx, caller: ApiKey, account_id: uuid.UUID) -> bool:
    """Whether the caller owns the account, or it is an account of the caller's party."""
    if owner_of(tx, account_id) == caller.principal_id:
        return True
    held = parties.owner_of(tx, account_id)
    return held is not None and held[0] == caller.principal_id


def can_read_account(led: Ledger, caller: ApiKey, account_id: uuid.UUID) -> bool:
    if caller.role in READ_ALL:
        return True
    return led.transact(lambda tx: reads(tx, caller, account_id))


def principal_role(led: Ledger, principal_id: uuid.UUID) -> Role | None:
    """The role of the principal with this id, or None."""
    row = led.transact(
        lambda tx: tx.one("SELECT role FROM principals WHERE id = :id", {"id": principal_id})
    )
    return None if row is None else Role(row[0])


class Owners:
    """The owners of accounts this process has read: ``account_owners`` rows never change,
    so a remembered owner is never stale. Accounts without an owner row are not
    remembered. Safe to share between threads."""

    def __init__(self, size_max: int = OWNERS_CACHED_MAX) -> None:
        if size_max < 1:
            raise ValueError("size_max must be >= 1")
        self._size_max = size_max
        self._lock = threading.Lock()
        self._owners: OrderedDict[uuid.UUID, uuid.UUID] = OrderedDict()

    def known(self, account_id: uuid.UUID) -> uuid.UUID | None:
        """The account's owner when this process read it before; else None (unknown)."""
        with self._lock:
            owner = self._owners.get(account_id)
            if owner is not None:
                self._owners.move_to_end(account_id)
            return owner

    def learn(self, account_id: uuid.UUID, owner: uuid.UUID) -> None:
        """Remember an owner read from ``account_owners`` (committed: it never changes)."""
        with self._lock:
            self._owners[account_id] = owner
            self._owners.move_to_end(account_id)
            while len(self._owners) > self._size_max:
                self._owners.popitem(last=False)

    def __len__(self) -> int:
        return len(self._owners)


def owns_all(
    led: Ledger, caller: ApiKey, account_ids: Sequence[uuid.UUID], *, owners: Owners
) -> uuid.UUID | None:
    """The first account of ``account_ids`` the caller does not own, or None; the owners
    not remembered yet are read in one transaction (and remembered)."""
    wanted = list(dict.fromkeys(account_ids))
    known = {a: owners.known(a) for a in wanted}
    unknown = [a for a, owner in known.items() if owner is None]
    if unknown:

        def work(tx: Tx) -> dict[uuid.UUID, uuid.UUID | None]:
            return {a: owner_of(tx, a) for a in unknown}

        for account_id, owner in led.transact(work).items():
            known[account_id] = owner
            if owner is not None:
                owners.learn(account_id, owner)
    for account_id in wanted:
        if known[account_id] != caller.principal_id:
            return account_id
    return None


def check_transfers(
    led: Ledger, caller: ApiKey, transfers: Sequence[Transfer], *, owners: Owners
) -> None:
    """Refuse (404, naming the index) a batch debiting an account the caller does not own."""
    require_role(caller, WRITERS)
    if caller.role is Role.OPERATOR:
        return
    resolving = TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING
    pending_ids = [t.pending_id for t in transfers if t.flags & resolving and t.pending_id]
    holds = {h.id: h for h in led.lookup_transfers(pending_ids)} if pending_ids else {}
    debits: list[uuid.UUID] = []
    for index, t in enumerate(transfers):
        debit = t.debit_account_id
        if t.flags & resolving:
            hold = holds.get(t.pending_id) if t.pending_id else None
            if hold is None or hold.debit_account_id is None:
                raise ApiError("not_found", "no such pending transfer", extra={"index": index})
            debit = hold.debit_account_id
        if debit is None:
            raise ApiError("not_found", "no such debit account", extra={"index": index})
        debits.append(debit)
    foreign = owns_all(led, caller, debits, owners=owners)
    if foreign is not None:
        raise ApiError("not_found", "no such debit account", extra={"index": debits.index(foreign)})


def can_read_transfer(led: Ledger, caller: ApiKey, transfer: Transfer) -> bool:
    if caller.role in READ_ALL:
        return True

    def work(tx: Tx) -> bool:
        return any(
            reads(tx, caller, a)
            for a in (transfer.debit_account_id, transfer.credit_account_id)
            if a is not None
        )

    return led.transact(work)
