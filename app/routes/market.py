"""Market data [read]: the order book, recent trades, book statistics.

The path's ``{symbol}`` (a symbol or an instrument token) is resolved by ``SymbolInstrument``
(404 ``UNKNOWN_INSTRUMENT``); the services get the canonical symbol.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import MarketDep, ReadKey, SymbolInstrument
from app.routes.models import OrderBookOut, StatsOut, TradePage
from app.routes.responses import error_responses

router = APIRouter(tags=["market data"])


@router.get(
    "/orderbook/{symbol}",
    summary="Aggregated depth, best first, with the book's seq",
    response_model=None,
    responses={200: {"model": OrderBookOut}, **error_responses(404)},
)
async def get_orderbook(
    _key: ReadKey,
    instrument: SymbolInstrument,
    market: MarketDep,
    depth: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    return await market.order_book(instrument.symbol, depth)


@router.get(
    "/trades/{symbol}",
    summary="Trades, newest first, a page at a time",
    response_model=None,
    responses={200: {"model": TradePage}, **error_responses(404)},
)
async def get_trades(
    _key: ReadKey,
    instrument: SymbolInstrument,
    market: MarketDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    return await market.trades(instrument.symbol, limit, cursor)


@router.get(
    "/stats/{symbol}",
    summary="Book statistics: orders, levels, volume, last price",
    response_model=None,
    responses={200: {"model": StatsOut}, **error_responses(404)},
)
async def get_stats(
    _key: ReadKey, instrument: SymbolInstrument, market: MarketDep
) -> dict[str, Any]:
    return await market.stats(instrument.symbol)
