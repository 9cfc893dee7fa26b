"""Orders: batches and single orders [trade], reading them and the account's fills back [read]."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, status

from app.deps import OrderReadsDep, OrdersDep, ReadKey, TradeKey
from app.routes.bodies import JsonBodyRoute
from app.routes.models import BatchPage, CancelAllOut, FillPage, OrderOut, OrderPage
from app.routes.openapi import json_body
from app.routes.responses import Int64Id, OrjsonResponse, error_responses
from app.services.orders.parsing import (
    CLIENT_ORDER_ID_PATTERN,
    AmendIn,
    BatchIn,
    BatchOut,
    OrderIn,
    OrderResultOut,
)

router = APIRouter(tags=["orders"], route_class=JsonBodyRoute)

Limit = Annotated[int, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=200)]
ClientOrderId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=CLIENT_ORDER_ID_PATTERN, examples=["my-order-1"])
]


@router.post(
    "/advanced/batch-orders",
    summary="Place up to MAX_BATCH_ORDERS orders; one result per order, in request order",
    openapi_extra=json_body(BatchIn),
    response_model=None,
    responses={
        200: {"model": BatchOut, "description": "the batch was well formed"},
        **error_responses(400, 409, 413, 503),
    },
)
async def place_batch(
    request: Request,
    key: TradeKey,
    orders: OrdersDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=128)] = None,
) -> OrjsonResponse:
    # Rendered with orjson directly: the hot path skips pydantic's response serialisation.
    body = await request.body()
    return OrjsonResponse(
        await orders.place_batch(key.account, body, idempotency_key=idempotency_key)
    )


@router.get(
    "/advanced/batch-orders",
    summary="The account's recent batches, newest first",
    response_model=None,
    responses={200: {"model": BatchPage}},
)
async def list_batches(
    key: ReadKey, reads: OrderReadsDep, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    return await reads.list_batches(key.account, limit=limit, cursor=cursor)


@router.get(
    "/advanced/batch-orders/{batch_id}",
    summary="One batch with its results",
    response_model=None,
    responses={200: {"model": BatchOut}, **error_responses(404)},
)
async def get_batch(
    batch_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")],
    key: ReadKey,
    reads: OrderReadsDep,
) -> dict[str, Any]:
    return await reads.get_batch(key.account, batch_id)


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    summary="Place one order (200 with the original when its client_order_id was used)",
    openapi_extra=json_body(OrderIn),
    response_model=None,
    responses={
        201: {"model": OrderResultOut, "description": "placed"},
        200: {
            "model": OrderResultOut,
            "description": "the client_order_id was used: nothing created, the original order",
        },
        **error_responses(400, 413, 503),
    },
)
async def place_order(request: Request, key: TradeKey, orders: OrdersDep) -> OrjsonResponse:
    result = await orders.place_order(key.account, await request.body())
    # A result stored before ``created`` existed (a matcher's replay) was a placement.
    return OrjsonResponse(result, status_code=201 if result.get("created", True) else 200)


@router.get(
    "/orders",
    summary="The account's orders, newest first",
    response_model=None,
    responses={200: {"model": OrderPage}},
)
async def list_orders(
    key: ReadKey,
    reads: OrderReadsDep,
    status: Annotated[
        str | None,
        Query(
            max_length=200,
            description="comma-separated statuses, or working (open, partially_filled, "
            "pending_trigger)",
            examples=["working"],
        ),
    ] = None,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
    client_order_id: Annotated[
        str | None, Query(max_length=64, pattern=CLIENT_ORDER_ID_PATTERN)
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await reads.list_orders(
        key.account,
        status=status,
        symbol=symbol,
        client_order_id=client_order_id,
        limit=limit,
        cursor=cursor,
    )


# Declared before /orders/{order_id}, and a path of its own: the client's id never meets the
# numeric order id's route.
@router.get(
    "/orders/by-client-id/{client_order_id}",
    summary="One order, found by the client_order_id the client gave it",
    response_model=None,
    responses={200: {"model": OrderOut}, **error_responses(404)},
)
async def get_order_by_client_id(
    client_order_id: ClientOrderId, key: ReadKey, reads: OrderReadsDep
) -> dict[str, Any]:
    return await reads.get_order_by_client_id(key.account, client_order_id)


@router.get(
    "/orders/{order_id}",
    summary="One order with its fills",
    response_model=None,
    responses={200: {"model": OrderOut}, **error_responses(404)},
)
async def get_order(order_id: Int64Id, key: ReadKey, reads: OrderReadsDep) -> dict[str, Any]:
    return await reads.get_order(key.account, order_id)


@router.patch(
    "/orders/{order_id}",
    summary="Amend quantity (remaining) and/or price",
    response_model=None,
    responses={200: {"model": OrderOut}, **error_responses(400, 404, 409, 413, 503)},
)
async def amend_order(
    order_id: Int64Id, amend: AmendIn, key: TradeKey, orders: OrdersDep
) -> dict[str, Any]:
    return await orders.amend_order(
        key.account, order_id, quantity=amend.quantity, price=amend.price
    )


@router.delete(
    "/orders/{order_id}",
    summary="Cancel one order",
    response_model=None,
    responses={200: {"model": OrderOut}, **error_responses(404, 409, 503)},
)
async def cancel_order(order_id: Int64Id, key: TradeKey, orders: OrdersDep) -> dict[str, Any]:
    return await orders.cancel_order(key.account, order_id)


@router.delete(
    "/orders",
    summary="Cancel all the account's open orders (optionally per symbol)",
    response_model=None,
    responses={200: {"model": CancelAllOut}, **error_responses(503)},
)
async def cancel_all(
    key: TradeKey,
    orders: OrdersDep,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    return await orders.cancel_all(key.account, symbol)


@router.get(
    "/fills",
    summary="The account's own fills, newest first",
    response_model=None,
    responses={200: {"model": FillPage}},
)
async def list_fills(
    key: ReadKey,
    reads: OrderReadsDep,
    symbol: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[str | None, Query(max_length=64, description="ISO 8601, inclusive")] = None,
    end: Annotated[str | None, Query(max_length=64, description="ISO 8601, exclusive")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    return await reads.list_fills(
        key.account, symbol=symbol, start=start, end=end, limit=limit, cursor=cursor
    )
