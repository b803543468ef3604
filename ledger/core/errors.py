"""Village Ledger's exceptions: one tree, drawn here whole. Expected outcomes of the core
are statuses, never exceptions; a flow's or a job's refusal is an exception with a stable
``code``; a bug is an :class:`InvariantViolation` (never an ``assert``, which ``-O`` drops).

::

    LedgerError                   root of everything Village Ledger raises on purpose
    ├── MalformedRequest          (also a ValueError) a wrong type, a negative amount, an
    │                             amount of 2**63 or more, a missing field, a batch of more
    │                             than 8,190; raised before anything is written
    ├── StorageError              the database is unreachable, locked for too long, or not
    │                             migrated; nothing the call asked for was committed (the
    │                             API answers 503 with Retry-After)
    ├── InvariantViolation        the database refused what the engine allowed (a CHECK,
    │                             a unique guard or an immutability trigger fired): a bug,
    │                             never an expected outcome; the transaction was rolled back
    ├── FlowError                 (ledger.flows.errors) a flow refused a request; nothing
    │   │                         was written; ``code`` names why
    │   ├── NotFound              the request names something that does not exist
    │   ├── Conflict              the client's id was used before for another request
    │   └── Refused               the rules refuse it now (float short, a limit, a state)
    ├── ReconciliationError       (reconciliation.errors) a reconciliation job, an audit
    │   │                         pack or a seal check will not do what was asked
    │   ├── InputInvalid          (also a ValueError) an argument, a file or a period the
    │   │                         job cannot take; nothing was written
    │   ├── JobRefused            the job will not run as things stand (another run holds
    │   │                         the period, a key is missing); nothing was written
    │   └── JobFailed             a job ran and could not finish; what it wrote is rolled
    │                             back or recorded as a failed run
    └── EdgeError                 an edge (the API, the CLI, a server it starts, the demo)
                                  refused a request before any flow saw it: a signature,
                                  a key, a flag; each edge renders it its own way (one
                                  problem+json renderer, one CLI line with exit 2)

Every class says when it is raised; the API renders the whole tree with one function
(``api.problems``).
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of the ledger's own exceptions."""


class MalformedRequest(LedgerError, ValueError):
    """A call's arguments are malformed; nothing was changed."""


class StorageError(LedgerError):
    """The database could not be used; nothing was committed."""


class InvariantViolation(LedgerError):
    """The database refused a write the engine allowed: a bug. Rolled back."""


class EdgeError(LedgerError):
    """An edge (the API, the CLI, a server, the demo) refused a request before any flow
    saw it; nothing was written."""
