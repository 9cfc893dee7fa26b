"""An instrument and the exact conversions the order path needs: decimal strings <-> ticks/lots.

Prices and quantities arrive as decimal strings ("30000.5") and leave the same way; the engine
works in integers. Each instrument precomputes its tick and lot grid as integers (``step``
units of ``10**-digits``), so a conversion is string splitting and integer arithmetic with no
``Decimal`` on the hot path. A value off the grid is refused with a stable code, never rounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from app.errors import (
    InstrumentError,
    InvalidLotSize,
    InvalidPrice,
    InvalidQuantity,
    InvalidTickSize,
)

MAX_TEXT_LENGTH = 32
# Ticks and lots stay exact in a float64 (JSON clients) and far inside the engine's ints.
MAX_UNITS = 2**53
_POW10: tuple[int, ...] = tuple(10**i for i in range(64))


class InstrumentStatus(StrEnum):
    ACTIVE = "active"
    HALTED = "halted"
    DELISTED = "delisted"
    EXPIRED = "expired"


def decimal_text(value: Decimal) -> str:
    """Canonical rendering: no exponent, no trailing zeros ("0.05", "25", "0")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@lru_cache(maxsize=256)
def grid(step: Decimal) -> tuple[int, int]:
    """A positive decimal step as ``(digits, step_units)``: 0.05 -> (2, 5), 25 -> (0, 25)."""
    if not step.is_finite() or step <= 0:
        raise ValueError(f"grid step must be a positive decimal, not {step}")
    exponent = step.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    digits = max(0, -exponent)
    if digits > MAX_TEXT_LENGTH:
        raise ValueError(f"grid step {step} has too many decimals")
    return digits, int(step.scaleb(digits))


def _units(text: object, digits: int, what: str, invalid: type[InstrumentError]) -> int:
    """``text`` as an integer count of ``10**-digits``, or -1 when it has more (non-zero)
    decimals than the grid; raises ``invalid`` for anything that is not a positive decimal."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT_LENGTH or not text.isascii():
        shown = repr(text)[:40] if isinstance(text, str) else type(text).__name__
        raise invalid(
            f"{what} must be a decimal string of at most {MAX_TEXT_LENGTH} characters, not {shown}"
        )
    whole, dot, frac = text.partition(".")
    # isdigit() on ASCII refuses signs, exponents, NaN/Infinity, spaces and underscores.
    if not whole.isdigit() or (dot and not frac.isdigit()):
        raise invalid(f"{what} {text!r} is not a plain positive decimal (digits, optional '.')")
    if len(frac) > digits:
        if frac[digits:].strip("0"):
            return -1
        frac = frac[:digits]
    value = int(whole) * _POW10[digits] + (int(frac.ljust(digits, "0")) if digits else 0)
    if value == 0:
        raise invalid(f"{what} must be greater than zero")
    return value


def _render(units: int, digits: int) -> str:
    if digits == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), _POW10[digits])
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(digits, '0').rstrip('0')}"


@dataclass(frozen=True, slots=True)
class Instrument:
    instrument_token: int
    exchange_token: int
    exchange: str
    tradingsymbol: str
    name: str
    instrument_type: str
    segment: str
    tick_size: Decimal
    lot_size: Decimal
    expiry: date | None
    strike: Decimal
    last_price: Decimal
    status: InstrumentStatus
    updated_at: datetime | None = None
    # Precomputed for the hot path (see the module docstring).
    symbol: str = field(default="", compare=False)
    tick_digits: int = field(default=0, repr=False, compare=False)
    tick_step: int = field(default=1, repr=False, compare=False)
    lot_digits: int = field(default=0, repr=False, compare=False)
    lot_step: int = field(default=1, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        *,
        instrument_token: int,
        exchange_token: int,
        exchange: str,
        tradingsymbol: str,
        name: str,
        instrument_type: str,
        segment: str,
        tick_size: Decimal,
        lot_size: Decimal,
        expiry: date | None,
        strike: Decimal,
        last_price: Decimal,
        status: InstrumentStatus | str = InstrumentStatus.ACTIVE,
        updated_at: datetime | None = None,
    ) -> Instrument:
        """An instrument with its grids precomputed (raises ValueError for a bad step)."""
        tick_digits, tick_step = grid(tick_size)
        lot_digits, lot_step = grid(lot_size)
        return cls(
            instrument_token,
            exchange_token,
            exchange,
            tradingsymbol,
            name,
            instrument_type,
            segment,
            tick_size,
            lot_size,
            expiry,
            strike,
            last_price,
            InstrumentStatus(status),
            updated_at,
            f"{exchange}:{tradingsymbol}",
            tick_digits,
            tick_step,
            lot_digits,
            lot_step,
        )

    def with_status(self, status: InstrumentStatus, updated_at: datetime) -> Instrument:
        return replace(self, status=status, updated_at=updated_at)

    @property
    def tradable(self) -> bool:
        return self.status is not InstrumentStatus.DELISTED

    def price_to_ticks(self, text: str) -> int:
        units = _units(text, self.tick_digits, "price", InvalidPrice)
        ticks, rest = divmod(units, self.tick_step)
        if rest or units < 0:
            raise InvalidTickSize(
                f"price {text} is not a multiple of the tick size {decimal_text(self.tick_size)}"
            )
        if ticks >= MAX_UNITS:
            raise InvalidPrice(f"price {text} is too large")
        return ticks

    def quantity_to_lots(self, text: str) -> int:
        units = _units(text, self.lot_digits, "quantity", InvalidQuantity)
        lots, rest = divmod(units, self.lot_step)
        if rest or units < 0:
            raise InvalidLotSize(
                f"quantity {text} is not a multiple of the lot size {decimal_text(self.lot_size)}"
            )
        if lots >= MAX_UNITS:
            raise InvalidQuantity(f"quantity {text} is too large")
        return lots

    def ticks_to_price(self, ticks: int) -> str:
        return _render(ticks * self.tick_step, self.tick_digits)

    def lots_to_quantity(self, lots: int) -> str:
        return _render(lots * self.lot_step, self.lot_digits)

    def to_json(self) -> dict[str, Any]:
        """The API shape: decimals as canonical strings, dates as ISO 8601."""
        return {
            "instrument_token": self.instrument_token,
            "exchange_token": self.exchange_token,
            "exchange": self.exchange,
            "tradingsymbol": self.tradingsymbol,
            "symbol": self.symbol,
            "name": self.name,
            "instrument_type": self.instrument_type,
            "segment": self.segment,
            "tick_size": decimal_text(self.tick_size),
            "lot_size": decimal_text(self.lot_size),
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "strike": decimal_text(self.strike),
            "last_price": decimal_text(self.last_price),
            "status": self.status.value,
            "updated_at": self.updated_at.astimezone(UTC).isoformat() if self.updated_at else None,
        }
