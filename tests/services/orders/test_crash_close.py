"""Crash drill at the close: DAY orders resting at the close, the process SIGKILLed at the
close, restarted. Every DAY order ends expired exactly once (one ``order.expired`` message
each, whether the killed process committed the expiry or the restarted one did); the GTC
orders stay open.

A real process reads the real clock, so the drill writes a calendar whose session closes a
few seconds after the service is ready, in a zone where it is around noon (no midnight in
sight, whatever the hour the suite runs at).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.services.webhooks.receiver import Receiver, eventually
from tests.support.servers import ServiceProcess
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, add_accounts, batch, order

pytestmark = pytest.mark.slow

SESSION_SECONDS = 20  # from the calendar's writing to the close: start-up and orders fit


def calendar_closing_soon(path: Path) -> float:
    """A calendar for NSE in a fixed-offset zone where it is about noon, whose session closes
    ``SESSION_SECONDS`` from now. Returns the close (epoch seconds)."""
    now = datetime.now(UTC)
    offset = 12 - now.hour  # hours east of UTC; -11..+12 are all IANA Etc zones
    zone = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
    local = now + timedelta(hours=offset)
    opens = (local - timedelta(hours=1)).strftime("%H:%M:%S")
    closes = (local + timedelta(seconds=SESSION_SECONDS)).replace(microsecond=0)
    path.write_text(
        f'[calendars.drill]\ntimezone = "{zone}"\nopen = "{opens}"\n'
        f'close = "{closes.strftime("%H:%M:%S")}"\n'
        'weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]\n\n'
        '[exchanges]\nNSE = "drill"\n'
    )
    return (closes - timedelta(hours=offset)).replace(tzinfo=UTC).timestamp()


async def place(client: httpx.AsyncClient, headers: dict[str, str], *orders: Any) -> list[dict]:
    response = await client.post("/advanced/batch-orders", json=batch(*orders), headers=headers)
    assert response.status_code == 200, response.text
    results: list[dict] = response.json()["results"]
    return results


def messages(receiver: Receiver) -> set[str]:
    return {r.message_id for r in receiver.delivered()}


class TestKillAtTheClose:
    @pytest.mark.parametrize("after_close", [0.0, 0.3])
    async def test_day_orders_expire_exactly_once(
        self, pg_url: str, tmp_path: Path, redis_prefix: str, after_close: float
    ) -> None:
        tokens = tmp_path / "tokens"
        tokens.mkdir()
        add_accounts(tokens)
        calendar = tmp_path / "calendar.toml"
        close = calendar_closing_soon(calendar)
        env = {
            "DATABASE_URL": pg_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_PREFIX": redis_prefix,
            "API_KEY": ADMIN_KEY,
            "TOKENS_DIR": str(tokens),
            "DATA_DIR": str(tmp_path / "data"),
            "RATE_LIMIT_PER_SECOND": "100000",
            "TRADING_CALENDAR": str(calendar),
            "SESSION_CHECK_SECONDS": "0.05",
            "WEBHOOK_ALLOW_LOOPBACK": "true",
            "WEBHOOK_RETRY_INITIAL_SECONDS": "0.2",
            "WEBHOOK_CONNECT_TIMEOUT": "1",
            "WEBHOOK_READ_TIMEOUT": "2",
        }
        service = ServiceProcess(env, tmp_path / "run")
        with Receiver() as receiver:
            service.start()
            try:
                async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
                    for headers in (ADMIN, DESK_B):  # endpoints are the account's own
                        hook = await client.post(
                            "/advanced/webhooks",
                            json={"url": receiver.url(), "events": ["order.expired"]},
                            headers=headers,
                        )
                        assert hook.status_code == 201, hook.text
                    day = []
                    for n in range(10):
                        price = str(1860 + n)
                        day += await place(
                            client, ADMIN if n % 2 else DESK_B,
                            order("buy", "1", price, time_in_force="DAY"),
                        )  # fmt: skip
                    gtc = await place(client, ADMIN, order("buy", "1", "1850"))
                    assert all(r["status"] == "open" for r in day + gtc)
                    assert time.time() < close, "start-up took longer than the session"
                await asyncio.sleep(close - time.time() + after_close)
                await asyncio.to_thread(service.kill)

                service.start()
                async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:

                    async def all_expired() -> bool:
                        for placed in day:
                            headers = ADMIN if placed in day[1::2] else DESK_B
                            got = await client.get(f"/orders/{placed['order_id']}", headers=headers)
                            if got.json()["status"] != "expired":
                                return False
                        return True

                    await eventually(all_expired, timeout=15)
                    still = await client.get(f"/orders/{gtc[0]['order_id']}", headers=ADMIN)
                    assert still.json()["status"] == "open"
                    # a message the killed process had leased is due again once its lease
                    # (the delivery timeouts) has run out
                    await eventually(lambda: len(messages(receiver)) >= 10, timeout=30)
                    await asyncio.sleep(1.0)  # any duplicate would arrive meanwhile
            finally:
                if service.process is not None:
                    service.kill()
        by_order: dict[str, set[str]] = {}
        for received in receiver.delivered():
            order_id = received.json["data"]["order"]["order_id"]
            by_order.setdefault(order_id, set()).add(received.message_id)
        assert sorted(by_order) == sorted(r["order_id"] for r in day)
        assert all(len(ids) == 1 for ids in by_order.values()), by_order
