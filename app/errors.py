"""One error tree. Every failure a client can see is an ``AppError`` with a stable code.

Domain code raises these; one handler in ``app.routes.errors`` renders them as
``{"error": {"code": ..., "message": ...}}``. Nothing here knows about HTTP frameworks:
``status`` is a plain integer the handler uses.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    code: str = "INTERNAL_ERROR"
    status: int = 500
    message: str = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.message
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.details = details
        super().__init__(self.message)


class BadRequest(AppError):
    code = "BAD_REQUEST"
    status = 400
    message = "bad request"


class ValidationFailed(AppError):
    code = "VALIDATION_ERROR"
    status = 422
    message = "request validation failed"


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"
    status = 401
    message = "a valid X-API-Key header is required"


class Forbidden(AppError):
    code = "FORBIDDEN"
    status = 403
    message = "this key lacks the scope this route needs"


class NotFound(AppError):
    code = "NOT_FOUND"
    status = 404
    message = "not found"


class MethodNotAllowed(AppError):
    code = "METHOD_NOT_ALLOWED"
    status = 405
    message = "method not allowed"


class Conflict(AppError):
    code = "CONFLICT"
    status = 409
    message = "conflict"


class PayloadTooLarge(AppError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    message = "request too large"


class RateLimited(AppError):
    code = "RATE_LIMITED"
    status = 429
    message = "rate limit exceeded"


class ServiceUnavailable(AppError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
    message = "service temporarily unavailable"


class NotReady(ServiceUnavailable):
    code = "NOT_READY"
    message = "service is starting"


class InstrumentError(AppError):
    """A symbol, price or quantity the registry refuses. Orders also use ``code`` as a reject
    reason, so every subclass keeps a stable class-level ``code``."""

    code = "INVALID_INSTRUMENT_INPUT"
    status = 422
    message = "invalid instrument input"


class UnknownInstrument(InstrumentError):
    code = "UNKNOWN_INSTRUMENT"
    message = "unknown instrument"


class AmbiguousSymbol(InstrumentError):
    code = "AMBIGUOUS_SYMBOL"
    message = "symbol is listed on several exchanges; use EXCHANGE:TRADINGSYMBOL"


class InstrumentNotTradable(InstrumentError):
    code = "INSTRUMENT_NOT_TRADABLE"
    message = "instrument is not tradable"


class InvalidPrice(InstrumentError):
    code = "INVALID_PRICE"
    message = "price must be a positive decimal string"


class InvalidQuantity(InstrumentError):
    code = "INVALID_QUANTITY"
    message = "quantity must be a positive decimal string"


class InvalidTickSize(InstrumentError):
    code = "INVALID_TICK_SIZE"
    message = "price is not a multiple of the tick size"


class InvalidLotSize(InstrumentError):
    code = "INVALID_LOT_SIZE"
    message = "quantity is not a multiple of the lot size"


class InstrumentNotFound(NotFound):
    """An instrument named in a URL path that the registry does not hold (404; the same code
    as ``UnknownInstrument``, which is 422 where the instrument is in a body or query)."""

    code = "UNKNOWN_INSTRUMENT"
    message = "unknown instrument"


class RegistryRefreshFailed(ServiceUnavailable):
    code = "REGISTRY_REFRESH_FAILED"
    message = "the instrument registry could not be refreshed; the previous snapshot serves"


class ImportFileInvalid(BadRequest):
    """An instruments file that cannot be imported at all (unreadable, wrong header)."""

    code = "INVALID_IMPORT_FILE"
    message = "the instruments file cannot be imported"
