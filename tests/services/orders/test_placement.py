"""Placing batches through ``OrderService`` without HTTP: per-order rejects, atomic batches,
results in request order, and the single-order path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from app.errors import BadRequest, PayloadTooLarge, ValidationFailed
from app.services.instruments.model import InstrumentStatus
from app.services.orders.errors import OrderRejectedError
from app.services.orders.parsing import OrderInvalid, parse_order
from app.services.orders.placement import screen
from app.services.orders.service import OrderService
from app.services.orders.shard import Shard
from app.services.render import render_reject
from app.settings import Settings
from tests.support.orders import batch_body, codes, opened_registry, serving_on, serving_orders
from tests.support.trading import order

INFY = 408065
RELIANCE = 738561
INFY_FUT = "NFO:INFY36NOVFUT"  # tick 0.1, lot 400
TCS = 2953217


@pytest.fixture
def settings(make_settings: Callable[..., Settings], pg_url: str) -> Settings:
    return make_settings(
        db={"url": pg_url},
        orders={"max_order_quantity": "1000", "max_notional": "1000000", "max_batch_orders": 20},
    )


def book_state(orders: OrderService) -> dict[int, tuple[str, int]]:
    return {
        token: (book.state_hash(), orders.book_seq.get(token, 0))
        for token, book in orders.books.items()
    }


class TestPerOrderRejects:
    async def test_each_order_is_judged_on_its_own(self, settings: Settings) -> None:
        async with (
            opened_registry(settings) as (database, registry, metrics),
            serving_on(database, registry, metrics, settings, Shard()) as orders,
        ):
            await registry.set_status(TCS, InstrumentStatus.DELISTED)
            await orders.set_halted(RELIANCE, True)
            response = await orders.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875"),
                    {"symbol": "NSE:INFY", "side": "up", "quantity": "1", "price": "1875"},
                    order("buy", "1", "1", symbol="NOPE:X"),
                    order("buy", "1", "1875", symbol="INFY"),
                    order("buy", "1", "4100", symbol="NSE:TCS"),
                    order("buy", "1", "1300", symbol="NSE:RELIANCE"),
                    order("buy", "1", "-1875"),
                    order("buy", "0", "1875"),
                    order("buy", "1", "1875.01"),
                    order("buy", "100", "1881", symbol=INFY_FUT),
                    order("buy", "1001", "1875"),
                    order("buy", "600", "1875"),
                    order("buy", "1", "2500"),
                    order("sell", "1", "1875", post_only=True, time_in_force="IOC"),
                    "not an order",
                ),
            )
        assert codes(response) == [
            None,
            "VALIDATION_ERROR",
            "UNKNOWN_INSTRUMENT",
            "AMBIGUOUS_SYMBOL",
            "INSTRUMENT_NOT_TRADABLE",
            "INSTRUMENT_HALTED",
            "INVALID_PRICE",
            "INVALID_QUANTITY",
            "INVALID_TICK_SIZE",
            "INVALID_LOT_SIZE",
            "RISK_MAX_QUANTITY",
            "RISK_MAX_NOTIONAL",
            "PRICE_OUT_OF_BAND",
            "INVALID_POST_ONLY",
            "VALIDATION_ERROR",
        ]
        assert (response["accepted"], response["rejected"]) == (1, 14)

    async def test_a_reject_before_the_book_has_no_order_id(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            response = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875.01", client_order_id="c-1"))
            )
        (result,) = response["results"]
        assert result["order_id"] is None
        assert result["client_order_id"] == "c-1"
        assert result["created"] is False
        assert result["status"] == "rejected"
        assert result["error"]["message"]

    async def test_the_book_refuses_what_would_break_its_rules(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            await orders.place_batch("a", batch_body(order("sell", "5", "1875")))
            response = await orders.place_batch(
                "b",
                batch_body(
                    order("buy", "1", "1875", post_only=True),
                    order("buy", "9", "1875", time_in_force="FOK"),
                    order("sell", "1", type="market"),
                ),
            )
        assert codes(response) == ["POST_ONLY_WOULD_TAKE", "FOK_NOT_FILLABLE", "NO_LIQUIDITY"]
        booked = response["results"]
        assert all(r["order_id"] is not None for r in booked)  # these reached the book
        assert all(r["status"] == "rejected" for r in booked)

    async def test_a_malformed_envelope_refuses_the_whole_request(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            with pytest.raises(BadRequest) as invalid_json:
                await orders.place_batch("a", b"{")
            with pytest.raises(ValidationFailed) as empty:
                await orders.place_batch("a", batch_body())
            with pytest.raises(PayloadTooLarge) as too_many:
                await orders.place_batch("a", batch_body(*[order("buy", "1", "1875")] * 21))
            assert orders.live_order_ids("a") == []
        assert invalid_json.value.code == "INVALID_JSON"
        assert empty.value.code == "EMPTY_BATCH"
        assert too_many.value.code == "BATCH_TOO_LARGE"


class TestAtomicBatches:
    async def test_one_reject_aborts_all_and_leaves_the_books_untouched(
        self, settings: Settings
    ) -> None:
        async with serving_orders(settings) as orders:
            await orders.place_batch(
                "a", batch_body(order("sell", "5", "1876"), order("buy", "5", "1874"))
            )
            before = book_state(orders)
            live_before = orders.live_order_ids("a")
            response = await orders.place_batch(
                "a",
                batch_body(
                    order("buy", "2", "1876"),  # would trade
                    order("sell", "1", "1300", symbol="NSE:RELIANCE"),  # would open a book
                    order("buy", "1", "1875.01"),
                    order("buy", "1", "1875", client_order_id="kept-free"),
                    atomic=True,
                ),
            )
            assert book_state(orders) == before  # no book changed, none was opened
            assert orders.live_order_ids("a") == live_before
            later = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875", client_order_id="kept-free"))
            )
        assert codes(response) == [
            "BATCH_ABORTED",
            "BATCH_ABORTED",
            "INVALID_TICK_SIZE",
            "BATCH_ABORTED",
        ]
        assert (response["accepted"], response["rejected"]) == (0, 4)
        assert all(r["order_id"] is None for r in response["results"])
        assert later["results"][0]["created"] is True  # the aborted order did not take its id

    async def test_a_risk_reject_aborts_too(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            response = await orders.place_batch(
                "a",
                batch_body(order("buy", "1", "1875"), order("buy", "1001", "1875"), atomic=True),
            )
            assert orders.live_order_ids("a") == []
        assert codes(response) == ["BATCH_ABORTED", "RISK_MAX_QUANTITY"]

    async def test_a_valid_atomic_batch_is_placed_whole(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            response = await orders.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875"),
                    order("sell", "1", "1300", symbol="NSE:RELIANCE"),
                    atomic=True,
                ),
            )
            assert len(orders.live_order_ids("a")) == 2
        assert codes(response) == [None, None]

    async def test_a_repeated_client_order_id_aborts_an_atomic_batch(
        self, settings: Settings
    ) -> None:
        async with serving_orders(settings) as orders:
            response = await orders.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875", client_order_id="twice"),
                    order("buy", "1", "1875", client_order_id="twice"),
                    atomic=True,
                ),
            )
            placed = orders.live_order_ids("a")
        assert codes(response) == ["BATCH_ABORTED", "DUPLICATE_CLIENT_ORDER_ID"]
        assert placed == []


class TestResultOrder:
    async def test_results_follow_the_request_with_their_index(self, settings: Settings) -> None:
        items = [
            order("sell", "3", "1875", client_order_id="s"),
            order("buy", "1", "1875.01", client_order_id="bad"),
            order("buy", "2", "1875", client_order_id="taker"),
            order("buy", "1", "1300", symbol="NSE:RELIANCE", client_order_id="r"),
            order("buy", "1", "1875", symbol="NOPE:X", client_order_id="unknown"),
        ]
        async with serving_orders(settings) as orders:
            response = await orders.place_batch("a", batch_body(*items))
        results = response["results"]
        assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
        assert [r["client_order_id"] for r in results] == ["s", "bad", "taker", "r", "unknown"]
        assert codes(response) == [None, "INVALID_TICK_SIZE", None, None, "UNKNOWN_INSTRUMENT"]
        # Applied in request order: the sell rests first, so the buy after it meets it
        # (and, being the same account, self-trade prevention cancels the newest).
        assert results[0]["status"] == "open"
        assert (results[2]["status"], results[2]["reason"]) == (
            "cancelled",
            "SELF_TRADE_PREVENTION",
        )
        assert (response["accepted"], response["rejected"]) == (3, 2)

    async def test_orders_of_one_batch_trade_in_request_order(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            await orders.place_batch(
                "maker", batch_body(order("sell", "1", "1875"), order("sell", "1", "1875.5"))
            )
            response = await orders.place_batch(
                "taker",
                batch_body(order("buy", "1", "1876"), order("buy", "1", "1876")),
            )
        first, second = response["results"]
        assert first["fills"][0]["price"] == "1875"
        assert second["fills"][0]["price"] == "1875.5"
        assert int(first["fills"][0]["trade_id"]) < int(second["fills"][0]["trade_id"])

    async def test_a_part_of_a_batch_keeps_the_callers_indices(self, settings: Settings) -> None:
        """What a matcher answers for its shard's part of a gateway's batch."""
        async with serving_orders(settings) as orders:
            response = await orders.place_items(
                "a",
                [order("buy", "1", "1875"), order("buy", "1", "1875.01")],
                False,
                indices=[3, 7],
            )
        assert [r["index"] for r in response["results"]] == [3, 7]
        assert codes(response) == [None, "INVALID_TICK_SIZE"]

    async def test_the_batch_id_is_the_one_given(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            response = await orders.place_items(
                "a", [order("buy", "1", "1875")], False, batch_id="gateway-batch.0"
            )
        assert response["batch_id"] == "gateway-batch.0"


class TestSingleOrder:
    async def test_the_result_of_one_order(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            result = await orders.place_order("a", orjson.dumps(order("buy", "2", "1875")))
            assert orders.live_order_ids("a") == [int(result["order_id"])]
        assert (result["index"], result["created"], result["status"]) == (0, True, "open")
        assert result["remaining_quantity"] == "2"

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            (order("buy", "1", "1875.01"), "INVALID_TICK_SIZE"),
            (order("buy", "1"), "VALIDATION_ERROR"),
            ("not an order", "VALIDATION_ERROR"),
            (order("buy", "1", "1875", post_only=True, type="market"), "VALIDATION_ERROR"),
        ],
    )
    async def test_a_refused_order_raises_with_its_result(
        self, settings: Settings, body: Any, code: str
    ) -> None:
        async with serving_orders(settings) as orders:
            with pytest.raises(OrderRejectedError) as caught:
                await orders.place_order("a", orjson.dumps(body))
        assert (caught.value.code, caught.value.status) == (code, 422)
        assert caught.value.details is not None
        assert caught.value.details["error"]["code"] == code

    async def test_a_body_that_is_not_json(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            with pytest.raises(BadRequest) as caught:
                await orders.place_order("a", b"{'symbol': 'NSE:INFY'}")
        assert caught.value.code == "INVALID_JSON"


class TestScreen:
    """``screen``: the per-order checks both the placement and the gateway run."""

    @staticmethod
    def check(index: int, item: Any) -> int:
        if item.get("bad"):
            raise OrderInvalid("VALIDATION_ERROR", f"order {index} is bad")
        return int(item["n"])

    def test_a_reject_takes_its_slot_and_the_rest_pass(self) -> None:
        items = [{"n": 1}, {"bad": True, "client_order_id": "c-2"}, {"n": 3}]
        screened = screen(items, False, self.check)
        assert screened.passed == [(0, 1), (2, 3)]
        assert screened.results[0] is None
        assert screened.results[2] is None
        assert screened.results[1] == render_reject(1, "c-2", "VALIDATION_ERROR", "order 1 is bad")
        assert screened.codes == {"VALIDATION_ERROR": 1}

    def test_one_reject_in_an_atomic_batch_aborts_the_others(self) -> None:
        items = [{"n": 1, "client_order_id": "c-1"}, {"bad": True}, {"n": 3}]
        screened = screen(items, True, self.check)
        assert screened.passed == []
        assert [r["error"]["code"] for r in screened.results if r] == [
            "BATCH_ABORTED",
            "VALIDATION_ERROR",
            "BATCH_ABORTED",
        ]
        assert screened.results[0] is not None
        assert screened.results[0]["client_order_id"] == "c-1"
        assert screened.codes == {"VALIDATION_ERROR": 1, "BATCH_ABORTED": 2}

    def test_an_item_that_is_not_an_object_is_rejected_without_an_id(self) -> None:
        def parse(index: int, item: Any) -> Any:
            return parse_order(item)

        screened = screen(["not an order"], False, parse)
        assert screened.passed == []
        result = screened.results[0]
        assert result is not None
        assert result["client_order_id"] is None
        assert result["error"]["code"] == "VALIDATION_ERROR"
