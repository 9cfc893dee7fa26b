"""``GET /me``: what the presented key is (any valid key, whatever its scopes).

The console asks this once after the key is typed, to show the account and to offer only
the views the key's scopes allow; a client can use it to check a rotated key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import AuthDep, CurrentKey, SettingsDep
from app.routes.models import MeOut

router = APIRouter(tags=["account"])


@router.get(
    "/me",
    summary="The key's account, scopes and limits",
    response_model=None,
    responses={200: {"model": MeOut}},
)
async def get_me(key: CurrentKey, auth: AuthDep, settings: SettingsDep) -> dict[str, Any]:
    return {
        **auth.describe(key),
        "limits": {
            "max_batch_orders": settings.orders.max_batch_orders,
            "max_order_quantity": str(settings.orders.max_order_quantity),
            "max_open_orders": settings.orders.max_open_orders,
            "ws_max_instruments_per_connection": settings.ticker.max_instruments_per_connection,
            "ws_max_connections_per_key": settings.ticker.max_connections_per_key,
        },
    }
