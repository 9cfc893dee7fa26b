"""Kite market data from ours: the instruments dump, quotes and historical candles.

Quotes are the ticker's current full tick of each instrument (committed trades and the
committed depth, the same state ``/ws/ticker`` and KiteTicker stream), mapped to Kite's
shape with 5 depth entries a side (empty levels zero-filled, as Kite's). ``ohlc.close`` is
the previous session's close: the registry's ``last_price`` (the dump's, as imported).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from app.errors import InstrumentError, ValidationFailed
from app.services.instruments.importer import COLUMNS  # Kite's dump: what we import, we serve
from app.services.instruments.model import Instrument, decimal_text
from app.services.instruments.snapshot import SnapshotSource
from app.services.kite.shapes import number
from app.services.kite.zones import NS, candle_time, kite_time, parse_local
from app.services.ticker import CandleService

INTERVALS = {
    "minute": "1m",
    "3minute": "3m",
    "5minute": "5m",
    "10minute": "10m",
    "15minute": "15m",
    "30minute": "30m",
    "60minute": "1h",
    "day": "1d",
}
MAX_QUOTES = 500
DEPTH = 5


class Snapshots(Protocol):
    async def __call__(self, tokens: list[int]) -> dict[int, dict[str, Any]]: ...


def instruments_csv(instruments: Sequence[Instrument]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for i in instruments:
        writer.writerow(
            (
                i.instrument_token,
                i.exchange_token,
                i.tradingsymbol,
                i.name,
                decimal_text(i.last_price),
                i.expiry.isoformat() if i.expiry else "",
                decimal_text(i.strike),
                decimal_text(i.tick_size),
                decimal_text(i.lot_size),
                i.instrument_type,
                i.segment,
                i.exchange,
            )
        )
    return out.getvalue().encode()


def _depth(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {"price": number(lv["price"]), "quantity": number(lv["quantity"]), "orders": lv["orders"]}
        for lv in levels[:DEPTH]
    ]
    out.extend({"price": 0, "quantity": 0, "orders": 0} for _ in range(DEPTH - len(out)))
    return out


class KiteMarket:
    def __init__(
        self, *, registry: SnapshotSource, snapshots: Snapshots, candles: CandleService
    ) -> None:
        self._registry = registry
        self._snapshots = snapshots
        self._candles = candles

    def instruments(self, exchange: str | None = None) -> bytes:
        found = [
            i
            for i in self._registry.snapshot
            if i.tradable and (exchange is None or i.exchange == exchange.upper())
        ]
        return instruments_csv(found)

    async def _ticks(self, keys: list[str]) -> list[tuple[str, Instrument, dict[str, Any]]]:
        """The current tick of each ``EXCHANGE:SYMBOL`` (or token) in ``keys``; unknown ones
        are left out, as Kite leaves them out."""
        if not keys:
            raise ValidationFailed("give at least one instrument: ?i=EXCHANGE:TRADINGSYMBOL")
        if len(keys) > MAX_QUOTES:
            raise ValidationFailed(f"at most {MAX_QUOTES} instruments per request")
        snapshot = self._registry.snapshot
        wanted: list[tuple[str, Instrument]] = []
        for key in keys:
            try:
                wanted.append((key, snapshot.lookup(key)))
            except InstrumentError:
                continue
        ticks = await self._snapshots([i.instrument_token for _key, i in wanted])
        return [(k, i, ticks[i.instrument_token]) for k, i in wanted if i.instrument_token in ticks]

    async def ltp(self, keys: list[str]) -> dict[str, Any]:
        return {
            key: {"instrument_token": i.instrument_token, "last_price": number(tick["ltp"])}
            for key, i, tick in await self._ticks(keys)
        }

    async def ohlc(self, keys: list[str]) -> dict[str, Any]:
        return {
            key: {
                "instrument_token": i.instrument_token,
                "last_price": number(tick["ltp"]),
                "ohlc": self._ohlc(i, tick),
            }
            for key, i, tick in await self._ticks(keys)
        }

    @staticmethod
    def _ohlc(instrument: Instrument, tick: dict[str, Any]) -> dict[str, Any]:
        ohlc = tick.get("ohlc") or {}
        return {
            "open": number(ohlc.get("open")),
            "high": number(ohlc.get("high")),
            "low": number(ohlc.get("low")),
            "close": number(decimal_text(instrument.last_price)),
        }

    async def quote(self, keys: list[str]) -> dict[str, Any]:
        out = {}
        for key, i, tick in await self._ticks(keys):
            exchange = i.exchange
            depth = tick.get("depth") or {"bids": [], "asks": []}
            last = number(tick["ltp"])
            close = number(decimal_text(i.last_price))
            out[key] = {
                "instrument_token": i.instrument_token,
                "timestamp": kite_time(tick.get("ts_ns"), exchange),
                "last_trade_time": kite_time(_ns(tick.get("last_trade_time")), exchange),
                "last_price": last,
                "last_quantity": number(tick.get("last_quantity")),
                "buy_quantity": sum(number(lv["quantity"]) for lv in depth["bids"]),
                "sell_quantity": sum(number(lv["quantity"]) for lv in depth["asks"]),
                "volume": number(tick.get("volume")),
                "average_price": 0,
                "oi": 0,
                "oi_day_high": 0,
                "oi_day_low": 0,
                "net_change": round(last - close, 8) if last and close else 0,
                "lower_circuit_limit": 0,
                "upper_circuit_limit": 0,
                "ohlc": self._ohlc(i, tick),
                "depth": {"buy": _depth(depth["bids"]), "sell": _depth(depth["asks"])},
            }
        return out

    async def historical(
        self, instrument_token: int, interval: str, start: str | None, end: str | None, oi: bool
    ) -> dict[str, Any]:
        ours = INTERVALS.get(interval)
        if ours is None:
            raise ValidationFailed(
                f"invalid interval {interval[:20]!r}; one of {', '.join(INTERVALS)}",
                code="INVALID_INTERVAL",
            )
        instrument = self._registry.snapshot.instrument(instrument_token)
        exchange = instrument.exchange
        bounds: list[datetime] = []
        for name, text in (("from", start), ("to", end)):
            if not text:
                raise ValidationFailed(f"`{name}` is required (YYYY-MM-DD HH:MM:SS)")
            value = parse_local(text, exchange)
            if value is None:
                raise ValidationFailed(
                    f"`{name}` must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS", code="INVALID_TIME"
                )
            bounds.append(value)
        # Kite's ``to`` is inclusive, ours exclusive: one second later takes its last second.
        found = await self._candles.candles(
            instrument.symbol,
            interval=ours,
            start=bounds[0].isoformat(),
            end=(bounds[1] + timedelta(seconds=1)).isoformat(),
        )
        candles = []
        for item in found["items"]:
            start_ns = int(datetime.fromisoformat(item["start"]).timestamp()) * NS
            row = [
                candle_time(start_ns, exchange),
                number(item["open"]),
                number(item["high"]),
                number(item["low"]),
                number(item["close"]),
                number(item["volume"]),
            ]
            if oi:
                row.append(0)
            candles.append(row)
        return {"candles": candles}


def _ns(iso: str | None) -> int | None:
    if not iso:
        return None
    value = datetime.fromisoformat(iso)
    return int(value.timestamp()) * NS + value.microsecond * 1000
