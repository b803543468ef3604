"""Village Ledger: TigerBeetle's accounts and transfers on PostgreSQL and SQLite.

The public surface of the core is ``shared/CORE_API.md``::

    from ledger import open_ledger, Account, Transfer, AccountFlags, TransferFlags, Status

    led = open_ledger("sqlite:///village.db", migrate=True)
    led.create_accounts([...]); led.create_transfers([...])
"""

from ledger.core.errors import InvariantViolation, LedgerError, MalformedRequest, StorageError
from ledger.core.ledger import IntegrityReport, Ledger, open_ledger
from ledger.core.values import (
    BATCH_SIZE_MAX,
    Account,
    AccountFlags,
    Balance,
    Result,
    Status,
    Transfer,
    TransferFlags,
)

__all__ = [
    "BATCH_SIZE_MAX",
    "Account",
    "AccountFlags",
    "Balance",
    "IntegrityReport",
    "InvariantViolation",
    "Ledger",
    "LedgerError",
    "MalformedRequest",
    "Result",
    "Status",
    "StorageError",
    "Transfer",
    "TransferFlags",
    "open_ledger",
]
