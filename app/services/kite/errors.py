"""Our stable error codes as Kite Connect errors: an HTTP status and an ``error_type``.

The official client raises the exception class named by ``error_type`` (``InputException``,
``OrderException``, ...), so every code we answer with maps to one of Kite's; the README's
table is this one. A code missing here falls back by HTTP status (``kite_error``), and
``tests/kite/test_errors.py`` fails when a code in ``app/`` has no explicit row.
"""

from __future__ import annotations

from typing import Final

INPUT: Final = "InputException"
ORDER: Final = "OrderException"
TOKEN: Final = "TokenException"  # noqa: S105 - an exception name
PERMISSION: Final = "PermissionException"
GENERAL: Final = "GeneralException"
NETWORK: Final = "NetworkException"
DATA: Final = "DataException"

_INPUT_400 = (
    "BAD_REQUEST",
    "VALIDATION_ERROR",
    "INVALID_JSON",
    "UNSUPPORTED_MEDIA_TYPE",
    "INVALID_INSTRUMENT_INPUT",
    "UNKNOWN_INSTRUMENT",
    "AMBIGUOUS_SYMBOL",
    "INVALID_PRICE",
    "INVALID_TRIGGER_PRICE",
    "INVALID_QUANTITY",
    "INVALID_TICK_SIZE",
    "INVALID_LOT_SIZE",
    "INVALID_CURSOR",
    "INVALID_TIME",
    "INVALID_TIME_RANGE",
    "INVALID_INTERVAL",
    "TOO_MANY_CANDLES",
    "EMPTY_BATCH",
    "INVALID_IMPORT_FILE",
    "INVALID_WEBHOOK_EVENT",
    "INVALID_WEBHOOK_URL",
    "WEBHOOK_TARGET_FORBIDDEN",
    "WEBHOOK_LIMIT_REACHED",
    "UNSUPPORTED_VARIETY",
)
_ORDER_400 = (
    "INSTRUMENT_NOT_TRADABLE",
    "INSTRUMENT_HALTED",
    "PRICE_OUT_OF_BAND",
    "RISK_MAX_NOTIONAL",
    "RISK_MAX_OPEN_ORDERS",
    "RISK_MAX_QUANTITY",
    "RISK_MAX_POSITION",
    "MARKET_CLOSED",
    "INSTRUMENT_EXPIRED",
    "POST_ONLY_WOULD_TAKE",
    "FOK_NOT_FILLABLE",
    "NO_LIQUIDITY",
    "INVALID_POST_ONLY",
    "INVALID_AMEND",
    "DUPLICATE_ORDER_ID",
    "DUPLICATE_CLIENT_ORDER_ID",
    "CLIENT_ORDER_ID_BUSY",
    "SELF_TRADE_PREVENTION",
    "IOC_UNFILLED",
    "USER_CANCELLED",
    "DAY_EXPIRED",
    "CANCEL_ON_DISCONNECT",
    "BATCH_ABORTED",
    "ATOMIC_SPANS_SHARDS",
    "REJECTED",
    "UNKNOWN_ORDER",
    "ORDER_NOT_OPEN",
    "CONFLICT",
    "IDEMPOTENCY_IN_FLIGHT",
    "IDEMPOTENCY_KEY_REUSED",
)
_NOT_FOUND = (
    "ORDER_NOT_FOUND",
    "BATCH_NOT_FOUND",
    "SUBSCRIPTION_NOT_FOUND",
    "WEBHOOK_NOT_FOUND",
    "WEBHOOK_DELIVERY_NOT_FOUND",
)
_UNAVAILABLE = (
    "SERVICE_UNAVAILABLE",
    "NOT_READY",
    "JOURNAL_UNAVAILABLE",
    "DATABASE_UNAVAILABLE",
    "REGISTRY_REFRESH_FAILED",
    "SHARD_TIMEOUT",
    "SHARD_UNAVAILABLE",
)

#: code -> (HTTP status, Kite error_type)
KITE_ERRORS: dict[str, tuple[int, str]] = {
    **dict.fromkeys(_INPUT_400, (400, INPUT)),
    **dict.fromkeys(_ORDER_400, (400, ORDER)),
    **{code: (404, ORDER if code == "ORDER_NOT_FOUND" else INPUT) for code in _NOT_FOUND},
    **dict.fromkeys(_UNAVAILABLE, (503, NETWORK)),
    # Kite answers a missing or wrong token with 403 TokenException (the client's session
    # expiry hook keys on exactly that), so our 401 becomes a 403 here.
    "UNAUTHENTICATED": (403, TOKEN),
    "TOKEN_MISMATCH": (403, TOKEN),
    "FORBIDDEN": (403, PERMISSION),
    "NOT_FOUND": (404, GENERAL),
    "METHOD_NOT_ALLOWED": (405, GENERAL),
    "PAYLOAD_TOO_LARGE": (413, INPUT),
    "BATCH_TOO_LARGE": (413, INPUT),
    "RATE_LIMITED": (429, NETWORK),
    "INTERNAL_ERROR": (500, GENERAL),
    "BAD_COMMAND": (500, GENERAL),
    "HTTP_ERROR": (500, GENERAL),
}


def kite_error(code: str, status: int) -> tuple[int, str]:
    """The Kite status and error_type for our ``code`` (answered with ``status``)."""
    found = KITE_ERRORS.get(code)
    if found is not None:
        return found
    if status in (401, 403):
        return 403, TOKEN if status == 401 else PERMISSION
    if 400 <= status < 500:
        return status, INPUT
    return (503, NETWORK) if status == 503 else (500, GENERAL)
