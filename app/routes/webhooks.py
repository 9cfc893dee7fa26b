"""Webhook endpoints, their delivery log, manual retry and test messages [trade].

An account sees only its own endpoints; another account's id answers 404."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from app.deps import TradeKey, WebhooksDep
from app.routes.bodies import JsonBodyRoute
from app.routes.models import DeliveryOut, DeliveryPage, WebhookOut, WebhookPage
from app.services.webhooks.schemas import EndpointIn, EndpointPatch

router = APIRouter(prefix="/advanced/webhooks", tags=["webhooks"], route_class=JsonBodyRoute)

Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register an endpoint; the response carries its whsec_ secret, shown once",
    response_model=None,
    responses={201: {"model": WebhookOut}},
)
async def create_webhook(body: EndpointIn, key: TradeKey, webhooks: WebhooksDep) -> dict[str, Any]:
    return await webhooks.create(key.account, body)


@router.get(
    "",
    summary="The account's webhook endpoints",
    response_model=None,
    responses={200: {"model": WebhookPage}},
)
async def list_webhooks(
    key: TradeKey, webhooks: WebhooksDep, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    return await webhooks.list(key.account, limit=limit, cursor=cursor)


@router.get(
    "/{endpoint_id}",
    summary="One webhook endpoint (without its secret)",
    response_model=None,
    responses={200: {"model": WebhookOut}},
)
async def get_webhook(endpoint_id: str, key: TradeKey, webhooks: WebhooksDep) -> dict[str, Any]:
    return await webhooks.get(key.account, endpoint_id)


@router.patch(
    "/{endpoint_id}",
    summary="Change URL, events, description; enable/disable; rotate the secret",
    response_model=None,
    responses={200: {"model": WebhookOut}},
)
async def update_webhook(
    endpoint_id: str, body: EndpointPatch, key: TradeKey, webhooks: WebhooksDep
) -> dict[str, Any]:
    return await webhooks.update(key.account, endpoint_id, body)


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the endpoint and its delivery log",
)
async def delete_webhook(endpoint_id: str, key: TradeKey, webhooks: WebhooksDep) -> Response:
    await webhooks.delete(key.account, endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{endpoint_id}/deliveries",
    summary="Messages to this endpoint, newest first, each with its attempts",
    response_model=None,
    responses={200: {"model": DeliveryPage}},
)
async def list_deliveries(
    endpoint_id: str,
    key: TradeKey,
    webhooks: WebhooksDep,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await webhooks.deliveries(
        key.account, endpoint_id, status=status, limit=limit, cursor=cursor
    )


@router.get(
    "/{endpoint_id}/deliveries/{delivery_id}",
    summary="One message and its attempts",
    response_model=None,
    responses={200: {"model": DeliveryOut}},
)
async def get_delivery(
    endpoint_id: str, delivery_id: str, key: TradeKey, webhooks: WebhooksDep
) -> dict[str, Any]:
    return await webhooks.get_delivery(key.account, endpoint_id, delivery_id)


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Deliver a message again (same webhook-id), now, with a fresh retry horizon",
    response_model=None,
    responses={202: {"model": DeliveryOut}},
)
async def retry_delivery(
    endpoint_id: str, delivery_id: str, key: TradeKey, webhooks: WebhooksDep
) -> dict[str, Any]:
    return await webhooks.retry(key.account, endpoint_id, delivery_id)


@router.post(
    "/{endpoint_id}/test",
    summary="Send a signed webhook.test message now (one attempt) and return its result",
    response_model=None,
    responses={200: {"model": DeliveryOut}},
)
async def test_webhook(endpoint_id: str, key: TradeKey, webhooks: WebhooksDep) -> dict[str, Any]:
    return await webhooks.send_test(key.account, endpoint_id)
