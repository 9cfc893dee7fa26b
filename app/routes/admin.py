"""Admin actions on instruments [admin]: halt and resume trading."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import AdminKey, OrdersDep, TokenInstrument
from app.routes.models import InstrumentOut
from app.routes.responses import error_responses

router = APIRouter(tags=["admin"])


@router.post(
    "/admin/instruments/{instrument_token}/halt",
    summary="Halt trading (orders rest)",
    response_model=None,
    responses={200: {"model": InstrumentOut}, **error_responses(404)},
)
async def halt_instrument(
    _key: AdminKey, instrument: TokenInstrument, orders: OrdersDep
) -> dict[str, Any]:
    return (await orders.set_halted(instrument.instrument_token, True)).to_json()


@router.post(
    "/admin/instruments/{instrument_token}/resume",
    summary="Resume trading",
    response_model=None,
    responses={200: {"model": InstrumentOut}, **error_responses(404)},
)
async def resume_instrument(
    _key: AdminKey, instrument: TokenInstrument, orders: OrdersDep
) -> dict[str, Any]:
    return (await orders.set_halted(instrument.instrument_token, False)).to_json()
