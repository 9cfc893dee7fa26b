"""Opaque keyset cursors for every paginated list (orders, trades, fills, deliveries,
subscriptions): the last row's sort keys, as base64 of a JSON array.

A cursor is not signed: it only says where a list resumes, and ``decode_cursor`` checks its
shape so that a forged one is a 422 ``INVALID_CURSOR``, never a database error.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from app.errors import ValidationFailed


def encode_cursor(*values: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


_INT64 = range(-(2**63), 2**63)
_MAX_CURSOR_TEXT = 200


def decode_cursor(cursor: str, arity: int, ints: int = 1) -> list[Any]:
    """A keyset cursor: ``arity`` values, ``ints`` BIGINT keys first, then string tie-breakers.

    The shape is checked here, so that a forged cursor is a 422 ``INVALID_CURSOR`` rather
    than a database error (a string compared with a BIGINT column, an integer past 2**63).
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ValidationFailed("invalid cursor", code="INVALID_CURSOR") from exc
    if (
        not isinstance(values, list)
        or len(values) != arity
        or not all(type(v) is int and v in _INT64 for v in values[:ints])
        or not all(isinstance(v, str) and len(v) <= _MAX_CURSOR_TEXT for v in values[ints:])
    ):
        raise ValidationFailed("invalid cursor", code="INVALID_CURSOR")
    return values
