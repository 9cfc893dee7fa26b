"""``app.httpprotocol``: under a real uvicorn server and raw sockets, a response's head and
body arrive together, and a head that no body follows in the same step still goes out (HEAD,
a streamed body, ``100 Continue``, a WebSocket handshake, a closed connection); a request the
app takes whole gets its body at once and its answer in one write, in order with the
requests pipelined around it."""

from __future__ import annotations

import asyncio
import contextlib
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


class WholeApp:
    """An app that takes ``POST /whole`` requests whole (bodies up to 64 bytes), as the
    order routes' lean path does, and answers every request with what it received: the
    number of ``receive`` calls it took to get the body, and the body. ``/leave`` waits for
    the client to go, ``/fail`` raises, ``/fail-after`` raises once it answered, ``/silent``
    answers nothing, ``/poll`` looks for a disconnect twice before answering, ``/no-length``
    answers without a Content-Length, ``/rendered`` through ``WholeCycle.answer_whole``."""

    buffered_body_limit = 64

    def __init__(self, *, every_route: bool = False) -> None:
        self.every_route = every_route  # takes every request whole, not only POST /whole
        self.hold: asyncio.Event | None = None  # set: the next whole request waits on it
        self.disconnects = 0
        self.seen: list[bytes] = []

    def buffered_route(self, method: str, path: str) -> bool:
        return self.every_route or (method == "POST" and path == "/whole")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, calls = b"", 0
        while True:
            message = await receive()
            calls += 1
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.seen.append(body)
        if scope["path"] == "/whole" and self.hold is not None:
            hold, self.hold = self.hold, None
            await hold.wait()
        if scope["path"] == "/leave":
            if (await receive())["type"] == "http.disconnect":  # waits until the client left
                self.disconnects += 1
            return
        if scope["path"] == "/fail":
            raise RuntimeError("the app failed")
        if scope["path"] == "/silent":
            return
        if scope["path"] == "/poll":  # looks for a disconnect twice, giving up each time
            for _ in range(2):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(receive(), 0.01)
        answer = b"%d:%s" % (calls, body)
        if scope["path"] == "/rendered":  # its own head, through ``answer_whole``
            lines = b"content-type: text/plain\r\ncontent-length: %d\r\n" % len(answer)
            assert send.__self__.answer_whole(200, lines, answer)
            assert not send.__self__.answer_whole(200, lines, answer)  # answered already
            return
        headers = [(b"content-type", b"text/plain")]
        if scope["path"] != "/no-length":
            headers.append((b"content-length", b"%d" % len(answer)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        if scope["path"] == "/fail-after":
            raise RuntimeError("the app failed after answering")


def post(path: str, body: bytes, *extra: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % (path.encode(), len(body))
    return head + b"".join(line + b"\r\n" for line in extra) + b"\r\n" + body


class TestWholeRequests:
    async def test_a_whole_request_gets_its_body_at_once_and_its_answer_in_one_segment(
        self,
    ) -> None:
        async with serve(WholeApp()) as port, connection(port) as (reader, writer):
            before = data_segments_in(writer)
            for n in range(20):
                body = b'{"n":%d}' % n
                # The body comes in two pieces: the app still gets it in one receive.
                writer.write(post("/whole", body)[:-3])
                await writer.drain()
                await asyncio.sleep(0.001)
                writer.write(body[-3:])
                head, answer = await asyncio.wait_for(read_response(reader), 5)
                assert head.startswith(b"HTTP/1.1 200 OK")
                assert b"date: " in head
                assert b"server: uvicorn" in head
                assert answer == b"1:" + body
            assert data_segments_in(writer) - before == 20

    async def test_pipelined_requests_are_answered_in_order(self) -> None:
        app = WholeApp()
        hold = app.hold = asyncio.Event()
        async with serve(app) as port, connection(port) as (reader, writer):
            # The first (whole) waits; one plain and two whole requests queue behind it.
            writer.write(
                post("/whole", b"a") + post("/plain", b"b") + post("/whole", b"c")
                + post("/whole", b"d")
            )  # fmt: skip
            await asyncio.sleep(0.05)
            assert app.seen == [b"a"]  # nothing behind it ran
            hold.set()
            answers = [(await asyncio.wait_for(read_response(reader), 5))[1] for _ in "abcd"]
            assert answers == [b"1:a", b"1:b", b"1:c", b"1:d"]

    async def test_an_app_may_hand_over_its_answer_rendered(self) -> None:
        app = WholeApp(every_route=True)
        async with serve(app) as port, connection(port) as (reader, writer):
            for close in (b"", b"Connection: close"):
                writer.write(post("/rendered", b"abc", *([close] if close else [])))
                head, answer = await asyncio.wait_for(read_response(reader), 5)
                lines = head.split(b"\r\n")
                assert lines[0] == b"HTTP/1.1 200 OK"
                assert lines[1].startswith(b"date: ")
                assert lines[2] == b"server: uvicorn"
                assert lines[3:5] == [b"content-type: text/plain", b"content-length: 5"]
                assert (b"connection: close" in lines) == bool(close)
                assert answer == b"1:abc"
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the second

    async def test_what_is_not_plain_goes_through_uvicorns_cycle(self) -> None:
        app = WholeApp()
        async with serve(app) as port, connection(port) as (reader, writer):
            big = b"x" * 100  # over the app's limit for whole requests
            writer.write(post("/whole", big))
            assert (await asyncio.wait_for(read_response(reader), 5))[1] == b"1:" + big
            writer.write(
                b"POST /whole HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nab\r\n0\r\n\r\n"
            )
            assert (await asyncio.wait_for(read_response(reader), 5))[1].endswith(b"ab")
            writer.write(post("/whole", b"e", b"Expect: 100-continue"))
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            assert (await asyncio.wait_for(read_response(reader), 5))[1] == b"1:e"

    async def test_an_answer_without_content_length_gets_one(self) -> None:
        app = WholeApp(every_route=True)
        async with serve(app) as port, connection(port) as (reader, writer):
            writer.write(post("/no-length", b"abc"))
            head, answer = await asyncio.wait_for(read_response(reader), 5)
            assert b"content-length: 5\r\n" in head
            assert b"transfer-encoding" not in head
            assert answer == b"1:abc"

    async def test_a_failing_app_answers_500_and_closes(self) -> None:
        app = WholeApp(every_route=True)
        async with serve(app) as port, connection(port) as (reader, writer):
            writer.write(post("/fail", b"x"))
            everything = await asyncio.wait_for(reader.read(), 5)
            assert everything.startswith(b"HTTP/1.1 500 Internal Server Error")
            assert b"connection: close" in everything
            assert everything.endswith(b"\r\n\r\nInternal Server Error")

    async def test_an_app_may_give_up_waiting_for_a_disconnect_and_wait_again(self) -> None:
        app = WholeApp(every_route=True)
        async with serve(app) as port, connection(port) as (reader, writer):
            writer.write(post("/poll", b"x"))
            head, answer = await asyncio.wait_for(read_response(reader), 5)
            assert head.startswith(b"HTTP/1.1 200 OK")
            assert answer == b"1:x"

    async def test_an_app_that_answers_nothing_gets_a_500(self) -> None:
        app = WholeApp(every_route=True)
        async with serve(app) as port, connection(port) as (reader, writer):
            writer.write(post("/silent", b"x"))
            everything = await asyncio.wait_for(reader.read(), 5)
            assert everything.startswith(b"HTTP/1.1 500 Internal Server Error")

    async def test_an_app_failing_after_its_answer_closes_the_connection(self) -> None:
        """As uvicorn: what was pipelined behind it is not answered."""
        app = WholeApp(every_route=True)
        async with serve(app) as port, connection(port) as (reader, writer):
            writer.write(post("/fail-after", b"x") + post("/whole", b"y"))
            everything = await asyncio.wait_for(reader.read(), 5)
            assert everything.startswith(b"HTTP/1.1 200 OK")
            assert everything.endswith(b"\r\n\r\n1:x")

    async def test_connection_close_is_answered_then_closed(self) -> None:
        async with serve(WholeApp()) as port, connection(port) as (reader, writer):
            writer.write(post("/whole", b"x", b"Connection: close"))
            everything = await asyncio.wait_for(reader.read(), 5)
            assert everything.startswith(b"HTTP/1.1 200 OK")
            assert b"connection: close" in everything
            assert everything.endswith(b"\r\n\r\n1:x")

    async def test_a_client_that_leaves_is_told(self) -> None:
        app = WholeApp(every_route=True)
        async with serve(app) as port:
            async with connection(port) as (_reader, writer):
                writer.write(post("/leave", b"x"))
                await writer.drain()
                await asyncio.sleep(0.05)
            for _ in range(100):  # the server notices the connection closed
                if app.disconnects:
                    break
                await asyncio.sleep(0.01)
            assert app.disconnects == 1
            # The server goes on serving.
            async with connection(port) as (reader, writer):
                writer.write(post("/whole", b"y"))
                assert (await asyncio.wait_for(read_response(reader), 5))[1] == b"1:y"
