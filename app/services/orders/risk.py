"""Pre-trade risk checks and the circuit breaker.

Limits are in instrument units (quantity) and currency (notional) as operators think of
them, turned once per instrument into integer bounds on lots and ticks*lots so that the
per-order check is a few integer comparisons.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from app.services.orders.errors import OrderReject


class RiskReject(OrderReject):
    """The order breaks a limit, a band or a halt; ``code`` is the per-order reject code."""


class GridInstrument(Protocol):
    @property
    def instrument_token(self) -> int: ...
    @property
    def tick_size(self) -> Decimal: ...
    @property
    def lot_size(self) -> Decimal: ...


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_quantity: Decimal
    max_notional: Decimal
    max_open_orders: int
    price_band_percent: Decimal


@dataclass(frozen=True, slots=True)
class _Bounds:
    max_lots: int
    max_ticks_lots: int


class RiskChecker:
    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self._bounds: dict[tuple[int, Decimal, Decimal], _Bounds] = {}
        self._band = limits.price_band_percent / 100

    def _bounds_for(self, instrument: GridInstrument) -> _Bounds:
        key = (instrument.instrument_token, instrument.tick_size, instrument.lot_size)
        bounds = self._bounds.get(key)
        if bounds is None:
            lot, tick = instrument.lot_size, instrument.tick_size
            bounds = _Bounds(
                max_lots=int(self.limits.max_order_quantity // lot),
                max_ticks_lots=int(self.limits.max_notional // (tick * lot)),
            )
            self._bounds[key] = bounds
        return bounds

    def check(
        self,
        instrument: GridInstrument,
        *,
        lots: int,
        price: int | None,
        reference: int | None,
        open_orders: int,
    ) -> None:
        """Raise ``RiskReject`` when the order breaks a limit. ``price``/``reference`` in ticks."""
        bounds = self._bounds_for(instrument)
        if lots > bounds.max_lots:
            raise RiskReject(
                "RISK_MAX_QUANTITY",
                f"quantity exceeds the limit of {self.limits.max_order_quantity}",
            )
        if open_orders >= self.limits.max_open_orders:
            raise RiskReject(
                "RISK_MAX_OPEN_ORDERS",
                f"the account already has {self.limits.max_open_orders} open orders",
            )
        valued_at = price if price is not None else reference
        if valued_at is not None and valued_at * lots > bounds.max_ticks_lots:
            raise RiskReject(
                "RISK_MAX_NOTIONAL", f"notional exceeds the limit of {self.limits.max_notional}"
            )
        if price is not None and reference is not None and self._band > 0:
            low = reference - reference * self._band
            high = reference + reference * self._band
            if price < low or price > high:
                raise RiskReject(
                    "PRICE_OUT_OF_BAND",
                    f"price is more than {self.limits.price_band_percent}% away from the "
                    "reference price",
                )


class CircuitBreaker:
    """Halts an instrument when its price moves more than a percentage within a window."""

    def __init__(self, *, percent: Decimal, window_ns: int) -> None:
        self._fraction = percent / 100
        self._window_ns = window_ns
        self._recent: dict[int, deque[tuple[int, int]]] = {}

    def observe(self, instrument_token: int, ts_ns: int, price: int) -> bool:
        """Record a trade; True when it moved the price past the limit within the window."""
        if self._fraction <= 0:
            return False
        recent = self._recent.setdefault(instrument_token, deque())
        recent.append((ts_ns, price))
        horizon = ts_ns - self._window_ns
        while recent and recent[0][0] < horizon:
            recent.popleft()
        reference = recent[0][1]
        return abs(price - reference) > reference * self._fraction

    def reset(self, instrument_token: int) -> None:
        self._recent.pop(instrument_token, None)
