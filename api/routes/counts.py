"""Agents' cash counts, variances (maker-checker) and statement uploads.

Placeholder: being built this session.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
