"""Village flows on the ledger core: each a service function that turns one request
into one database transaction (its own rows, an outbox event, and a linked batch of
transfers), idempotent by a client-supplied id.

One package per flow (a small one may stay a module). A package's ``repository.py`` is
the only code that writes SQL naming the flow's tables, and holds its rows as frozen
dataclasses; the flow's service functions call it and the core, never SQL. Another flow
reads those tables through the owner's functions or a published view (migration 0018:
``party_account_roles``, ``journal_transfers`` ...), never the tables themselves.

:mod:`ledger.flows.parties` holds who owns which account, :mod:`ledger.flows.events` the
outbox, :mod:`ledger.flows.errors` the refusals.
"""
