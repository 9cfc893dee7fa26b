"""Webhook endpoints of an account: create, read, change, delete; the delivery log, manual
retry and a test message. An account sees only its own endpoints (others' are 404)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson

from app.services.webhooks import repository
from app.services.webhooks.claims import Claimed, signing_secrets
from app.services.webhooks.dispatcher import Dispatcher
from app.services.webhooks.events import TEST_EVENT, outbox_id_of
from app.services.webhooks.outbox import OutboxWriter
from app.services.webhooks.schemas import (
    DeliveryNotFound,
    EndpointIn,
    EndpointPatch,
    WebhookLimitReached,
    WebhookNotFound,
    delivery_status,
    event_filter,
    render_delivery,
    render_endpoint,
)
from app.services.webhooks.signing import new_secret
from app.services.webhooks.ssrf import TargetPolicy, check_target
from app.store.database import Database


class WebhookService:
    def __init__(
        self,
        *,
        database: Database,
        outbox: OutboxWriter,
        dispatcher: Dispatcher,
        policy: TargetPolicy,
        max_endpoints: int,
        secret_grace_ns: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._dispatcher = dispatcher
        self._policy = policy
        self._max_endpoints = max_endpoints
        self._secret_grace_ns = secret_grace_ns
        self._clock = clock
        self._creating = asyncio.Lock()  # the per-account limit holds within a process

    async def create(self, account: str, body: EndpointIn) -> dict[str, Any]:
        events = event_filter(body.events)
        await check_target(body.url, self._policy)
        async with self._creating:
            if await repository.count_endpoints(self._database, account) >= self._max_endpoints:
                raise WebhookLimitReached(
                    f"an account may have at most {self._max_endpoints} webhook endpoints"
                )
            now, secret = self._clock(), new_secret()
            values = {
                "endpoint_id": "we_" + secrets.token_hex(12),
                "account": account,
                "url": body.url,
                "description": body.description,
                "events": orjson.dumps(events).decode(),
                "secret": secret,
                "enabled": True,
                "disabled_reason": None,
                "created_ns": now,
                "updated_ns": now,
            }
            await repository.insert_endpoint(self._database, values)
        await self._outbox.refresh()
        return render_endpoint(values, secret=secret)

    async def _endpoint(self, account: str, endpoint_id: str) -> Any:
        row = await repository.get_endpoint(self._database, account, endpoint_id)
        if row is None:
            raise WebhookNotFound()
        return row

    async def get(self, account: str, endpoint_id: str) -> dict[str, Any]:
        return render_endpoint((await self._endpoint(account, endpoint_id))._mapping)

    async def list(self, account: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        rows, next_cursor = await repository.list_endpoints(
            self._database, account, limit=limit, cursor=cursor
        )
        return {"items": [render_endpoint(r._mapping) for r in rows], "next_cursor": next_cursor}

    async def update(self, account: str, endpoint_id: str, body: EndpointPatch) -> dict[str, Any]:
        current = await self._endpoint(account, endpoint_id)
        now = self._clock()
        values: dict[str, Any] = {"updated_ns": now}
        if body.url is not None:
            await check_target(body.url, self._policy)
            values["url"] = body.url
        if body.events is not None:
            values["events"] = orjson.dumps(event_filter(body.events)).decode()
        if body.description is not None:
            values["description"] = body.description
        if body.enabled is not None:
            values["enabled"] = body.enabled
            values["disabled_reason"] = None if body.enabled else "disabled"
        secret = None
        if body.rotate_secret:
            secret = new_secret()
            values.update(
                secret=secret,
                previous_secret=current.secret,
                previous_secret_expires_ns=now + self._secret_grace_ns,
            )
        row = await repository.update_endpoint(self._database, account, endpoint_id, values)
        if row is None:  # deleted meanwhile
            raise WebhookNotFound()
        await self._outbox.refresh()
        if row.enabled:
            self._dispatcher.wake()
        return render_endpoint(row._mapping, secret=secret)

    async def delete(self, account: str, endpoint_id: str) -> None:
        if not await repository.delete_endpoint(self._database, account, endpoint_id):
            raise WebhookNotFound()
        await self._outbox.refresh()

    async def deliveries(
        self, account: str, endpoint_id: str, *, status: str | None, limit: int, cursor: str | None
    ) -> dict[str, Any]:
        await self._endpoint(account, endpoint_id)
        rows, attempts, next_cursor = await repository.list_deliveries(
            self._database, endpoint_id, status=delivery_status(status), limit=limit, cursor=cursor
        )
        return {
            "items": [render_delivery(row, attempts[row.id], self._body(row)) for row in rows],
            "next_cursor": next_cursor,
        }

    def _body(self, row: Any) -> bytes | None:
        try:
            return self._outbox.render(row.event_type, row.created_ns, row.payload)
        except Exception:  # e.g. an instrument gone from the registry: show the rest
            return None

    async def _delivery(self, endpoint_id: str, message: str) -> dict[str, Any]:
        outbox_id = outbox_id_of(endpoint_id, message)
        found = (
            None
            if outbox_id is None
            else await repository.get_delivery(self._database, endpoint_id, outbox_id)
        )
        if found is None:
            raise DeliveryNotFound()
        row, attempts = found
        return render_delivery(row, attempts, self._body(row))

    async def get_delivery(self, account: str, endpoint_id: str, message: str) -> dict[str, Any]:
        await self._endpoint(account, endpoint_id)
        return await self._delivery(endpoint_id, message)

    async def retry(self, account: str, endpoint_id: str, message: str) -> dict[str, Any]:
        """Deliver again (any status), with the same ``webhook-id`` and a fresh horizon."""
        await self._endpoint(account, endpoint_id)
        outbox_id = outbox_id_of(endpoint_id, message)
        now = self._clock()
        deadline = now + self._outbox.retry_horizon_ns
        if outbox_id is None or not await repository.requeue(
            self._database, endpoint_id, outbox_id, now=now, deadline=deadline
        ):
            raise DeliveryNotFound()
        self._dispatcher.wake()
        return await self._delivery(endpoint_id, message)

    async def send_test(self, account: str, endpoint_id: str) -> dict[str, Any]:
        """One signed ``webhook.test`` message, attempted now (no retries); its result."""
        endpoint = await self._endpoint(account, endpoint_id)
        now = self._clock()
        payload = orjson.dumps({"endpoint_id": endpoint_id}).decode()
        outbox_id = await repository.insert_outbox_row(
            self._database,
            {
                "endpoint_id": endpoint_id,
                "event_type": TEST_EVENT,
                "order_id": None,
                "payload": payload,
                "created_ns": now,
                "next_attempt_ns": now,
                "deadline_ns": now,
                "lease_until_ns": now + self._dispatcher.lease_ns,  # ours, not the loop's
            },
        )
        claimed = Claimed(
            id=outbox_id,
            endpoint_id=endpoint_id,
            url=endpoint.url,
            secrets=signing_secrets(endpoint, now),
            event_type=TEST_EVENT,
            created_ns=now,
            payload=payload,
            attempt_count=0,
            deadline_ns=now,
        )
        await self._dispatcher.record([await self._dispatcher.attempt(claimed)], final=True)
        return await self._delivery(endpoint_id, claimed.message_id)
