"""What a flow raises when it will not do what was asked. Nothing was written.

::

    LedgerError                 (ledger.core.errors)
    └── FlowError               a flow refused a request; ``code`` names why, stably
        ├── NotFound            the request names a party, order, device ... that does
        │                       not exist (or is not the caller's to see)
        ├── Conflict            the client's id was used before for another request
        └── Refused             the rules refuse it now: float or cash short, a limit,
                                an order in the wrong state, a bad signature ...

A ``code`` is a short snake_case word (``float_short``, ``order_not_paid``); the API
turns it into a problem+json ``type``. Bugs are not flow errors: they raise
:class:`~ledger.core.errors.InvariantViolation`.
"""

from __future__ import annotations

from ledger.core.errors import LedgerError


class FlowError(LedgerError):
    """A flow refused a request; nothing was written."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class NotFound(FlowError):
    """The request names something that does not exist."""


class Conflict(FlowError):
    """The client's id was already used for a different request."""


class Refused(FlowError):
    """The rules refuse the request as things stand."""
