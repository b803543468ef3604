"""The ledger's exceptions. Expected outcomes are statuses, never exceptions.

::

    LedgerError                 root of everything the ledger raises on purpose
    ├── MalformedRequest        (also a ValueError) a wrong type, a negative amount, an
    │                           amount of 2**63 or more, a missing field, a batch of more
    │                           than 8,190; raised before anything is written
    ├── StorageError            the database is unreachable, locked for too long, or not
    │                           migrated; nothing the call asked for was committed
    └── InvariantViolation      the database refused what the engine allowed (a CHECK,
                                a unique guard or an immutability trigger fired): a bug,
                                never an expected outcome; the transaction was rolled back
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
