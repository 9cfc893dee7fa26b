"""A real server for WebSocket tests: the app under uvicorn on a spare loopback port, in the
test's own event loop, and a small JSON WebSocket client around ``websockets``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn
import websockets
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection

from app.httpprotocol import HttpProtocol
from app.main import create_app
from app.settings import Settings
from app.wsprotocol import WS_IMPLEMENTATION
from tests.support.servers import free_port


@dataclass
class LiveApp:
    app: FastAPI
    port: int
    http: httpx.AsyncClient
    state: dict[str, Any]  # the lifespan state (AppState)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@asynccontextmanager
async def running_uvicorn(app: Any, **options: Any) -> AsyncIterator[uvicorn.Server]:
    """``app`` under uvicorn on a spare loopback port (``server.config.port``), in the test's
    own event loop, with the protocols ``serve`` runs (ours for HTTP and WebSockets) unless
    ``options`` say otherwise."""
    defaults: dict[str, Any] = {"http": HttpProtocol, "ws": WS_IMPLEMENTATION}
    config = uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), log_config=None, **(defaults | options)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited before starting")
        await asyncio.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@asynccontextmanager
async def live_app(settings: Settings) -> AsyncIterator[LiveApp]:
    app = create_app(settings)
    async with running_uvicorn(
        app, access_log=False, ws_ping_interval=None, timeout_graceful_shutdown=5
    ) as server:
        port = server.config.port
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield LiveApp(app, port, http, server.lifespan.state)


class WsClient:
    """JSON messages in and out; ``ticks`` flattens batched ``ticks`` frames."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.backlog: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.connection.send(
            message if isinstance(message, str) else orjson.dumps(message).decode()
        )

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        if self.backlog:
            return self.backlog.pop(0)
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        message: dict[str, Any] = orjson.loads(raw)
        if message.get("type") == "ticks":
            ticks = list(message["ticks"])
            self.backlog.extend(ticks[1:])
            return dict(ticks[0])
        return message

    async def expect(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next message of type ``kind``, skipping heartbeats and ticks."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            if message["type"] == kind:
                return message
            if message["type"] not in ("heartbeat", "tick"):
                raise AssertionError(f"expected {kind}, got {message}")

    async def tick(self, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The next tick whose fields equal ``match``, skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.recv(max(0.01, deadline - loop.time()))
            if message["type"] == "tick" and all(message.get(k) == v for k, v in match.items()):
                return message

    async def close(self) -> None:
        await self.connection.close()


@asynccontextmanager
async def ws_client(
    url: str, *, key: str | None = None, authenticate: bool = True, **kwargs: Any
) -> AsyncIterator[WsClient]:
    """Connected (and, given ``key``, authenticated by header: the ``authenticated`` message
    is consumed) unless ``authenticate`` is False."""
    headers = {"X-API-Key": key} if key is not None else None
    async with websockets.connect(url, additional_headers=headers, **kwargs) as connection:
        client = WsClient(connection)
        if key is not None and authenticate:
            await client.expect("authenticated")
        yield client


async def close_code(client: WsClient, timeout: float = 10.0) -> int | None:
    """Read until the server closes; the close code it sent (messages before it are kept in
    ``client.backlog``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            raw = await asyncio.wait_for(
                client.connection.recv(), max(0.01, deadline - loop.time())
            )
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
        client.backlog.append(orjson.loads(raw))


async def place(
    http: httpx.AsyncClient, headers: dict[str, str], *orders: dict[str, Any]
) -> dict[str, Any]:
    response = await http.post(
        "/advanced/batch-orders", json={"orders": list(orders)}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
