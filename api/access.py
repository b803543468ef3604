"""Who may see and move what: account ownership, the roles, and the rule on raw transfers.

Reading: a storefront or an agent sees the accounts it opened (``account_owners``) and
its party's accounts (``ledger.flows.parties``: a storefront's or an agent's party has
its principal's id), and the transfers touching them; auditors and operators read
everything. Another tenant's object answers exactly as one that does not exist (404).

Writing: storefront and agent keys open accounts (they own them); auditors write nothing
(403 on every write); operators write transfers, revoke keys, onboard parties.

**The rule on raw transfers** (``POST /v1/transfers``), stated here and enforced by
:func:`check_transfers` only. No tenant can create money: money enters a party's account
(escrow, proceeds, float, cash, wallet ...) only through the flows.

============  ===================================  =========================================
caller        may debit                            may credit
============  ===================================  =========================================
storefront,   an account it opened                 an account it opened, or one opened by
agent         (``account_owners``) whose balance   another storefront or agent principal
              is bounded: it carries               (paying another tenant); never a party's
              ``debits_must_not_exceed_credits``   account (``party_accounts``: escrow,
                                                   proceeds, float, cash, cash_control,
                                                   commission, offline_allowance, wallet,
                                                   every platform account, provider
                                                   clearing included), never an account no
                                                   principal opened or an operator opened
operator      any account                          any account; **but** a batch touching a
                                                   party's account on either side (a
                                                   correction) is not applied: it becomes a
                                                   proposal that a different operator
                                                   approves (``ledger.flows.proposals``)
auditor       nothing (403)                        nothing (403)
============  ===================================  =========================================

A post or void is judged by its hold's accounts. A refusal names the transfer's
``index`` and nothing of the batch is written: a debit account the caller did not open
(or a party's) is 404 ``not_found``, as if it did not exist; an unbounded one is 422
``debit_account_unbounded``; a credit account outside the rule is 422
``credit_account_forbidden``.

How a tenant's bounded account gets money without anyone minting it: from another
tenant, or from an operator, who opens an account of its own (the credit line it grants:
it carries no limit flag, and what it lends is exactly what it transfers) and pays the
tenant's bounded account from it with a raw transfer; that touches no party account, so
it is applied at once.

Everything the rule reads never changes once written: ownership rows (a trigger refuses
UPDATE and DELETE on ``account_owners``), principals' roles, accounts' flags, transfers.
So checking before the ledger call (outside its transaction) cannot race with anything,
and what was read of an account some principal opened is true for ever: :class:`Owners`
remembers it (a bounded LRU per process). Whether an account is a party's could change
only for an account nobody opened (onboarding adopts no other, see
``ledger.flows.parties``), and such accounts are never remembered.

This module opens no transaction: each check is one call of
:mod:`ledger.flows.ownership.holders` (one transaction per check, as before), which reads
each owner through its own functions.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from api.principals import ApiKey, Role
from api.problems import ApiError
from ledger import Ledger, Transfer, TransferFlags
from ledger.core.tx import Tx
from ledger.flows.ownership import holders as account_holders
from ledger.flows.ownership.holders import BOUNDED, Holder
from ledger.flows.principals import principal_role

__all__ = [
    "BOUNDED",
    "READ_ALL",
    "TENANTS",
    "WRITERS",
    "Holder",
    "Owners",
    "Verdict",
    "can_read_account",
    "can_read_transfer",
    "check_transfers",
    "holders",
    "owns_all",
    "principal_role",
    "reads",
    "require_role",
]

READ_ALL = frozenset({Role.AUDITOR, Role.OPERATOR})
WRITERS = frozenset({Role.STOREFRONT, Role.AGENT, Role.OPERATOR})
TENANTS = frozenset({Role.STOREFRONT, Role.AGENT})
"""The roles whose accounts a tenant may credit (and whose own raw transfers are ruled)."""
OWNERS_CACHED_MAX = 100_000
"""The most account owners one process remembers (least recently used forgotten first)."""
RESOLVING = TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING


class Verdict(StrEnum):
    """What :func:`check_transfers` decided for an allowed batch."""

    APPLY = "apply"
    PROPOSE = "propose"


def require_role(caller: ApiKey, allowed: frozenset[Role]) -> None:
    if caller.role not in allowed:
        raise ApiError("forbidden", f"a {caller.role.value} key may not do this")


def reads(tx: Tx, caller: ApiKey, account_id: uuid.UUID) -> bool:
    """Whether the caller owns the account, or it is an account of the caller's party
    (inside a caller's transaction; the checks below open their own)."""
    return account_holders.can_read_any_in(tx, caller.principal_id, [account_id])


def can_read_account(led: Ledger, caller: ApiKey, account_id: uuid.UUID) -> bool:
    if caller.role in READ_ALL:
        return True
    return account_holders.can_read_any(led, caller.principal_id, [account_id])


class Owners:
    """The holders of accounts this process has read: ``account_owners`` rows, roles and
    flags never change, so a remembered holder is never stale. Accounts without an owner
    row are not remembered. Safe to share between threads."""

    def __init__(self, size_max: int = OWNERS_CACHED_MAX) -> None:
        if size_max < 1:
            raise ValueError("size_max must be >= 1")
        self._size_max = size_max
        self._lock = threading.Lock()
        self._holders: OrderedDict[uuid.UUID, Holder] = OrderedDict()

    def holder(self, account_id: uuid.UUID) -> Holder | None:
        """The account's holder when this process read it before; else None (unknown)."""
        with self._lock:
            found = self._holders.get(account_id)
            if found is not None:
                self._holders.move_to_end(account_id)
            return found

    def known(self, account_id: uuid.UUID) -> uuid.UUID | None:
        """The account's owner when this process read it before; else None (unknown)."""
        found = self.holder(account_id)
        return None if found is None else found.owner

    def learn(self, account_id: uuid.UUID, holder: Holder) -> None:
        """Remember a holder read from committed rows (it never changes)."""
        with self._lock:
            self._holders[account_id] = holder
            self._holders.move_to_end(account_id)
            while len(self._holders) > self._size_max:
                self._holders.popitem(last=False)

    def __len__(self) -> int:
        return len(self._holders)


def holders(
    led: Ledger, account_ids: Iterable[uuid.UUID], *, owners: Owners
) -> dict[uuid.UUID, Holder | None]:
    """The holder of each account (None: no principal opened it, or it does not exist);
    those not remembered yet are read in one transaction (and remembered)."""
    wanted = list(dict.fromkeys(account_ids))
    found = {a: owners.holder(a) for a in wanted}
    unknown = [a for a, holder in found.items() if holder is None]
    if unknown:
        read = account_holders.holders_of(led, unknown)
        for account_id, holder in read.items():
            found[account_id] = holder
            if holder is not None:
                owners.learn(account_id, holder)
    return found


def owns_all(
    led: Ledger, caller: ApiKey, account_ids: Sequence[uuid.UUID], *, owners: Owners
) -> uuid.UUID | None:
    """The first account of ``account_ids`` the caller does not own, or None."""
    found = holders(led, account_ids, owners=owners)
    for account_id in account_ids:
        holder = found[account_id]
        if holder is None or holder.owner != caller.principal_id:
            return account_id
    return None


# -- the rule on raw transfers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Leg:
    index: int
    debit: uuid.UUID | None
    credit: uuid.UUID | None


def _legs(led: Ledger, transfers: Sequence[Transfer], *, strict: bool) -> list[_Leg]:
    """Each transfer's accounts; a post or void's are its hold's. ``strict``: an unknown
    hold is 404 (a tenant's batch); else its leg has no accounts (the core answers)."""
    pending_ids = [t.pending_id for t in transfers if t.flags & RESOLVING and t.pending_id]
    holds = {h.id: h for h in led.lookup_transfers(pending_ids)} if pending_ids else {}
    legs: list[_Leg] = []
    for index, t in enumerate(transfers):
        if not t.flags & RESOLVING:
            legs.append(_Leg(index, t.debit_account_id, t.credit_account_id))
            continue
        hold = holds.get(t.pending_id) if t.pending_id else None
        if hold is None and strict:
            raise ApiError("not_found", "no such pending transfer", extra={"index": index})
        if hold is None:
            legs.append(_Leg(index, None, None))
        else:
            legs.append(_Leg(index, hold.debit_account_id, hold.credit_account_id))
    return legs


def _check_debit(caller: ApiKey, holder: Holder | None, index: int) -> None:
    if holder is None or holder.owner != caller.principal_id or holder.party:
        raise ApiError("not_found", "no such debit account", extra={"index": index})
    if not holder.bounded:
        raise ApiError(
            "debit_account_unbounded",
            "a raw transfer debits only an account with debits_must_not_exceed_credits",
            extra={"index": index},
        )


def _check_credit(caller: ApiKey, holder: Holder | None, index: int) -> None:
    if (
        holder is None
        or holder.party
        or (holder.owner != caller.principal_id and holder.owner_role not in TENANTS)
    ):
        raise ApiError(
            "credit_account_forbidden",
            "a raw transfer credits only the caller's accounts or another storefront's or"
            " agent's; a party's accounts move only through the flows",
            extra={"index": index},
        )


def _touches_party(led: Ledger, legs: Sequence[_Leg]) -> bool:
    ids = {a for leg in legs for a in (leg.debit, leg.credit) if a is not None}
    return account_holders.touches_party(led, list(ids))


def check_transfers(
    led: Ledger, caller: ApiKey, transfers: Sequence[Transfer], *, owners: Owners
) -> Verdict:
    """Judge a raw batch by the rule in this module's docstring: refuse it (an
    :class:`ApiError` naming the index), or say whether it is applied or proposed."""
    require_role(caller, WRITERS)
    if caller.role is Role.OPERATOR:
        legs = _legs(led, transfers, strict=False)
        return Verdict.PROPOSE if _touches_party(led, legs) else Verdict.APPLY
    legs = _legs(led, transfers, strict=True)
    accounts = [a for leg in legs for a in (leg.debit, leg.credit) if a is not None]
    found = holders(led, accounts, owners=owners)
    for leg in legs:
        _check_debit(caller, None if leg.debit is None else found[leg.debit], leg.index)
        _check_credit(caller, None if leg.credit is None else found[leg.credit], leg.index)
    return Verdict.APPLY


def can_read_transfer(led: Ledger, caller: ApiKey, transfer: Transfer) -> bool:
    if caller.role in READ_ALL:
        return True
    accounts = [a for a in (transfer.debit_account_id, transfer.credit_account_id) if a is not None]
    return account_holders.can_read_any(led, caller.principal_id, accounts)
