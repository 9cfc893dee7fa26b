"""WebSockets: ``/ws/ticker`` (market ticks) and ``/ws/orders`` (the account's own order and
fill updates). They authenticate themselves (``X-API-Key`` header or a first ``auth``
message), so they sit outside the key-checking router; the protocol is in the README.

``StarletteSocket`` is the one adapter of Starlette's WebSocket to the ticker's ``Socket``,
for every protocol (KiteTicker's too, ``routes/kite/ws.py``): a message goes out through the
server's direct frame writer when it has one (``app.wsprotocol``; uvicorn's own protocol and
the test client have none) or through ASGI ``send``. Its ``Frames`` say what kind of frame
each message is: our protocol sends JSON text only (``TEXT``).
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, WebSocket
from starlette.types import Message

from app.deps import TickerDep
from app.services.ticker import ORDERS, TICKER
from app.wsprotocol import FRAME_WRITER, FrameWriter, text_frame

router = APIRouter(tags=["websockets"])


class Frames(Protocol):
    """How a protocol's messages go on the wire."""

    def frame(self, data: bytes) -> bytes:
        """``data`` as one encoded WebSocket frame (for the direct writer)."""
        ...

    def message(self, data: bytes) -> Message:
        """``data`` as an ASGI ``websocket.send`` message."""
        ...


class TextFrames:
    """Every message is a text frame (JSON). A flush sends one frame object to many sockets
    in a row: it is encoded once, not once per socket (the last message and its encoding,
    shared by all)."""

    __slots__ = ("_last_frame", "_last_text")

    def __init__(self) -> None:
        self._last_text: tuple[bytes, str] = (b"", "")
        self._last_frame: tuple[bytes, bytes] = (b"", b"")

    def frame(self, data: bytes) -> bytes:
        last, frame = self._last_frame
        if data is not last:
            frame = text_frame(data)
            self._last_frame = (data, frame)
        return frame

    def message(self, data: bytes) -> Message:
        last, text = self._last_text
        if data is not last:
            text = data.decode()
            self._last_text = (data, text)
        return {"type": "websocket.send", "text": text}


TEXT = TextFrames()


class StarletteSocket:
    """Starlette's WebSocket as the ``Socket`` a ticker session talks to."""

    __slots__ = ("_frames", "_write", "_ws")

    def __init__(self, websocket: WebSocket, frames: Frames = TEXT) -> None:
        self._ws = websocket
        self._frames = frames
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

    async def deny(self) -> None:
        await self._ws.close(1008)

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
        return write(self._frames.frame(data))

    async def send(self, data: bytes) -> None:
        await self._ws.send(self._frames.message(data))

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


@router.websocket("/ws/ticker")
async def ws_ticker(websocket: WebSocket, ticker: TickerDep) -> None:
    await ticker.serve(StarletteSocket(websocket), TICKER)


@router.websocket("/ws/orders")
async def ws_orders(websocket: WebSocket, ticker: TickerDep) -> None:
    await ticker.serve(StarletteSocket(websocket), ORDERS)
