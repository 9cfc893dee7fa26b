"""``app.httpprotocol``: under a real uvicorn server and raw sockets, a response's head and
body arrive together, and a head that no body follows in the same step still goes out (HEAD,
a streamed body, ``100 Continue``, a WebSocket handshake, a closed connection)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets

from app.httpprotocol import HttpProtocol
from tests.support.live import running_uvicorn

Scope = dict[str, Any]


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[int]:
    async with running_uvicorn(app, http=HttpProtocol, lifespan="off") as server:
        yield server.config.port


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def answer(scope: Scope, receive: Any, send: Any, body: bytes = b'{"ok":true}') -> None:
    if scope["type"] != "http":
        return
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


def data_segments_in(writer: asyncio.StreamWriter) -> int:
    """TCP segments with data the socket has received (Linux ``tcp_info.tcpi_data_segs_in``)."""
    info = writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int(struct.unpack_from("I", info, _DATA_SEGS_IN)[0])


_DATA_SEGS_IN = 152  # its offset in struct tcp_info (Linux >= 4.6)


async def test_head_and_body_arrive_in_one_segment() -> None:
    """One write per response: each response is one TCP segment (uvicorn's own protocol
    sends two: the head, then the body)."""
    request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
    async with serve(answer) as port, connection(port) as (reader, writer):
        before = data_segments_in(writer)
        for _ in range(20):
            writer.write(request)
            head, body = await asyncio.wait_for(read_response(reader), 5)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert body == b'{"ok":true}'
        assert data_segments_in(writer) - before == 20


async def test_a_head_request_gets_its_head() -> None:
    async with serve(answer) as port, connection(port) as (reader, writer):
        writer.write(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"content-length: 11" in head
        # The connection still serves the next request, with its body.
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await asyncio.wait_for(read_response(reader), 5))[1] == b'{"ok":true}'


async def test_a_streamed_body_does_not_hold_back_its_head() -> None:
    """The head goes out when the app's step ends, while the body is still to come."""
    more = asyncio.Event()

    async def stream(scope: Scope, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await more.wait()
        await send({"type": "http.response.body", "body": b"late", "more_body": False})

    async with serve(stream) as port, connection(port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"transfer-encoding: chunked" in head
        more.set()
        chunk = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        assert chunk == b"4\r\nlate\r\n0\r\n\r\n"


async def test_100_continue_goes_out_before_the_body_is_sent() -> None:
    async with serve(answer) as port, connection(port) as (reader, writer):
        writer.write(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"{}")
        head, body = await asyncio.wait_for(read_response(reader), 5)
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert body == b'{"ok":true}'


async def test_a_response_that_closes_the_connection_is_sent_whole() -> None:
    async with serve(answer) as port, connection(port) as (reader, writer):
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        everything = await asyncio.wait_for(reader.read(), 5)  # until the server closes
        assert everything.startswith(b"HTTP/1.1 200 OK")
        assert b"connection: close" in everything
        assert everything.endswith(b'\r\n\r\n{"ok":true}')


async def test_websockets_are_served_through_it() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "hello"})
        assert (await receive())["text"] == "bye"
        await send({"type": "websocket.close", "code": 1000})

    async with serve(app) as port, websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "hello"
        await ws.send("bye")
