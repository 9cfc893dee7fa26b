"""``/ws/orders``: the account's own order and fill updates as journaled, and
``cancel_on_disconnect`` (a dead man's switch) against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.services.cluster.gateway import StreamOrderEntry
from app.settings import Settings
from tests.services.webhooks.receiver import Receiver, eventually
from tests.support.cluster import two_gateways_and_a_matcher
from tests.support.live import LiveApp, close_code, live_app, place, ws_client
from tests.support.trading import (
    ADMIN,
    ADMIN_KEY,
    DESK_B,
    DESK_B_KEY,
    READER_KEY,
    add_accounts,
    order,
)


@pytest.fixture
async def live(backend_settings: Settings, tokens_dir: Path) -> AsyncIterator[LiveApp]:
    add_accounts(tokens_dir)
    async with live_app(backend_settings) as app:
        yield app


def url(live: LiveApp) -> str:
    return live.ws_url + "/ws/orders"


async def open_orders(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await http.get("/orders?status=open", headers=headers)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def eventually_no_open_orders(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for _ in range(100):
        if not await open_orders(http, headers):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("open orders were not cancelled")


class TestOrderStream:
    async def test_each_account_sees_its_own_orders_and_fills(self, live: LiveApp) -> None:
        async with (
            ws_client(url(live), key=ADMIN_KEY) as maker,
            ws_client(url(live), key=DESK_B_KEY) as taker,
            ws_client(url(live), key=READER_KEY) as reader,
        ):
            placed = await place(
                live.http, ADMIN, order("sell", "10", "1875.4", client_order_id="m1")
            )
            opened = await maker.expect("order")
            assert opened["order"]["order_id"] == placed["results"][0]["order_id"]
            assert opened["order"]["status"] == "open"
            assert opened["order"]["created"] is True
            assert opened["order"]["client_order_id"] == "m1"
            assert opened["order"]["price"] == "1875.4"

            await place(live.http, DESK_B, order("buy", "4", "1875.5"))
            fill = (await maker.expect("fill"))["fill"]
            assert fill["liquidity"] == "maker"
            assert fill["side"] == "sell"
            assert (fill["price"], fill["quantity"], fill["client_order_id"]) == (
                "1875.4",
                "4",
                "m1",
            )
            partial = (await maker.expect("order"))["order"]
            assert partial["status"] == "partially_filled"
            assert partial["remaining_quantity"] == "6"
            assert partial["created"] is False

            taker_fill = (await taker.expect("fill"))["fill"]
            assert taker_fill["liquidity"] == "taker"
            assert taker_fill["side"] == "buy"
            assert taker_fill["trade_id"] == fill["trade_id"]
            taken = (await taker.expect("order"))["order"]
            assert taken["status"] == "filled"
            assert taken["created"] is True

            # The reader's account did nothing: its stream stays quiet.
            await reader.send({"action": "ping"})
            assert await reader.recv() == {"type": "pong"}

    async def test_positions_follow_the_fills(self, live: LiveApp) -> None:
        async with (
            ws_client(url(live), key=ADMIN_KEY) as maker,
            ws_client(url(live), key=DESK_B_KEY) as taker,
        ):
            await place(live.http, ADMIN, order("sell", "10", "1875.4"))
            await maker.expect("order")
            await place(live.http, DESK_B, order("buy", "4", "1875.5"))
            for stream in (maker, taker):
                await stream.expect("fill")
                await stream.expect("order")
            mine = (await maker.expect("position"))["position"]
            assert (mine["symbol"], mine["quantity"], mine["average_price"]) == (
                "NSE:INFY", "-4", "1875.4",
            )  # fmt: skip
            theirs = (await taker.expect("position"))["position"]
            assert (theirs["quantity"], theirs["buy_value"]) == ("4", "7501.6")
            assert theirs["last_price"] == "1875.4"

    async def test_unknown_actions_are_refused(self, live: LiveApp) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send({"action": "subscribe", "symbols": ["NSE:INFY"]})
            assert (await ws.recv())["code"] == "UNKNOWN_ACTION"


class TestCancelOnDisconnect:
    async def test_dropping_the_socket_cancels_the_accounts_open_orders(
        self, live: LiveApp
    ) -> None:
        await place(live.http, ADMIN, order("sell", "5", "1876"), order("buy", "5", "1870"))
        await place(live.http, DESK_B, order("sell", "5", "1880"))
        async with ws_client(url(live)) as ws:
            await ws.send({"action": "auth", "api_key": ADMIN_KEY, "cancel_on_disconnect": True})
            hello = await ws.recv()
            assert hello["type"] == "authenticated"
            assert hello["cancel_on_disconnect"] is True
            assert len(await open_orders(live.http, ADMIN)) == 2
        await eventually_no_open_orders(live.http, ADMIN)
        assert len(await open_orders(live.http, DESK_B)) == 1  # other accounts untouched
        metrics = (await live.http.get("/metrics")).text
        assert "ticker_ws_cancel_on_disconnect_total 2.0" in metrics

    async def test_its_cancels_carry_their_own_reason(
        self, backend_settings: Settings, tokens_dir: Path
    ) -> None:
        """CANCEL_ON_DISCONNECT, not USER_CANCELLED: in the order, its update and its webhook."""
        add_accounts(tokens_dir)
        settings = backend_settings.model_copy(
            update={
                "webhooks": backend_settings.webhooks.model_copy(update={"allow_loopback": True})
            }
        )
        with Receiver() as receiver:
            async with live_app(settings) as live:
                hook = await live.http.post(
                    "/advanced/webhooks",
                    json={"url": receiver.url(), "events": ["order.cancelled"]},
                    headers=ADMIN,
                )
                assert hook.status_code == 201, hook.text
                await place(live.http, ADMIN, order("sell", "5", "1876", client_order_id="dms"))
                async with ws_client(url(live), key=ADMIN_KEY) as watcher:
                    async with ws_client(url(live)) as ws:
                        await ws.send(
                            {"action": "auth", "api_key": ADMIN_KEY, "cancel_on_disconnect": True}
                        )
                        assert (await ws.recv())["type"] == "authenticated"
                    update = (await watcher.expect("order"))["order"]
                assert (update["status"], update["reason"]) == ("cancelled", "CANCEL_ON_DISCONNECT")
                stored = (await live.http.get("/orders/by-client-id/dms", headers=ADMIN)).json()
                assert (stored["status"], stored["reason"]) == ("cancelled", "CANCEL_ON_DISCONNECT")
                (sent,) = await eventually(lambda: receiver.verified(hook.json()["secret"]))
        assert sent["type"] == "order.cancelled"
        assert sent["data"]["order"]["client_order_id"] == "dms"
        assert sent["data"]["order"]["reason"] == "CANCEL_ON_DISCONNECT"

    async def test_an_abrupt_drop_cancels_too(self, live: LiveApp) -> None:
        await place(live.http, DESK_B, order("sell", "5", "1876"))
        async with ws_client(url(live), key=DESK_B_KEY) as ws:
            await ws.send({"action": "cancel_on_disconnect", "enabled": True, "id": 3})
            assert await ws.recv() == {"type": "cancel_on_disconnect", "enabled": True, "id": 3}
            ws.connection.transport.abort()
        await eventually_no_open_orders(live.http, DESK_B)

    async def test_it_can_be_switched_off(self, live: LiveApp) -> None:
        await place(live.http, DESK_B, order("sell", "5", "1876"))
        async with ws_client(url(live), key=DESK_B_KEY) as ws:
            await ws.send({"action": "cancel_on_disconnect", "enabled": True})
            await ws.expect("cancel_on_disconnect")
            await ws.send({"action": "cancel_on_disconnect", "enabled": False})
            assert (await ws.expect("cancel_on_disconnect"))["enabled"] is False
        await asyncio.sleep(0.3)
        assert len(await open_orders(live.http, DESK_B)) == 1

    async def test_it_needs_the_trade_scope(self, live: LiveApp) -> None:
        async with ws_client(url(live), key=READER_KEY) as ws:
            await ws.send({"action": "cancel_on_disconnect", "enabled": True})
            assert (await ws.recv())["code"] == "FORBIDDEN"
            await ws.send({"action": "cancel_on_disconnect", "enabled": "yes"})
            assert (await ws.recv())["code"] == "INVALID_MESSAGE"
        async with ws_client(url(live)) as ws:
            await ws.send({"action": "auth", "api_key": READER_KEY, "cancel_on_disconnect": True})
            assert await close_code(ws) == 1008
        assert ws.backlog[0]["code"] == "FORBIDDEN"


class TestAcrossReplicas:
    async def test_order_updates_reach_a_stream_on_another_replica(
        self, make_settings: Callable[..., Settings], tokens_dir: Path, pg_url: str
    ) -> None:
        add_accounts(tokens_dir)
        async with (
            two_gateways_and_a_matcher(make_settings, pg_url) as (a, b, matcher),
            ws_client(url(b), key=ADMIN_KEY) as stream,
        ):
            # The matcher journals the orders, so it is the one that must know where the
            # account's stream is.
            await wait_for_registry(matcher, accounts={"default"})
            assert isinstance(a.state["orders"], StreamOrderEntry)
            assert isinstance(b.state["orders"], StreamOrderEntry)

            # An order taken by the other gateway...
            await place(a.http, ADMIN, order("sell", "1", "1876"))
            update = await stream.expect("order")
            assert update["order"]["status"] == "open"
            assert update["order"]["price"] == "1876"

            # ...and one taken by the stream's own gateway.
            await place(b.http, ADMIN, order("sell", "1", "1877"))
            update = await stream.expect("order")
            assert (update["order"]["status"], update["order"]["price"]) == ("open", "1877")

            # Fills too, whoever sent the order that traded.
            await place(a.http, DESK_B, order("buy", "1", "1876"))
            fill = (await stream.expect("fill"))["fill"]
            assert (fill["liquidity"], fill["side"], fill["price"]) == ("maker", "sell", "1876")
            assert (await stream.expect("order"))["order"]["status"] == "filled"
            # ...and the position the fill moved, from the matcher that holds it.
            assert (await stream.expect("position"))["position"]["quantity"] == "-1"

            # Each update arrived once: nothing but heartbeats before the pong.
            await stream.send({"action": "ping"})
            assert await stream.expect("pong") == {"type": "pong"}


async def wait_for_registry(live: LiveApp, *, accounts: set[str]) -> None:
    replicas = live.state["ticker"].replicas
    for _ in range(100):
        if accounts <= replicas.remote_accounts:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"registry never showed {accounts}")
