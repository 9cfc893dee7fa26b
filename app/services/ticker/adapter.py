"""One WebSocket connection from open to close, whatever protocol it speaks.

A protocol (a ``Dialect``: ours, ``sessions.Sessions``, for ``/ws/ticker`` and ``/ws/orders``;
KiteTicker's, ``app.services.kite.ticker``) opens the connection its own way (authenticates,
accepts or refuses, joins the hub with its ``Codec``), then hands it to ``SocketAdapter.run``,
which is the same for every protocol: a reader task feeding each client message to the
dialect (plus any companion tasks the dialect keeps, such as KiteTicker's heartbeat), the
hub's sender (writing in place, slow-client rules: ``hub``), and the end. Whoever ends the
connection sets ``finished``; ``run`` then stops the tasks, leaves the hub, sends the closing
message and close code if the server ended it, and lets the dialect act on the close (our
order stream's ``cancel_on_disconnect``). ``subscribe`` is the one way a dialect subscribes a
connection: the current tick of each instrument follows the acknowledgement, in the
connection's codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from app.services.ticker.hub import JSON_CODEC, Codec, Connection, Hub
from app.services.ticker.protocol import INTERNAL
from app.services.ticker.ticks import Mode

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 10.0


class Socket(Protocol):
    """What a session needs from a WebSocket (the routes adapt Starlette's)."""

    @property
    def api_key(self) -> str | None: ...
    @property
    def address(self) -> str | None: ...
    async def accept(self) -> None: ...
    async def deny(self) -> None:
        """Refuse the handshake (HTTP 403), before ``accept``."""
        ...

    async def receive(self) -> str | bytes | None: ...  # None: the client has gone
    def write_now(self, data: bytes) -> bool:
        """Send ``data`` (one message) at once if the socket can take it without waiting;
        False if it cannot (nothing was sent: use ``send``)."""
        ...

    async def send(self, data: bytes) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


class Snapshots(Protocol):
    async def __call__(self, tokens: list[int]) -> dict[int, dict[str, Any]]: ...


class Dialect(Protocol):
    """What differs between the protocols once a connection is open."""

    name: str  # for the log

    async def handle(self, conn: Connection, raw: str | bytes) -> None:
        """One client message (errors are answered on the connection, never raised)."""
        ...

    def companions(self, conn: Connection) -> list[Coroutine[Any, Any, None]]:
        """Tasks that run beside the reader for the connection's life."""
        ...

    async def closed(self, conn: Connection) -> None:
        """After the socket is closed and the connection has left the hub."""
        ...


class SocketAdapter:
    def __init__(self, *, hub: Hub, snapshots: Snapshots) -> None:
        self._hub = hub
        self._snapshots = snapshots

    @staticmethod
    async def accept(socket: Socket) -> bool:
        try:
            await socket.accept()
        except Exception:  # the client left during the handshake
            return False
        return True

    def connect(
        self,
        socket: Socket,
        *,
        account: str,
        key_id: str,
        kind: str,
        codec: Codec = JSON_CODEC,
        cancel_on_disconnect: bool = False,
        can_trade: bool = False,
    ) -> Connection:
        """The connection of an authenticated ``socket``, in the hub."""
        conn = Connection(
            account=account,
            key_id=key_id,
            kind=kind,
            send=socket.send,
            write_now=socket.write_now,
            codec=codec,
            cancel_on_disconnect=cancel_on_disconnect,
            can_trade=can_trade,
        )
        self._hub.add(conn)
        return conn

    async def run(self, conn: Connection, socket: Socket, dialect: Dialect) -> None:
        tasks = [asyncio.create_task(self._read(conn, socket, dialect))]
        tasks += [asyncio.create_task(coro) for coro in dialect.companions(conn)]
        try:
            await conn.finished.wait()
        finally:
            for task in tasks:
                task.cancel()
            self._hub.remove(conn)
            pending: list[asyncio.Future[Any]] = list(tasks)
            if conn.inflight is not None:
                conn.inflight.cancel()
                pending.append(conn.inflight)
            await asyncio.gather(*pending, return_exceptions=True)
            await self.close(socket, conn.close_code, conn.close_reason, conn.close_message)
            await dialect.closed(conn)

    async def _read(self, conn: Connection, socket: Socket, dialect: Dialect) -> None:
        try:
            while True:
                raw = await socket.receive()
                if raw is None:
                    break
                conn.last_seen = time.monotonic()
                await dialect.handle(conn, raw)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s session failed (account %s)", dialect.name, conn.account)
            conn.finish(INTERNAL, "internal error")
        conn.finish()

    @staticmethod
    async def close(socket: Socket, code: int | None, reason: str, last: bytes | None) -> None:
        """Send ``last`` (if any), then the close frame; ``code`` None: the client went away,
        nothing to send."""
        if code is None:
            return
        with contextlib.suppress(Exception):
            if last is not None:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await socket.send(last)
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await socket.close(code, reason)

    async def subscribe(
        self,
        conn: Connection,
        tokens: list[int],
        mode: Mode,
        acknowledge: Callable[[], None] | None = None,
    ) -> None:
        """Subscribe (or change the mode of) ``tokens``, acknowledge, then queue the current
        tick of each (nothing if the connection ended while the ticks were read)."""
        snapshots = await self._snapshots(tokens)
        if conn.finished.is_set():
            return
        self._hub.subscribe(conn, tokens, mode)
        if acknowledge is not None:
            acknowledge()
        tick = conn.codec.tick
        self._hub.queue_ticks(conn, {t: tick(snapshots[t], mode) for t in tokens if t in snapshots})
