"""Village Ledger's signed REST API (FastAPI): accounts, transfers and the village flows.

``api/`` imports ``ledger/``; ``ledger/`` never imports ``api/``.

==================  ====================================================================
module              what it is for
==================  ====================================================================
``app``             :func:`~api.app.create_app`: the app, its pipeline and error handlers
``server``          :func:`~api.server.serve`: ``vledger serve`` (uvicorn)
``keys``            :func:`~api.keys.create_key`, :func:`~api.keys.revoke`: ``vledger keys``
``client``          :class:`~api.client.Client`: signs, sets Idempotency-Key, retries
``signatures``      RFC 9421 profile (verify on the server, sign in the client)
``idempotency``     Idempotency-Key records (IETF draft; ``ledger.flows.idempotency``)
``principals``      the keys a process remembers (``ledger.flows.principals``: the rows)
``access``          who may read and move what (roles, account ownership)
``accounts``        account ids the API takes (``ledger.flows.ownership``: the owners)
``strictjson``      the only body parser: duplicate keys, floats, NaN ... refused
``schemas``         request and answer shapes (the OpenAPI document's source)
``problems``        RFC 9457 problem details: one ``type`` and ``code`` per refusal
``openapi``         completes FastAPI's OpenAPI 3.1 document
``observability``   JSON logs with a request id; Prometheus metrics
``ratelimit``       per-key rate limit (one bucket per key in the database, every process)
``settings``        every limit, named with its unit
``webhooks``        the outbox delivered to endpoints, signed (Standard Webhooks), retried
``background``      the service's sweeper (flows' timers) and sealer threads
``routes``          one module per resource; each route calls one service function
                    (``routes.audit``: reconciliation runs, checkpoints, the service key)
==================  ====================================================================

No SQL here: each table is read and written by the module that owns it.

Exceptions: every class is in the one tree of :mod:`ledger.core.errors`, and one
function renders all of it as problem+json (:func:`api.problems.problem_of`).
:class:`api.problems.ApiError` is the API's own refusal (an ``EdgeError``); a flow's
``FlowError`` or a job's ``ReconciliationError`` is answered as is, and stored for
replay like any answer of a POST. :class:`api.client.ProblemError` (an ``EdgeError``
too) is what the client raises for a non-2xx answer.
"""
