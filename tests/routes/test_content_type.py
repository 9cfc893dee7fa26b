"""Every route reads its body as JSON whatever Content-Type says (app/routes/bodies.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from app.main import create_app
from app.routes import authenticated_router, require_json_bodies
from app.settings import Settings
from tests.conftest import running_app
from tests.support.trading import ADMIN

# None: no Content-Type at all (httpx sends none for raw bytes); curl -d sends the form type.
CONTENT_TYPES = [None, "text/plain", "application/x-www-form-urlencoded", "application/json"]
HOOK = {"url": "http://127.0.0.1:9/hook", "events": ["order.filled"]}


class Routes:
    """One call per JSON body route, each on a resource of its own."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(
        self, method: str, url: str, body: bytes, content_type: str | None
    ) -> httpx.Response:
        headers = dict(ADMIN)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return await self.client.request(method, url, content=body, headers=headers)

    async def order_id(self) -> str:
        body = {"symbol": "NSE:INFY", "side": "buy", "quantity": "3", "price": "1800"}
        response = await self.client.post("/orders", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        order_id: str = response.json()["order_id"]
        return order_id

    async def endpoint_id(self) -> str:
        response = await self.client.post("/advanced/webhooks", json=HOOK, headers=ADMIN)
        assert response.status_code == 201, response.text
        endpoint_id: str = response.json()["id"]
        return endpoint_id

    async def calls(self) -> list[tuple[str, str, dict[str, Any], int]]:
        """(method, url, valid body, success status) for every JSON body route."""
        order = {"symbol": "NSE:INFY", "side": "buy", "quantity": "1", "price": "1790"}
        return [
            ("POST", "/orders", order, 201),
            ("POST", "/advanced/batch-orders", {"orders": [order]}, 200),
            ("PATCH", f"/orders/{await self.order_id()}", {"quantity": "2"}, 200),
            ("POST", "/subscriptions", {"symbol": "NSE:TCS", "mode": "ltp"}, 201),
            ("POST", "/advanced/webhooks", HOOK, 201),
            ("PATCH", f"/advanced/webhooks/{await self.endpoint_id()}", {"description": "x"}, 200),
        ]


@pytest.fixture
async def routes(make_settings: Callable[..., Settings], pg_url: str) -> AsyncIterator[Routes]:
    settings = make_settings(
        db={"url": pg_url},
        webhooks={"allow_loopback": True, "max_endpoints_per_account": 100},
    )
    async with running_app(settings) as (_app, client):
        yield Routes(client)


class TestJsonWhateverContentType:
    async def test_a_json_body_is_read_as_json(self, routes: Routes) -> None:
        for content_type in CONTENT_TYPES:
            for method, url, body, success in await routes.calls():
                if url == "/subscriptions":  # 201 the first time only
                    await routes.client.delete("/subscriptions/2953217", headers=ADMIN)
                response = await routes.send(method, url, orjson.dumps(body), content_type)
                where = (method, url, content_type, response.text)
                assert response.status_code == success, where

    async def test_a_body_that_is_not_json_is_invalid_json(self, routes: Routes) -> None:
        calls = await routes.calls()
        for content_type in CONTENT_TYPES:
            for body in (b"{oops", b'{"quantity": "2"}x', b"\xff\xfe", b"[" * 5000, b"NaN"):
                for method, url, _valid, _success in calls:
                    response = await routes.send(method, url, body, content_type)
                    where = (method, url, content_type, body[:20], response.text)
                    assert response.status_code == 400, where
                    assert response.json()["error"]["code"] == "INVALID_JSON", where

    async def test_a_missing_body_is_a_validation_error(self, routes: Routes) -> None:
        for content_type in (None, "text/plain"):
            for method, url, _valid, _success in await routes.calls():
                if url in ("/orders", "/advanced/batch-orders"):
                    continue  # parsed by the order service: INVALID_JSON (tests/hardening)
                response = await routes.send(method, url, b"", content_type)
                where = (method, url, content_type, response.text)
                assert response.status_code == 422, where
                assert response.json()["error"]["code"] == "VALIDATION_ERROR", where

    async def test_a_json_body_that_breaks_the_model_names_the_field(self, routes: Routes) -> None:
        response = await routes.send("POST", "/subscriptions", b'{"mode": "ltp"}', "text/plain")
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert "symbol or instrument_token" in response.json()["error"]["message"]

    async def test_the_client_still_needs_a_key(self, routes: Routes) -> None:
        response = await routes.client.post(
            "/subscriptions", content=b'{"symbol": "NSE:TCS"}', headers={"X-API-Key": "nope"}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"


class Thing(BaseModel):
    name: str


class TestStartUpCheck:
    def test_a_body_route_that_would_not_read_json_is_refused(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        app = create_app(make_settings())
        require_json_bodies(app)  # every route of the service passes
        router = APIRouter()

        @router.post("/probe/things")
        async def add_thing(thing: Thing) -> dict[str, str]:
            return {"name": thing.name}

        api_router = authenticated_router()
        api_router.include_router(router)
        app.include_router(api_router)
        with pytest.raises(RuntimeError, match=r"POST /probe/things.*JsonBodyRoute"):
            require_json_bodies(app)
