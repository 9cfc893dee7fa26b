"""Our WebSocket protocol (``/ws/ticker``, ``/ws/orders``): authentication, requests, and the
order stream's dead man's switch, on the shared ``adapter.SocketAdapter``.

The key comes in the ``X-API-Key`` header or as the first message ``{"action": "auth",
"api_key": ...}`` within ``WS_AUTH_TIMEOUT_SECONDS``; a missing, late or bad key gets an error
message and close code 1008. The adapter then runs the connection (reader, the hub's sender,
closing); for an order stream with ``cancel_on_disconnect`` the account's open orders are
cancelled once it is closed (with their own reason, ``CANCEL_ON_DISCONNECT``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from app.errors import AppError
from app.metrics import Metrics
from app.services.access.auth import AuthService, Scope
from app.services.instruments.snapshot import SnapshotSource
from app.services.orders.records import CANCEL_ON_DISCONNECT
from app.services.ticker import protocol
from app.services.ticker.adapter import Socket, SocketAdapter
from app.services.ticker.config import CancelAll
from app.services.ticker.hub import ORDERS, TICKER, Connection, Hub
from app.services.ticker.protocol import POLICY, ClientError, Request, encode
from app.services.ticker.ticks import Mode

log = logging.getLogger(__name__)

_TICKER_ACTIONS = frozenset({"subscribe", "unsubscribe", "mode", "ping", "auth"})
_ORDER_ACTIONS = frozenset({"cancel_on_disconnect", "ping", "auth"})


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_instruments: int
    max_connections_per_key: int
    auth_timeout: float


class Sessions:
    """Our protocol's side of each connection (a ``Dialect`` of the adapter)."""

    name = "WebSocket"

    def __init__(
        self,
        *,
        hub: Hub,
        adapter: SocketAdapter,
        auth: AuthService,
        registry: SnapshotSource,
        cancel_all: CancelAll,
        limits: SessionLimits,
        metrics: Metrics,
    ) -> None:
        self._hub = hub
        self._adapter = adapter
        self._auth = auth
        self._registry = registry
        self._cancel_all = cancel_all
        self._limits = limits
        self._metrics = metrics

    async def serve(self, socket: Socket, kind: str) -> None:
        if not await self._adapter.accept(socket):
            return
        conn = await self._open(socket, kind)
        if conn is not None:
            await self._adapter.run(conn, socket, self)

    def companions(self, conn: Connection) -> list[Coroutine[Any, Any, None]]:
        return []  # heartbeats go to every connection at once (``status.housekeeping``)

    async def closed(self, conn: Connection) -> None:
        if conn.cancel_on_disconnect:
            await asyncio.shield(self._dead_mans_switch(conn.account))

    # -- opening --------------------------------------------------------------------------

    async def _open(self, socket: Socket, kind: str) -> Connection | None:
        presented, options = socket.api_key, Request("auth", {})
        try:
            if presented is None:
                options = await self._first_message(socket)
                presented = options.body["api_key"]
            admission = self._auth.admit(presented, address=socket.address)
            key = self._auth.authorise(admission.key, Scope.READ)
            cancel = kind == ORDERS and protocol.flag(options, "cancel_on_disconnect")
            if cancel:
                self._auth.authorise(key, Scope.TRADE)
        except _Gone:
            return None
        except (AppError, ClientError) as exc:
            code = exc.code
            await self._adapter.close(
                socket, POLICY, code.lower(), protocol.error(code, exc.message)
            )
            return None
        limit = self._limits.max_connections_per_key
        if self._hub.per_key[key.key_sha256] >= limit:
            message = protocol.error(
                "TOO_MANY_CONNECTIONS", f"at most {limit} connections per API key"
            )
            await self._adapter.close(socket, POLICY, "too many connections", message)
            return None
        conn = self._adapter.connect(
            socket,
            account=key.account,
            key_id=key.key_sha256,
            kind=kind,
            cancel_on_disconnect=cancel,
            can_trade=Scope.TRADE in key.scopes,
        )
        self._hub.push(
            conn,
            encode(
                {
                    "type": "authenticated",
                    "endpoint": kind,
                    "account": key.account,
                    "scopes": sorted(s.value for s in key.scopes),
                    "cancel_on_disconnect": cancel,
                    "max_instruments": self._limits.max_instruments,
                }
            ),
            "authenticated",
        )
        return conn

    async def _first_message(self, socket: Socket) -> Request:
        timeout = self._limits.auth_timeout
        try:
            async with asyncio.timeout(timeout):
                raw = await socket.receive()
        except TimeoutError:
            raise ClientError(
                "AUTH_TIMEOUT", f"send the X-API-Key header or an auth message within {timeout:g} s"
            ) from None
        if raw is None:
            raise _Gone()
        request = protocol.parse(raw)
        if request.action != "auth" or not isinstance(request.body.get("api_key"), str):
            raise ClientError(
                "AUTH_REQUIRED", 'authenticate first: {"action": "auth", "api_key": "..."}'
            )
        return request

    async def _dead_mans_switch(self, account: str) -> None:
        try:
            result = await self._cancel_all(account, reason=CANCEL_ON_DISCONNECT)
        except Exception:
            log.exception("cancel_on_disconnect failed for account %s", account)
            return
        self._metrics.ws_cancel_on_disconnect.inc(result["cancelled"])
        log.info(
            "order stream dropped: cancelled %s open orders of account %s",
            result["cancelled"],
            account,
        )

    # -- requests -------------------------------------------------------------------------

    async def handle(self, conn: Connection, raw: str | bytes) -> None:
        request_id = None
        try:
            request = protocol.parse(raw)
            request_id = request.id
            allowed = _TICKER_ACTIONS if conn.kind == TICKER else _ORDER_ACTIONS
            known = request.action in allowed
            self._metrics.ws_messages.labels(
                direction="in", type=request.action if known else "unknown"
            ).inc()
            if not known:
                raise ClientError(
                    "UNKNOWN_ACTION",
                    f"unknown action {request.action[:40]!r}; use {', '.join(sorted(allowed))}",
                )
            await getattr(self, "_on_" + request.action)(conn, request)
        except ClientError as exc:
            self._hub.push(conn, protocol.error(exc.code, exc.message, request_id), "error")

    def _ack(self, conn: Connection, request: Request, body: dict[str, Any]) -> None:
        if request.id is not None:
            body["id"] = request.id
        self._hub.push(conn, encode(body), body["type"])

    async def _on_ping(self, conn: Connection, request: Request) -> None:
        self._ack(conn, request, {"type": "pong"})

    async def _on_auth(self, conn: Connection, request: Request) -> None:
        raise ClientError("ALREADY_AUTHENTICATED", "this connection is already authenticated")

    async def _on_cancel_on_disconnect(self, conn: Connection, request: Request) -> None:
        enabled = protocol.flag(request, "enabled")
        if enabled and not conn.can_trade:
            raise ClientError("FORBIDDEN", "cancel_on_disconnect needs the 'trade' scope")
        conn.cancel_on_disconnect = enabled
        self._ack(conn, request, {"type": "cancel_on_disconnect", "enabled": enabled})

    async def _on_subscribe(self, conn: Connection, request: Request) -> None:
        found = protocol.instruments(request, self._registry.snapshot, self._limits.max_instruments)
        mode = protocol.mode_of(request, Mode.QUOTE)
        tokens = [i.instrument_token for i in found]
        total = len(conn.modes.keys() | set(tokens))
        if total > self._limits.max_instruments:
            raise ClientError(
                "TOO_MANY_INSTRUMENTS",
                f"this would make {total} instruments; at most "
                f"{self._limits.max_instruments} per connection",
            )
        await self._apply(conn, request, found, mode, "subscribed")

    async def _on_mode(self, conn: Connection, request: Request) -> None:
        found = protocol.instruments(request, self._registry.snapshot, self._limits.max_instruments)
        mode = protocol.mode_of(request, None)
        missing = [i.symbol for i in found if i.instrument_token not in conn.modes]
        if missing:
            raise ClientError("NOT_SUBSCRIBED", f"not subscribed: {', '.join(missing[:10])}")
        await self._apply(conn, request, found, mode, "mode")

    async def _apply(
        self, conn: Connection, request: Request, found: list[Any], mode: Mode, ack: str
    ) -> None:
        """Subscribe (or change mode), acknowledge, then send a snapshot tick of each."""

        def acknowledge() -> None:
            body = {"type": ack, "mode": mode.value, "instruments": protocol.listed(found)}
            self._ack(conn, request, body | {"subscriptions": len(conn.modes)})

        tokens = [i.instrument_token for i in found]
        await self._adapter.subscribe(conn, tokens, mode, acknowledge)

    async def _on_unsubscribe(self, conn: Connection, request: Request) -> None:
        found = protocol.instruments(request, self._registry.snapshot, self._limits.max_instruments)
        self._hub.unsubscribe(conn, [i.instrument_token for i in found])
        body = {"type": "unsubscribed", "instruments": protocol.listed(found)}
        self._ack(conn, request, body | {"subscriptions": len(conn.modes)})


class _Gone(Exception):
    """The client left before authenticating."""
