"""KiteTicker's WebSocket, ``/kite/ws?api_key=...&access_token=...``: the one socket adapter
(``routes/ws.py`` ``StarletteSocket``) with Kite's frames: binary tick packets and
heartbeats, JSON text messages."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from app.routes.ws import StarletteSocket
from app.state import AppState
from app.wsprotocol import binary_frame, text_frame

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


class KiteFrames:
    """Kite's messages: JSON text frames; tick packets and heartbeats binary frames."""

    __slots__ = ()

    def frame(self, data: bytes) -> bytes:
        return text_frame(data) if _is_text(data) else binary_frame(data)

    def message(self, data: bytes) -> Message:
        if _is_text(data):
            return {"type": "websocket.send", "text": data.decode()}
        return {"type": "websocket.send", "bytes": data}


KITE_FRAMES = KiteFrames()


async def kite_ticker(scope: Scope, receive: Receive, send: Send) -> None:
    api_key, access_token = take_credentials(scope)
    websocket = WebSocket(scope, receive, send)
    state: AppState = scope["state"]
    if scope["path"] != PATH:
        await websocket.close(1008)
        return
    socket = StarletteSocket(websocket, KITE_FRAMES)
    await state["kite"].ticker.serve(socket, api_key, access_token)
