"""Wallets: what every movement of a villager's wallet does besides moving money.

Every flow that creates transfers calls :func:`after_transfers_in` right after, in the
same transaction (through its submit helper: :func:`ledger.flows.agent_float.submit_linked`,
the orders' and suspense's own, the cash-out voids). For each transfer of the batch that
was created and touches an account in the ``wallet`` role of a party (``party_accounts``):

1. **The KYC maximum balance.** Every wallet the batch credits (a plain credit, a pending
   credit or a post of one: cash-ins, order refunds, suspense reassignments, reversals,
   anything) is checked against its villager's tier by
   :func:`ledger.flows.limits.check_balance_in`, the one definition of that check. Above
   the maximum it raises :class:`~ledger.flows.errors.Refused` ``limit_exceeded_balance``
   and the caller's whole transaction rolls back: no money, no row, no event stays.
   Debits and releases are not checked (they cannot raise the balance the check counts).
2. **A receipt.** One ``wallet.receipt`` event per created transfer and wallet,
   addressed to the villager (``party_id`` = the villager, ``subject_id`` = the
   transfer), in batch order; the next issue sends them as SMS. Its payload:

   - ``movement``: ``credit`` (posted money in), ``debit`` (posted money out), ``hold``
     (money reserved, not yet moved: a two-phase cash-out's request) or ``release``
     (a hold given back: voided, or lapsed, ``expired`` true); ``side``: which side of
     the transfer the wallet was on;
   - ``amount_minor`` (what this movement moved, posted or held, or released) and
     ``released_minor`` (on a post: the part of the hold it did not post and gave back),
     ``currency``;
   - ``counterparty``: the other account of the transfer and its owner (``party_id``,
     ``kind``, ``name``, ``role``; ``None`` for an account no party holds);
   - ``balance_minor`` (posted: credits less debits) and ``available_minor`` (posted less
     pending debits: what the villager can spend) right after this transfer;
   - ``reference``: the ``transfer_id`` and the operation it belongs to (``operation``:
     ``order``, ``cash_in``, ``cash_out``, ``suspense`` ...; ``operation_id``).

A hold that lapsed before its void was written (a cash-out swept after its timeout: the
core answers the void ``pending_transfer_expired``) still gets a ``release`` receipt,
keyed by the hold's id, because the villager's money is free again.

Balances after each transfer are computed back from the wallet's counters after the
whole batch (each created transfer's effect undone in reverse order), so they are exact
inside a batch that touches a wallet more than once (a cash-out's post and its fee
legs). The core holds the wallet's row locked until commit, so the check and the
balances hold under concurrency.
"""

from ledger.flows.wallets.service import (
    Movement,
    Reference,
    after_transfers_in,
    reference_of,
)

__all__ = [
    "Movement",
    "Reference",
    "after_transfers_in",
    "reference_of",
]
