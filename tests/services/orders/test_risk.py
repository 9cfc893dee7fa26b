"""Pre-trade risk and the circuit breaker: ``RiskChecker`` and ``CircuitBreaker`` on their
own, then the same limits as the order service applies them (reference price, open orders
across a batch, halts)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest

from app.services.instruments.model import Instrument, InstrumentStatus
from app.services.orders.risk import CircuitBreaker, RiskChecker, RiskLimits, RiskReject
from app.services.orders.shard import Shard
from app.settings import Settings
from tests.support.instruments import future
from tests.support.orders import batch_body, codes, opened_registry, serving_on, serving_orders
from tests.support.trading import order

SECOND = 1_000_000_000
INFY = 408065


def checker(
    *,
    quantity: str = "1000",
    notional: str = "1000000",
    open_orders: int = 10,
    band: str = "10",
) -> RiskChecker:
    return RiskChecker(
        RiskLimits(
            max_order_quantity=Decimal(quantity),
            max_notional=Decimal(notional),
            max_open_orders=open_orders,
            price_band_percent=Decimal(band),
        )
    )


def refusal(
    risk: RiskChecker,
    *,
    lots: int,
    price: int | None,
    reference: int | None = None,
    open_orders: int = 0,
    on: Instrument | None = None,
) -> str | None:
    """The reject code, or None when the order passes."""
    try:
        risk.check(
            on or future(),
            lots=lots,
            price=price,
            reference=reference,
            open_orders=open_orders,
        )
    except RiskReject as exc:
        return exc.code
    return None


class TestMaxQuantity:
    def test_the_limit_is_in_instrument_units_not_lots(self) -> None:
        risk = checker(quantity="1000")  # 40 lots of 25
        assert refusal(risk, lots=40, price=1) is None
        assert refusal(risk, lots=41, price=1) == "RISK_MAX_QUANTITY"

    def test_a_limit_between_lots_rounds_down(self) -> None:
        risk = checker(quantity="1010")  # 40.4 lots: 41 lots is 1025 units
        assert refusal(risk, lots=40, price=1) is None
        assert refusal(risk, lots=41, price=1) == "RISK_MAX_QUANTITY"

    def test_each_instrument_has_its_own_bound(self) -> None:
        risk = checker(quantity="100")
        assert refusal(risk, lots=4, price=1, on=future(lot="25", token=1)) is None
        assert refusal(risk, lots=5, price=1, on=future(lot="25", token=1)) is not None
        assert refusal(risk, lots=100, price=1, on=future(lot="1", token=2)) is None
        # A lot size that changed under the same token is not served from the old bound.
        assert refusal(risk, lots=5, price=1, on=future(lot="10", token=1)) is None


class TestMaxNotional:
    def test_the_limit_is_price_times_quantity_in_currency(self) -> None:
        # 4 lots of 25 at 100.00 (2000 ticks of 0.05) = 10,000
        risk = checker(notional="10000")
        assert refusal(risk, lots=4, price=2000) is None
        assert refusal(risk, lots=4, price=2001) == "RISK_MAX_NOTIONAL"
        assert refusal(risk, lots=5, price=2000) == "RISK_MAX_NOTIONAL"

    def test_market_orders_are_valued_at_the_reference_price(self) -> None:
        risk = checker(notional="10000")
        assert refusal(risk, lots=4, price=None, reference=2000) is None
        assert refusal(risk, lots=4, price=None, reference=2001) == "RISK_MAX_NOTIONAL"

    def test_a_market_order_without_any_reference_is_not_valued(self) -> None:
        assert refusal(checker(notional="1"), lots=40, price=None, reference=None) is None

    def test_a_limit_order_is_valued_at_its_own_price_not_the_reference(self) -> None:
        risk = checker(notional="10000", band="0")
        assert refusal(risk, lots=4, price=2000, reference=9000) is None


class TestOpenOrders:
    def test_the_last_free_slot_and_the_first_refused(self) -> None:
        risk = checker(open_orders=3)
        assert refusal(risk, lots=1, price=1, open_orders=2) is None
        assert refusal(risk, lots=1, price=1, open_orders=3) == "RISK_MAX_OPEN_ORDERS"

    def test_quantity_is_checked_before_open_orders(self) -> None:
        risk = checker(quantity="25", open_orders=1)
        assert refusal(risk, lots=2, price=1, open_orders=5) == "RISK_MAX_QUANTITY"


class TestPriceBand:
    def test_the_band_is_inclusive_around_the_reference(self) -> None:
        risk = checker(band="10")
        assert refusal(risk, lots=1, price=900, reference=1000) is None
        assert refusal(risk, lots=1, price=1100, reference=1000) is None
        assert refusal(risk, lots=1, price=899, reference=1000) == "PRICE_OUT_OF_BAND"
        assert refusal(risk, lots=1, price=1101, reference=1000) == "PRICE_OUT_OF_BAND"

    def test_a_fractional_band(self) -> None:
        risk = checker(band="0.5")
        assert refusal(risk, lots=1, price=1005, reference=1000) is None
        assert refusal(risk, lots=1, price=1006, reference=1000) == "PRICE_OUT_OF_BAND"

    def test_zero_turns_the_band_off(self) -> None:
        risk = checker(band="0")
        assert refusal(risk, lots=1, price=1, reference=1_000_000) is None
        assert refusal(risk, lots=1, price=100_000, reference=1) is None

    def test_no_reference_no_band(self) -> None:
        assert refusal(checker(band="1"), lots=1, price=100_000, reference=None) is None

    def test_market_orders_have_no_band(self) -> None:
        assert refusal(checker(band="1"), lots=1, price=None, reference=1000) is None

    def test_the_message_names_the_limit(self) -> None:
        with pytest.raises(RiskReject, match="10%"):
            checker(band="10").check(future(), lots=1, price=2000, reference=1000, open_orders=0)


class TestCircuitBreaker:
    def test_a_move_past_the_percentage_within_the_window_trips(self) -> None:
        breaker = CircuitBreaker(percent=Decimal(10), window_ns=60 * SECOND)
        assert breaker.observe(1, 0, 1000) is False
        assert breaker.observe(1, 10 * SECOND, 1100) is False  # exactly 10%: not more
        assert breaker.observe(1, 20 * SECOND, 1101) is True

    def test_downward_moves_trip_too(self) -> None:
        breaker = CircuitBreaker(percent=Decimal(10), window_ns=60 * SECOND)
        breaker.observe(1, 0, 1000)
        assert breaker.observe(1, SECOND, 899) is True

    def test_trades_older_than_the_window_no_longer_count(self) -> None:
        breaker = CircuitBreaker(percent=Decimal(10), window_ns=60 * SECOND)
        breaker.observe(1, 0, 1000)
        breaker.observe(1, 50 * SECOND, 1050)
        # At t=61 s the 1000 has left the window; 1150 is within 10% of 1050.
        assert breaker.observe(1, 61 * SECOND, 1150) is False
        assert breaker.observe(1, 62 * SECOND, 1200) is True

    def test_instruments_are_watched_separately(self) -> None:
        breaker = CircuitBreaker(percent=Decimal(10), window_ns=60 * SECOND)
        breaker.observe(1, 0, 1000)
        assert breaker.observe(2, SECOND, 2000) is False
        assert breaker.observe(2, 2 * SECOND, 2100) is False

    def test_zero_percent_never_trips(self) -> None:
        breaker = CircuitBreaker(percent=Decimal(0), window_ns=60 * SECOND)
        breaker.observe(1, 0, 1000)
        assert breaker.observe(1, SECOND, 1) is False

    def test_reset_forgets_the_window(self) -> None:
        breaker = CircuitBreaker(percent=Decimal(10), window_ns=60 * SECOND)
        breaker.observe(1, 0, 1000)
        breaker.reset(1)
        assert breaker.observe(1, SECOND, 2000) is False
        assert breaker.observe(1, 2 * SECOND, 2100) is False


class TestRiskInTheOrderService:
    async def test_market_orders_are_valued_at_the_last_trade(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        settings = make_settings(
            db={"url": pg_url}, orders={"max_notional": "100000", "price_band_percent": "0"}
        )
        async with serving_orders(settings) as orders:
            # No trade yet: valued at the registry's last price (1875.4): 60 x 1875.4 > 100,000
            before = await orders.place_batch("a", batch_body(order("buy", "60", type="market")))
            assert codes(before) == ["RISK_MAX_NOTIONAL"]
            await orders.place_batch("a", batch_body(order("sell", "61", "1000")))
            await orders.place_batch("b", batch_body(order("buy", "1", "1000")))
            # Now the last trade (1000) values it: 60 x 1000 = 60,000.
            after = await orders.place_batch("b", batch_body(order("buy", "60", type="market")))
        assert codes(after) == [None]
        assert after["results"][0]["status"] == "filled"

    async def test_the_band_follows_the_last_trade(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        settings = make_settings(db={"url": pg_url}, orders={"price_band_percent": "5"})
        async with serving_orders(settings) as orders:
            far = order("buy", "1", "1960")  # 4.5% above 1875.4
            assert codes(await orders.place_batch("a", batch_body(far))) == [None]
            outside = order("buy", "1", "1980")  # 5.6% above 1875.4
            assert codes(await orders.place_batch("a", batch_body(outside))) == [
                "PRICE_OUT_OF_BAND"
            ]
            await orders.place_batch("b", batch_body(order("sell", "1", "1960")))
            # The last trade is 1960 now: 1980 is 1% away.
            assert codes(await orders.place_batch("a", batch_body(outside))) == [None]

    async def test_open_orders_count_earlier_orders_of_the_same_batch(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        settings = make_settings(db={"url": pg_url}, orders={"max_open_orders": 3})
        async with serving_orders(settings) as orders:
            await orders.place_batch("a", batch_body(order("buy", "1", "1875")))
            response = await orders.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875"),
                    order("buy", "1", "1875.43"),  # refused: does not take a slot
                    order("buy", "1", "1875"),
                    order("buy", "1", "1875"),
                ),
            )
            assert codes(response) == [None, "INVALID_TICK_SIZE", None, "RISK_MAX_OPEN_ORDERS"]
            other = await orders.place_batch("b", batch_body(order("buy", "1", "1875")))
            assert codes(other) == [None]  # the limit is per account
            await orders.cancel_all("a")
            freed = await orders.place_batch("a", batch_body(order("buy", "1", "1875")))
        assert codes(freed) == [None]

    async def test_a_halted_instrument_refuses_new_orders(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        async with serving_orders(make_settings(db={"url": pg_url})) as orders:
            await orders.set_halted(INFY, True)
            halted = await orders.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875"), order("buy", "1", "1300", symbol="NSE:RELIANCE")
                ),
            )
            assert codes(halted) == ["INSTRUMENT_HALTED", None]
            await orders.set_halted(INFY, False)
            resumed = await orders.place_batch("a", batch_body(order("buy", "1", "1875")))
        assert codes(resumed) == [None]

    async def test_the_circuit_breaker_halts_and_stores_the_halt(
        self, make_settings: Callable[..., Settings], pg_url: str
    ) -> None:
        settings = make_settings(
            db={"url": pg_url}, orders={"breaker_percent": "2", "price_band_percent": "0"}
        )
        async with (
            opened_registry(settings) as (database, registry, metrics),
            serving_on(database, registry, metrics, settings, Shard()) as orders,
        ):
            await orders.place_batch(
                "a", batch_body(order("sell", "1", "1875"), order("sell", "1", "1950"))
            )
            await orders.place_batch("b", batch_body(order("buy", "2", "1950")))
            assert orders.is_halted(INFY)
            refused = await orders.place_batch("b", batch_body(order("buy", "1", "1875")))
            assert codes(refused) == ["INSTRUMENT_HALTED"]
            for _ in range(100):  # the halt is stored in the background
                if registry.snapshot.instrument(INFY).status is InstrumentStatus.HALTED:
                    break
                await asyncio.sleep(0.01)
            assert registry.snapshot.instrument(INFY).status is InstrumentStatus.HALTED
