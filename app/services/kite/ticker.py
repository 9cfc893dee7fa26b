"""KiteTicker's WebSocket on our ticker hub: same committed ticks, coalescing and slow-client
rules as ``/ws/ticker``, in Kite's wire format.

The connection joins the ticker's ``Hub`` with the ``KiteCodec``: ticks become binary packets
(``packets``), order updates text frames ``{"type": "order", "data": {...}}`` in Kite's
order shape, and fill updates are not sent (Kite has none). Client messages are Kite's:
``{"a": "subscribe"|"unsubscribe", "v": [tokens]}`` and ``{"a": "mode", "v": [mode,
[tokens]]}``; unknown tokens are ignored, as Kite ignores them. A 1-byte binary heartbeat
goes out every ``heartbeat_seconds``. KiteTicker sends nothing once subscribed, so its
connections are not closed as idle (a dead peer is found by the send failing or stalling).
Authentication is Kite's (the query string's key and token; a refusal denies the handshake);
from there the connection runs on the ticker's ``SocketAdapter`` like any other: the
codec and the messages below are all that is Kite's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

import orjson

from app.errors import AppError
from app.metrics import Metrics
from app.services.access.auth import AuthService, Scope
from app.services.instruments.snapshot import SnapshotSource
from app.services.kite.orders import KiteOrders
from app.services.kite.packets import HEARTBEAT, frame, packet
from app.services.ticker.adapter import Snapshots, Socket, SocketAdapter
from app.services.ticker.hub import KITE, Connection, Hub
from app.services.ticker.ticks import Mode

_MODES = {m.value: m for m in Mode}


class KiteCodec:
    def __init__(self, *, registry: SnapshotSource, orders: KiteOrders) -> None:
        self._registry = registry
        self._orders = orders

    def tick(self, full: dict[str, Any], mode: Mode) -> bytes:
        return packet(full, mode, self._registry.snapshot.get(full["instrument_token"]))

    def frame(self, pending: dict[int, bytes]) -> tuple[bytes, int]:
        return frame(list(pending.values())), len(pending)

    def control(self, account: str, message: bytes, kind: str) -> bytes | None:
        """Order updates in Kite's shape; fills (Kite has none) and our JSON heartbeats
        (KiteTicker gets its 1-byte one from the session) are not sent."""
        if kind != "order":
            return None
        order = orjson.loads(message).get("order")
        update = None if order is None else self._orders.order_update(account, order)
        return None if update is None else orjson.dumps(update)


def _error(message: str) -> bytes:
    return orjson.dumps({"type": "error", "data": message})


class KiteTickerSessions:
    """KiteTicker's side of each connection (a ``Dialect`` of the ticker's adapter)."""

    name = "KiteTicker"

    def __init__(
        self,
        *,
        hub: Hub,
        auth: AuthService,
        registry: SnapshotSource,
        snapshots: Snapshots,
        codec: KiteCodec,
        metrics: Metrics,
        max_instruments: int,
        max_connections_per_key: int,
        heartbeat_seconds: float = 1.0,
    ) -> None:
        self._hub = hub
        self._adapter = SocketAdapter(hub=hub, snapshots=snapshots)
        self._auth = auth
        self._registry = registry
        self._codec = codec
        self._metrics = metrics
        self._max_instruments = max_instruments
        self._max_connections = max_connections_per_key
        self._heartbeat = heartbeat_seconds

    async def serve(self, socket: Socket, api_key: str, access_token: str) -> None:
        try:
            admission = self._auth.admit(access_token or None, address=socket.address)
            key = self._auth.authorise(admission.key, Scope.READ)
        except AppError:
            await socket.deny()
            return
        if key.account != api_key or self._hub.per_key[key.key_sha256] >= self._max_connections:
            await socket.deny()
            return
        if not await self._adapter.accept(socket):
            return
        conn = self._adapter.connect(
            socket, account=key.account, key_id=key.key_sha256, kind=KITE, codec=self._codec
        )
        await self._adapter.run(conn, socket, self)

    def companions(self, conn: Connection) -> list[Coroutine[Any, Any, None]]:
        return [self._beat(conn)]

    async def closed(self, conn: Connection) -> None:
        return None

    async def _beat(self, conn: Connection) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            conn.last_seen = time.monotonic()  # KiteTicker sends nothing: never idle
            self._hub.push(conn, HEARTBEAT)

    async def handle(self, conn: Connection, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._hub.push(conn, _error("messages must be JSON"))
            return
        action = message.get("a") if isinstance(message, dict) else None
        value = message.get("v") if isinstance(message, dict) else None
        self._metrics.ws_messages.labels(
            direction="in", type=f"kite_{action}" if action in _ACTIONS else "unknown"
        ).inc()
        if action == "subscribe":
            await self._subscribe(conn, _tokens(value), None)
        elif action == "unsubscribe":
            self._hub.unsubscribe(conn, _tokens(value))
        elif action == "mode":
            mode = _MODES.get(value[0]) if isinstance(value, list) and len(value) == 2 else None
            if mode is None or not isinstance(value, list):
                self._hub.push(conn, _error('mode must be ["ltp"|"quote"|"full", [tokens]]'))
                return
            await self._subscribe(conn, _tokens(value[1]), mode)
        else:
            self._hub.push(conn, _error("unknown message; use subscribe, unsubscribe or mode"))

    async def _subscribe(self, conn: Connection, tokens: list[int], mode: Mode | None) -> None:
        """Subscribe (in quote mode, as Kite does) or change the mode of subscribed tokens,
        then send a snapshot packet of each."""
        snapshot = self._registry.snapshot
        known = [t for t in dict.fromkeys(tokens) if snapshot.get(t) is not None]
        if mode is not None:
            known = [t for t in known if t in conn.modes]
        if len(conn.modes.keys() | set(known)) > self._max_instruments:
            self._hub.push(
                conn, _error(f"at most {self._max_instruments} instruments per connection")
            )
            return
        if not known:
            return
        await self._adapter.subscribe(conn, known, mode or Mode.QUOTE)


_ACTIONS = frozenset({"subscribe", "unsubscribe", "mode"})


def _tokens(value: Any) -> list[int]:
    if not isinstance(value, list):
        return []
    return [v for v in value if type(v) is int and 0 < v < 2**63]
