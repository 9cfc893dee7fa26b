"""The HTTP/1.1 protocol the server runs: uvicorn's httptools protocol, with each response's
head and body sent in one write.

uvicorn writes a response's status line and headers when the app sends
``http.response.start``, then the body in a second ``write``: for every response two
``send`` system calls, two TCP segments, and a client woken twice. ``HeadBuffer``, the
transport this protocol hands to uvicorn, holds a response head back until the next write
on the connection (the body, which the app sends in the same step) and sends the two as one.
A head that no write follows in that step (a HEAD request's, a ``100 Continue``, a WebSocket
handshake's ``101``, a streamed body that comes later) goes out when the step ends
(``call_soon``), and before the connection is closed. Anything else is written through at
once. Measured with bench/single.py: ~10% less server CPU per single order (issue 17).

**Whole requests.** An app may name routes whose requests it takes whole
(``buffered_route(method, path)``: the order routes' lean path, ``app.routes.lean``). Such a
request, once its bounded body is read, runs as a ``WholeCycle`` instead of uvicorn's
``RequestResponseCycle``: the app gets the body in its first ``receive`` and its answer
goes out in one write with the head, with no ``asyncio.Event``, no task started before the
body is there, no per-message bookkeeping between the app and the socket. It is the same
ASGI call (uvicorn's proxy headers middleware, the app), the same keep-alive, pipelining,
shutdown and disconnect handling (uvicorn's own, on the protocol). An app that renders its
own head may hand the whole answer over in one call (``WholeCycle.answer_whole``). Measured with
bench/single.py: ~10% less server CPU per single order (issue 17). A request that is not
plain (HTTP/1.0, ``Expect: 100-continue``, a chunked body, a ``Content-Length`` over the
app's limit, an upgrade) goes through uvicorn's cycle as before. One difference remains: a
request still sending its body when the graceful shutdown's time runs out has no task to
cancel, so it is closed without uvicorn's 500.

``HttpProtocol`` subclasses uvicorn's httptools protocol; uvicorn stays bounded in
``pyproject.toml`` to the releases this is tested with.
"""

from __future__ import annotations

import asyncio
import contextvars
import urllib.parse
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

_HEAD_START = b"HTTP/1.1 "
_HEAD_END = b"\r\n\r\n"


class HeadBuffer:
    """A transport that holds a response head until the next write (see the module header);
    everything but ``write``, ``writelines``, ``write_eof`` and ``close`` is the wrapped
    transport's own."""

    __slots__ = ("_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:9] == _HEAD_START and data[-4:] == _HEAD_END:
            self._head = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def write_whole(self, data: bytes) -> None:
        """A whole response (head and body): straight through."""
        self.flush()
        self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def flush(self) -> None:
        """Send a held head now (nothing if none is held)."""
        head = self._head
        if head is not None:
            self._head = None
            if not self._transport.is_closing():
                self._transport.write(head)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a ``HeadBuffer``, serving the app's
    ``buffered_route`` requests as ``WholeCycle``s (see the module header)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.config.app
        self._buffered: Callable[[str, str], bool] | None = getattr(app, "buffered_route", None)
        self._body_limit: int = getattr(app, "buffered_body_limit", 0)
        self._reading: WholeCycle | None = None  # the request whose body is being read
        self._defaults: tuple[list[tuple[bytes, bytes]] | None, bytes] = (None, b"")

    def default_head(self) -> bytes:
        """uvicorn's default headers (``date``, ``server``) as head lines, built again when
        the server renews them (each second, for the date)."""
        headers = self.server_state.default_headers
        if self._defaults[0] is not headers:
            lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            self._defaults = (headers, lines)
        return self._defaults[1]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.buffer = HeadBuffer(transport, self.loop)
        super().connection_made(self.buffer)  # type: ignore[arg-type]

    def on_headers_complete(self) -> None:
        cycle = self._whole_cycle()
        if cycle is None:
            super().on_headers_complete()
            return
        previous = self.cycle
        self.cycle = cycle  # type: ignore[assignment]
        if previous is not None and not previous.response_complete:
            # Pipelined behind an answer still to come: uvicorn's queue starts it after.
            cycle.queued = True
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]
        self._reading = cycle

    def _whole_cycle(self) -> WholeCycle | None:
        """A ``WholeCycle`` for this request if the app takes it whole, with its scope
        completed as uvicorn's ``on_headers_complete`` would."""
        route = self._buffered
        parser = self.parser
        if (
            route is None
            or self.root_path
            or self.expect_100_continue
            or self.limit_concurrency is not None
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
        ):
            return None
        for name, value in self.headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self._body_limit:
                    return None
            elif name == b"transfer-encoding":
                return None
        method = parser.get_method().decode("ascii")
        raw_path, query = self.url, b""
        if b"?" in raw_path or b"%" in raw_path or b"#" in raw_path:
            url = httptools.parse_url(raw_path)
            raw_path, query = url.path, url.query or b""
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        if not route(method, path):
            return None
        scope = self.scope
        scope["method"] = method
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        return WholeCycle(self, parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        cycle = self._reading
        if cycle is None:
            super().on_body(body)
        else:
            cycle.body.append(body)

    def on_message_complete(self) -> None:
        cycle = self._reading
        if cycle is None:
            super().on_message_complete()
            return
        self._reading = None
        cycle.read = True
        if not cycle.queued:
            self._start_asgi_task(cycle, self.app)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        cycle, self._reading = self._reading, None
        if cycle is not None:  # its body never came: no task will run it
            cycle.let_go()

    def release(self, cycle: WholeCycle) -> None:
        """A whole cycle answered: the protocol lets go of it, as of uvicorn's cycle once
        answered, so that neither keeps the other alive (reference counting frees it, not
        the garbage collector's passes)."""
        if self.cycle is cycle:  # type: ignore[comparison-overlap]
            self.cycle = None  # type: ignore[unreachable]

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        """Start a cycle: uvicorn's at once, a ``WholeCycle`` once its body is read (a queued
        one's turn may come first: it starts from ``on_message_complete`` then)."""
        if not isinstance(cycle, WholeCycle):
            super()._start_asgi_task(cycle, app)
            return
        cycle.queued = False
        if cycle.read:
            context = contextvars.Context() if self.config.reset_contextvars else None
            task = self.loop.create_task(cycle.run_asgi(app), context=context)
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)


class _Settled:
    """A finished cycle's ``message_event``: nothing waits on it any more."""

    def set(self) -> None:
        pass


_SETTLED = _Settled()


class WholeCycle:
    """One request the app takes whole: its body read before the app runs, its answer
    written in one piece (see the module header). What uvicorn's protocol reads of a cycle
    (``response_complete``, ``keep_alive``, ``disconnected``, ``message_event``) it has."""

    __slots__ = (
        "_chunked", "_chunks", "_closes", "_disconnect", "_head", "_length", "_protocol",
        "_received", "_scope", "body", "disconnected", "keep_alive", "message_event", "queued",
        "read", "response_complete",
    )  # fmt: skip

    def __init__(self, protocol: HttpProtocol, keep_alive: bool) -> None:
        self._protocol = protocol
        self._scope = protocol.scope
        self.body: list[bytes] = []
        self.read = False  # the whole body is in
        self.queued = False  # pipelined behind an answer still to come
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False
        # uvicorn's protocol calls its ``set`` on disconnecting (``_SETTLED`` once answered)
        self.message_event: WholeCycle | _Settled = self
        self._disconnect: asyncio.Event | None = None
        self._received = False
        self._head: list[bytes] | None = None
        self._chunks: list[bytes] = []
        self._length: int | None = None  # the app's Content-Length
        self._chunked = False  # the app's Transfer-Encoding: chunked
        self._closes = False  # the app's Connection: close

    async def run_asgi(self, app: Any) -> None:
        """As uvicorn's ``RequestResponseCycle.run_asgi``: an app that failed or returned
        before its answer started gets a 500 and the connection closed; one that failed
        after, or returned before finishing its answer, the connection closed."""
        protocol = self._protocol
        try:
            await app(self._scope, self.receive, self.send)
        except BaseException as exc:
            protocol.logger.error("Exception in ASGI application\n", exc_info=exc)
            self._failed()
        else:
            if self._head is None and not self.disconnected:
                protocol.logger.error("ASGI callable returned without starting response.")
                self._failed()
            elif not self.response_complete and not self.disconnected:
                protocol.logger.error("ASGI callable returned without completing response.")
                protocol.transport.close()
        finally:
            self.let_go()

    def _failed(self) -> None:
        protocol = self._protocol
        if self._head is None and not self.disconnected:
            self._head = [STATUS_LINE[500], protocol.default_head()]
            self._chunks, self._length = [b"Internal Server Error"], None
            self.keep_alive = False
            self._finish([(b"content-type", b"text/plain; charset=utf-8")])
        else:
            protocol.transport.close()

    def let_go(self) -> None:
        """Done with: no reference from the cycle to itself, none from the protocol to it
        (reference counting frees it, not the garbage collector's passes)."""
        self.message_event = _SETTLED
        self._protocol.release(self)

    async def receive(self) -> dict[str, Any]:
        if not self._received and not self.disconnected:
            self._received = True
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            self.body = []
            return {"type": "http.request", "body": body, "more_body": False}
        if not self.response_complete and not self.disconnected:
            if self._disconnect is None:
                self._disconnect = asyncio.Event()  # a waiter may be cancelled: its own future
            await self._disconnect.wait()
        return {"type": "http.disconnect"}

    def set(self) -> None:
        """``message_event.set()``: the connection was lost, or the answer is complete."""
        if self._disconnect is not None:
            self._disconnect.set()

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if self.disconnected:
            return
        if self._head is None:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', got '{kind}'")
            status = message["status"]
            self._log_access(status)
            head = [STATUS_LINE[status], self._protocol.default_head()]
            headers = message.get("headers", ())
            # uvicorn's checks, one search over all names and one over all values
            if HEADER_RE.search(b"".join(name for name, _ in headers)) or HEADER_VALUE_RE.search(
                b"".join(value for _, value in headers)
            ):
                raise RuntimeError("Invalid HTTP header.")
            for name, value in headers:
                name = name.lower()
                if name == b"content-length":
                    self._length = int(value)
                elif name == b"connection":
                    if b"close" in (token.strip() for token in value.lower().split(b",")):
                        self.keep_alive = False
                        self._closes = True
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self._chunked = True
                head += (name, b": ", value, b"\r\n")
            self._head = head
        elif self.response_complete or kind != "http.response.body":
            raise RuntimeError(f"Unexpected ASGI message '{kind}'")
        else:
            self._chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                protocol = self._protocol
                if protocol.flow.write_paused:
                    await protocol.flow.drain()
                self._finish([])

    def answer_whole(self, status: int, lines: bytes, body: bytes) -> bool:
        """The whole answer at once, for an app that renders its own head (the lean order
        path, ``app.routes.lean``): ``lines`` are its header lines (``name: value\r\n``
        each, valid, ``content-length`` among them, no ``connection``), written after the
        status line and the server's default headers, then the body. Skips the ASGI
        messages and their checks. False, with nothing sent, where it cannot answer so (an
        answer already started, the connection's writing paused): the app sends its answer
        as ASGI messages then. True to a client that left (as ``send`` ignores messages)."""
        protocol = self._protocol
        if self._head is not None or protocol.flow.write_paused:
            return False
        if self.disconnected:
            return True
        self._log_access(status)
        self._head = head = [STATUS_LINE[status], protocol.default_head(), lines]
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        self._written(head)
        return True

    def _log_access(self, status: int) -> None:
        protocol = self._protocol
        if protocol.access_log:
            scope = self._scope
            protocol.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope), scope["method"],
                get_path_with_query_string(scope), scope["http_version"], status,
            )  # fmt: skip

    def _finish(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Write the head and the body at once; the connection goes on as after uvicorn's."""
        protocol, head = self._protocol, self._head
        assert head is not None
        body = self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        if self._chunked:  # the app's choice: one chunk and the last
            body = (b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
        elif self._length is None:
            headers.append((b"content-length", str(len(body)).encode()))
        elif self._length != len(body):
            self.response_complete = True
            protocol.transport.close()
            raise RuntimeError("Response content length does not match Content-Length")
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not self._closes:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        self._written(head)

    def _written(self, head: list[bytes]) -> None:
        """Send the answer (``head``: its pieces, the body last); the connection goes on as
        after uvicorn's."""
        protocol = self._protocol
        self.response_complete = True
        self.set()  # a ``receive`` waiting for the disconnect gets it now
        if not self.disconnected and not protocol.transport.is_closing():
            protocol.buffer.write_whole(b"".join(head))
        if not self.keep_alive:
            protocol.transport.close()
        protocol.release(self)
        protocol.on_response_complete()
