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
``idempotency``     Idempotency-Key records (IETF draft)
``principals``      principals, roles and their keys (rotation, revocation)
``access``          who may read and move what (roles, account ownership)
``accounts``        account creation with its owner, listing by owner
``strictjson``      the only body parser: duplicate keys, floats, NaN ... refused
``schemas``         request and answer shapes (the OpenAPI document's source)
``problems``        RFC 9457 problem details: one ``type`` and ``code`` per refusal
``openapi``         completes FastAPI's OpenAPI 3.1 document
``observability``   JSON logs with a request id; Prometheus metrics
``ratelimit``       per-key token bucket (in-process)
``settings``        every limit, named with its unit
``webhooks``        the outbox delivered to endpoints, signed (Standard Webhooks), retried
``background``      the service's sweeper (flows' timers) and sealer threads
``routes``          one module per resource; each route calls one service function
                    (``routes.audit``: reconciliation runs, checkpoints, the service key)
==================  ====================================================================

Exceptions: :class:`api.problems.ApiError` is the one root of expected refusals (each
rendered as problem+json by one handler); :class:`api.client.ProblemError` is what the
client raises for a non-2xx answer.
"""
