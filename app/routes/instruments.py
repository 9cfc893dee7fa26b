"""Instrument search and lookup (served from the in-memory snapshot) and the admin refresh."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import AdminKey, ReadKey, RegistryDep, TokenInstrument
from app.routes.models import InstrumentOut, InstrumentPage, RefreshOut
from app.routes.responses import OrjsonResponse, error_responses
from app.services.instruments.model import InstrumentStatus
from app.services.instruments.snapshot import InstrumentFilter

router = APIRouter(tags=["instruments"])


@router.get(
    "/instruments",
    summary="Search instruments (exchange, type, segment, status, text)",
    responses={200: {"model": InstrumentPage}},
)
async def list_instruments(
    _key: ReadKey,
    registry: RegistryDep,
    exchange: Annotated[str | None, Query(max_length=16)] = None,
    instrument_type: Annotated[str | None, Query(max_length=16)] = None,
    segment: Annotated[str | None, Query(max_length=32)] = None,
    q: Annotated[str | None, Query(max_length=100, description="in symbol or name")] = None,
    status: Annotated[
        InstrumentStatus | None,
        Query(description="active, halted or delisted (the console lists halted ones)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> OrjsonResponse:
    where = InstrumentFilter.create(
        exchange=exchange, instrument_type=instrument_type, segment=segment, q=q, status=status
    )
    page = registry.snapshot.search(where, limit=limit, cursor=cursor)
    items = [instrument.to_json() for instrument in page.items]
    return OrjsonResponse({"items": items, "next_cursor": page.next_cursor})


@router.get(
    "/instruments/{instrument_token}",
    summary="One instrument by token",
    responses={200: {"model": InstrumentOut}, **error_responses(404)},
)
async def get_instrument(_key: ReadKey, instrument: TokenInstrument) -> OrjsonResponse:
    return OrjsonResponse(instrument.to_json())


@router.post(
    "/admin/instrument-refresh",
    summary="Reload the instrument registry now",
    responses={200: {"model": RefreshOut}, **error_responses(503)},
)
async def refresh_instruments(
    _key: AdminKey,
    registry: RegistryDep,
    force: Annotated[bool, Query(description="false: skip when the cache is fresh")] = True,
) -> OrjsonResponse:
    result = await registry.refresh(force=force)
    return OrjsonResponse(result.to_json())
