"""Positions and P&L [read], and the exchanges' trading day [read]."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.deps import CalendarDep, PositionsDep, ReadKey, SymbolInstrument
from app.routes.models import CalendarOut, PositionOut, PositionPage
from app.routes.responses import error_responses

router = APIRouter(tags=["positions"])


@router.get(
    "/positions",
    summary="The account's positions and P&L (weighted average cost), from its fills",
    response_model=None,
    responses={200: {"model": PositionPage}},
)
async def list_positions(
    key: ReadKey,
    positions: PositionsDep,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    return await positions.list_positions(key.account, symbol=symbol, limit=limit, cursor=cursor)


@router.get(
    "/positions/{symbol}",
    summary="The account's position in one instrument (flat if it never traded it)",
    response_model=None,
    responses={200: {"model": PositionOut}, **error_responses(404)},
)
async def get_position(
    key: ReadKey, positions: PositionsDep, instrument: SymbolInstrument
) -> dict[str, Any]:
    return await positions.get_position(key.account, instrument)


@router.get(
    "/calendar",
    summary="Each exchange's session today, its state, next open and next close",
    response_model=None,
    responses={200: {"model": CalendarOut}},
)
async def get_calendar(_key: ReadKey, calendar: CalendarDep) -> dict[str, Any]:
    return calendar.today()
