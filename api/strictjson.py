"""Strict JSON: the only way request bodies are parsed.

Refused (as ``invalid_json``, 400): bytes that are not UTF-8 (or start with a BOM),
duplicate object keys, any number with a fraction or exponent (``100.0``, ``1e3``),
``NaN``/``Infinity``, integers spelt with anything but ASCII digits, nesting deeper than
:data:`DEPTH_MAX`, and anything after the value. Integers come back as ``int``; whether
an integer is in range is the schema's business (a 422).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError

from api.problems import ApiError

M = TypeVar("M", bound=BaseModel)

DEPTH_MAX = 16
INTEGER_DIGITS_MAX = 30


class _Refused(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for key, value in pairs:
        if key in answer:
            raise _Refused(f"duplicate key {key!r}")
        answer[key] = value
    return answer


def _no_float(text: str) -> NoReturn:
    raise _Refused(f"{text} is not an integer: amounts and numbers are JSON integers")


def _int(text: str) -> int:
    if not text.isascii() or len(text) > INTEGER_DIGITS_MAX:
        raise _Refused(f"{text!r} is not a plain integer")
    return int(text)


def _constant(text: str) -> NoReturn:
    raise _Refused(f"{text} is not JSON")


def _depth(value: Any, level: int = 0) -> None:
    if level > DEPTH_MAX:
        raise _Refused(f"nested deeper than {DEPTH_MAX}")
    if isinstance(value, dict):
        for item in value.values():
            _depth(item, level + 1)
    elif isinstance(value, list):
        for item in value:
            _depth(item, level + 1)


def loads(raw: bytes) -> Any:
    """The JSON value of ``raw``, or :class:`ApiError` ``invalid_json``."""
    try:
        if raw.startswith(b"\xef\xbb\xbf"):
            raise _Refused("a byte order mark is not allowed")
        text = raw.decode("utf-8", errors="strict")
        value = json.loads(
            text,
            object_pairs_hook=_pairs,
            parse_float=_no_float,
            parse_int=_int,
            parse_constant=_constant,
        )
        _depth(value)
    except (_Refused, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ApiError("invalid_json", str(exc)) from None
    return value


def parse(raw: bytes, model: type[M]) -> M:
    """``raw`` as ``model``: strict JSON first, then the schema (422 with each error)."""
    value = loads(raw)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> ApiError:
    errors = [
        {
            "pointer": "/" + "/".join(str(p) for p in error["loc"]),
            "detail": error["msg"],
        }
        for error in exc.errors(include_url=False, include_input=False)[:20]
    ]
    return ApiError(
        "validation_failed",
        "; ".join(f"{e['pointer']}: {e['detail']}" for e in errors),
        extra={"errors": errors},
    )
