"""The back office's reads: search, an account's history, an order's timeline, webhook deliveries.

Placeholder: being built this session.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
