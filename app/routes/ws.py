"""WebSockets: ``/ws/ticker`` (market ticks) and ``/ws/orders`` (the account's own order and
fill updates). They authenticate themselves (``X-API-Key`` header or a first ``auth``
message), so they sit outside the key-checking router; the protocol is in the README."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from app.deps import TickerDep
from app.services.ticker import ORDERS, TICKER

router = APIRouter(tags=["websockets"])


class StarletteSocket:
    """Starlette's WebSocket as the ``Socket`` a ticker session talks to."""

    __slots__ = ("_ws",)
    # ASGI text frames are ``str``. A flush sends one frame object to many sockets in a row:
    # decode it once, not once per socket (the last frame and its text, shared by all).
    _last: tuple[bytes, str] = (b"", "")

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

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
