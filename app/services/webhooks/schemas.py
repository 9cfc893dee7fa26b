"""Request bodies and response shapes of the webhook routes, and their errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from app.errors import Conflict, NotFound, ValidationFailed
from app.services.render import iso_time
from app.services.webhooks.events import message_id
from app.store.webhooks import ORDER_EVENTS

DELIVERY_STATUSES = ("pending", "delivered", "failed")


class WebhookNotFound(NotFound):
    code = "WEBHOOK_NOT_FOUND"
    message = "no such webhook endpoint"


class DeliveryNotFound(NotFound):
    code = "WEBHOOK_DELIVERY_NOT_FOUND"
    message = "no such delivery for this endpoint"


class WebhookLimitReached(Conflict):
    code = "WEBHOOK_LIMIT_REACHED"
    message = "this account has as many webhook endpoints as it may"


class InvalidWebhookEvent(ValidationFailed):
    code = "INVALID_WEBHOOK_EVENT"
    message = "unknown webhook event type"


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, description="http(s) URL receiving the POSTs")
    events: list[str] | None = Field(
        None,
        min_length=1,
        max_length=len(ORDER_EVENTS),
        description="event types to receive; default: every order event",
    )
    description: str = Field("", max_length=500)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, max_length=2048)
    events: list[str] | None = Field(None, min_length=1, max_length=len(ORDER_EVENTS))
    description: str | None = Field(None, max_length=500)
    enabled: bool | None = None
    rotate_secret: bool = Field(
        False,
        description="issue a new secret (returned once); the old one keeps signing alongside "
        "for WEBHOOK_SECRET_GRACE_SECONDS",
    )


def event_filter(events: list[str] | None) -> list[str]:
    if events is None:
        return list(ORDER_EVENTS)
    unknown = sorted(set(events) - set(ORDER_EVENTS))
    if unknown:
        raise InvalidWebhookEvent(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(ORDER_EVENTS)}"
        )
    return [event for event in ORDER_EVENTS if event in events]


def delivery_status(status: str | None) -> str | None:
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
    return status


def render_endpoint(row: Mapping[Any, Any], *, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row["endpoint_id"],
        "url": row["url"],
        "description": row["description"],
        "events": orjson.loads(row["events"]),
        "enabled": bool(row["enabled"]),
        "disabled_reason": row["disabled_reason"],
        "created_at": iso_time(row["created_ns"]),
        "updated_at": iso_time(row["updated_ns"]),
    }
    if secret is not None:
        body["secret"] = secret
    return body


def _at(ns: int | None) -> str | None:
    return None if ns is None else iso_time(ns)


def render_delivery(row: Any, attempts: list[Any], body: bytes | None) -> dict[str, Any]:
    pending = row.status == "pending"
    return {
        "id": message_id(row.endpoint_id, row.id),
        "endpoint_id": row.endpoint_id,
        "event_type": row.event_type,
        "order_id": None if row.order_id is None else str(row.order_id),
        "status": row.status,
        "attempt_count": row.attempt_count,
        "created_at": iso_time(row.created_ns),
        "next_attempt_at": _at(row.next_attempt_ns) if pending else None,
        "delivered_at": _at(row.delivered_ns),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "attempts": [
            {
                "attempted_at": iso_time(a.attempted_ns),
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
            }
            for a in attempts
        ],
        "payload": None if body is None else orjson.loads(body),
    }
