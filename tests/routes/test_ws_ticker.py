"""``/ws/ticker`` against a real server (uvicorn on a loopback port) with real WebSocket
clients: authentication, every message type, modes, snapshots, seq, limits, heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import websockets

from app.settings import Settings
from tests.support.live import LiveApp, WsClient, close_code, live_app, place, ws_client
from tests.support.trading import (
    ADMIN,
    ADMIN_KEY,
    DESK_B,
    READER_KEY,
    add_accounts,
    order,
)

INFY, TCS = 408065, 2953217


@pytest.fixture
async def live(make_settings: Callable[..., Settings], tokens_dir: Path) -> AsyncIterator[LiveApp]:
    add_accounts(tokens_dir)
    async with live_app(make_settings(ticker={"auth_timeout_seconds": 0.5})) as app:
        yield app


def url(live: LiveApp) -> str:
    return live.ws_url + "/ws/ticker"


async def drain(ws: WsClient) -> None:
    while True:
        await ws.connection.recv()


class TestAuthentication:
    async def test_header_key_is_acknowledged(self, live: LiveApp) -> None:
        async with ws_client(url(live), key=READER_KEY, authenticate=False) as ws:
            hello = await ws.recv()
        assert hello["type"] == "authenticated"
        assert hello["account"] == "reader"
        assert hello["scopes"] == ["read"]
        assert hello["endpoint"] == "ticker"

    async def test_first_message_key(self, live: LiveApp) -> None:
        async with ws_client(url(live)) as ws:
            await ws.send({"action": "auth", "api_key": ADMIN_KEY})
            hello = await ws.recv()
            assert hello["type"] == "authenticated"
            assert hello["account"] == "default"
            await ws.send({"action": "ping", "id": 7})
            assert await ws.recv() == {"type": "pong", "id": 7}

    async def test_no_key_within_the_timeout_closes_with_1008(self, live: LiveApp) -> None:
        async with ws_client(url(live)) as ws:
            assert await close_code(ws) == 1008
        assert ws.backlog[0]["code"] == "AUTH_TIMEOUT"

    @pytest.mark.parametrize(
        ("first", "code"),
        [
            ({"action": "auth", "api_key": "unknown-key-000000000000"}, "UNAUTHENTICATED"),
            ({"action": "subscribe", "symbols": ["NSE:INFY"]}, "AUTH_REQUIRED"),
            ("not json", "INVALID_JSON"),
        ],
    )
    async def test_bad_first_message_closes_with_1008(
        self, live: LiveApp, first: object, code: str
    ) -> None:
        async with ws_client(url(live)) as ws:
            await ws.send(first)  # type: ignore[arg-type]
            assert await close_code(ws) == 1008
        assert ws.backlog == [ws.backlog[0]]
        assert ws.backlog[0]["type"] == "error"
        assert ws.backlog[0]["code"] == code

    async def test_unknown_header_key_closes_with_1008(self, live: LiveApp) -> None:
        async with ws_client(url(live), key="unknown-key-000000000000", authenticate=False) as ws:
            assert await close_code(ws) == 1008
        assert ws.backlog[0]["code"] == "UNAUTHENTICATED"
        assert "unknown-key" not in ws.backlog[0]["message"]

    async def test_connections_per_key_are_limited(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        async with live_app(make_settings(ticker={"max_connections_per_key": 2})) as live:
            async with ws_client(url(live), key=ADMIN_KEY), ws_client(url(live), key=ADMIN_KEY):
                async with ws_client(url(live), key=ADMIN_KEY, authenticate=False) as third:
                    assert await close_code(third) == 1008
                assert third.backlog[0]["code"] == "TOO_MANY_CONNECTIONS"
            # the two others closed: a new one is admitted again
            async with ws_client(url(live), key=ADMIN_KEY) as again:
                await again.send({"action": "ping"})
                assert (await again.recv())["type"] == "pong"


class TestRequests:
    async def test_subscribe_acknowledges_and_sends_a_snapshot(self, live: LiveApp) -> None:
        await place(live.http, ADMIN, order("sell", "10", "1875.4"))
        await place(live.http, DESK_B, order("buy", "4", "1875.4"))
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send(
                {"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "quote", "id": 1}
            )
            ack = await ws.recv()
            assert ack == {
                "type": "subscribed",
                "mode": "quote",
                "instruments": [{"symbol": "NSE:INFY", "instrument_token": INFY}],
                "subscriptions": 1,
                "id": 1,
            }
            tick = await ws.recv()
        assert tick["type"] == "tick"
        assert tick["mode"] == "quote"
        assert tick["seq"] >= 1
        assert tick["ltp"] == "1875.4"
        assert tick["last_quantity"] == "4"
        assert tick["volume"] == "4"
        assert tick["ask"] == "1875.4"
        assert tick["ask_quantity"] == "6"
        assert tick["bid"] is None
        assert tick["ohlc"] == {
            "open": "1875.4",
            "high": "1875.4",
            "low": "1875.4",
            "close": "1875.4",
        }
        assert "depth" not in tick

    async def test_modes_carry_their_fields(self, live: LiveApp) -> None:
        await place(live.http, ADMIN, order("sell", "3", "1876"), order("sell", "2", "1876.5"))
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send({"action": "subscribe", "tokens": [INFY], "mode": "ltp"})
            await ws.expect("subscribed")
            ltp = await ws.tick()
            assert set(ltp) == {
                "type",
                "mode",
                "symbol",
                "instrument_token",
                "seq",
                "timestamp",
                "ts_ns",
                "ltp",
            }
            await ws.send({"action": "mode", "symbols": ["NSE:INFY"], "mode": "full"})
            ack = await ws.expect("mode")
            assert ack["mode"] == "full"
            full = await ws.tick()
        assert full["mode"] == "full"
        assert full["depth"]["asks"] == [
            {"price": "1876", "quantity": "3", "orders": 1},
            {"price": "1876.5", "quantity": "2", "orders": 1},
        ]
        assert full["depth"]["bids"] == []
        assert full["seq"] == ltp["seq"]  # the same state, in another mode

    async def test_ticks_follow_trades_with_consecutive_seq(self, live: LiveApp) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY", "NSE:TCS"]})
            await ws.expect("subscribed")
            first = {(await ws.tick())["instrument_token"] for _ in range(2)}
            assert first == {INFY, TCS}
            for _n in range(30):
                await place(
                    live.http,
                    ADMIN,
                    order("sell", "1", "1875.4"),
                    order("sell", "1", "4102.3", symbol="NSE:TCS"),
                )
                await place(
                    live.http,
                    DESK_B,
                    order("buy", "1", "1875.4"),
                    order("buy", "1", "4102.3", symbol="NSE:TCS"),
                )
            seqs: dict[int, list[int]] = {INFY: [], TCS: []}
            done: set[int] = set()
            while done != {INFY, TCS}:  # until each shows all 30 trades (quote: volume)
                tick = await ws.tick()
                seqs[tick["instrument_token"]].append(tick["seq"])
                if tick["volume"] == "30" and tick["ask"] is None:
                    done.add(tick["instrument_token"])
        for got in seqs.values():
            # Commits that land within one flush share a tick, so there may be fewer than
            # 60 ticks; but every tick the server emitted arrives: no gap, no repeat.
            assert got == list(range(got[0], got[0] + len(got)))
            assert len(got) > 10

    async def test_unsubscribe_stops_the_ticks(self, live: LiveApp) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY", "NSE:TCS"]})
            await ws.expect("subscribed")
            await ws.send({"action": "unsubscribe", "symbols": ["NSE:INFY"], "id": "u"})
            ack = await ws.expect("unsubscribed")
            assert ack["subscriptions"] == 1
            assert ack["id"] == "u"
            await place(live.http, ADMIN, order("sell", "1", "1875.4"))
            await place(live.http, ADMIN, order("sell", "1", "4102.3", symbol="NSE:TCS"))
            tick = await ws.tick(instrument_token=TCS, seq=1)
            assert tick["instrument_token"] == TCS
            await ws.send({"action": "ping"})
            rest = []
            while (message := await ws.recv())["type"] != "pong":
                rest.append(message)
        assert all(m.get("instrument_token") != INFY for m in rest)

    @pytest.mark.parametrize(
        ("message", "code"),
        [
            ("{oops", "INVALID_JSON"),
            ("[1, 2]", "INVALID_MESSAGE"),
            ({"symbols": ["NSE:INFY"]}, "INVALID_MESSAGE"),
            ({"action": "dance"}, "UNKNOWN_ACTION"),
            ({"action": "subscribe"}, "INVALID_SYMBOLS"),
            ({"action": "subscribe", "symbols": "NSE:INFY"}, "INVALID_SYMBOLS"),
            ({"action": "subscribe", "symbols": [True]}, "INVALID_SYMBOLS"),
            ({"action": "subscribe", "symbols": ["NSE:NOPE"]}, "UNKNOWN_INSTRUMENT"),
            ({"action": "subscribe", "symbols": [1]}, "UNKNOWN_INSTRUMENT"),
            ({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "max"}, "INVALID_MODE"),
            ({"action": "mode", "symbols": ["NSE:INFY"]}, "INVALID_MODE"),
            ({"action": "mode", "symbols": ["NSE:INFY"], "mode": "full"}, "NOT_SUBSCRIBED"),
            ({"action": "auth", "api_key": ADMIN_KEY}, "ALREADY_AUTHENTICATED"),
            ({"action": "ping", "id": [1]}, "INVALID_MESSAGE"),
        ],
    )
    async def test_malformed_requests_get_an_error_and_the_connection_stays(
        self, live: LiveApp, message: object, code: str
    ) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send(message)  # type: ignore[arg-type]
            error = await ws.recv()
            assert error["type"] == "error"
            assert error["code"] == code
            assert error["message"]
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "ltp"})
            assert (await ws.expect("subscribed"))["subscriptions"] == 1

    async def test_binary_frames_are_read_as_json(self, live: LiveApp) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.connection.send(b'{"action": "ping", "id": "b"}')
            assert await ws.recv() == {"type": "pong", "id": "b"}

    async def test_instruments_per_connection_are_limited(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(ticker={"max_instruments_per_connection": 2})
        async with live_app(settings) as live, ws_client(url(live), key=ADMIN_KEY) as ws:
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY", "NSE:TCS"]})
            await ws.expect("subscribed")
            await ws.send({"action": "subscribe", "symbols": ["NSE:RELIANCE"], "id": 2})
            error = await ws.expect("error")
            assert error["code"] == "TOO_MANY_INSTRUMENTS"
            assert error["id"] == 2
            await ws.send({"action": "subscribe", "symbols": ["A", "B", "C"]})
            assert (await ws.expect("error"))["code"] == "TOO_MANY_INSTRUMENTS"
            # resubscribing what it has (another mode) is within the limit
            await ws.send({"action": "subscribe", "symbols": ["NSE:TCS"], "mode": "full"})
            assert (await ws.expect("subscribed"))["subscriptions"] == 2


class TestLiveness:
    async def test_heartbeats_and_idle_clients_are_closed(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(ticker={"heartbeat_seconds": 0.3, "idle_timeout_seconds": 1.5})
        async with (
            live_app(settings) as live,
            ws_client(url(live), key=ADMIN_KEY) as active,
            ws_client(url(live), key=ADMIN_KEY) as idle,
        ):
            assert (await active.recv())["type"] == "heartbeat"
            for _ in range(6):  # a client that talks stays
                await active.send({"action": "ping"})
                await asyncio.sleep(0.4)
            assert await close_code(idle) == 1008
            assert any(m.get("code") == "IDLE_TIMEOUT" for m in idle.backlog)
            await active.send({"action": "ping"})
            assert await active.expect("pong")

    async def test_health_and_metrics_count_connections_and_subscriptions(
        self, live: LiveApp
    ) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY", "NSE:TCS"]})
            await ws.expect("subscribed")
            ticker = (await live.http.get("/health")).json()["ticker"]
            assert ticker["running"] is True
            assert ticker["connections"] == 1
            assert ticker["subscriptions"] == 2
            assert ticker["replicas"] == 1
            assert ticker["fanout"]["status"] == "ok"
            metrics = (await live.http.get("/metrics")).text
            assert 'ticker_ws_connections{scope="replica"} 1.0' in metrics
            assert 'ticker_ws_connections{scope="cluster"} 1.0' in metrics
            assert 'ticker_subscriptions{scope="cluster"} 2.0' in metrics
            assert 'ticker_ws_messages_total{direction="in",type="subscribe"} 1.0' in metrics
        await asyncio.sleep(0.2)
        ticker = (await live.http.get("/health")).json()["ticker"]
        assert ticker["local"] == {"connections": 0, "subscriptions": 0, "instruments": 0}

    async def test_a_client_going_away_mid_stream_is_forgotten(self, live: LiveApp) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY"]})
            await ws.expect("subscribed")
            ws.connection.transport.abort()  # no close handshake
            with pytest.raises(websockets.ConnectionClosed):
                await drain(ws)
        for _ in range(50):
            if not live.state["ticker"].hub.connections:
                break
            await asyncio.sleep(0.05)
        assert not live.state["ticker"].hub.connections
        await place(live.http, ADMIN, order("sell", "1", "1875.4"))  # nobody to send to
