"""``app.wsprotocol``: the frame encoding, and the direct writer under a real uvicorn server
with a real ``websockets`` client (permessage-deflate negotiated, as browsers do)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import websockets
from websockets.frames import Frame, Opcode

from app.wsprotocol import (
    FRAME_WRITER,
    WS_FALLBACK,
    WS_IMPLEMENTATION,
    WebSocketProtocol,
    private_api_problem,
    text_frame,
    ws_implementation,
)
from tests.support.live import running_uvicorn

Scope = dict[str, Any]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_000])
def test_text_frame_is_what_websockets_serialises(size: int) -> None:
    payload = b"a" * size
    expected = Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
    assert text_frame(payload) == expected


def test_the_service_runs_this_protocol() -> None:
    module, name = WS_IMPLEMENTATION.split(":")
    assert (module, name) == (WebSocketProtocol.__module__, WebSocketProtocol.__name__)
    assert private_api_problem() is None  # the installed uvicorn is one it builds on
    assert ws_implementation() == WS_IMPLEMENTATION


class _Renamed(WebSocketProtocol):
    """A uvicorn whose protocol no longer sets ``writable`` in ``__init__``."""

    def __init__(self) -> None:
        self.ready_to_write = True


async def test_a_changed_uvicorn_falls_back_to_its_own_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    problem = private_api_problem(_Renamed)
    assert problem is not None
    assert "writable" in problem
    with caplog.at_level("WARNING", logger="app.wsprotocol"):
        assert ws_implementation(_Renamed) == WS_FALLBACK
    (record,) = caplog.records
    assert "plain ASGI send path" in record.getMessage()

    # The fallback serves WebSockets: the app sees no frame writer and sends through ASGI.
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        assert FRAME_WRITER not in scope.get("extensions", {})
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "via ASGI"})
        await send({"type": "websocket.close", "code": 1000})

    async with serve(app, ws=WS_FALLBACK) as url, websockets.connect(url) as client:
        assert await client.recv() == "via ASGI"


@asynccontextmanager
async def serve(app: Any, ws: str = WS_IMPLEMENTATION) -> AsyncIterator[str]:
    async with running_uvicorn(app, ws=ws, lifespan="off") as server:
        yield f"ws://127.0.0.1:{server.config.port}/"


async def test_direct_frames_interleave_with_asgi_messages_in_order() -> None:
    results: dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        write = scope["extensions"][FRAME_WRITER]["write"]
        assert (await receive())["type"] == "websocket.connect"
        results["before_accept"] = write(text_frame(b"too early"))
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "one"})
        results["two"] = write(text_frame('{"two": "é"}'.encode()))
        await send({"type": "websocket.send", "text": "three"})
        assert (await receive())["text"] == "bye"
        await send({"type": "websocket.close", "code": 4000})
        results["after_close"] = write(text_frame(b"too late"))

    async with serve(app) as url, websockets.connect(url) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        received = [await ws.recv() for _ in range(3)]
        await ws.send("bye")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert received == ["one", '{"two": "é"}', "three"]
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4000
    assert results == {"before_accept": False, "two": True, "after_close": False}


async def test_a_client_that_does_not_read_makes_the_writer_refuse() -> None:
    """Past the transport's high-water mark the writer says no (the caller then takes the
    ASGI path, which waits), and once the client reads again it writes again."""
    refused = asyncio.Event()
    resumed: list[bool] = []
    frame = text_frame(b"x" * 262_144)

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        write = scope["extensions"][FRAME_WRITER]["write"]
        await receive()
        await send({"type": "websocket.accept"})
        sent = 0
        while write(frame):
            sent += 1
            assert sent < 2_000, "the writer never pushed back"
        refused.set()
        # ASGI's send waits until the client has drained enough; then the writer works again.
        await send({"type": "websocket.send", "text": "drained"})
        resumed.append(write(text_frame(b"after")))
        await receive()

    async with serve(app) as url, websockets.connect(url, max_size=None) as ws:
        await asyncio.wait_for(refused.wait(), 10)
        while (message := await asyncio.wait_for(ws.recv(), 10)) != "drained":
            assert len(message) == 262_144
        assert await asyncio.wait_for(ws.recv(), 10) == "after"
    assert resumed == [True]
