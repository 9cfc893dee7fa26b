"""Errors of the order routes, and ``OrderReject``: one order refused for its own reason."""

from __future__ import annotations

from app.errors import AppError, Conflict, NotFound


class OrderNotFound(NotFound):
    code = "ORDER_NOT_FOUND"
    message = "no such order"


class OrderNotOpen(Conflict):
    code = "ORDER_NOT_OPEN"
    message = "the order is no longer open"


class OrderRejectedError(AppError):
    """A single order (``POST /orders``, amend) that was refused; carries the order result."""

    status = 422


class OrderReject(AppError):
    """One order refused for its own reason, with a stable per-order ``code`` (malformed:
    ``OrderInvalid``; off the instrument's grid, halted, over a limit: ``RiskReject``). In a
    batch it becomes that order's result while its neighbours go on; raised out of a single
    order's amend it answers 422 with the same code."""

    status = 422

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
