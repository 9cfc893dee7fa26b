"""Errors of the order routes (the per-order reject codes live in the results instead)."""

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
