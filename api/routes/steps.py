"""What the village-flow routes share: parsing a step's body, its permanent step id.

A flow step (pay, dispatch, sync ...) is idempotent twice: the POST by its
Idempotency-Key (24 h, the stored answer) and the ledger by the step's permanent id,
which outlives that window. A client may send its own ``step_id``; without one it is
derived from the caller, the path and the Idempotency-Key, so a retry with the same key
after the answer expired still finds the step it made.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel

from api import strictjson
from api.context import context, idempotency_key, require_json
from api.principals import ApiKey

M = TypeVar("M", bound=BaseModel)

STEP_NAMESPACE = uuid.UUID("0c6a1d3e-94b2-4f57-8e1a-2b7c9d4e5f60")


def parse(request: Request, body: bytes, model: type[M], *, empty_ok: bool = False) -> M:
    """The body as ``model`` (strict JSON); an empty body is ``model()`` when allowed."""
    if empty_ok and not body:
        return model()
    require_json(request)
    return strictjson.parse(body, model)


def step_id(request: Request, caller: ApiKey, given: uuid.UUID | None) -> uuid.UUID:
    """The step's permanent id: the client's, else derived from caller, path and key."""
    if given is not None:
        return given
    key = idempotency_key(request, context(request).settings)
    return uuid.uuid5(STEP_NAMESPACE, f"{caller.principal_id}:{request.url.path}:{key}")


def time_text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def id_text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)
