"""Candles [read]: OHLCV of the recorded trades."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import CandlesDep, ReadKey, SymbolInstrument
from app.routes.models import CandlePage
from app.routes.responses import error_responses

router = APIRouter(tags=["market data"])


@router.get(
    "/candles/{symbol}",
    summary="OHLCV candles (1m, 3m, 5m, 10m, 15m, 30m, 1h, 1d), oldest first",
    response_model=None,
    responses={200: {"model": CandlePage}, **error_responses(404)},
)
async def get_candles(
    _key: ReadKey,
    instrument: SymbolInstrument,
    candles: CandlesDep,
    interval: Annotated[
        str, Query(max_length=8, description="1m, 3m, 5m, 10m, 15m, 30m, 1h or 1d")
    ] = "1m",
    start: Annotated[str | None, Query(max_length=64, description="ISO 8601, inclusive")] = None,
    end: Annotated[str | None, Query(max_length=64, description="ISO 8601, exclusive")] = None,
) -> dict[str, Any]:
    return await candles.candles(instrument.symbol, interval=interval, start=start, end=end)
