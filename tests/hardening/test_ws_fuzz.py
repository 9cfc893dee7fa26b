"""Hostile WebSocket clients against uvicorn on a real port, on both sockets.

Malformed and random frames (bad JSON, wrong types, binary, unknown actions, oversized) get
an error message with a stable code and the connection carries on; a frame past the
server's size limit and a flood that the client does not read get a close code; throughout,
the server stays healthy and other clients (ticks, their own order updates, HTTP) are
unaffected. An account's order stream never shows another account's orders.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.settings import Settings
from tests.conftest import REDIS_URL
from tests.support.live import LiveApp, WsClient, close_code, live_app, place, ws_client
from tests.support.rawws import RawWsClient
from tests.support.servers import ServiceProcess
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, DESK_B_KEY, add_accounts, order

ENDPOINTS = ["/ws/ticker", "/ws/orders"]
PING = {"action": "ping", "id": "alive"}
REPLIES = {"error", "pong", "subscribed", "unsubscribed", "mode", "cancel_on_disconnect"}

# (frame, the error code it must get); str frames go as text, bytes as binary frames.
COMMON: list[tuple[str | bytes, str]] = [
    ("{", "INVALID_JSON"),
    ("", "INVALID_JSON"),
    ("nul\x00", "INVALID_JSON"),
    ("[" * 50_000, "INVALID_JSON"),
    ("{'action': 'ping'}", "INVALID_JSON"),
    (b"\x00\xff\xfe\x80", "INVALID_JSON"),
    ('{"action": "ping", "x": "\\ud800"}', "INVALID_JSON"),
    ("[]", "INVALID_MESSAGE"),
    ("1", "INVALID_MESSAGE"),
    ("null", "INVALID_MESSAGE"),
    ('"ping"', "INVALID_MESSAGE"),
    ('{"action": 1}', "INVALID_MESSAGE"),
    ('{"action": null}', "INVALID_MESSAGE"),
    ('{"action": ["ping"]}', "INVALID_MESSAGE"),
    ('{"action": "ping", "id": {"a": 1}}', "INVALID_MESSAGE"),
    ('{"action": "ping", "id": 1.5}', "INVALID_MESSAGE"),
    ('{"action": "launch"}', "UNKNOWN_ACTION"),
    ('{"action": "__class__"}', "UNKNOWN_ACTION"),
    ('{"action": "' + "x" * 10_000 + '"}', "UNKNOWN_ACTION"),
    ('{"action": "PING"}', "UNKNOWN_ACTION"),
    (b'{"action": "launch"}', "UNKNOWN_ACTION"),
    ('{"action": "auth", "api_key": "' + ADMIN_KEY + '"}', "ALREADY_AUTHENTICATED"),
    ('{"action": "ping", "pad": "' + "x" * 300_000 + '"}', "MESSAGE_TOO_LARGE"),
]
TICKER: list[tuple[str | bytes, str]] = [
    ('{"action": "subscribe"}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": "NSE:INFY"}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": []}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": [null]}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": [true]}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": [1.5]}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": [{"s": 1}]}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": ["' + "A" * 5000 + '"]}', "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": [' + str(2**70) + "]}", "INVALID_SYMBOLS"),
    ('{"action": "subscribe", "symbols": [' + str(2**62) + "]}", "UNKNOWN_INSTRUMENT"),
    ('{"action": "subscribe", "symbols": ["NSE:NOPE"]}', "UNKNOWN_INSTRUMENT"),
    ('{"action": "subscribe", "symbols": ["NSE:ＩＮＦＹ"]}', "UNKNOWN_INSTRUMENT"),
    ('{"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "turbo"}', "INVALID_MODE"),
    ('{"action": "subscribe", "symbols": ["NSE:INFY"], "mode": []}', "INVALID_MODE"),
    ('{"action": "subscribe", "symbols": ' + orjson.dumps(["NSE:INFY"] * 5000).decode() + "}",
     "TOO_MANY_INSTRUMENTS"),
    ('{"action": "mode", "symbols": ["NSE:TCS"], "mode": "full"}', "NOT_SUBSCRIBED"),
    ('{"action": "unsubscribe", "symbols": 7}', "INVALID_SYMBOLS"),
    ('{"action": "cancel_on_disconnect", "enabled": true}', "UNKNOWN_ACTION"),
]  # fmt: skip
ORDERS: list[tuple[str | bytes, str]] = [
    ('{"action": "cancel_on_disconnect", "enabled": "yes"}', "INVALID_MESSAGE"),
    ('{"action": "subscribe", "symbols": ["NSE:INFY"]}', "UNKNOWN_ACTION"),
]


@pytest.fixture
async def live(make_settings: Callable[..., Settings], tokens_dir: Path) -> AsyncIterator[LiveApp]:
    add_accounts(tokens_dir)
    settings = make_settings(
        ticker={"send_queue_limit": 64, "slow_client_seconds": 1.0, "auth_timeout_seconds": 1.0}
    )
    async with live_app(settings) as app:
        yield app


async def alive(ws: WsClient) -> None:
    await ws.send(PING)
    assert await ws.expect("pong") == {"type": "pong", "id": "alive"}


async def error_for(ws: WsClient, frame: str | bytes) -> dict[str, Any]:
    await ws.connection.send(frame)
    reply = await ws.expect("error", timeout=10)
    assert set(reply) >= {"type", "code", "message"}, reply
    return reply


class TestMalformedFrames:
    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    async def test_each_gets_an_error_and_the_connection_stays(
        self, live: LiveApp, endpoint: str
    ) -> None:
        frames = COMMON + (TICKER if endpoint == "/ws/ticker" else ORDERS)
        async with ws_client(live.ws_url + endpoint, key=DESK_B_KEY) as ws:
            for frame, code in frames:
                reply = await error_for(ws, frame)
                assert reply["code"] == code, (str(frame)[:80], reply)
                assert len(reply["message"]) < 300, reply
            await alive(ws)
            # a binary frame holding a valid request is a request like any other
            await ws.connection.send(orjson.dumps(PING))
            assert (await ws.expect("pong"))["id"] == "alive"

    @pytest.mark.parametrize("endpoint", ENDPOINTS)
    async def test_random_bytes_and_json(self, live: LiveApp, endpoint: str) -> None:
        rng = random.Random(20261122)
        async with ws_client(live.ws_url + endpoint, key=DESK_B_KEY) as ws:
            for _ in range(200):
                frame = random_frame(rng)
                await ws.connection.send(frame)
                reply = await ws.recv(timeout=10)
                while reply["type"] in ("tick", "heartbeat"):
                    reply = await ws.recv(timeout=10)
                assert reply["type"] in REPLIES, (frame, reply)
                if reply["type"] == "error":
                    assert reply["code"].replace("_", "").isalpha(), reply
                    assert reply["code"].isupper(), reply
            await alive(ws)

    async def test_an_unauthenticated_garbage_first_frame_is_a_policy_close(
        self, live: LiveApp
    ) -> None:
        for endpoint in ENDPOINTS:
            for frame in (b"\xff\x00", "[" * 50_000, "x" * 300_000, '{"action": "auth"}'):
                async with ws_client(live.ws_url + endpoint) as ws:
                    await ws.connection.send(frame)
                    assert await close_code(ws) == 1008
                assert ws.backlog[0]["type"] == "error"


def random_frame(rng: random.Random) -> str | bytes:
    choice = rng.randrange(4)
    if choice == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if choice == 1:
        return "".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(rng.randrange(1, 100)))
    values: list[Any] = [None, True, 1, -1, 2**40, 1.5, "", "NSE:INFY", [], {}, ["NSE:TCS"], [1]]
    body = {
        rng.choice(["action", "symbols", "tokens", "mode", "id", "api_key", "enabled", "x"]):
        rng.choice(values) for _ in range(rng.randrange(0, 5))
    }  # fmt: skip
    if choice == 2:
        body["action"] = rng.choice(
            ["subscribe", "unsubscribe", "mode", "ping", "auth", "cancel_on_disconnect", "zz"]
        )
    return orjson.dumps(body).decode()


class Unread(RawWsClient):
    """A WebSocket client that sends and never reads, over a socket with a tiny receive
    buffer: what the server sends it piles up on the server's side."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url, key, drain_timeout=2)

    async def flood(self, frame: bytes, count: int) -> int:
        """Send ``frame`` until ``count`` or until the server stops reading; how many."""
        for sent in range(count):
            try:
                self.protocol.send_text(frame)
                await self._flush()
            except (TimeoutError, OSError):
                return sent
        return count

    async def close_code(self, timeout: float = 30) -> int | None:
        """Now read everything: the close code the server sent (None: it just hung up)."""
        async with asyncio.timeout(timeout):
            while self.protocol.close_rcvd is None:
                data = await self.reader.read(1 << 16)
                if not data:
                    return None
                self.protocol.receive_data(data)
                self.protocol.events_received()
        self.writer.transport.abort()
        return self.protocol.close_rcvd.code


def slow_disconnects(metrics: str) -> float:
    found = re.search(r"^ticker_ws_slow_disconnects_total (\S+)$", metrics, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


class TestFloodsAndOtherClients:
    async def test_a_flooding_client_is_closed_and_nobody_else_notices(self, live: LiveApp) -> None:
        before = slow_disconnects((await live.http.get("/metrics")).text)
        async with (
            ws_client(live.ws_url + "/ws/ticker", key=ADMIN_KEY) as watcher,
            ws_client(live.ws_url + "/ws/orders", key=ADMIN_KEY) as mine,
            ws_client(live.ws_url + "/ws/orders", key=DESK_B_KEY) as theirs,
        ):
            await watcher.send({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "ltp"})
            await watcher.expect("subscribed")
            # Each ping echoes a 64 KiB id that the flooder never reads: the server's socket
            # fills, then its bounded send queue, and it must close this client, alone.
            flooder = Unread(live.ws_url + "/ws/ticker", DESK_B_KEY)
            await flooder.connect(live.port)
            big_ping = orjson.dumps({"action": "ping", "id": "x" * 65_536})
            flood = asyncio.create_task(flooder.flood(big_ping, 5_000))
            marker = f"flood-{uuid.uuid4().hex[:8]}"
            for n in range(5):
                price = f"18{80 + n}"
                placed = await place(
                    live.http, ADMIN, order("sell", "1", price, client_order_id=f"{marker}-{n}")
                )
                assert placed["accepted"] == 1
                await place(live.http, DESK_B, order("buy", "1", price))
                tick = await watcher.tick(timeout=5, ltp=price)
                assert tick["symbol"] == "NSE:INFY"
                assert (await live.http.get("/health/live")).status_code == 200
            sent = await asyncio.wait_for(flood, 60)
            assert sent < 5_000, "the server kept reading a client that never reads"
            # 1013 once the client reads again; None if the server had to hang up first
            assert await flooder.close_code() in (1013, None)
            metrics = (await live.http.get("/metrics")).text
            assert slow_disconnects(metrics) == before + 1
            # the account's own stream saw its orders; the other account's never did
            seen_mine = await drain(mine, 1.0)
            seen_theirs = await drain(theirs, 0.5)
        assert marker in seen_mine
        assert marker not in seen_theirs
        async with ws_client(live.ws_url + "/ws/ticker", key=DESK_B_KEY) as again:
            await alive(again)

    async def test_many_small_frames_are_answered_in_order(self, live: LiveApp) -> None:
        async with ws_client(live.ws_url + "/ws/orders", key=DESK_B_KEY) as ws:
            for n in range(2_000):
                await ws.connection.send(orjson.dumps({"action": "ping", "id": n}))
            ids = [(await ws.expect("pong", timeout=10))["id"] for _ in range(2_000)]
        assert ids == list(range(2_000))


async def drain(ws: WsClient, seconds: float) -> str:
    """Everything the client receives within ``seconds``, as text."""
    seen = [orjson.dumps(message).decode() for message in ws.backlog]
    ws.backlog.clear()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            seen.append(orjson.dumps(await ws.recv(timeout=left)).decode())
        except TimeoutError:
            break
    return "\n".join(seen)


class TestFrameSizeOfTheService:
    """``ticker-service serve`` bounds a WebSocket message like a request body (uvicorn's
    ``ws_max_size`` = ``MAX_BODY_BYTES``): past it, 1009 before the frame is buffered."""

    async def test_oversized_frame_closes_with_1009(
        self, tmp_path: Path, redis_prefix: str
    ) -> None:
        tokens = tmp_path / "tokens"
        tokens.mkdir()
        add_accounts(tokens)
        env = {
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": redis_prefix,
            "API_KEY": ADMIN_KEY,
            "TOKENS_DIR": str(tokens),
            "DATA_DIR": str(tmp_path / "data"),
            "MAX_BODY_BYTES": "65536",
        }
        with ServiceProcess(env, tmp_path / "run") as service:
            url = f"ws://127.0.0.1:{service.port}/ws/ticker"
            async with ws_client(url, key=ADMIN_KEY) as ws:
                await ws.connection.send(b"[" * 70_000)
                assert await close_code(ws) == 1009
            async with ws_client(url, key=ADMIN_KEY) as ws:
                await alive(ws)
            health = await asyncio.to_thread(
                __import__("httpx").get, service.url + "/health/live", timeout=5
            )
            assert health.status_code == 200
