"""Admin actions on instruments [admin]: halt and resume trading."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import AdminKey, OrdersDep
from app.routes.models import InstrumentOut
from app.routes.responses import Int64Id

router = APIRouter(tags=["admin"])


@router.post(
    "/admin/instruments/{instrument_token}/halt",
    summary="Halt trading (orders rest)",
    response_model=None,
    responses={200: {"model": InstrumentOut}},
)
async def halt_instrument(
    instrument_token: Int64Id, _key: AdminKey, orders: OrdersDep
) -> dict[str, Any]:
    return (await orders.set_halted(instrument_token, True)).to_json()


@router.post(
    "/admin/instruments/{instrument_token}/resume",
    summary="Resume trading",
    response_model=None,
    responses={200: {"model": InstrumentOut}},
)
async def resume_instrument(
    instrument_token: Int64Id, _key: AdminKey, orders: OrdersDep
) -> dict[str, Any]:
    return (await orders.set_halted(instrument_token, False)).to_json()
