"""The station app's reads for an agent: its home screen's figures.

Placeholder: being built this session.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
