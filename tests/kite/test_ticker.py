"""KiteTicker, the official client in a subprocess, against a live server: subscribe, modes,
ticks equal to our order book and trades, order updates, and a refused token."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.kite.support import DESK_A, DESK_B, call, client, kite_server
from tests.support.live import LiveApp, ws_client
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B_KEY

SCRIPT = Path(__file__).with_name("ticker_client.py")
INFY, RELIANCE, TCS, NIFTY = 408065, 738561, 2953217, 256265


@pytest.fixture
async def live(
    make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
) -> AsyncIterator[LiveApp]:
    async with kite_server(make_settings(db={"url": pg_url}), tokens_dir) as app:
        yield app


class Ticker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def next(self, timeout: float = 20.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise AssertionError(f"the KiteTicker process ended: {self.events}")
        event: dict[str, Any] = json.loads(line)
        self.events.append(event)
        return event

    async def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                event = await self.next(max(0.1, deadline - loop.time()))
            except TimeoutError:
                raise AssertionError(f"no such event; saw {self.events}") from None
            if predicate(event):
                return event

    async def tick(
        self, token: int, predicate: Callable[[dict[str, Any]], bool] = lambda _t: True
    ) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def match(event: dict[str, Any]) -> bool:
            for tick in event.get("ticks", ()):
                if tick["instrument_token"] == token and predicate(tick):
                    found.update(tick)
                    return True
            return False

        # Ticks already received count too: snapshots of several modes arrive together.
        if not any(match(event) for event in self.events):
            await self.wait(match)
        return found


@asynccontextmanager
async def kite_ticker(
    live: LiveApp,
    api_key: str,
    access_token: str,
    *,
    full: tuple[int, ...] = (),
    ltp: tuple[int, ...] = (),
    quote: tuple[int, ...] = (),
) -> AsyncIterator[Ticker]:
    args = [",".join(map(str, group)) for group in (full, ltp, quote)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        f"ws://127.0.0.1:{live.port}/kite/ws",
        api_key,
        access_token,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield Ticker(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def place_form(side: str, quantity: int, price: float | None, symbol: str = "INFY") -> Any:
    return {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": symbol,
        "transaction_type": side,
        "quantity": quantity,
        "product": "MIS",
        "order_type": "LIMIT" if price is not None else "MARKET",
        "price": price,
    }


class TestTicks:
    async def test_modes_and_ticks_equal_our_book_and_trades(
        self, live: LiveApp, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="uvicorn.error")
        a, b = client(live), client(live, DESK_B, DESK_B_KEY)
        async with kite_ticker(
            live, DESK_A, ADMIN_KEY, full=(INFY,), ltp=(RELIANCE,), quote=(TCS,)
        ) as ticker:
            await ticker.wait(lambda e: e["event"] == "connect")
            # A snapshot of each in its mode (quote first: KiteTicker subscribes in quote).
            assert (await ticker.tick(INFY, lambda t: t["mode"] == "full"))["last_price"] == 1875.4
            assert (await ticker.tick(RELIANCE, lambda t: t["mode"] == "ltp"))["last_price"] == (
                1302.55
            )
            tcs = await ticker.tick(TCS)
            assert (tcs["mode"], tcs["tradable"], tcs["last_price"]) == ("quote", True, 4102.3)

            for side, qty, price in (("BUY", 3, 1875.0), ("BUY", 2, 1874.5), ("SELL", 4, 1876.0)):
                await call(a.place_order, **place_form(side, qty, price))
            await call(a.place_order, **place_form("SELL", 5, 1877.0))
            await call(b.place_order, **place_form("BUY", 1, None))
            await call(a.place_order, **place_form("SELL", 2, 1302.0, "RELIANCE"))
            await call(b.place_order, **place_form("BUY", 2, None, "RELIANCE"))

            book = (await live.http.get("/orderbook/NSE:INFY?depth=5", headers=ADMIN)).json()
            [trade] = (await live.http.get("/trades/NSE:INFY", headers=ADMIN)).json()["items"]

            def settled(tick: dict[str, Any]) -> bool:
                return tick["volume_traded"] == 1 and tick["depth"]["sell"][1]["quantity"] == 5

            full = await ticker.tick(INFY, settled)
            assert full["mode"] == "full"
            assert full["last_price"] == float(trade["price"]) == 1876.0
            assert full["last_traded_quantity"] == int(trade["quantity"]) == 1
            for side, ours in (("buy", book["bids"]), ("sell", book["asks"])):
                levels = [(lv["price"], lv["quantity"], lv["orders"]) for lv in full["depth"][side]]
                expected = [(float(lv["price"]), int(lv["quantity"]), lv["orders"]) for lv in ours]
                assert levels[: len(expected)] == expected
                assert levels[len(expected) :] == [(0, 0, 0)] * (5 - len(expected))
            assert (full["total_buy_quantity"], full["total_sell_quantity"]) == (5, 8)
            assert full["ohlc"] == {
                "open": 1876.0,
                "high": 1876.0,
                "low": 1876.0,
                "close": 1875.4,
            }

            reliance = await ticker.tick(RELIANCE, lambda t: t["last_price"] == 1302.0)
            assert set(reliance) == {"tradable", "mode", "instrument_token", "last_price"}
        lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"]
        assert any("/kite/ws?api_key=default&access_token=%2A%2A%2A" in m for m in lines), lines
        assert not any(ADMIN_KEY in m for m in lines)

    async def test_json_and_kite_clients_of_one_instrument_get_the_same_ticks(
        self, live: LiveApp
    ) -> None:
        a, b = client(live), client(live, DESK_B, DESK_B_KEY)
        async with (
            kite_ticker(live, DESK_A, ADMIN_KEY, full=(INFY,)) as ticker,
            ws_client(live.ws_url + "/ws/ticker", key=ADMIN_KEY) as ours,
        ):
            await ticker.wait(lambda e: e["event"] == "connect")
            await ours.send({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "full"})
            await ours.expect("subscribed")
            await call(a.place_order, **place_form("SELL", 2, 1876.5))
            await call(b.place_order, **place_form("BUY", 2, None))
            tick = await ours.tick(ltp="1876.5")
            kite = await ticker.tick(INFY, lambda t: t["last_price"] == 1876.5)
            assert kite["volume_traded"] == int(tick["volume"]) == 2
            assert kite["last_traded_quantity"] == int(tick["last_quantity"]) == 2

    async def test_an_index_streams_index_packets(self, live: LiveApp) -> None:
        async with kite_ticker(live, DESK_A, ADMIN_KEY, full=(NIFTY,)) as ticker:
            await ticker.wait(lambda e: e["event"] == "connect")
            tick = await ticker.tick(NIFTY, lambda t: t["mode"] == "full")
            assert (tick["tradable"], tick["last_price"]) == (False, 24316.8)
            assert "depth" not in tick

    async def test_order_updates_in_kites_shape(self, live: LiveApp) -> None:
        a = client(live)
        async with kite_ticker(live, DESK_A, ADMIN_KEY, quote=(INFY,)) as ticker:
            await ticker.wait(lambda e: e["event"] == "connect")
            order_id = await call(a.place_order, **{**place_form("BUY", 3, 1870.0), "tag": "t-9"})
            update = await ticker.wait(lambda e: e["event"] == "order")
            data = update["data"]
            assert (data["order_id"], data["status"], data["tag"]) == (order_id, "OPEN", "t-9")
            assert (data["product"], data["pending_quantity"], data["user_id"]) == (
                "MIS",
                3,
                DESK_A,
            )
            await call(a.cancel_order, "regular", order_id)
            update = await ticker.wait(lambda e: e["event"] == "order")
            assert (update["data"]["order_id"], update["data"]["status"]) == (
                order_id,
                "CANCELLED",
            )
            # Another account's orders are not sent.
            b = client(live, DESK_B, DESK_B_KEY)
            await call(b.place_order, **place_form("BUY", 1, 1860.0))
            mine = await call(a.place_order, **place_form("BUY", 1, 1861.0))
            update = await ticker.wait(lambda e: e["event"] == "order")
            assert update["data"]["order_id"] == mine

    async def test_a_wrong_token_is_refused(self, live: LiveApp) -> None:
        for api_key, token in ((DESK_A, "not-a-key-0123456789"), (DESK_B, ADMIN_KEY)):
            async with kite_ticker(live, api_key, token, quote=(INFY,)) as ticker:
                event = await ticker.wait(lambda e: e["event"] in ("connect", "error", "close"))
                assert event["event"] != "connect"
                assert not any(e["event"] == "ticks" for e in ticker.events)
