"""Durable instrument subscriptions [read/admin]: what the ticker streams with no client."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from app.deps import AdminKey, ReadKey, SubscriptionsDep
from app.routes.bodies import JsonBodyRoute
from app.routes.models import SubscriptionOut, SubscriptionPage
from app.services.ticker import SubscriptionIn

router = APIRouter(tags=["ticker"], route_class=JsonBodyRoute)


@router.get(
    "/subscriptions",
    summary="Durable instrument subscriptions, by instrument_token",
    response_model=None,
    responses={200: {"model": SubscriptionPage}},
)
async def list_subscriptions(
    _key: ReadKey,
    subscriptions: SubscriptionsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    return await subscriptions.list(limit=limit, cursor=cursor)


@router.post(
    "/subscriptions",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe an instrument (201), or change its mode/status (200)",
    response_model=None,
    responses={
        201: {"model": SubscriptionOut, "description": "subscribed"},
        200: {"model": SubscriptionOut, "description": "already subscribed: mode/status changed"},
    },
)
async def put_subscription(
    body: SubscriptionIn, key: AdminKey, subscriptions: SubscriptionsDep, response: Response
) -> dict[str, Any]:
    item, created = await subscriptions.put(body, key.account)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return item


@router.delete(
    "/subscriptions/{instrument_token}",
    summary="Remove a durable subscription",
    response_model=None,
    responses={200: {"model": SubscriptionOut, "description": "removed (deleted: true)"}},
)
async def delete_subscription(
    instrument_token: int, _key: AdminKey, subscriptions: SubscriptionsDep
) -> dict[str, Any]:
    return await subscriptions.delete(instrument_token)
