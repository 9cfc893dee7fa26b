"""Shared test data for the ticker's unit tests."""

from __future__ import annotations

from decimal import Decimal

from app.services.instrument import Instrument

INFY = Instrument.create(
    instrument_token=408065,
    exchange_token=1594,
    exchange="NSE",
    tradingsymbol="INFY",
    name="INFOSYS",
    instrument_type="EQ",
    segment="NSE",
    tick_size=Decimal("0.05"),
    lot_size=Decimal(1),
    expiry=None,
    strike=Decimal(0),
    last_price=Decimal("1875.4"),
)
