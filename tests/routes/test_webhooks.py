"""Contract tests for the webhook routes, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from app.settings import Settings
from tests.conftest import running_app
from tests.services.webhooks.receiver import Receiver, eventually
from tests.services.webhooks.support import deliveries, place, register, webhook_settings
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, order

HOOKS = "/advanced/webhooks"


@pytest.fixture
def receiver() -> AsyncIterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
async def client(
    backend_settings: Settings, make_settings: Callable[..., Settings], tokens_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    add_accounts(tokens_dir)
    settings = webhook_settings(make_settings, backend_settings, max_endpoints_per_account=3)
    async with running_app(settings) as (_app, client):
        yield client


@pytest.fixture
async def strict_client(
    make_settings: Callable[..., Settings], tokens_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The defaults: no loopback or private targets."""
    add_accounts(tokens_dir)
    async with running_app(make_settings()) as (_app, client):
        yield client


async def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


class TestCreate:
    async def test_returns_the_endpoint_with_its_secret_once(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url(), description="desk A fills")
        assert created["id"].startswith("we_")
        assert created["secret"].startswith("whsec_")
        assert created["url"] == receiver.url()
        assert created["description"] == "desk A fills"
        assert created["enabled"] is True
        assert created["events"] == [
            "order.accepted",
            "order.partially_filled",
            "order.filled",
            "order.cancelled",
            "order.expired",
            "order.rejected",
        ]
        shown = (await client.get(f"{HOOKS}/{created['id']}", headers=ADMIN)).json()
        assert "secret" not in shown
        assert shown == {k: v for k, v in created.items() if k != "secret"}

    async def test_event_filter_is_validated(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(
            client, receiver.url(), events=["order.filled", "order.accepted", "order.filled"]
        )
        assert created["events"] == ["order.accepted", "order.filled"]
        response = await client.post(
            HOOKS, json={"url": receiver.url(), "events": ["order.exploded"]}, headers=ADMIN
        )
        assert (await problem(response, 422))["code"] == "INVALID_WEBHOOK_EVENT"
        response = await client.post(
            HOOKS, json={"url": receiver.url(), "events": []}, headers=ADMIN
        )
        assert (await problem(response, 422))["code"] == "VALIDATION_ERROR"
        response = await client.post(HOOKS, json={"events": ["order.filled"]}, headers=ADMIN)
        assert (await problem(response, 422))["code"] == "VALIDATION_ERROR"

    async def test_limit_per_account(self, client: httpx.AsyncClient, receiver: Receiver) -> None:
        for _ in range(3):
            await register(client, receiver.url())
        response = await client.post(HOOKS, json={"url": receiver.url()}, headers=ADMIN)
        assert (await problem(response, 409))["code"] == "WEBHOOK_LIMIT_REACHED"
        await register(client, receiver.url(), headers=DESK_B)  # another account's own limit

    async def test_needs_the_trade_scope(self, client: httpx.AsyncClient) -> None:
        response = await client.get(HOOKS, headers=READER)
        assert (await problem(response, 403))["code"] == "FORBIDDEN"
        response = await client.get(HOOKS)
        assert (await problem(response, 401))["code"] == "UNAUTHENTICATED"


class TestTargets:
    @pytest.mark.parametrize(
        ("url", "code"),
        [
            ("http://10.0.0.1/hook", "WEBHOOK_TARGET_FORBIDDEN"),
            ("http://169.254.169.254/latest/meta-data/", "WEBHOOK_TARGET_FORBIDDEN"),
            ("http://127.0.0.1:9/hook", "WEBHOOK_TARGET_FORBIDDEN"),
            ("http://localhost:9/hook", "WEBHOOK_TARGET_FORBIDDEN"),
            ("ftp://example.com/hook", "INVALID_WEBHOOK_URL"),
        ],
    )
    async def test_refused_at_registration(
        self, strict_client: httpx.AsyncClient, url: str, code: str
    ) -> None:
        response = await strict_client.post(HOOKS, json={"url": url}, headers=ADMIN)
        assert (await problem(response, 422))["code"] == code
        assert (await strict_client.get(HOOKS, headers=ADMIN)).json()["items"] == []

    async def test_refused_when_changed(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url())
        response = await client.patch(
            f"{HOOKS}/{created['id']}", json={"url": "http://10.0.0.1/"}, headers=ADMIN
        )
        assert (await problem(response, 422))["code"] == "WEBHOOK_TARGET_FORBIDDEN"
        shown = (await client.get(f"{HOOKS}/{created['id']}", headers=ADMIN)).json()
        assert shown["url"] == receiver.url()


class TestReadChangeDelete:
    async def test_list_pages_with_cursor(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        made = [(await register(client, receiver.url(path=f"/{n}")))["id"] for n in range(3)]
        first = (await client.get(HOOKS, params={"limit": 2}, headers=ADMIN)).json()
        assert [e["id"] for e in first["items"]] == made[:2]
        rest = (
            await client.get(
                HOOKS, params={"limit": 2, "cursor": first["next_cursor"]}, headers=ADMIN
            )
        ).json()
        assert [e["id"] for e in rest["items"]] == made[2:]
        assert rest["next_cursor"] is None
        response = await client.get(HOOKS, params={"cursor": "garbage"}, headers=ADMIN)
        assert (await problem(response, 422))["code"] == "INVALID_CURSOR"

    async def test_patch_changes_events_description_and_enabled(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url())
        response = await client.patch(
            f"{HOOKS}/{created['id']}",
            json={"events": ["order.filled"], "description": "fills", "enabled": False},
            headers=ADMIN,
        )
        assert response.status_code == 200, response.text
        changed = response.json()
        assert changed["events"] == ["order.filled"]
        assert changed["description"] == "fills"
        assert changed["enabled"] is False
        assert changed["disabled_reason"] == "disabled"
        assert "secret" not in changed
        response = await client.patch(
            f"{HOOKS}/{created['id']}", json={"colour": "red"}, headers=ADMIN
        )
        assert (await problem(response, 422))["code"] == "VALIDATION_ERROR"

    async def test_delete_removes_the_endpoint(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url())
        await place(client, order("sell", "1", "1875.4"))
        await eventually(lambda: receiver.delivered())
        response = await client.delete(f"{HOOKS}/{created['id']}", headers=ADMIN)
        assert response.status_code == 204
        response = await client.get(f"{HOOKS}/{created['id']}", headers=ADMIN)
        assert (await problem(response, 404))["code"] == "WEBHOOK_NOT_FOUND"
        response = await client.delete(f"{HOOKS}/{created['id']}", headers=ADMIN)
        assert (await problem(response, 404))["code"] == "WEBHOOK_NOT_FOUND"
        await place(client, order("sell", "1", "1875.45"))
        assert len(receiver.received) == 1


class TestIsolation:
    async def test_another_accounts_endpoint_is_not_found(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        mine = await register(client, receiver.url())
        theirs = f"{HOOKS}/{mine['id']}"
        for method, path in [
            ("GET", theirs),
            ("PATCH", theirs),
            ("DELETE", theirs),
            ("GET", f"{theirs}/deliveries"),
            ("POST", f"{theirs}/test"),
            ("POST", f"{theirs}/deliveries/msg_x/retry"),
        ]:
            response = await client.request(
                method, path, headers=DESK_B, json={} if method == "PATCH" else None
            )
            assert (await problem(response, 404))["code"] == "WEBHOOK_NOT_FOUND", path
        assert (await client.get(HOOKS, headers=DESK_B)).json()["items"] == []
        assert (await client.get(f"{HOOKS}/{mine['id']}", headers=ADMIN)).status_code == 200

    async def test_an_account_receives_only_its_own_orders_events(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        other = Receiver().start()
        try:
            mine = await register(client, receiver.url())
            theirs = await register(client, other.url(), headers=DESK_B)
            await place(client, order("sell", "2", "1875.4"))
            await place(client, order("buy", "2", "1875.4"), headers=DESK_B)
            await eventually(lambda: len(receiver.delivered()) == 2 and other.delivered())
            await eventually(lambda: len(other.delivered()) == 2)
            ours = receiver.verified(mine["secret"])
            their = other.verified(theirs["secret"])
        finally:
            other.stop()
        assert [b["data"]["order"]["side"] for b in ours] == ["sell", "sell"]
        assert [b["data"]["order"]["side"] for b in their] == ["buy", "buy"]
        assert [b["data"]["fills"][0]["liquidity"] for b in (ours[1], their[1])] == [
            "maker",
            "taker",
        ]


class TestDeliveries:
    async def test_test_message_is_signed_and_logged(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url())
        response = await client.post(f"{HOOKS}/{created['id']}/test", headers=ADMIN)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["status"] == "delivered"
        assert result["event_type"] == "webhook.test"
        assert result["attempts"][0]["status_code"] == 200
        (body,) = receiver.verified(created["secret"])
        assert body["type"] == "webhook.test"
        assert body["data"] == {"endpoint_id": created["id"]}
        assert receiver.received[0].message_id == result["id"]
        (logged,) = await deliveries(client, created["id"])
        assert logged["id"] == result["id"]

    async def test_test_message_to_a_failing_receiver_is_failed_not_retried(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        receiver.status = 500
        created = await register(client, receiver.url())
        result = (await client.post(f"{HOOKS}/{created['id']}/test", headers=ADMIN)).json()
        assert result["status"] == "failed"
        assert result["last_status_code"] == 500
        assert result["attempts"][0]["error"] is None

    async def test_rotated_secret_signs_alongside_the_old_one(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url())
        response = await client.patch(
            f"{HOOKS}/{created['id']}", json={"rotate_secret": True}, headers=ADMIN
        )
        rotated = response.json()
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != created["secret"]
        await client.post(f"{HOOKS}/{created['id']}/test", headers=ADMIN)
        (message,) = receiver.delivered()
        for secret in (created["secret"], rotated["secret"]):
            Webhook(secret).verify(message.body, message.headers)

    async def test_manual_retry_redelivers_with_the_same_id(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url())
        await place(client, order("sell", "1", "1875.4"))
        (delivered,) = await eventually(
            lambda: deliveries(client, created["id"], status="delivered")
        )
        path = f"{HOOKS}/{created['id']}/deliveries/{delivered['id']}"
        response = await client.post(f"{path}/retry", headers=ADMIN)
        assert response.status_code == 202
        await eventually(lambda: len(receiver.delivered()) == 2)
        assert {r.message_id for r in receiver.delivered()} == {delivered["id"]}
        shown = await eventually(lambda: _with_attempts(client, path, 2))
        assert shown["status"] == "delivered"
        response = await client.post(
            f"{HOOKS}/{created['id']}/deliveries/msg_nope/retry", headers=ADMIN
        )
        assert (await problem(response, 404))["code"] == "WEBHOOK_DELIVERY_NOT_FOUND"

    async def test_log_pages_and_filters(
        self, client: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        created = await register(client, receiver.url())
        for n in range(3):
            await place(client, order("sell", "1", f"1875.{n}"))
        await eventually(lambda: len(receiver.delivered()) == 3)
        page = (
            await client.get(
                f"{HOOKS}/{created['id']}/deliveries", params={"limit": 2}, headers=ADMIN
            )
        ).json()
        assert len(page["items"]) == 2
        rest = (
            await client.get(
                f"{HOOKS}/{created['id']}/deliveries",
                params={"limit": 2, "cursor": page["next_cursor"]},
                headers=ADMIN,
            )
        ).json()
        assert len(rest["items"]) == 1
        assert rest["next_cursor"] is None
        prices = [d["payload"]["data"]["order"]["price"] for d in page["items"] + rest["items"]]
        assert prices == ["1875.2", "1875.1", "1875"]  # newest first
        assert await deliveries(client, created["id"], status="failed") == []
        response = await client.get(
            f"{HOOKS}/{created['id']}/deliveries", params={"status": "lost"}, headers=ADMIN
        )
        assert (await problem(response, 422))["code"] == "VALIDATION_ERROR"


async def _with_attempts(client: httpx.AsyncClient, path: str, n: int) -> dict[str, Any] | None:
    found: dict[str, Any] = (await client.get(path, headers=ADMIN)).json()
    return found if len(found["attempts"]) == n else None
