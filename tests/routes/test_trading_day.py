"""The trading day through the API, on a clock the test drives: sessions, DAY expiry at the
close (exactly once, also across a restart), holidays, weekends, contract expiry,
``GET /calendar``, ``/health`` and the day's OHLC of an IST session across midnight UTC."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.conftest import running_app
from tests.services.webhooks.receiver import Receiver, eventually
from tests.services.webhooks.support import register, webhook_settings
from tests.support.clock import FakeClock
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, batch, order

# Monday 2026-12-07; NSE (builtin calendar) trades 03:45-10:00 UTC (09:15-15:30 IST).
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)
FUTURE = "NFO:NIFTY36NOVFUT"  # expires 2036-11-27, a Thursday: close at 10:00 UTC


def at(day: datetime, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return day.replace(hour=hour, minute=minute, second=second)


@pytest.fixture
def settings(
    backend_settings: Settings, make_settings: Callable[..., Settings], tokens_dir: Path
) -> Settings:
    add_accounts(tokens_dir)
    base = webhook_settings(make_settings, backend_settings)
    return base.model_copy(
        update={
            "orders": base.orders.model_copy(
                update={"trading_calendar": "builtin", "session_check_seconds": 0.02}
            )
        }
    )


async def place(client: httpx.AsyncClient, *orders: dict, headers: dict = ADMIN) -> list[dict]:
    response = await client.post("/advanced/batch-orders", json=batch(*orders), headers=headers)
    assert response.status_code == 200, response.text
    results: list[dict] = response.json()["results"]
    return results


async def status_of(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    response = await client.get(f"/orders/{order_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ended(client: httpx.AsyncClient, order_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        found = await status_of(client, order_id)
        return found if found["status"] == status else None

    result: dict[str, Any] = await eventually(check, timeout=5)
    return result


class TestSessions:
    async def test_orders_outside_the_session_are_refused_market_closed(
        self, settings: Settings
    ) -> None:
        clock = FakeClock(at(MONDAY, 3, 44))
        async with running_app(settings, clock=clock) as (_app, client):
            [early] = await place(client, order("buy", "1", "1875"))
            assert early["error"]["code"] == "MARKET_CLOSED"
            single = await client.post("/orders", json=order("buy", "1", "1875"), headers=ADMIN)
            assert single.status_code == 422
            assert single.json()["error"]["code"] == "MARKET_CLOSED"
            # a venue without a calendar entry trades 24x7 meanwhile: nothing listed here
            clock.set(at(MONDAY, 3, 45))
            [opened] = await place(client, order("buy", "1", "1875"))
            assert opened["status"] == "open"

    async def test_after_the_close_amends_are_refused_cancels_work(
        self, settings: Settings
    ) -> None:
        clock = FakeClock(at(MONDAY, 9))
        async with running_app(settings, clock=clock) as (_app, client):
            [gtc] = await place(client, order("buy", "1", "1875", time_in_force="GTC"))
            clock.set(at(MONDAY, 10, 0, 1))
            amend = await client.patch(
                f"/orders/{gtc['order_id']}", json={"price": "1876"}, headers=ADMIN
            )
            assert amend.status_code == 422
            assert amend.json()["error"]["code"] == "MARKET_CLOSED"
            cancel = await client.delete(f"/orders/{gtc['order_id']}", headers=ADMIN)
            assert cancel.status_code == 200
            assert cancel.json()["status"] == "cancelled"

    @pytest.mark.parametrize(
        ("moment", "why"),
        [
            (datetime(2026, 12, 12, 5, tzinfo=UTC), "a Saturday"),
            (datetime(2026, 12, 13, 5, tzinfo=UTC), "a Sunday"),
            (datetime(2026, 12, 25, 5, tzinfo=UTC), "Christmas, an NSE holiday"),
        ],
    )
    async def test_no_session_on_weekends_and_holidays(
        self, settings: Settings, moment: datetime, why: str
    ) -> None:
        async with running_app(settings, clock=FakeClock(moment)) as (_app, client):
            [refused] = await place(client, order("buy", "1", "1875"))
            assert refused["error"]["code"] == "MARKET_CLOSED", why
            day = (await client.get("/calendar", headers=READER)).json()
            nse = next(item for item in day["items"] if item["exchange"] == "NSE")
            assert nse["state"] == "closed"

    async def test_calendar_and_health_show_each_exchange(self, settings: Settings) -> None:
        async with running_app(settings, clock=FakeClock(at(MONDAY, 4))) as (_app, client):
            response = await client.get("/calendar", headers=READER)
            assert response.status_code == 200
            body = response.json()
            exchanges = {item["exchange"]: item for item in body["items"]}
            assert set(exchanges) >= {"NSE", "BSE", "NFO"}
            nse = exchanges["NSE"]
            assert (nse["state"], nse["timezone"], nse["trading_day"]) == (
                "open", "Asia/Kolkata", "2026-12-07",
            )  # fmt: skip
            assert nse["session"]["open"] == "2026-12-07T09:15:00+05:30"
            assert nse["next_close"] == "2026-12-07T15:30:00+05:30"
            assert nse["next_open"] == "2026-12-08T09:15:00+05:30"
            health = (await client.get("/health")).json()
            assert health["sessions"]["NSE"] == "open"
            assert (await client.get("/calendar")).status_code == 401


class TestDayExpiry:
    async def test_day_orders_expire_at_the_close_once_with_webhooks(
        self, settings: Settings
    ) -> None:
        clock = FakeClock(at(MONDAY, 9, 59))
        with Receiver() as receiver:
            async with running_app(settings, clock=clock) as (_app, client):
                await register(client, receiver.url(), events=["order.expired"])
                day, stop, gtc = await place(
                    client,
                    order("buy", "2", "1870", time_in_force="DAY"),
                    order("sell", "1", None, type="stop", trigger_price="1800",
                          time_in_force="DAY"),
                    order("buy", "1", "1869", time_in_force="GTC"),
                )  # fmt: skip
                assert stop["status"] == "pending_trigger"
                clock.set(at(MONDAY, 10, 0, 0))
                for placed in (day, stop):
                    expired = await ended(client, placed["order_id"], "expired")
                    assert expired["reason"] == "DAY_EXPIRED"
                assert (await status_of(client, gtc["order_id"]))["status"] == "open"
                book = (await client.get("/orderbook/NSE:INFY", headers=ADMIN)).json()
                assert [level["price"] for level in book["bids"]] == ["1869"]
                clock.advance(hours=1)
                await asyncio.sleep(0.2)  # more timer ticks: nothing more to expire
                # the next day's open: a new DAY order lives until that day's close
                clock.set(at(MONDAY.replace(day=8), 4))
                [tuesday] = await place(client, order("buy", "1", "1870", time_in_force="DAY"))
                await asyncio.sleep(0.1)
                assert (await status_of(client, tuesday["order_id"]))["status"] == "open"
                await eventually(lambda: len(receiver.delivered()) >= 2)
                await asyncio.sleep(0.3)
            bodies = [r.json for r in receiver.delivered()]
            expired_ids = sorted(b["data"]["order"]["order_id"] for b in bodies)
            assert expired_ids == sorted([day["order_id"], stop["order_id"]])
            assert {b["type"] for b in bodies} == {"order.expired"}

    async def test_a_restart_after_the_close_expires_what_was_left(
        self, settings: Settings
    ) -> None:
        clock = FakeClock(at(MONDAY, 9))
        async with running_app(settings, clock=clock) as (_app, client):
            [day] = await place(client, order("buy", "2", "1870", time_in_force="DAY"))
        # down over the close: the next process expires it before it serves anything
        clock.set(at(MONDAY.replace(day=8), 3, 50))
        async with running_app(settings, clock=clock) as (_app, client):
            [new] = await place(client, order("sell", "2", "1870"))
            assert new["status"] == "open", "matched a DAY order of a closed session"
            expired = await ended(client, day["order_id"], "expired")
            assert expired["reason"] == "DAY_EXPIRED"
        async with running_app(settings, clock=clock) as (_app, client):
            assert (await status_of(client, day["order_id"]))["status"] == "expired"
            assert (await status_of(client, new["order_id"]))["status"] == "open"

    async def test_a_restart_within_the_session_keeps_day_orders(self, settings: Settings) -> None:
        clock = FakeClock(at(MONDAY, 5))
        async with running_app(settings, clock=clock) as (_app, client):
            [day] = await place(client, order("buy", "2", "1870", time_in_force="DAY"))
        clock.set(at(MONDAY, 9))
        async with running_app(settings, clock=clock) as (_app, client):
            await asyncio.sleep(0.1)
            assert (await status_of(client, day["order_id"]))["status"] == "open"

    async def test_without_a_calendar_day_lasts_until_midnight_utc(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        clock = FakeClock(at(MONDAY, 23, 59, 59))
        async with running_app(backend_settings, clock=clock) as (_app, client):
            [day] = await place(client, order("buy", "2", "1870", time_in_force="DAY"))
            [gtc] = await place(client, order("buy", "1", "1869"))
            clock.set(MONDAY.replace(day=8))
            [later] = await place(client, order("sell", "3", "1869"), headers=DESK_B)
            assert (await status_of(client, day["order_id"]))["status"] == "expired"
            assert later["status"] == "partially_filled", later
            assert later["fills"][0]["price"] == "1869"
            assert (await status_of(client, gtc["order_id"]))["status"] == "filled"


class TestContractExpiry:
    async def test_resting_orders_and_stops_end_at_the_expiry_close(
        self, settings: Settings
    ) -> None:
        expiry_day = datetime(2036, 11, 27, tzinfo=UTC)
        clock = FakeClock(at(expiry_day, 9, 59))
        with Receiver() as receiver:
            async with running_app(settings, clock=clock) as (_app, client):
                await register(client, receiver.url(), events=["order.cancelled"])
                resting, stop = await place(
                    client,
                    order("buy", "50", "24000", symbol=FUTURE),
                    order("sell", "50", None, symbol=FUTURE, type="stop",
                          trigger_price="23000"),
                )  # fmt: skip
                assert (resting["status"], stop["status"]) == ("open", "pending_trigger")
                token = (await client.get(f"/orderbook/{FUTURE}", headers=ADMIN)).status_code
                assert token == 200
                clock.set(at(expiry_day, 10))
                for placed in (resting, stop):
                    cancelled = await ended(client, placed["order_id"], "cancelled")
                    assert cancelled["reason"] == "INSTRUMENT_EXPIRED"
                [late] = await place(client, order("buy", "50", "24000", symbol=FUTURE))
                assert late["error"]["code"] == "INSTRUMENT_EXPIRED"

                async def registry_says_expired() -> bool:
                    found = await client.get("/instruments?q=NIFTY36NOVFUT", headers=ADMIN)
                    return bool(found.json()["items"][0]["status"] == "expired")

                await eventually(registry_says_expired)
                await eventually(lambda: len(receiver.delivered()) >= 2)
            reasons = {r.json["data"]["order"]["reason"] for r in receiver.delivered()}
            assert reasons == {"INSTRUMENT_EXPIRED"}

    async def test_contracts_that_expired_while_down_at_start_up(self, settings: Settings) -> None:
        clock = FakeClock(datetime(2036, 11, 27, 9, tzinfo=UTC))
        async with running_app(settings, clock=clock) as (_app, client):
            [resting] = await place(client, order("buy", "50", "24000", symbol=FUTURE))
        clock.set(datetime(2036, 12, 1, 5, tzinfo=UTC))
        async with running_app(settings, clock=clock) as (_app, client):
            cancelled = await ended(client, resting["order_id"], "cancelled")
            assert cancelled["reason"] == "INSTRUMENT_EXPIRED"

            async def registry_says_expired() -> bool:
                found = await client.get("/instruments?q=NIFTY36NOVFUT", headers=ADMIN)
                return bool(found.json()["items"][0]["status"] == "expired")

            await eventually(registry_says_expired)
            dec = await client.get("/instruments?q=NIFTY36DECFUT", headers=ADMIN)
            assert dec.json()["items"][0]["status"] == "active"


IST_AROUND_THE_CLOCK = """
[calendars.ist]
timezone = "Asia/Kolkata"
open = "00:00"
close = "24:00"
weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

[exchanges]
NSE = "ist"
"""


class TestDayStatistics:
    async def test_ohlc_follows_the_ist_day_across_midnight_utc(
        self, backend_settings: Settings, tokens_dir: Path, tmp_path: Path
    ) -> None:
        """Trades at 23:30 IST (Monday), 00:30 IST and 06:00 IST (Tuesday, the last two on
        either side of midnight UTC): Tuesday's ticks open at the 00:30 IST trade."""
        add_accounts(tokens_dir)
        path = tmp_path / "ist.toml"
        path.write_text(IST_AROUND_THE_CLOCK)
        settings = backend_settings.model_copy(
            update={
                "orders": backend_settings.orders.model_copy(update={"trading_calendar": str(path)})
            }
        )
        clock = FakeClock(at(MONDAY, 18))  # 23:30 IST Monday
        async with running_app(settings, clock=clock) as (_app, client):

            async def trade(price: str) -> None:
                await place(client, order("sell", "1", price), headers=DESK_B)
                await place(client, order("buy", "1", price))

            await trade("1880")
            clock.set(at(MONDAY, 19))  # 00:30 IST Tuesday, Monday in UTC
            await trade("1870")
            clock.set(at(MONDAY.replace(day=8), 0, 30))  # 06:00 IST Tuesday
            await trade("1875")
            stats = await client.get("/stats/NSE:INFY", headers=ADMIN)
            day = stats.json()["day"]
            assert day["trading_day"] == "2026-12-08"
            assert (day["open"], day["high"], day["low"], day["close"]) == (
                "1870", "1875", "1870", "1875",
            )  # fmt: skip
            assert (day["volume"], day["trade_count"]) == ("2", 2)
