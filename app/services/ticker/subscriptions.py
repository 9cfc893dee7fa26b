"""Durable instrument subscriptions: instruments the ticker streams with no client connected.

An active subscription makes the owning replica publish the instrument's ticks to Redis (the
fan-out channel and the last-tick hash) whether or not a WebSocket client wants them, so
other replicas and outside consumers always have its latest state. Trades of every instrument
are journaled regardless, so candles never depend on a subscription. Changes are announced to
the other replicas, which also re-read the table periodically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.errors import NotFound, ValidationFailed
from app.services.cursors import decode_cursor, encode_cursor
from app.services.instruments.model import Instrument
from app.services.instruments.snapshot import SnapshotSource
from app.services.ticker.ticks import Mode
from app.store.database import Database
from app.store.ticker import SubscriptionStore

MAX_BIGINT = 2**63
Listener = Callable[[bool], None]  # called with True when this replica made the change


class SubscriptionIn(BaseModel):
    """``POST /subscriptions``: one instrument by ``symbol`` or ``instrument_token``."""

    model_config = ConfigDict(extra="forbid")

    symbol: str | None = Field(None, max_length=64, examples=["NSE:INFY"])
    instrument_token: int | None = Field(None, ge=1)
    mode: Literal["ltp", "quote", "full"] = "quote"
    status: Literal["active", "paused"] = "active"

    @model_validator(mode="after")
    def _one_instrument(self) -> SubscriptionIn:
        if (self.symbol is None) == (self.instrument_token is None):
            raise ValueError("give either symbol or instrument_token")
        return self


class SubscriptionService:
    def __init__(self, *, database: Database, registry: SnapshotSource) -> None:
        self._store = SubscriptionStore(database)
        self._registry = registry
        self._listeners: list[Listener] = []
        self.active: dict[int, Mode] = {}
        self._changes = 0  # local changes installed so far (``reload``)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _install(self, active: dict[int, Mode], local: bool) -> None:
        if local:
            self._changes += 1
        if active == self.active:
            return
        self.active = active
        for listener in self._listeners:
            listener(local)

    async def reload(self) -> None:
        """Re-read the table. A read that a local change overtook (the change committed and
        installed while the read was on its way, e.g. the reload of a Redis reconnect at
        start-up racing the first ``POST /subscriptions``) may predate it: read again rather
        than install it, or the change would be undone until the next reload."""
        while True:
            changes = self._changes
            rows = await self._store.active()
            if changes == self._changes:
                break
        self._install({token: Mode(mode) for token, mode in rows.items()}, local=False)

    async def list(self, *, limit: int, cursor: str | None) -> dict[str, Any]:
        after = None if cursor is None else decode_cursor(cursor, 1)[0]
        if after is not None and (not isinstance(after, int) or not 0 <= after < MAX_BIGINT):
            raise ValidationFailed("invalid cursor", code="INVALID_CURSOR")
        rows = await self._store.page(after=after, limit=limit)
        next_cursor = encode_cursor(rows[-1].instrument_token) if len(rows) == limit else None
        return {"items": [self._render(row) for row in rows], "next_cursor": next_cursor}

    async def put(self, body: SubscriptionIn, account: str) -> tuple[dict[str, Any], bool]:
        instrument = self._instrument(body)
        token = instrument.instrument_token
        row, created = await self._store.upsert(
            token, mode=body.mode, status=body.status, account=account
        )
        active = dict(self.active)
        if body.status == "active":
            active[token] = Mode(body.mode)
        else:
            active.pop(token, None)
        self._install(active, local=True)
        return self._render(row), created

    async def delete(self, instrument_token: int) -> dict[str, Any]:
        known = -MAX_BIGINT <= instrument_token < MAX_BIGINT  # else no column could hold it
        row = await self._store.delete(instrument_token) if known else None
        if row is None:
            raise NotFound(
                f"no subscription for instrument_token {instrument_token}",
                code="SUBSCRIPTION_NOT_FOUND",
            )
        active = dict(self.active)
        active.pop(instrument_token, None)
        self._install(active, local=True)
        return self._render(row) | {"deleted": True}

    def _instrument(self, body: SubscriptionIn) -> Instrument:
        snapshot = self._registry.snapshot
        if body.symbol is not None:
            return snapshot.lookup(body.symbol)
        assert body.instrument_token is not None
        return snapshot.instrument(body.instrument_token)

    def _render(self, row: Any) -> dict[str, Any]:
        instrument = self._registry.snapshot.get(row.instrument_token)
        return {
            "instrument_token": row.instrument_token,
            "symbol": None if instrument is None else instrument.symbol,
            "mode": row.mode,
            "status": row.status,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
            "updated_by": row.updated_by,
        }


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # SQLite hands back naive UTC
            value = value.replace(tzinfo=UTC)
        return str(value.isoformat()).replace("+00:00", "Z")
    return str(value)
