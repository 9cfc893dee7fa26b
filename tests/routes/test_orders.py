"""Contract tests for the order routes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from tests.conftest import running_app
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, batch, order

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
async def client(backend_settings: Settings, tokens_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    add_accounts(tokens_dir)
    async with running_app(backend_settings) as (_app, client):
        yield client


@pytest.fixture
def settings_with(
    make_settings: Callable[..., Settings], tokens_dir: Path
) -> Callable[..., Settings]:
    add_accounts(tokens_dir)
    return make_settings


async def place(client: httpx.AsyncClient, *orders: dict, headers: dict = ADMIN, **kw) -> dict:
    response = await client.post(
        "/advanced/batch-orders", json=batch(*orders, **kw), headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


class TestBatchOrders:
    async def test_results_in_request_order_with_counts(self, client: httpx.AsyncClient) -> None:
        body = await place(
            client,
            order("sell", "10", "1875.4", client_order_id="s1"),
            order("buy", "1", "1875.43"),
            order("buy", "5", "1875", client_order_id="b1"),
        )
        assert body["accepted"] == 2
        assert body["rejected"] == 1
        assert [r["index"] for r in body["results"]] == [0, 1, 2]
        assert body["results"][0]["client_order_id"] == "s1"
        assert body["results"][0]["status"] == "open"
        assert body["results"][1]["error"]["code"] == "INVALID_TICK_SIZE"
        assert body["results"][1]["order_id"] is None
        assert body["results"][2]["remaining_quantity"] == "5"
        assert body["batch_id"]

    async def test_cross_account_trade_fills_both_sides(self, client: httpx.AsyncClient) -> None:
        maker = (await place(client, order("sell", "10", "1875.4")))["results"][0]
        taker = (await place(client, order("buy", "4", "1875.5"), headers=DESK_B))["results"][0]
        assert taker["status"] == "filled"
        assert taker["filled_quantity"] == "4"
        assert taker["average_price"] == "1875.4"
        assert taker["fills"][0]["liquidity"] == "taker"
        assert taker["fills"][0]["price"] == "1875.4"
        maker_now = (await client.get(f"/orders/{maker['order_id']}", headers=ADMIN)).json()
        assert maker_now["status"] == "partially_filled"
        assert maker_now["remaining_quantity"] == "6"
        assert maker_now["fills"][0]["liquidity"] == "maker"
        assert maker_now["fills"][0]["trade_id"] == taker["fills"][0]["trade_id"]
        trades = (await client.get("/trades/NSE:INFY", headers=READER)).json()["items"]
        assert [(t["price"], t["quantity"], t["taker_side"]) for t in trades] == [
            ("1875.4", "4", "buy")
        ]

    async def test_self_trade_is_prevented(self, client: httpx.AsyncClient) -> None:
        await place(client, order("sell", "10", "1875.4"))
        result = (await place(client, order("buy", "4", "1875.5")))["results"][0]
        assert result["status"] == "cancelled"
        assert result["reason"] == "SELF_TRADE_PREVENTION"

    async def test_atomic_batch_places_nothing_when_one_order_is_invalid(
        self, client: httpx.AsyncClient
    ) -> None:
        body = await place(
            client,
            order("buy", "1", "1875"),
            order("buy", "1", "1875.01"),
            atomic=True,
        )
        assert body["accepted"] == 0
        assert [r["error"]["code"] for r in body["results"]] == [
            "BATCH_ABORTED",
            "INVALID_TICK_SIZE",
        ]
        book = (await client.get("/orderbook/NSE:INFY", headers=ADMIN)).json()
        assert book["bids"] == []

    async def test_per_order_validation_errors(self, client: httpx.AsyncClient) -> None:
        body = await place(
            client,
            {"symbol": "NSE:INFY", "side": "up", "quantity": "1", "price": "1"},
            order("buy", "1", "1", symbol="NOPE:X"),
            order("buy", "1", "1", symbol="INFY"),
            order("buy", "0", "1875"),
            order("buy", "1e3", "1875"),
            order("buy", "1", None),
            order("buy", "1", "1875", type="market"),
            "not an object",
        )
        codes = [r["error"]["code"] for r in body["results"]]
        assert codes == [
            "VALIDATION_ERROR",
            "UNKNOWN_INSTRUMENT",
            "AMBIGUOUS_SYMBOL",
            "INVALID_QUANTITY",
            "INVALID_QUANTITY",
            "VALIDATION_ERROR",
            "VALIDATION_ERROR",
            "VALIDATION_ERROR",
        ]
        assert body["accepted"] == 0

    async def test_too_large_batch_is_413(self, settings_with: Callable[..., Settings]) -> None:
        async with running_app(settings_with(orders={"max_batch_orders": 2})) as (_a, client):
            response = await client.post(
                "/advanced/batch-orders",
                json=batch(*[order("buy", "1", "1875")] * 3),
                headers=ADMIN,
            )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "BATCH_TOO_LARGE"

    @pytest.mark.parametrize(
        ("content", "status", "code"),
        [
            (b"{not json", 400, "INVALID_JSON"),
            (b"[]", 422, "VALIDATION_ERROR"),
            (b'{"orders": []}', 422, "EMPTY_BATCH"),
            (b'{"orders": [], "extra": 1}', 422, "VALIDATION_ERROR"),
            (b'{"orders": [{}], "atomic": "yes"}', 422, "VALIDATION_ERROR"),
        ],
    )
    async def test_malformed_envelope(
        self, client: httpx.AsyncClient, content: bytes, status: int, code: str
    ) -> None:
        response = await client.post(
            "/advanced/batch-orders",
            content=content,
            headers={**ADMIN, "Content-Type": "application/json"},
        )
        assert response.status_code == status
        assert response.json()["error"]["code"] == code

    async def test_recent_batches_are_listed_per_account(self, client: httpx.AsyncClient) -> None:
        mine = await place(client, order("buy", "1", "1875"))
        await place(client, order("buy", "1", "1875"), headers=DESK_B)
        listed = (await client.get("/advanced/batch-orders", headers=ADMIN)).json()
        assert [b["batch_id"] for b in listed["items"]] == [mine["batch_id"]]
        one = await client.get(f"/advanced/batch-orders/{mine['batch_id']}", headers=ADMIN)
        assert one.json()["results"] == mine["results"]
        other = await client.get(f"/advanced/batch-orders/{mine['batch_id']}", headers=DESK_B)
        assert other.status_code == 404
        assert (await client.get("/advanced/batch-orders")).status_code == 401


class TestIdempotency:
    async def test_client_order_id_resubmission_returns_the_original(
        self, client: httpx.AsyncClient
    ) -> None:
        first = (await place(client, order("buy", "3", "1875", client_order_id="x-1")))["results"]
        again = await place(client, order("buy", "9", "1870", client_order_id="x-1"))
        assert again["results"][0]["order_id"] == first[0]["order_id"]
        assert again["results"][0]["remaining_quantity"] == "3"
        assert (first[0]["created"], again["results"][0]["created"]) == (True, False)
        orders = (await client.get("/orders", headers=ADMIN)).json()["items"]
        assert len(orders) == 1

    async def test_client_order_id_of_a_finished_order(self, client: httpx.AsyncClient) -> None:
        first = (await place(client, order("buy", "3", "1875", client_order_id="x-2")))["results"]
        await client.delete(f"/orders/{first[0]['order_id']}", headers=ADMIN)
        again = (await place(client, order("buy", "3", "1875", client_order_id="x-2")))["results"]
        assert again[0]["order_id"] == first[0]["order_id"]
        assert again[0]["status"] == "cancelled"

    async def test_same_client_order_id_twice_in_one_batch(self, client: httpx.AsyncClient) -> None:
        body = await place(
            client,
            order("buy", "1", "1875", client_order_id="dup"),
            order("buy", "1", "1875", client_order_id="dup"),
        )
        assert body["results"][1]["error"]["code"] == "DUPLICATE_CLIENT_ORDER_ID"

    async def test_idempotency_key_replays_and_refuses_other_bodies(
        self, client: httpx.AsyncClient
    ) -> None:
        headers = {**ADMIN, "Idempotency-Key": "k-1"}
        body = batch(order("buy", "1", "1875"))
        first = await client.post("/advanced/batch-orders", json=body, headers=headers)
        second = await client.post("/advanced/batch-orders", json=body, headers=headers)
        assert second.json() == first.json()
        other = await client.post(
            "/advanced/batch-orders", json=batch(order("buy", "2", "1875")), headers=headers
        )
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        orders = (await client.get("/orders", headers=ADMIN)).json()["items"]
        assert len(orders) == 1

    async def test_concurrent_reuse_is_409_or_the_same_batch(
        self, client: httpx.AsyncClient
    ) -> None:
        headers = {**ADMIN, "Idempotency-Key": "k-2"}
        body = batch(order("buy", "1", "1875"))
        responses = await asyncio.gather(
            *[client.post("/advanced/batch-orders", json=body, headers=headers) for _ in range(4)]
        )
        ok = [r.json()["batch_id"] for r in responses if r.status_code == 200]
        assert len(set(ok)) == 1
        assert all(r.status_code in (200, 409) for r in responses)
        orders = (await client.get("/orders", headers=ADMIN)).json()["items"]
        assert len(orders) == 1


class TestSingleOrders:
    async def test_place_get_amend_cancel(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/orders", json=order("buy", "5", "1875"), headers=ADMIN)
        assert created.status_code == 201
        assert created.json()["created"] is True
        order_id = created.json()["order_id"]
        fetched = (await client.get(f"/orders/{order_id}", headers=READER)).status_code
        assert fetched == 404  # another account's order is invisible
        amended = await client.patch(
            f"/orders/{order_id}", json={"quantity": "2", "price": "1875.5"}, headers=ADMIN
        )
        assert amended.status_code == 200
        assert amended.json()["remaining_quantity"] == "2"
        assert amended.json()["price"] == "1875.5"
        assert (await client.delete(f"/orders/{order_id}", headers=DESK_B)).status_code == 404
        cancelled = await client.delete(f"/orders/{order_id}", headers=ADMIN)
        assert cancelled.json()["status"] == "cancelled"
        again = await client.delete(f"/orders/{order_id}", headers=ADMIN)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "ORDER_NOT_OPEN"
        assert (await client.delete("/orders/999999", headers=ADMIN)).status_code == 404

    async def test_resubmitted_client_order_id_answers_200_with_the_current_state(
        self, client: httpx.AsyncClient
    ) -> None:
        body = order("buy", "3", "1875", client_order_id="one-1")
        first = await client.post("/orders", json=body, headers=ADMIN)
        assert first.status_code == 201
        await place(client, order("sell", "1", "1875"), headers=DESK_B)
        again = await client.post(
            "/orders", json=order("buy", "9", "1870", client_order_id="one-1"), headers=ADMIN
        )
        assert again.status_code == 200  # nothing was created
        result = again.json()
        assert result["order_id"] == first.json()["order_id"]
        assert result["created"] is False
        assert (result["status"], result["remaining_quantity"]) == ("partially_filled", "2")
        assert len((await client.get("/orders", headers=ADMIN)).json()["items"]) == 1

    async def test_single_result_has_the_fields_of_a_batch_result(
        self, client: httpx.AsyncClient
    ) -> None:
        single = (
            await client.post("/orders", json=order("buy", "1", "1875"), headers=ADMIN)
        ).json()
        (batched,) = (await place(client, order("buy", "1", "1875")))["results"]
        assert set(single) == set(batched)
        assert single["index"] == 0

    async def test_records_carry_iso_times_beside_the_nanoseconds(
        self, client: httpx.AsyncClient
    ) -> None:
        created = await client.post("/orders", json=order("buy", "5", "1875"), headers=ADMIN)
        order_id = created.json()["order_id"]
        await asyncio.sleep(0.002)
        amended = (
            await client.patch(f"/orders/{order_id}", json={"quantity": "2"}, headers=ADMIN)
        ).json()
        listed = (await client.get("/orders", headers=ADMIN)).json()["items"][0]
        for record in (amended, listed):
            for name in ("created", "updated"):
                moment = datetime.fromisoformat(record[f"{name}_at"])
                assert record[f"{name}_at"].endswith("Z")
                assert moment.tzinfo is not None
                assert moment == EPOCH + timedelta(microseconds=record[f"{name}_ns"] // 1000)
        assert listed["updated_at"] > listed["created_at"]

    async def test_rejected_single_order_is_422_with_its_code(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post("/orders", json=order("buy", "1", "1875.01"), headers=ADMIN)
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "INVALID_TICK_SIZE"

    async def test_amend_refused_by_the_book(self, client: httpx.AsyncClient) -> None:
        created = await client.post("/orders", json=order("buy", "5", "1875"), headers=ADMIN)
        order_id = created.json()["order_id"]
        response = await client.patch(f"/orders/{order_id}", json={"quantity": "0"}, headers=ADMIN)
        assert response.status_code == 422
        empty = await client.patch(f"/orders/{order_id}", json={}, headers=ADMIN)
        assert empty.status_code == 422

    async def test_list_filters_and_pagination(self, client: httpx.AsyncClient) -> None:
        await place(client, *[order("buy", "1", "1875") for _ in range(5)])
        await place(client, order("buy", "1", "1300", symbol="NSE:RELIANCE"))
        page = (await client.get("/orders?limit=4", headers=ADMIN)).json()
        assert len(page["items"]) == 4
        rest = (
            await client.get(f"/orders?limit=4&cursor={page['next_cursor']}", headers=ADMIN)
        ).json()
        assert len(rest["items"]) == 2
        assert rest["next_cursor"] is None
        infy = (await client.get("/orders?symbol=NSE:INFY&status=open", headers=ADMIN)).json()
        assert len(infy["items"]) == 5
        bad = await client.get("/orders?status=weird", headers=ADMIN)
        assert bad.status_code == 422
        bad_cursor = await client.get("/orders?cursor=zzz", headers=ADMIN)
        assert bad_cursor.status_code == 422

    async def test_status_takes_several_statuses_and_working(
        self, client: httpx.AsyncClient
    ) -> None:
        await place(
            client,
            order("buy", "1", "1870"),  # open
            order("sell", "10", "1880"),  # partially filled below
            order("buy", "1", type="stop", trigger_price="1900"),  # pending_trigger
            order("buy", "1", "1871", client_order_id="gone"),  # cancelled below
        )
        await place(client, order("buy", "4", "1880"), headers=DESK_B)
        gone = (await client.get("/orders/by-client-id/gone", headers=ADMIN)).json()
        await client.delete(f"/orders/{gone['order_id']}", headers=ADMIN)

        async def statuses(query: str) -> list[str]:
            response = await client.get(f"/orders?status={query}", headers=ADMIN)
            assert response.status_code == 200, response.text
            return sorted(item["status"] for item in response.json()["items"])

        assert await statuses("working") == ["open", "partially_filled", "pending_trigger"]
        assert await statuses("open,partially_filled") == ["open", "partially_filled"]
        assert await statuses("cancelled,working") == [
            "cancelled", "open", "partially_filled", "pending_trigger"
        ]  # fmt: skip
        every = "open,partially_filled,filled,cancelled,expired,rejected,pending_trigger,working"
        assert len(await statuses(every)) == 4
        for bad in ("open,weird", "", "open,"):
            response = await client.get("/orders", params={"status": bad}, headers=ADMIN)
            assert response.status_code == 422, bad
            assert response.json()["error"]["code"] == "VALIDATION_ERROR"

    async def test_an_order_is_found_by_its_client_order_id(
        self, client: httpx.AsyncClient
    ) -> None:
        (placed,) = (await place(client, order("buy", "1", "1875", client_order_id="c-1")))[
            "results"
        ]
        await place(client, order("buy", "1", "1875", client_order_id="c-2"))
        found = (await client.get("/orders?client_order_id=c-1", headers=ADMIN)).json()
        assert [item["order_id"] for item in found["items"]] == [placed["order_id"]]
        one = await client.get("/orders/by-client-id/c-1", headers=ADMIN)
        assert one.status_code == 200
        assert (
            one.json() == (await client.get(f"/orders/{placed['order_id']}", headers=ADMIN)).json()
        )
        none = (await client.get("/orders?client_order_id=c-9", headers=ADMIN)).json()
        assert none == {"items": [], "next_cursor": None}
        for url, headers in (
            ("/orders/by-client-id/c-9", ADMIN),
            ("/orders/by-client-id/c-1", DESK_B),
        ):
            missing = await client.get(url, headers=headers)
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "ORDER_NOT_FOUND"
        assert (await client.get("/orders?client_order_id=c-1", headers=DESK_B)).json()[
            "items"
        ] == []
        for bad in ("/orders/by-client-id/a%20b", "/orders?client_order_id=a%20b"):
            assert (await client.get(bad, headers=ADMIN)).status_code == 422

    async def test_cancel_all_per_symbol(self, client: httpx.AsyncClient) -> None:
        await place(
            client, order("buy", "1", "1875"), order("buy", "1", "1300", symbol="NSE:RELIANCE")
        )
        await place(client, order("buy", "1", "1875"), headers=DESK_B)
        response = await client.delete("/orders?symbol=NSE:INFY", headers=ADMIN)
        assert response.json()["cancelled"] == 1
        everything = await client.delete("/orders", headers=ADMIN)
        assert everything.json()["cancelled"] == 1
        book = (await client.get("/orderbook/NSE:INFY", headers=ADMIN)).json()
        assert book["bids"][0]["orders"] == 1  # desk-b's order is untouched


class TestRisk:
    async def test_limits(self, settings_with: Callable[..., Settings]) -> None:
        settings = settings_with(
            orders={"max_order_quantity": "100", "max_notional": "100000", "max_open_orders": 2}
        )
        async with running_app(settings) as (_app, client):
            body = await place(
                client,
                order("buy", "101", "1875"),
                order("buy", "100", "1875"),
                order("buy", "1", "2500"),
                order("buy", "1", "1875"),
                order("buy", "1", "1875"),
                order("buy", "1", "1875"),
            )
        assert [r.get("error", {}).get("code") for r in body["results"]] == [
            "RISK_MAX_QUANTITY",
            "RISK_MAX_NOTIONAL",
            "PRICE_OUT_OF_BAND",
            None,
            None,
            "RISK_MAX_OPEN_ORDERS",
        ]

    async def test_admin_halt_and_resume(self, client: httpx.AsyncClient) -> None:
        token = 408065
        await place(client, order("buy", "1", "1875"))
        assert (
            await client.post(f"/admin/instruments/{token}/halt", headers=DESK_B)
        ).status_code == 403
        halted = await client.post(f"/admin/instruments/{token}/halt", headers=ADMIN)
        assert halted.json()["status"] == "halted"
        body = await place(client, order("buy", "1", "1875"))
        assert body["results"][0]["error"]["code"] == "INSTRUMENT_HALTED"
        book = (await client.get("/orderbook/NSE:INFY", headers=ADMIN)).json()
        assert book["bids"][0]["orders"] == 1  # resting orders stay
        await client.post(f"/admin/instruments/{token}/resume", headers=ADMIN)
        assert (await place(client, order("buy", "1", "1875")))["accepted"] == 1

    async def test_circuit_breaker_halts_on_a_fast_move(
        self, settings_with: Callable[..., Settings]
    ) -> None:
        settings = settings_with(orders={"breaker_percent": "2", "price_band_percent": "0"})
        async with running_app(settings) as (_app, client):
            await place(client, order("sell", "1", "1875"), order("sell", "1", "1950"))
            await place(client, order("buy", "2", "1950"), headers=DESK_B)
            body = await place(client, order("buy", "1", "1875"), headers=DESK_B)
            stats = (await client.get("/stats/NSE:INFY", headers=ADMIN)).json()
        assert body["results"][0]["error"]["code"] == "INSTRUMENT_HALTED"
        assert stats["status"] == "halted"


class TestMarketData:
    async def test_orderbook_depth_and_seq(self, client: httpx.AsyncClient) -> None:
        await place(
            client,
            order("buy", "1", "1875"),
            order("buy", "2", "1875"),
            order("buy", "1", "1874.95"),
            order("sell", "3", "1876"),
        )
        book = (await client.get("/orderbook/NSE:INFY?depth=1", headers=READER)).json()
        assert book["symbol"] == "NSE:INFY"
        assert book["seq"] > 0
        assert book["bids"] == [{"price": "1875", "quantity": "3", "orders": 2}]
        assert book["asks"] == [{"price": "1876", "quantity": "3", "orders": 1}]
        assert (await client.get("/orderbook/NSE:INFY?depth=0", headers=READER)).status_code == 422
        missing = await client.get("/orderbook/NOPE:X", headers=READER)
        assert missing.status_code == 404  # the instrument is the path's resource
        assert missing.json()["error"]["code"] == "UNKNOWN_INSTRUMENT"

    async def test_stats(self, client: httpx.AsyncClient) -> None:
        await place(client, order("sell", "3", "1876"))
        await place(client, order("buy", "1", "1876"), headers=DESK_B)
        stats = (await client.get("/stats/NSE:INFY", headers=READER)).json()
        assert stats["last_price"] == "1876"
        assert stats["trade_count"] == 1
        assert stats["volume"] == "1"
        assert stats["ask_quantity"] == "2"
