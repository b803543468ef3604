"""Operator routes: ``/v1/keys/{key_id}/revoke``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from api.access import require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role, revoke_key
from api.problems import ApiError
from api.routes.common import body_of, signed

router = APIRouter(prefix="/v1/keys", tags=["keys"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATORS = frozenset({Role.OPERATOR})


@router.post(
    "/{key_id}/revoke",
    summary="Revoke a key (operators only); requests signed with it are refused from now on",
    response_model=None,
    responses={
        200: {
            "description": "revoked",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/KeyRevoked"}}
            },
        }
    },
)
def revoke(
    request: Request,
    caller: Caller,
    key_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
) -> Response:
    require_role(caller, OPERATORS)

    def handle() -> Response:
        ctx = context(request)
        revoked = revoke_key(ctx.ledger, key_id)
        ctx.keys.forget(key_id)
        if not revoked:
            raise ApiError("not_found", "no active key with this id")
        return json_response(200, {"key_id": key_id, "state": "revoked"})

    return run_post(request, caller, body_of(request), handle)
