"""KiteTicker's binary packets, built from our full-mode ticks (``app.services.ticker.ticks``).

A frame is a big-endian ``uint16`` packet count, then per packet a ``uint16`` length and the
packet. Packets by mode: ``ltp`` 8 bytes (token, last price); ``quote`` 44 (token, last price,
last quantity, average price, volume, total buy and sell quantity, open, high, low, close);
``full`` 184 (the quote, last trade time, open interest and its day high and low, exchange
timestamp, then 5 bid and 5 ask entries of quantity, price, orders and 2 bytes of padding).
An index (segment 9, not tradable) has its own: ``ltp`` 8, ``quote`` 28 (token, last price,
high, low, open, close, change), ``full`` 32 (the quote and the exchange timestamp).

Every field is an unsigned 32-bit integer (orders 16-bit): prices are multiplied by the
divisor the client divides by, which it takes from the token's low byte (the segment:
10^7 for CDS, 10^4 for BCD and NCO, else 100); quantities and volumes past 32 bits are
clamped to its largest value. ``ohlc.close`` is the previous session's close (the registry's
last price), as Kite's; the average traded price is not tracked here and sent as 0.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.services.instruments.model import Instrument
from app.services.ticker.ticks import Mode

CDS, BCD, INDICES, NCO = 3, 6, 9, 12
U32 = 0xFFFF_FFFF
U16 = 0xFFFF
HEARTBEAT = b"\x00"
_HEAD = struct.Struct(">H")
_LTP = struct.Struct(">II")
_QUOTE = struct.Struct(">11I")
_FULL_TAIL = struct.Struct(">5I")
_LEVEL = struct.Struct(">IIHxx")
_EMPTY_LEVEL = _LEVEL.pack(0, 0, 0)
_INDEX_QUOTE = struct.Struct(">7I")
_INDEX_FULL = struct.Struct(">8I")
DEPTH = 5

Instruments = Callable[[int], Instrument | None]


def divisor(instrument_token: int) -> int:
    segment = instrument_token & 0xFF
    if segment == CDS:
        return 10_000_000
    if segment in (BCD, NCO):
        return 10_000
    return 100


def _clamp(value: int) -> int:
    return 0 if value < 0 else U32 if value > U32 else value


def _price(text: str | None, scale: int) -> int:
    return 0 if text is None else _clamp(int(Decimal(text) * scale))


def _quantity(text: str | None) -> int:
    return 0 if text is None else _clamp(int(Decimal(text)))


def _seconds(ns: int | None) -> int:
    return _clamp(ns // 1_000_000_000) if ns else 0


def packet(full: dict[str, Any], mode: Mode, instrument: Instrument | None) -> bytes:
    """One instrument's packet in ``mode`` from its full tick."""
    token = full["instrument_token"]
    scale = divisor(token)
    ltp = _price(full.get("ltp"), scale)
    if mode is Mode.LTP:
        return _LTP.pack(token & U32, ltp)
    ohlc = full.get("ohlc") or {}
    close = _price(str(instrument.last_price), scale) if instrument is not None else 0
    open_, high, low = (_price(ohlc.get(k), scale) for k in ("open", "high", "low"))
    timestamp = _seconds(full.get("ts_ns"))
    if token & 0xFF == INDICES:
        change = _clamp(ltp - close) if close else 0
        if mode is Mode.QUOTE:
            return _INDEX_QUOTE.pack(token & U32, ltp, high, low, open_, close, change)
        return _INDEX_FULL.pack(token & U32, ltp, high, low, open_, close, change, timestamp)
    depth = full.get("depth") or {"bids": [], "asks": []}
    bids, asks = depth.get("bids") or [], depth.get("asks") or []
    quote = _QUOTE.pack(
        token & U32,
        ltp,
        _quantity(full.get("last_quantity")),
        0,
        _quantity(full.get("volume")),
        _clamp(sum(_quantity(lv["quantity"]) for lv in bids)),
        _clamp(sum(_quantity(lv["quantity"]) for lv in asks)),
        open_,
        high,
        low,
        close,
    )
    if mode is Mode.QUOTE:
        return quote
    last_trade = full.get("last_trade_time")
    tail = _FULL_TAIL.pack(_seconds(_iso_ns(last_trade)), 0, 0, 0, timestamp)
    levels = []
    for side in (bids, asks):
        for lv in side[:DEPTH]:
            levels.append(
                _LEVEL.pack(
                    _quantity(lv["quantity"]), _price(lv["price"], scale), min(lv["orders"], U16)
                )
            )
        levels.extend(_EMPTY_LEVEL for _ in range(DEPTH - min(len(side), DEPTH)))
    return b"".join((quote, tail, *levels))


def frame(packets: list[bytes]) -> bytes:
    """Packets as one binary message: count, then each length-prefixed."""
    parts = [_HEAD.pack(len(packets))]
    for data in packets:
        parts.append(_HEAD.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def _iso_ns(text: str | None) -> int | None:
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return int(value.timestamp()) * 1_000_000_000
