"""Reconciliation and audit: jobs that check the ledger against itself and against
outside records, each leaving an immutable run (:mod:`reconciliation.runs`), and the
sealed journal with the tools an auditor verifies offline (:mod:`reconciliation.seal`,
:mod:`reconciliation.export`, :mod:`reconciliation.verify`, :mod:`reconciliation.pack`).

It reads the ledger only through the core's published views and the owners' functions;
its refusals and failures are the ``ReconciliationError`` branch of the one error tree
(:mod:`reconciliation.errors`).
"""
