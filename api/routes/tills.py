"""An agent's till number (the 6 digits a villager types over USSD).

Placeholder: being built this session.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
