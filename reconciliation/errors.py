"""The reconciliation's branch of the one error tree (drawn whole in
:mod:`ledger.core.errors`)::

    LedgerError
    └── ReconciliationError     a job, an audit pack or a seal check will not do what was
        │                       asked; ``code`` names why, stably
        ├── InputInvalid        (also a ValueError) an argument, a file or a period the
        │                       job cannot take; nothing was written
        ├── JobRefused          the job will not run as things stand; nothing was written
        └── JobFailed           a job ran and could not finish

The API answers ``InputInvalid`` 422 and ``JobRefused`` 409 (``api.problems``); the CLI
prints one line and exits 2. A bug is none of these: it is not caught as one.
"""

from __future__ import annotations

from ledger.core.errors import LedgerError

__all__ = ["InputInvalid", "JobFailed", "JobRefused", "ReconciliationError"]


class ReconciliationError(LedgerError):
    """A reconciliation job or audit tool will not do what was asked."""

    code = "reconciliation_refused"
    """A stable snake_case word for why; each subclass names its own."""


class InputInvalid(ReconciliationError, ValueError):
    """An argument, a file or a period the job cannot take; nothing was written."""

    code = "input_invalid"


class JobRefused(ReconciliationError):
    """The job will not run as things stand (another run holds the period, a key is
    missing); nothing was written."""

    code = "job_refused"


class JobFailed(ReconciliationError):
    """A job ran and could not finish; what it wrote was rolled back or recorded as a
    failed run."""

    code = "job_failed"
