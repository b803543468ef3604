"""Suspense: list, reassign, return (maker-checker).

Placeholder: being built this session.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
