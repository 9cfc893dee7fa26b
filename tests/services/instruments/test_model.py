from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.errors import (
    AppError,
    InvalidLotSize,
    InvalidPrice,
    InvalidQuantity,
    InvalidTickSize,
)
from app.services.instruments.model import (
    MAX_UNITS,
    Instrument,
    InstrumentStatus,
    decimal_text,
    grid,
)


def make(tick: str = "0.05", lot: str = "1", **overrides: Any) -> Instrument:
    values: dict[str, Any] = {
        "instrument_token": 408065,
        "exchange_token": 1594,
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "name": "INFOSYS",
        "instrument_type": "EQ",
        "segment": "NSE",
        "tick_size": Decimal(tick),
        "lot_size": Decimal(lot),
        "expiry": None,
        "strike": Decimal(0),
        "last_price": Decimal("1875.4"),
        "status": InstrumentStatus.ACTIVE,
    }
    values.update(overrides)
    return Instrument.create(**values)


class TestGrid:
    @pytest.mark.parametrize(
        ("step", "expected"),
        [
            ("0.05", (2, 5)),
            ("0.01", (2, 1)),
            ("0.0025", (4, 25)),
            ("0.50", (1, 5)),
            ("1", (0, 1)),
            ("25", (0, 25)),
            ("1E+2", (0, 100)),
        ],
    )
    def test_step_as_integer_units(self, step: str, expected: tuple[int, int]) -> None:
        assert grid(Decimal(step)) == expected

    @pytest.mark.parametrize("step", ["0", "-0.05", "NaN", "Infinity", "1E-40"])
    def test_refuses_steps_that_are_not_positive_and_finite(self, step: str) -> None:
        with pytest.raises(ValueError):
            grid(Decimal(step))


class TestPriceToTicks:
    @pytest.mark.parametrize(
        ("tick", "text", "ticks"),
        [
            ("0.05", "1875.45", 37509),
            ("0.05", "1875.4", 37508),
            ("0.05", "1875", 37500),
            ("0.05", "1875.450000", 37509),
            ("0.05", "0.05", 1),
            ("0.05", "007.5", 150),
            ("0.01", "295.41", 29541),
            ("0.0025", "83.1275", 33251),
            ("0.5", "11212.5", 22425),
            ("1", "11460", 11460),
            ("1", "11460.000", 11460),
        ],
    )
    def test_exact_prices_on_the_grid(self, tick: str, text: str, ticks: int) -> None:
        assert make(tick=tick).price_to_ticks(text) == ticks

    @pytest.mark.parametrize(
        "text", ["1875.47", "1875.451", "1875.4500001", "0.01", "1875.00000000000000000001"]
    )
    def test_off_grid_is_invalid_tick_size_never_rounded(self, text: str) -> None:
        with pytest.raises(InvalidTickSize) as caught:
            make(tick="0.05").price_to_ticks(text)
        assert caught.value.code == "INVALID_TICK_SIZE"
        assert "0.05" in caught.value.message

    @pytest.mark.parametrize(
        "text",
        [
            "1e3",
            "1E3",
            "1.5e2",
            "NaN",
            "nan",
            "Infinity",
            "-inf",
            "-5",
            "+5",
            " 5",
            "5 ",
            "5.",
            ".5",
            "",
            "1,000",
            "1_000",
            "0x10",
            "١٢",  # Arabic-Indic digits: isdigit() but not ASCII
            "1.2.3",
            "0",
            "0.00",
            "1" * 33,
        ],
    )
    def test_malformed_zero_negative_or_too_long_is_invalid_price(self, text: str) -> None:
        with pytest.raises(InvalidPrice) as caught:
            make().price_to_ticks(text)
        assert caught.value.code == "INVALID_PRICE"
        assert caught.value.status == 422

    @pytest.mark.parametrize("value", [5, 5.0, None, Decimal("5"), b"5"])
    def test_non_strings_are_invalid_price(self, value: object) -> None:
        with pytest.raises(InvalidPrice):
            make().price_to_ticks(value)  # type: ignore[arg-type]

    def test_huge_values_are_refused(self) -> None:
        instrument = make(tick="1")
        assert instrument.price_to_ticks(str(MAX_UNITS - 1)) == MAX_UNITS - 1
        with pytest.raises(InvalidPrice, match="too large"):
            instrument.price_to_ticks(str(MAX_UNITS))
        with pytest.raises(InvalidPrice):
            instrument.price_to_ticks("9" * 32)

    def test_errors_are_app_errors_with_class_level_codes(self) -> None:
        # The order path uses the code of a caught error as a per-order reject reason.
        assert issubclass(InvalidPrice, AppError)
        assert InvalidPrice.code == "INVALID_PRICE"
        assert InvalidTickSize.code == "INVALID_TICK_SIZE"
        assert InvalidQuantity.code == "INVALID_QUANTITY"
        assert InvalidLotSize.code == "INVALID_LOT_SIZE"


class TestQuantityToLots:
    @pytest.mark.parametrize(
        ("lot", "text", "lots"),
        [("1", "10", 10), ("25", "50", 2), ("25", "25.000", 1), ("0.001", "1.234", 1234)],
    )
    def test_exact_quantities(self, lot: str, text: str, lots: int) -> None:
        assert make(lot=lot).quantity_to_lots(text) == lots

    @pytest.mark.parametrize("text", ["30", "10", "25.5", "49.99"])
    def test_off_lot_is_invalid_lot_size(self, text: str) -> None:
        with pytest.raises(InvalidLotSize) as caught:
            make(lot="25").quantity_to_lots(text)
        assert caught.value.code == "INVALID_LOT_SIZE"

    @pytest.mark.parametrize("text", ["0", "-25", "2.5e1", "NaN", "", "x", "2" * 40])
    def test_malformed_zero_or_negative_is_invalid_quantity(self, text: str) -> None:
        with pytest.raises(InvalidQuantity) as caught:
            make(lot="25").quantity_to_lots(text)
        assert caught.value.code == "INVALID_QUANTITY"

    def test_huge_quantity_is_refused(self) -> None:
        with pytest.raises(InvalidQuantity, match="too large"):
            make(lot="1").quantity_to_lots(str(2**60))


class TestRendering:
    @pytest.mark.parametrize(
        ("tick", "ticks", "text"),
        [
            ("0.05", 37509, "1875.45"),
            ("0.05", 37508, "1875.4"),
            ("0.05", 37500, "1875"),
            ("0.05", 1, "0.05"),
            ("0.0025", 33251, "83.1275"),
            ("1", 11460, "11460"),
            ("0.05", -3, "-0.15"),
            ("0.05", 0, "0"),
        ],
    )
    def test_ticks_to_price(self, tick: str, ticks: int, text: str) -> None:
        assert make(tick=tick).ticks_to_price(ticks) == text

    def test_lots_to_quantity(self) -> None:
        assert make(lot="25").lots_to_quantity(3) == "75"
        assert make(lot="0.001").lots_to_quantity(1234) == "1.234"

    @pytest.mark.parametrize("tick", ["0.05", "0.01", "0.0025", "0.5", "1", "5"])
    def test_round_trip(self, tick: str) -> None:
        instrument = make(tick=tick)
        for ticks in (1, 7, 20, 999, 123456789):
            assert instrument.price_to_ticks(instrument.ticks_to_price(ticks)) == ticks

    @pytest.mark.parametrize(
        ("value", "text"),
        [("0.05000000", "0.05"), ("1E+2", "100"), ("0E-8", "0"), ("24000.0", "24000")],
    )
    def test_decimal_text_is_canonical(self, value: str, text: str) -> None:
        assert decimal_text(Decimal(value)) == text

    def test_to_json_renders_decimals_as_strings(self) -> None:
        updated = datetime(2026, 11, 22, 9, 15, tzinfo=UTC)
        instrument = make(
            tick="0.05000000",
            lot="50",
            expiry=date(2026, 11, 26),
            strike=Decimal("24000.00000000"),
            updated_at=updated,
        )
        body = instrument.to_json()
        assert body["tick_size"] == "0.05"
        assert body["lot_size"] == "50"
        assert body["strike"] == "24000"
        assert body["last_price"] == "1875.4"
        assert body["expiry"] == "2026-11-26"
        assert body["symbol"] == "NSE:INFY"
        assert body["status"] == "active"
        assert body["updated_at"] == "2026-11-22T09:15:00+00:00"


class TestStatus:
    def test_with_status_keeps_grids_and_identity(self) -> None:
        instrument = make(tick="0.05", lot="25")
        halted = instrument.with_status(InstrumentStatus.HALTED, datetime.now(UTC))
        assert halted.status is InstrumentStatus.HALTED
        assert halted.tradable
        assert halted.price_to_ticks("1.05") == 21
        assert halted.quantity_to_lots("50") == 2
        assert halted.symbol == "NSE:INFY"
        assert not make(status="delisted").tradable

    def test_instrument_is_immutable(self) -> None:
        instrument = make()
        with pytest.raises(AttributeError):
            instrument.status = InstrumentStatus.HALTED  # type: ignore[misc]
