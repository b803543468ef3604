"""Village flows on the ledger core: each a service function that turns one request
into one database transaction (its own rows, an outbox event, and a linked batch of
transfers), idempotent by a client-supplied id.

One module per flow; :mod:`ledger.flows.parties` holds who owns which account,
:mod:`ledger.flows.events` the outbox, :mod:`ledger.flows.errors` the refusals.
"""
