"""Suspense: provider money nobody could match, parked until an operator places it.

Money that arrives at a provider for an unknown order or wallet (a villager paid to the
wrong account number, a reference nobody recognises) is still the platform's to account
for. :func:`park` records it with the provider's reference (unique per provider: one
statement line parks once) and moves it, in minor units of its currency::

    park       platform provider_clearing:<PROVIDER>  ->  platform suspense
    reassign   platform suspense  ->  a villager's wallet, or a storefront's proceeds
    return     platform suspense  ->  platform provider_clearing:<PROVIDER>  (sent back)

(core ``code`` :data:`PARK_CODE`, :data:`REASSIGN_CODE`, :data:`RETURN_CODE`). An item is
``parked``, then once ``reassigned`` (an operator found whose it is) or ``returned`` (sent
back through the provider), never both.

Idempotent by the item's id: parking again with the same details answers the item; with
other details, or another item's provider reference, :class:`~ledger.flows.errors.Conflict`.
Reassigning or returning a resolved item with the same request answers it unchanged; any
other resolution of a resolved item (reassigning it elsewhere, returning a reassigned
one) is a :class:`~ledger.flows.errors.Conflict` (``suspense_already_resolved``). Every
write locks the item row first, so two operators racing resolve it once.

A reassignment is an operator's correction, not a villager's transaction: it does not
count against the villager's per-transaction or daily limits. It is still a credit of the
wallet, so the tier's maximum balance holds (``limit_exceeded_balance``, nothing moves:
the item stays parked) and the villager gets a ``wallet.receipt``
(:mod:`ledger.flows.wallets`).

Maker-checker: a return sends money out of the platform, so it is a proposal of kind
:data:`SUSPENSE_RETURN` (:func:`propose_return`) that a different operator approves
(:mod:`ledger.flows.proposals`); the return runs in the approval's transaction. One
return per item may wait, and while it waits nothing else moves the item: proposing
another return, reassigning it or returning it directly is a
:class:`~ledger.flows.errors.Conflict` (``suspense_return_proposed``) that changes
nothing; rejecting the waiting proposal makes the item movable again. Approving a
return of an item no longer parked (returned by an older proposal, made before
one-per-item was the rule, or reassigned before a reassignment waited for returns) is
refused (``suspense_not_parked``): nothing moves and the proposal stays proposed, for an
operator to reject. A reassignment keeps the money inside and is one operator's act.

Events (outbox, same transaction): ``suspense.parked`` and ``suspense.returned``
(``party_id`` = the platform of the currency), ``suspense.reassigned`` (``party_id`` = the
party it went to).

The rows and their SQL are in :mod:`ledger.flows.suspense.repository`; the operations in
:mod:`ledger.flows.suspense.service`.
"""

from __future__ import annotations

from ledger.flows.suspense.repository import SuspenseItem, SuspenseState
from ledger.flows.suspense.service import (
    PARK_CODE,
    REASSIGN_CODE,
    RETURN_CODE,
    SUSPENSE_RETURN,
    get_suspense,
    get_suspense_in,
    list_suspense,
    park,
    park_in,
    propose_return,
    reassign,
    reassign_in,
    return_to_provider,
    return_to_provider_in,
)
from ledger.limits import AMOUNT_MAX_MINOR, REFERENCE_LENGTH_MAX
from ledger.limits import LIST_PAGE_SIZE_MAX as SUSPENSE_PAGE_MAX
from ledger.limits import REASON_LENGTH_MAX as NOTE_LENGTH_MAX

__all__ = [
    "AMOUNT_MAX_MINOR",
    "NOTE_LENGTH_MAX",
    "PARK_CODE",
    "REASSIGN_CODE",
    "REFERENCE_LENGTH_MAX",
    "RETURN_CODE",
    "SUSPENSE_PAGE_MAX",
    "SUSPENSE_RETURN",
    "SuspenseItem",
    "SuspenseState",
    "get_suspense",
    "get_suspense_in",
    "list_suspense",
    "park",
    "park_in",
    "propose_return",
    "reassign",
    "reassign_in",
    "return_to_provider",
    "return_to_provider_in",
]
