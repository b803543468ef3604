"""The limits every layer shares, each defined once: the core, the flows, the API, the
webhooks and the reconciliation import them from here.

A limit has a name that ends in its unit or qualifier (``_max``, ``_minor``, ``_s``,
``_bytes``), a value, and a test on both sides of it. A limit that only one rule of one
module knows (a cash-out's timeout, a PIN's length) stays beside that rule, defined once
there; anything a second module needs lives here. This module imports nothing, so that
anything may import it.
"""

from __future__ import annotations

__all__ = [
    "AMOUNT_LIMIT",
    "AMOUNT_MAX_MINOR",
    "API_PAGE_SIZE_MAX",
    "BATCH_SIZE_MAX",
    "CODE_MAX",
    "CORE_PAGE_SIZE_MAX",
    "COUNTER_MAX",
    "LIST_PAGE_SIZE_MAX",
    "METADATA_ENTRIES_MAX",
    "METADATA_KEY_LENGTH_MAX",
    "METADATA_VALUE_LENGTH_MAX",
    "NAME_LENGTH_MAX",
    "REASON_LENGTH_MAX",
    "REFERENCE_LENGTH_MAX",
    "STATEMENT_UPLOAD_BYTES_MAX",
    "SWEEP_BATCH_MAX",
    "TIMEOUT_S_MAX",
    "TRANSFERS_PER_REQUEST_MAX",
    "US_PER_S",
]

# -- the core: what the storage can hold ------------------------------------------------

AMOUNT_LIMIT = 2**63
"""Core amounts and counters stay below this (stored as signed 64-bit integers)."""

COUNTER_MAX = 2**63 - 1
"""The largest value any account counter may reach."""

BATCH_SIZE_MAX = 8190
"""The most accounts or transfers one core ``create_*`` call may carry."""

CORE_PAGE_SIZE_MAX = 8190
"""The largest ``limit`` that the core's ``account_transfers`` accepts."""

TIMEOUT_S_MAX = 2**32 - 1
"""The longest hold timeout, in seconds (TigerBeetle's u32)."""

CODE_MAX = 2**31 - 1
"""The largest account or transfer code."""

METADATA_ENTRIES_MAX = 32
"""The most metadata entries a transfer carries."""

METADATA_KEY_LENGTH_MAX = 64
"""The longest metadata key, in characters."""

METADATA_VALUE_LENGTH_MAX = 512
"""The longest metadata value, in characters."""

# -- money that people and programs send ------------------------------------------------

AMOUNT_MAX_MINOR = 2**53 - 1
"""The largest amount, in minor units, that a flow, a request or a file may carry: the
largest integer every JSON client holds exactly."""

TRANSFERS_PER_REQUEST_MAX = 500
"""The most transfers one API request may carry."""

STATEMENT_UPLOAD_BYTES_MAX = 1_000_000
"""The largest provider statement one API request may upload (raw or multipart), in
bytes: under the API's default body limit (1 MiB), which leaves room for a multipart
envelope. A larger statement runs from ``vledger reconcile statement --input FILE``."""

# -- pages and batches ------------------------------------------------------------------

API_PAGE_SIZE_MAX = 100
"""The largest page an API list answers (``?limit=``)."""

LIST_PAGE_SIZE_MAX = 1000
"""The largest page a flow's or a job's list function answers."""

SWEEP_BATCH_MAX = 10_000
"""The most rows one sweep (expiries, auto-releases, purges) takes at a time."""

# -- text people type -------------------------------------------------------------------

REASON_LENGTH_MAX = 500
"""The longest free-text reason, note or comment, in characters."""

REFERENCE_LENGTH_MAX = 128
"""The longest external reference (a provider's id, a bank reference), in characters."""

NAME_LENGTH_MAX = 200
"""The longest name of a party, a key or an operator, in characters."""

# -- units ------------------------------------------------------------------------------

US_PER_S = 1_000_000
"""Microseconds in a second: every stored moment is UTC microseconds since 1970."""
