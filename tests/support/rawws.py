"""A WebSocket client over a raw socket with a tiny receive buffer, read only when the test
says so: what the server sends it piles up on the server's side (slow-client tests)."""

from __future__ import annotations

import asyncio
import socket

from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri


class RawWsClient:
    def __init__(
        self,
        url: str,
        key: str,
        *,
        read_limit: int = 1 << 16,
        drain_timeout: float | None = None,
    ) -> None:
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.key = key
        self._read_limit = read_limit
        self._drain_timeout = drain_timeout

    async def connect(self, port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=self._read_limit)
        request = self.protocol.connect()
        request.headers["X-API-Key"] = self.key
        self.protocol.send_request(request)
        await self._flush()
        while self.protocol.state is not State.OPEN:
            self.protocol.receive_data(await self.reader.read(4096))

    async def _flush(self) -> None:
        self.writer.write(b"".join(self.protocol.data_to_send()))
        await asyncio.wait_for(self.writer.drain(), self._drain_timeout)
