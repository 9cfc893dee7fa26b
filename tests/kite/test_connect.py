"""The official ``kiteconnect`` client, unmodified, trading against a live server on a real
port: orders, their history and trades, market data, the account, two accounts crossing."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteConnect

from app.settings import Settings
from tests.kite.support import DESK_A, DESK_B, call, client, kite_server
from tests.support.live import LiveApp
from tests.support.secrets import remember
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B_KEY


@pytest.fixture
async def live(
    make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
) -> AsyncIterator[LiveApp]:
    async with kite_server(make_settings(db={"url": pg_url}), tokens_dir) as app:
        yield app


def place(kite: KiteConnect, side: str, quantity: int, price: float | None, **extra: Any) -> Any:
    params: dict[str, Any] = {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": side,
        "quantity": quantity,
        "product": "CNC",
        "order_type": "LIMIT" if price is not None else "MARKET",
        "price": price,
    }
    params.update(extra)
    return call(kite.place_order, **params)


class TestOrders:
    async def test_place_modify_cancel_keep_kites_fields(self, live: LiveApp) -> None:
        kite = client(live)
        order_id = await place(kite, "BUY", 5, 1875.4, product="MIS", tag="alpha-1")
        assert isinstance(order_id, str)
        [order] = await call(kite.orders)
        assert order["order_id"] == order_id
        assert order["status"] == "OPEN"
        assert (order["order_type"], order["transaction_type"]) == ("LIMIT", "BUY")
        assert (order["product"], order["tag"], order["validity"]) == ("MIS", "alpha-1", "DAY")
        assert (order["quantity"], order["pending_quantity"], order["filled_quantity"]) == (5, 5, 0)
        assert order["price"] == 1875.4
        assert isinstance(order["order_timestamp"], datetime.datetime)  # Kite's format, parsed

        assert await call(kite.modify_order, "regular", order_id, quantity=7, price=1875.5) == (
            order_id
        )
        ours = (await live.http.get(f"/orders/{order_id}", headers=ADMIN)).json()
        assert (ours["quantity"], ours["price"]) == ("7", "1875.5")
        # Kite's terms are the order's own columns; Kite has no client order id.
        assert ours["client_order_id"] is None
        assert order["guid"] is None
        assert ours["kite"] == {
            "product": "MIS",
            "validity": "DAY",
            "validity_ttl": None,
            "tag": "alpha-1",
        }

        assert await call(kite.cancel_order, "regular", order_id) == order_id
        [order] = await call(kite.orders)
        assert order["status"] == "CANCELLED"
        assert order["pending_quantity"] == 0
        assert order["cancelled_quantity"] == 7

    async def test_two_accounts_cross_and_each_sees_its_side(self, live: LiveApp) -> None:
        a, b = client(live), client(live, DESK_B, DESK_B_KEY)
        resting = await place(a, "SELL", 10, 1875.5)
        taker = await place(b, "BUY", 4, None, product="NRML")

        [sold] = await call(a.orders)
        assert (sold["status"], sold["filled_quantity"], sold["pending_quantity"]) == ("OPEN", 4, 6)
        assert sold["average_price"] == 1875.5
        [bought] = await call(b.orders)
        assert bought["order_id"] == taker
        assert (bought["status"], bought["order_type"], bought["product"]) == (
            "COMPLETE",
            "MARKET",
            "NRML",
        )
        assert (bought["filled_quantity"], bought["average_price"]) == (4, 1875.5)

        [sell_trade] = await call(a.order_trades, resting)
        [buy_trade] = await call(b.trades)
        assert sell_trade["trade_id"] == buy_trade["trade_id"]
        assert (sell_trade["transaction_type"], buy_trade["transaction_type"]) == ("SELL", "BUY")
        assert (sell_trade["quantity"], sell_trade["average_price"]) == (4, 1875.5)
        assert (buy_trade["order_id"], buy_trade["product"]) == (taker, "NRML")
        assert await call(a.trades) == [sell_trade]

    async def test_history_has_one_entry_per_state(self, live: LiveApp) -> None:
        a, b = client(live), client(live, DESK_B, DESK_B_KEY)
        order_id = await place(a, "SELL", 6, 1875.5)
        await place(b, "BUY", 2, None)
        await place(b, "BUY", 4, None)
        history = await call(a.order_history, order_id)
        steps = [(h["status"], h["filled_quantity"], h["pending_quantity"]) for h in history]
        assert steps == [
            ("PUT ORDER REQ RECEIVED", 0, 6),
            ("VALIDATION PENDING", 0, 6),
            ("OPEN PENDING", 0, 6),
            ("OPEN", 0, 6),
            ("OPEN", 2, 4),
            ("COMPLETE", 6, 0),
        ]
        assert all(h["order_id"] == order_id for h in history)

    async def test_stop_orders_and_ioc_map_to_ours(self, live: LiveApp) -> None:
        kite = client(live)
        sl = await place(
            kite, "BUY", 1, 1890.0, order_type="SL", trigger_price=1885.0, validity="DAY"
        )
        slm = await place(kite, "SELL", 1, None, order_type="SL-M", trigger_price=1800.0)
        orders = {o["order_id"]: o for o in await call(kite.orders)}
        assert orders[sl]["status"] == orders[slm]["status"] == "TRIGGER PENDING"
        assert (orders[sl]["order_type"], orders[sl]["trigger_price"]) == ("SL", 1885.0)
        assert (orders[slm]["order_type"], orders[slm]["trigger_price"]) == ("SL-M", 1800.0)
        ours = (await live.http.get(f"/orders/{slm}", headers=ADMIN)).json()
        assert (ours["type"], ours["trigger_price"]) == ("stop", "1800")

        await place(kite, "SELL", 3, 1875.5)
        ioc = await place(client(live, DESK_B, DESK_B_KEY), "BUY", 5, 1875.5, validity="IOC")
        [done] = list(await call(client(live, DESK_B, DESK_B_KEY).orders))
        assert done["order_id"] == ioc
        assert (done["validity"], done["status"], done["filled_quantity"]) == (
            "IOC",
            "CANCELLED",
            3,
        )

    async def test_a_ttl_order_is_cancelled_when_its_minutes_are_up(self, live: LiveApp) -> None:
        live.state["kite"].orders.ttl_unit_seconds = 0.2  # a "minute" of 0.2 s
        kite = client(live)
        order_id = await place(kite, "BUY", 2, 1870.0, validity="TTL", validity_ttl=2)
        [order] = await call(kite.orders)
        assert (order["status"], order["validity"], order["validity_ttl"]) == ("OPEN", "TTL", 2)
        for _ in range(50):
            [order] = await call(kite.orders)
            if order["status"] != "OPEN":
                break
            await asyncio.sleep(0.1)
        assert (order["order_id"], order["status"], order["cancelled_quantity"]) == (
            order_id,
            "CANCELLED",
            2,
        )

    async def test_ttl_timers_are_armed_again_from_the_journal(self, live: LiveApp) -> None:
        """What a restart does: the process's timers are gone, ``rearm_ttl`` (run at start)
        reads the working TTL orders back and gives each what is left of its minutes."""
        orders = live.state["kite"].orders
        orders.ttl_unit_seconds = 0.3
        kite = client(live)
        order_id = await place(kite, "BUY", 2, 1870.0, validity="TTL", validity_ttl=2)
        await place(kite, "BUY", 1, 1869.0, validity="DAY")  # no TTL: not armed
        orders.stop()  # the timers of a process that ended
        assert await orders.rearm_ttl(time.time_ns()) == 1
        for _ in range(50):
            statuses = {o["order_id"]: o["status"] for o in await call(kite.orders)}
            if statuses[order_id] != "OPEN":
                break
            await asyncio.sleep(0.1)
        assert statuses[order_id] == "CANCELLED"
        assert list(statuses.values()).count("OPEN") == 1  # the DAY order rests

    async def test_generate_session_exchanges_a_key_for_itself(self, live: LiveApp) -> None:
        kite = KiteConnect(api_key=DESK_A, root=f"http://127.0.0.1:{live.port}")
        session = await call(kite.generate_session, ADMIN_KEY, api_secret="unchecked")
        assert session["access_token"] == ADMIN_KEY
        assert session["user_id"] == DESK_A
        assert isinstance(session["login_time"], datetime.datetime)
        assert (await call(kite.profile))["user_id"] == DESK_A  # the token was set


class TestMarketData:
    async def test_instruments_are_the_registry_as_kites_csv(self, live: LiveApp) -> None:
        kite = client(live)
        everything = await call(kite.instruments)
        ours = (await live.http.get("/instruments?limit=1000", headers=ADMIN)).json()["items"]
        assert {i["instrument_token"] for i in everything} == {i["instrument_token"] for i in ours}
        nfo = await call(kite.instruments, "NFO")
        assert nfo
        assert all(i["exchange"] == "NFO" for i in nfo)
        future = next(i for i in nfo if i["tradingsymbol"] == "NIFTY36NOVFUT")
        assert future["expiry"] == datetime.date(2036, 11, 27)
        assert (future["lot_size"], future["tick_size"]) == (50, 0.05)

    async def test_quotes_equal_our_order_book_and_trades(self, live: LiveApp) -> None:
        a, b = client(live), client(live, DESK_B, DESK_B_KEY)
        for price, qty in ((1875.0, 3), (1874.5, 2), (1874.0, 1)):
            await place(a, "BUY", qty, price)
        for price, qty in ((1876.0, 4), (1877.0, 5)):
            await place(a, "SELL", qty, price)
        await place(b, "BUY", 1, None)  # trades 1 at 1876
        book = (await live.http.get("/orderbook/NSE:INFY?depth=5", headers=ADMIN)).json()

        quote = await call(a.quote, "NSE:INFY", "NSE:NOSUCH")
        assert list(quote) == ["NSE:INFY"]  # unknown instruments are left out, as Kite's
        q = quote["NSE:INFY"]
        expected = {
            "buy": [(float(lv["price"]), int(lv["quantity"]), lv["orders"]) for lv in book["bids"]],
            "sell": [
                (float(lv["price"]), int(lv["quantity"]), lv["orders"]) for lv in book["asks"]
            ],
        }
        for side in ("buy", "sell"):
            got = [(d["price"], d["quantity"], d["orders"]) for d in q["depth"][side]]
            assert len(got) == 5
            assert got[: len(expected[side])] == expected[side]
            assert got[len(expected[side]) :] == [(0, 0, 0)] * (5 - len(expected[side]))
        assert (q["last_price"], q["last_quantity"], q["volume"]) == (1876.0, 1, 1)
        assert (q["buy_quantity"], q["sell_quantity"]) == (6, 8)
        assert q["ohlc"]["close"] == 1875.4  # the previous session's: the registry's last price

        ltp = await call(a.ltp, ["NSE:INFY", "408065"])
        assert ltp["NSE:INFY"] == {"instrument_token": 408065, "last_price": 1876.0}
        ohlc = await call(a.ohlc, "NSE:INFY")
        assert ohlc["NSE:INFY"]["ohlc"] == {
            "open": 1876.0,
            "high": 1876.0,
            "low": 1876.0,
            "close": 1875.4,
        }

    async def test_historical_candles_in_kites_intervals(self, live: LiveApp) -> None:
        a, b = client(live), client(live, DESK_B, DESK_B_KEY)
        await place(a, "SELL", 5, 1876.0)
        await place(b, "BUY", 2, None)
        await place(a, "SELL", 5, 1878.0)
        await place(b, "BUY", 5, None)
        ours = (await live.http.get("/candles/NSE:INFY?interval=30m", headers=ADMIN)).json()[
            "items"
        ]
        now = datetime.datetime.now(datetime.UTC).astimezone(
            datetime.timezone(datetime.timedelta(hours=5, minutes=30))
        )
        start = (now - datetime.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
        end = (now + datetime.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
        for interval in ("minute", "3minute", "10minute", "30minute", "60minute"):
            candles = await call(a.historical_data, 408065, start, end, interval)
            assert len(candles) == 1, interval
            [c] = candles
            assert (c["open"], c["high"], c["low"], c["close"], c["volume"]) == (
                1876.0,
                1878.0,
                1876.0,
                1878.0,
                7,
            )
            assert c["date"].utcoffset() == datetime.timedelta(hours=5, minutes=30)
        [c] = await call(a.historical_data, 408065, start, end, "30minute")
        assert (
            c["date"].astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
            == (ours[0]["start"])
        )
        with_oi = await call(a.historical_data, 408065, start, end, "minute", oi=True)
        assert with_oi[0]["oi"] == 0


class TestAccount:
    async def test_margins_are_cash_less_what_open_orders_use(
        self, live: LiveApp, tokens_dir: Path
    ) -> None:
        kite = client(live)
        before = await call(kite.margins)
        assert before["equity"]["net"] == before["equity"]["available"]["cash"] == 1_000_000
        await place(kite, "BUY", 10, 1800.0)
        await place(kite, "SELL", 2, 1900.0)
        equity = await call(kite.margins, "equity")
        assert equity["utilised"]["debits"] == 10 * 1800 + 2 * 1900
        assert equity["net"] == 1_000_000 - 21_800
        assert (await call(kite.margins))["commodity"]["net"] == 1_000_000

    async def test_a_key_file_sets_its_accounts_cash(
        self, make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
    ) -> None:
        (tokens_dir / "rich.json").write_text(
            json.dumps(
                {
                    "account": "rich",
                    "scopes": ["read"],
                    "key": "test-rich-key-0123456789",
                    "cash": 5e7,
                }
            )
        )
        remember("test-rich-key-0123456789")
        async with kite_server(make_settings(db={"url": pg_url}), tokens_dir) as live:
            kite = client(live, "rich", "test-rich-key-0123456789")
            assert (await call(kite.margins, "equity"))["net"] == 5e7

    async def test_profile_positions_and_holdings(self, live: LiveApp) -> None:
        kite = client(live, DESK_B, DESK_B_KEY)
        profile = await call(kite.profile)
        assert profile["user_id"] == DESK_B
        assert set(profile["exchanges"]) >= {"NSE", "BSE", "NFO"}
        assert await call(kite.positions) == {"net": [], "day": []}
        assert await call(kite.holdings) == []

    async def test_positions_are_ours_in_kites_shape(self, live: LiveApp) -> None:
        buyer, seller = client(live), client(live, DESK_B, DESK_B_KEY)
        await place(seller, "SELL", 5, 1876.0)
        await place(buyer, "BUY", 3, 1876.0)  # buys 3 of the 5
        ours = (await live.http.get("/positions/NSE:INFY", headers=ADMIN)).json()
        [net] = (await call(buyer.positions))["net"]
        assert (net["tradingsymbol"], net["exchange"], net["instrument_token"]) == (
            "INFY",
            "NSE",
            408065,
        )
        assert net["quantity"] == 3 == float(ours["quantity"])
        assert net["buy_quantity"] == 3
        assert net["buy_price"] == net["average_price"] == 1876.0
        assert net["pnl"] == float(ours["pnl"])
        [day] = (await call(buyer.positions))["day"]
        assert day["quantity"] == day["day_buy_quantity"] == 3
        [short] = (await call(seller.positions))["net"]
        assert short["quantity"] == -3
        assert short["sell_value"] == 3 * 1876.0


class TestDispatch:
    async def test_our_api_is_unchanged_without_the_header(self, live: LiveApp) -> None:
        ours = await live.http.get("/orders", headers=ADMIN)
        assert ours.status_code == 200
        assert "items" in ours.json()
        kite = await live.http.get(
            "/orders",
            headers={"X-Kite-Version": "3", "Authorization": f"token {DESK_A}:{ADMIN_KEY}"},
        )
        assert kite.json() == {"status": "success", "data": []}
        assert "x-request-id" in kite.headers  # still inside our request middleware
