"""KYC tiers: a villager's tier, the tiers' limits (maker-checker above tier0).

Placeholder: being built this session.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
