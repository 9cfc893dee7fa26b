"""Market data [read]: the order book, recent trades, book statistics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.deps import MarketDep, ReadKey
from app.routes.models import OrderBookOut, StatsOut, TradePage

Symbol = Annotated[
    str, Path(max_length=64, description="EXCHANGE:TRADINGSYMBOL", examples=["NSE:INFY"])
]

router = APIRouter(tags=["market data"])


@router.get(
    "/orderbook/{symbol}",
    summary="Aggregated depth, best first, with the book's seq",
    response_model=None,
    responses={200: {"model": OrderBookOut}},
)
async def get_orderbook(
    symbol: Symbol,
    _key: ReadKey,
    market: MarketDep,
    depth: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    return await market.order_book(symbol, depth)


@router.get(
    "/trades/{symbol}",
    summary="Recent trades, newest first",
    response_model=None,
    responses={200: {"model": TradePage}},
)
async def get_trades(
    symbol: Symbol,
    _key: ReadKey,
    market: MarketDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    return await market.trades(symbol, limit)


@router.get(
    "/stats/{symbol}",
    summary="Book statistics: orders, levels, volume, last price",
    response_model=None,
    responses={200: {"model": StatsOut}},
)
async def get_stats(symbol: Symbol, _key: ReadKey, market: MarketDep) -> dict[str, Any]:
    return await market.stats(symbol)
