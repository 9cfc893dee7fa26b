"""Parsing orders without HTTP: one order's shape (``parse_order``), the batch envelope
(``parse_batch``), the decimal strings and the tick/lot grid (``Instrument``), and the
pydantic models that document the same shapes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, get_args

import orjson
import pytest

from app.engine import OrderType, SelfTradePrevention, Side, TimeInForce
from app.errors import AppError, BadRequest, InstrumentError, PayloadTooLarge, ValidationFailed
from app.services.instruments.model import MAX_UNITS
from app.services.orders.parsing import (
    MAX_CLIENT_ORDER_ID,
    OrderIn,
    OrderInvalid,
    OrderRequest,
    parse_batch,
    parse_order,
)
from tests.support.instruments import future


def limit(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"symbol": "NSE:INFY", "side": "buy", "quantity": "1", "price": "1875"}
    body.update(extra)
    return body


def reject_code(item: Any) -> str:
    with pytest.raises(OrderInvalid) as caught:
        parse_order(item)
    return caught.value.code


class TestParseOrder:
    def test_a_limit_order_with_defaults(self) -> None:
        parsed = parse_order(limit())
        assert parsed == OrderRequest(
            symbol="NSE:INFY",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity="1",
            price="1875",
            trigger_price=None,
            time_in_force=TimeInForce.GTC,
            post_only=False,
            client_order_id=None,
            stp=SelfTradePrevention.CANCEL_NEWEST,
        )

    def test_every_field_given(self) -> None:
        parsed = parse_order(
            {
                "symbol": "NFO:BANKNIFTY36NOVFUT",
                "side": "sell",
                "type": "stop_limit",
                "quantity": "50",
                "price": "52000.05",
                "trigger_price": "52010",
                "time_in_force": "DAY",
                "post_only": True,
                "client_order_id": "a.B_9:z-1",
                "stp": "cancel_both",
            }
        )
        assert (parsed.side, parsed.order_type, parsed.time_in_force) == (
            Side.SELL,
            OrderType.STOP_LIMIT,
            TimeInForce.DAY,
        )
        assert (parsed.price, parsed.trigger_price) == ("52000.05", "52010")
        assert parsed.post_only is True
        assert parsed.client_order_id == "a.B_9:z-1"
        assert parsed.stp is SelfTradePrevention.CANCEL_BOTH

    def test_choices_ignore_case(self) -> None:
        parsed = parse_order(limit(side="SELL", type="LIMIT", time_in_force="ioc", stp="NONE"))
        assert (parsed.side, parsed.order_type) == (Side.SELL, OrderType.LIMIT)
        assert (parsed.time_in_force, parsed.stp) == (TimeInForce.IOC, SelfTradePrevention.NONE)

    def test_numbers_stay_the_strings_sent(self) -> None:
        """Grid checks need the exact text: no float, no Decimal normalisation here."""
        parsed = parse_order(limit(quantity="10.500", price="0001875.10"))
        assert (parsed.quantity, parsed.price) == ("10.500", "0001875.10")

    def test_integer_numbers_are_read_as_their_decimal_text(self) -> None:
        parsed = parse_order(limit(quantity=3, price=1875))
        assert (parsed.quantity, parsed.price) == ("3", "1875")

    @pytest.mark.parametrize(
        "item",
        [
            "not an object",
            ["NSE:INFY"],
            None,
            limit(colour="red"),
            {k: v for k, v in limit().items() if k != "symbol"},
            limit(symbol=""),
            limit(symbol=408065),
            limit(symbol="X" * 65),
            {k: v for k, v in limit().items() if k != "side"},
            limit(side="up"),
            limit(side=1),
            limit(type="iceberg"),
            limit(time_in_force="GTD"),
            limit(stp="cancel_everything"),
            limit(post_only="true"),
            limit(post_only=1),
            {k: v for k, v in limit().items() if k != "quantity"},
            limit(quantity=1.5),
            limit(quantity=True),
            limit(quantity=["1"]),
            limit(price=1875.5),
            limit(price={"value": "1875"}),
        ],
        ids=lambda item: repr(item)[:40],
    )
    def test_malformed_orders_are_validation_errors(self, item: Any) -> None:
        assert reject_code(item) == "VALIDATION_ERROR"

    def test_the_reject_names_the_unknown_field(self) -> None:
        with pytest.raises(OrderInvalid, match="'colour'"):
            parse_order(limit(colour="red", zebra=1))

    def test_a_too_long_quantity_is_invalid_quantity(self) -> None:
        assert reject_code(limit(quantity="1" * 33)) == "INVALID_QUANTITY"
        assert parse_order(limit(quantity="1" * 32)).quantity == "1" * 32
        assert reject_code(limit(quantity=10**40)) == "INVALID_QUANTITY"  # an integer, too

    def test_a_too_long_price_or_trigger_is_invalid_price(self) -> None:
        assert reject_code(limit(price="1" * 33)) == "INVALID_PRICE"
        stop = limit(type="stop", trigger_price="1" * 33)
        del stop["price"]
        assert reject_code(stop) == "INVALID_PRICE"


class TestPriceAndTriggerRules:
    @pytest.mark.parametrize("order_type", ["limit", "stop_limit"])
    def test_price_is_required_on_limit_types(self, order_type: str) -> None:
        item = limit(type=order_type, trigger_price="1880")
        del item["price"]
        assert reject_code(item) == "VALIDATION_ERROR"
        item["price"] = None  # null counts as absent
        assert reject_code(item) == "VALIDATION_ERROR"

    @pytest.mark.parametrize("order_type", ["market", "stop"])
    def test_price_is_refused_on_market_types(self, order_type: str) -> None:
        item = limit(type=order_type, trigger_price="1880")
        with pytest.raises(OrderInvalid, match="price is not allowed"):
            parse_order(item)

    @pytest.mark.parametrize("order_type", ["stop", "stop_limit"])
    def test_trigger_price_is_required_on_stop_types(self, order_type: str) -> None:
        item = limit(type=order_type)
        if order_type == "stop":
            del item["price"]
        with pytest.raises(OrderInvalid, match="trigger_price is required"):
            parse_order(item)

    @pytest.mark.parametrize("order_type", ["limit", "market"])
    def test_trigger_price_is_refused_on_other_types(self, order_type: str) -> None:
        item = limit(type=order_type, trigger_price="1880")
        if order_type == "market":
            del item["price"]
        with pytest.raises(OrderInvalid, match="trigger_price is not allowed"):
            parse_order(item)

    def test_a_market_order_needs_neither(self) -> None:
        item = limit(type="market")
        del item["price"]
        parsed = parse_order(item)
        assert (parsed.price, parsed.trigger_price) == (None, None)

    def test_a_stop_order_carries_only_its_trigger(self) -> None:
        item = limit(type="stop", trigger_price="1880.5")
        del item["price"]
        parsed = parse_order(item)
        assert (parsed.price, parsed.trigger_price) == (None, "1880.5")


class TestClientOrderId:
    @pytest.mark.parametrize(
        "cid", ["a", "A-z_0.9:x", "x" * MAX_CLIENT_ORDER_ID, "2026-12-06T18:05:00.123"]
    )
    def test_accepted(self, cid: str) -> None:
        assert parse_order(limit(client_order_id=cid)).client_order_id == cid

    @pytest.mark.parametrize(
        "cid",
        [
            "",
            "x" * (MAX_CLIENT_ORDER_ID + 1),
            "a b",
            "a/b",
            "naïve",
            "abc\n",
            "\nabc",
            "a\x00b",
            42,
            ["a"],
        ],
        ids=repr,
    )
    def test_refused(self, cid: Any) -> None:
        assert reject_code(limit(client_order_id=cid)) == "VALIDATION_ERROR"

    def test_null_means_none(self) -> None:
        assert parse_order(limit(client_order_id=None)).client_order_id is None


class TestParseBatch:
    def test_items_and_atomic_flag(self) -> None:
        items, atomic = parse_batch(orjson.dumps({"orders": [limit(), "x"], "atomic": True}), 10)
        assert items == [limit(), "x"]  # orders are parsed one by one, later
        assert atomic is True

    def test_atomic_defaults_to_false(self) -> None:
        assert parse_batch(orjson.dumps({"orders": [limit()]}), 10)[1] is False

    def test_invalid_json_is_a_400(self) -> None:
        with pytest.raises(BadRequest) as caught:
            parse_batch(b'{"orders": [', 10)
        assert (caught.value.code, caught.value.status) == ("INVALID_JSON", 400)

    @pytest.mark.parametrize(
        "payload",
        [
            [limit()],
            "orders",
            {},
            {"orders": None},
            {"orders": {"0": limit()}},
            {"orders": [limit()], "atomic": "yes"},
            {"orders": [limit()], "atomic": 1},
            {"orders": [limit()], "atomic": False, "dry_run": True},
        ],
        ids=repr,
    )
    def test_malformed_envelopes_are_422(self, payload: Any) -> None:
        with pytest.raises(ValidationFailed) as caught:
            parse_batch(orjson.dumps(payload), 10)
        assert (caught.value.code, caught.value.status) == ("VALIDATION_ERROR", 422)

    def test_an_empty_batch(self) -> None:
        with pytest.raises(ValidationFailed) as caught:
            parse_batch(orjson.dumps({"orders": []}), 10)
        assert (caught.value.code, caught.value.status) == ("EMPTY_BATCH", 422)

    def test_the_size_limit(self) -> None:
        items, _ = parse_batch(orjson.dumps({"orders": [limit()] * 3}), 3)
        assert len(items) == 3
        with pytest.raises(PayloadTooLarge) as caught:
            parse_batch(orjson.dumps({"orders": [limit()] * 4}), 3)
        assert (caught.value.code, caught.value.status) == ("BATCH_TOO_LARGE", 413)


class TestDecimalGrid:
    """What the placement does with the parsed strings: exact ticks and lots, or a code."""

    @pytest.mark.parametrize(
        ("text", "ticks"),
        [("100", 2000), ("100.05", 2001), ("100.050000", 2001), ("0.05", 1), ("007.5", 150)],
    )
    def test_prices_on_the_tick_grid(self, text: str, ticks: int) -> None:
        assert future().price_to_ticks(text) == ticks

    @pytest.mark.parametrize("text", ["100.03", "100.051", "0.01"])
    def test_prices_off_the_tick_grid(self, text: str) -> None:
        with pytest.raises(InstrumentError) as caught:
            future().price_to_ticks(text)
        assert caught.value.code == "INVALID_TICK_SIZE"

    @pytest.mark.parametrize(
        "text",
        [
            "0",
            "0.00",
            "-1",
            "+1",
            "1e3",
            "1E3",
            " 1",
            "1 ",
            "1_000",
            "1,5",
            ".5",
            "5.",
            "NaN",
            "Infinity",
            "١٢",
            "",
            "1" * 33,
        ],
        ids=repr,
    )
    def test_prices_that_are_not_plain_positive_decimals(self, text: str) -> None:
        with pytest.raises(InstrumentError) as caught:
            future().price_to_ticks(text)
        assert caught.value.code == "INVALID_PRICE"

    def test_a_price_too_large_for_the_engine(self) -> None:
        assert future(tick="1").price_to_ticks(str(MAX_UNITS - 1)) == MAX_UNITS - 1
        with pytest.raises(InstrumentError) as caught:
            future(tick="1").price_to_ticks(str(MAX_UNITS))
        assert caught.value.code == "INVALID_PRICE"

    @pytest.mark.parametrize(("text", "lots"), [("25", 1), ("50", 2), ("2500.000", 100)])
    def test_quantities_on_the_lot_grid(self, text: str, lots: int) -> None:
        assert future(lot="25").quantity_to_lots(text) == lots

    @pytest.mark.parametrize("text", ["30", "24", "25.5", "12.5"])
    def test_quantities_off_the_lot_grid(self, text: str) -> None:
        with pytest.raises(InstrumentError) as caught:
            future(lot="25").quantity_to_lots(text)
        assert caught.value.code == "INVALID_LOT_SIZE"

    @pytest.mark.parametrize("text", ["0", "-25", "2.5e1", "abc"])
    def test_quantities_that_are_not_plain_positive_decimals(self, text: str) -> None:
        with pytest.raises(InstrumentError) as caught:
            future(lot="25").quantity_to_lots(text)
        assert caught.value.code == "INVALID_QUANTITY"

    def test_fractional_lots(self) -> None:
        crypto = future(tick="0.01", lot="0.001")
        assert crypto.quantity_to_lots("1.5") == 1500
        assert crypto.lots_to_quantity(1500) == "1.5"
        assert crypto.ticks_to_price(crypto.price_to_ticks("30000.10")) == "30000.1"

    def test_every_grid_reject_is_an_app_error_with_a_stable_code(self) -> None:
        with pytest.raises(AppError) as price:
            future().price_to_ticks("x")
        with pytest.raises(AppError) as quantity:
            future().quantity_to_lots("1")
        assert (price.value.status, quantity.value.status) == (422, 422)


class TestDocumentedModel:
    """``OrderIn`` documents what ``parse_order`` accepts: same fields, choices and defaults."""

    def test_every_documented_field_is_accepted(self) -> None:
        documented = set(OrderIn.model_fields)
        sample = {
            "symbol": "NSE:INFY",
            "side": "buy",
            "type": "stop_limit",
            "quantity": "1",
            "price": "1875",
            "trigger_price": "1880",
            "time_in_force": "GTC",
            "post_only": False,
            "client_order_id": "c-1",
            "stp": "none",
        }
        assert set(sample) == documented
        parse_order(sample)
        OrderIn.model_validate(sample)

    @pytest.mark.parametrize(
        ("field", "enum"),
        [
            ("side", Side),
            ("type", OrderType),
            ("time_in_force", TimeInForce),
            ("stp", SelfTradePrevention),
        ],
    )
    def test_documented_choices_are_the_parsed_ones(self, field: str, enum: type[StrEnum]) -> None:
        annotation = OrderIn.model_fields[field].annotation
        assert set(get_args(annotation)) == {member.value for member in enum}

    def test_defaults_agree(self) -> None:
        documented = OrderIn.model_validate(
            {"symbol": "NSE:INFY", "side": "buy", "quantity": "1", "price": "1"}
        )
        parsed = parse_order({"symbol": "NSE:INFY", "side": "buy", "quantity": "1", "price": "1"})
        assert documented.type == parsed.order_type.value
        assert documented.time_in_force == parsed.time_in_force.value
        assert documented.stp == parsed.stp.value
        assert documented.post_only is parsed.post_only
        assert documented.client_order_id is parsed.client_order_id
