"""The one logger name of the service's JSON lines, shared by every package that logs
through it: the API (:mod:`api.observability` formats its records) and the webhook
sender (:mod:`webhooks`, which runs inside ``vledger serve`` and must not import
``api``). Defined here because both may import ``ledger``."""

from __future__ import annotations

from typing import Final

__all__ = ["LOGGER_NAME"]

LOGGER_NAME: Final = "vledger.api"
"""The name of the logger whose records ``api.observability.configure_logging`` sends to
stderr as JSON lines (kept as it was when only the API logged through it)."""
