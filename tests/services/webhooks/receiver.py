"""A real webhook receiver for tests: a stdlib HTTP server on loopback in its own thread.

It records every POST (headers, body, the status it answered) and answers what the test
sets: a status code, or a hang until released. Running in a thread keeps a hanging receiver
from touching the service's event loop, as a remote receiver would. ``verified`` checks the
signatures with the ``standardwebhooks`` package, as a client's receiver would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks import Webhook

from tests.support.servers import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    path: str = "/"

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.status = 200
        self.statuses: list[int] = []  # answered first, one each, before ``status``
        self.hang = False
        self.released = threading.Event()
        self.hanging = 0
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender was cut off mid-request (the crash drills kill it): a real
                    # receiver gets no message here, and the sender retries after its restart.
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer()
                if status == 0:  # hang until released (or the server stops)
                    with receiver._lock:
                        receiver.hanging += 1
                    receiver.released.wait(60)
                    with receiver._lock:
                        receiver.hanging -= 1
                    status = 200
                with receiver._lock:
                    receiver.received.append(Received(headers, body, status, self.path))
                try:
                    self.send_response(status)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up (timeout)
                    pass

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def _answer(self) -> int:
        with self._lock:
            if self.statuses:
                return self.statuses.pop(0)
            return 0 if self.hang else self.status

    def stop(self) -> None:
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def delivered(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if 200 <= r.status < 300 and (path is None or r.path == path)
            ]

    def verified(self, secret: str, path: str | None = None) -> list[dict[str, Any]]:
        """The bodies of the delivered messages, each signature checked (raises if bad)."""
        hook = Webhook(secret)
        return [hook.verify(r.body, r.headers) for r in self.delivered(path)]


async def eventually(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Poll ``check`` until it returns a truthy value (returned) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)
