"""WebSockets: ``/ws/ticker`` (market ticks) and ``/ws/orders`` (the account's own order and
fill updates). They authenticate themselves (``X-API-Key`` header or a first ``auth``
message), so they sit outside the key-checking router; the protocol is in the README."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.deps import TickerDep
from app.services.ticker import ORDERS, TICKER
from app.wsprotocol import FRAME_WRITER, FrameWriter, text_frame

router = APIRouter(tags=["websockets"])


class StarletteSocket:
    """Starlette's WebSocket as the ``Socket`` a ticker session talks to."""

    __slots__ = ("_write", "_ws")
    # A flush sends one frame object to many sockets in a row: encode it once, not once per
    # socket (the last message and its encoding, shared by all): as a WebSocket frame for
    # the server's direct writer (``app.wsprotocol``), as text for ASGI.
    _last: tuple[bytes, str] = (b"", "")
    _last_frame: tuple[bytes, bytes] = (b"", b"")

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        writer = websocket.scope.get("extensions", {}).get(FRAME_WRITER)
        self._write: FrameWriter | None = writer["write"] if writer else None

    @property
    def api_key(self) -> str | None:
        return self._ws.headers.get("x-api-key")

    @property
    def address(self) -> str | None:
        return self._ws.client.host if self._ws.client else None

    async def accept(self) -> None:
        await self._ws.accept()

    async def receive(self) -> str | bytes | None:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else message.get("bytes") or b""

    def write_now(self, data: bytes) -> bool:
        write = self._write
        if write is None:
            return False
        last, frame = StarletteSocket._last_frame
        if data is not last:
            frame = text_frame(data)
            StarletteSocket._last_frame = (data, frame)
        return write(frame)

    async def send(self, data: bytes) -> None:
        last, text = StarletteSocket._last
        if data is not last:
            text = data.decode()
            StarletteSocket._last = (data, text)
        await self._ws.send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


@router.websocket("/ws/ticker")
async def ws_ticker(websocket: WebSocket, ticker: TickerDep) -> None:
    await ticker.serve(StarletteSocket(websocket), TICKER)


@router.websocket("/ws/orders")
async def ws_orders(websocket: WebSocket, ticker: TickerDep) -> None:
    await ticker.serve(StarletteSocket(websocket), ORDERS)
