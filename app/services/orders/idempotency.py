"""Idempotency-Key on batches: the same key and body answer the stored response; the same
key with another body is refused; a key still being processed answers 409."""

from __future__ import annotations

from typing import Any

from app.errors import Conflict, ValidationFailed
from app.services.orders import journal_queries
from app.store.database import Database


class IdempotencyKeyReused(ValidationFailed):
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "this Idempotency-Key was used with a different request body"


class IdempotencyInFlight(Conflict):
    code = "IDEMPOTENCY_IN_FLIGHT"
    message = "a request with this Idempotency-Key is still being processed"


class IdempotencyGuard:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._in_flight: set[tuple[str, str]] = set()

    def claim(self, account: str, key: str) -> None:
        """Mark the key in flight before the first await, so a concurrent twin sees it."""
        if not key or len(key) > 128 or not key.isprintable():
            raise ValidationFailed("Idempotency-Key must be 1-128 printable characters")
        if (account, key) in self._in_flight:
            raise IdempotencyInFlight()
        self._in_flight.add((account, key))

    def release(self, account: str, key: str) -> None:
        self._in_flight.discard((account, key))

    async def replay(
        self, account: str, key: str, request_hash: str | None
    ) -> dict[str, Any] | None:
        """The stored response for this key, or None when the key is new."""
        stored = await journal_queries.batch_by_idempotency_key(self._database, account, key)
        if stored is None:
            return None
        stored_hash, response = stored
        if stored_hash != request_hash:
            raise IdempotencyKeyReused()
        return response
