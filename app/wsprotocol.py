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
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

#: Key of the scope extension: ``scope["extensions"][FRAME_WRITER]["write"]`` is a
#: ``FrameWriter``.
FRAME_WRITER: Final = "ticker.frame_writer"

FrameWriter = Callable[[bytes], bool]

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
