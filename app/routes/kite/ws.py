"""KiteTicker's WebSocket, ``/kite/ws?api_key=...&access_token=...``: Starlette's socket as
the session's ``KiteSocket``, sending binary tick frames and text messages."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from app.state import AppState
from app.wsprotocol import FRAME_WRITER, FrameWriter, binary_frame, text_frame

PATH = "/kite/ws"
REDACTED = "***"


def take_credentials(scope: Scope) -> tuple[str, str]:
    """``api_key`` and ``access_token`` of the query string, which is rewritten without the
    token: the server logs the WebSocket's path with its query (uvicorn, at INFO), and that
    line must not carry a key."""
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    found = dict(query)
    scope["query_string"] = urlencode(
        [(k, REDACTED if k == "access_token" else v) for k, v in query]
    ).encode("latin-1")
    return found.get("api_key", ""), found.get("access_token", "")


def _is_text(data: bytes) -> bool:
    # Kite's text messages are JSON objects; a binary tick frame starts with its packet
    # count (a big-endian uint16: never 0x7B.. for a connection's at most a few thousand
    # instruments) and a heartbeat is one zero byte.
    return data[:1] == b"{"


class StarletteKiteSocket:
    __slots__ = ("_write", "_ws")

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        writer = websocket.scope.get("extensions", {}).get(FRAME_WRITER)
        self._write: FrameWriter | None = writer["write"] if writer else None

    @property
    def api_key(self) -> str | None:
        return None

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
        return write(text_frame(data) if _is_text(data) else binary_frame(data))

    async def send(self, data: bytes) -> None:
        if _is_text(data):
            await self._ws.send({"type": "websocket.send", "text": data.decode()})
        else:
            await self._ws.send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)


async def kite_ticker(scope: Scope, receive: Receive, send: Send) -> None:
    api_key, access_token = take_credentials(scope)
    websocket = WebSocket(scope, receive, send)
    state: AppState = scope["state"]
    if scope["path"] != PATH:
        await websocket.close(1008)
        return
    await state["kite"].ticker.serve(StarletteKiteSocket(websocket), api_key, access_token)
