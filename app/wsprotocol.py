"""The WebSocket protocol the server runs: uvicorn's sans-I/O one plus a direct frame writer.

A tick flush sends the same frame to many sockets in a row. Through ASGI each of those sends
re-encodes the text, builds and serialises a ``websockets`` frame and runs a chain of
coroutines (Starlette's socket, the middleware, uvicorn's ``send``) before the one ``write``
that matters. This protocol advertises an ASGI scope extension, ``FRAME_WRITER``: a plain
function that writes an already encoded frame (``text_frame``) to the transport at once, or
returns False when it cannot do so right now (handshake not done, closing, or the transport's
buffer above its high-water mark); the caller then uses the ordinary ASGI ``send``, which
waits. Frames are complete WebSocket messages, so they interleave safely with what the
protocol itself writes (pings, pongs, close). A server without the extension (another ASGI
server, the test client) simply takes the ASGI path for everything.

The payload is sent uncompressed even when the client negotiated permessage-deflate: RFC
7692 compresses per message (RSV1 set), and an uncompressed message is valid on such a
connection and leaves both sides' compression contexts untouched.

``WebSocketProtocol`` builds on uvicorn's private sans-I/O protocol class (what it sets in
``__init__``, ``connection_made`` and ``handle_connect``). ``pyproject.toml`` bounds uvicorn
to the releases this is tested with, and ``ws_implementation`` checks at start-up that the
class still looks as expected: if not, the server runs uvicorn's own protocol (every send
takes the ASGI path, slower under fan-out but correct), with one log line saying why.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

log = logging.getLogger(__name__)

#: Key of the scope extension: ``scope["extensions"][FRAME_WRITER]["write"]`` is a
#: ``FrameWriter``.
FRAME_WRITER: Final = "ticker.frame_writer"

FrameWriter = Callable[[bytes], bool]

#: What the service runs (uvicorn's ``ws`` setting), and its fallback.
WS_IMPLEMENTATION: Final = "app.wsprotocol:WebSocketProtocol"
WS_FALLBACK: Final = "websockets-sansio"

# What ``WebSocketProtocol`` reads of uvicorn's class: attribute names each method assigns.
_EXPECTED: Final = {
    "__init__": {
        "handshake_complete", "close_sent", "disconnected", "initial_response", "writable",
        "conn",
    },
    "connection_made": {"transport"},
    "handle_connect": {"scope"},
}  # fmt: skip

_FIN_TEXT: Final = 0x81  # FIN bit + opcode 1 (text); a server's frames are never masked
_FIN_BINARY: Final = 0x82  # FIN bit + opcode 2 (binary)
_SHORT: Final = struct.Struct("!BB")
_MEDIUM: Final = struct.Struct("!BBH")
_LONG: Final = struct.Struct("!BBQ")


def text_frame(payload: bytes, opcode: int = _FIN_TEXT) -> bytes:
    """One unfragmented, unmasked text frame carrying ``payload`` (valid UTF-8)."""
    size = len(payload)
    if size < 126:
        head = _SHORT.pack(opcode, size)
    elif size < 1 << 16:
        head = _MEDIUM.pack(opcode, 126, size)
    else:
        head = _LONG.pack(opcode, 127, size)
    return head + payload


def binary_frame(payload: bytes) -> bytes:
    """One unfragmented, unmasked binary frame carrying ``payload``."""
    return text_frame(payload, _FIN_BINARY)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, advertising ``FRAME_WRITER``."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The ASGI task is created but has not run yet: the scope can still gain a key.
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][FRAME_WRITER] = {"write": self.write_frame}

    def write_frame(self, frame: bytes) -> bool:
        """Write an encoded frame now; False if the connection cannot take it without
        waiting or is no longer open for messages."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True


def private_api_problem(base: Any = WebSocketsSansIOProtocol) -> str | None:
    """Why ``base`` (uvicorn's sans-I/O protocol) is not what ``WebSocketProtocol`` builds
    on, or None. Reads the names each method assigns (its code object), never runs it."""
    for method, names in _EXPECTED.items():
        code = getattr(getattr(base, method, None), "__code__", None)
        if code is None:
            return f"{base.__qualname__}.{method} is gone"
        missing = sorted(names - set(code.co_names))
        if missing:
            return f"{base.__qualname__}.{method} no longer sets {', '.join(missing)}"
    return None


def ws_implementation(base: Any = WebSocketsSansIOProtocol) -> str:
    """uvicorn's ``ws`` setting: ours, or uvicorn's own protocol (one log line) when its
    private API is not what ours builds on."""
    problem = private_api_problem(base)
    if problem is None:
        return WS_IMPLEMENTATION
    log.warning(
        "uvicorn's WebSocket protocol changed (%s): running %s, where tick fan-out takes the "
        "plain ASGI send path",
        problem,
        WS_FALLBACK,
    )
    return WS_FALLBACK
