"""Candles [read]: OHLCV of the recorded trades."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import CandlesDep, ReadKey

router = APIRouter(tags=["market data"])


@router.get("/candles/{symbol}", summary="OHLCV candles (1m, 5m, 15m, 1h, 1d), oldest first")
async def get_candles(
    symbol: str,
    _key: ReadKey,
    candles: CandlesDep,
    interval: Annotated[str, Query(max_length=8, description="1m, 5m, 15m, 1h or 1d")] = "1m",
    start: Annotated[str | None, Query(max_length=64, description="ISO 8601, inclusive")] = None,
    end: Annotated[str | None, Query(max_length=64, description="ISO 8601, exclusive")] = None,
) -> dict[str, Any]:
    return await candles.candles(symbol, interval=interval, start=start, end=end)
