"""The OpenAPI document and the docs pages (app/routes/openapi.py, examples.py, docs.py).

Every operation carries examples that fit its schemas, and a running service accepts each
request example as declared. Two substitutions only, both values the service itself makes or
needs to reach: a path parameter naming a resource the service created (an order, a batch, a
webhook endpoint, a delivery) takes the id that an earlier example call returned, and a
webhook URL points at a local receiver (the example's public host, example.com, does not
resolve on this offline machine, and the test's webhooks must arrive somewhere).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from app.main import create_app
from app.settings import Settings
from tests.conftest import running_app
from tests.services.webhooks.receiver import Receiver
from tests.support.trading import ADMIN

METHODS = ("get", "post", "patch", "put", "delete")
# Where each server-made id comes from: (method, path) -> {path parameter: response field}.
MADE = {
    ("post", "/orders"): {"order_id": "order_id"},
    ("post", "/advanced/batch-orders"): {"batch_id": "batch_id"},
    ("post", "/advanced/webhooks"): {"endpoint_id": "id"},
    ("post", "/advanced/webhooks/{endpoint_id}/test"): {"delivery_id": "id"},
}


def document() -> dict[str, Any]:
    return create_app(Settings(environment="development")).openapi()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def successes(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"] if status.startswith("2")}


def validate(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    """``value`` against an OpenAPI 3.1 schema whose $refs point into ``doc``."""
    rooted = {**schema, "components": doc["components"]}
    try:
        jsonschema.Draft202012Validator(rooted).validate(value)
    except jsonschema.ValidationError as exc:
        raise AssertionError(f"{where}: {exc.message} at {list(exc.absolute_path)}") from None


def order_of_calls(item: tuple[str, str, dict[str, Any]]) -> tuple[int, int, str]:
    """Creations first, then actions on what they made, reads, changes, deletions; cancel-all
    last. Within a rank fewer path parameters first (a delivery's endpoint before it)."""
    method, path, _operation = item
    params = path.count("{")
    rank = {"post": 0 if params == 0 else 1, "get": 2, "patch": 3, "put": 3}.get(method, 4)
    if method == "delete" and params == 0:
        rank = 5
    return rank, params, path


class TestExamples:
    def test_every_operation_has_examples(self) -> None:
        doc = document()
        missing = []
        for method, path, operation in operations(doc):
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and "example" not in parameter:
                    missing.append(f"{where}: path parameter {parameter['name']}")
            body = operation.get("requestBody")
            if body is not None and "example" not in body["content"]["application/json"]:
                missing.append(f"{where}: request body")
            for status, response in operation["responses"].items():
                for media in response.get("content", {}).values():
                    if "example" not in media:
                        missing.append(f"{where}: response {status}")
            if not any(
                "content" in operation["responses"][str(status)] or status == 204
                for status in successes(operation)
            ):
                missing.append(f"{where}: no success response with a body or 204")
        assert not missing, "operations without examples: " + "; ".join(missing)

    def test_every_example_fits_its_schema(self) -> None:
        doc = document()
        checked = 0
        for method, path, operation in operations(doc):
            where = f"{method.upper()} {path}"
            bodies = [("request", operation.get("requestBody", {}))]
            bodies += [(f"response {status}", r) for status, r in operation["responses"].items()]
            for name, body in bodies:
                for media in body.get("content", {}).values():
                    if "example" in media and "schema" in media:
                        validate(doc, media["schema"], media["example"], f"{where} {name}")
                        checked += 1
            for parameter in operation.get("parameters", []):
                if "example" in parameter:
                    value = parameter["example"]
                    validate(doc, parameter["schema"], value, f"{where} {parameter['name']}")
        assert checked > 50

    def test_health_declares_its_schemas_and_503(self) -> None:
        paths = document()["paths"]
        for path in ("/health", "/health/ready"):
            responses = paths[path]["get"]["responses"]
            assert set(responses) >= {"200", "503"}, path
            for status in ("200", "503"):
                assert "$ref" in responses[status]["content"]["application/json"]["schema"]
        assert set(paths["/subscriptions"]["post"]["responses"]) >= {"200", "201"}


class Calls:
    def __init__(self, client: httpx.AsyncClient, receiver: Receiver) -> None:
        self.client = client
        self.receiver = receiver
        self.made: dict[str, str] = {}

    async def call(self, method: str, path: str, operation: dict[str, Any]) -> httpx.Response:
        url = path
        query: dict[str, Any] = {}
        for parameter in operation.get("parameters", []):
            name = parameter["name"]
            if parameter["in"] == "path":
                value = self.made.get(name, parameter["example"])
                url = url.replace("{" + name + "}", str(value))
            elif parameter["in"] == "query" and "example" in parameter:
                value = parameter["example"]
                query[name] = str(value).lower() if isinstance(value, bool) else value
        body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
        example = body.get("example")
        if isinstance(example, dict) and "url" in example:  # a webhook target
            example = {**example, "url": self.receiver.url()}
        response = await self.client.request(method, url, params=query, json=example, headers=ADMIN)
        for name, field in MADE.get((method, path), {}).items():
            if response.status_code < 300:
                self.made[name] = response.json()[field]
        return response


@pytest.fixture
async def calls(make_settings: Callable[..., Settings], pg_url: str) -> AsyncIterator[Calls]:
    settings = make_settings(db={"url": pg_url}, webhooks={"allow_loopback": True})
    with Receiver() as receiver:
        async with running_app(settings) as (_app, client):
            yield Calls(client, receiver)


class TestExamplesAreAccepted:
    async def test_every_request_example_gets_its_declared_success(self, calls: Calls) -> None:
        doc = (await calls.client.get("/openapi.json")).json()
        refused = []
        for method, path, operation in sorted(operations(doc), key=order_of_calls):
            response = await calls.call(method, path, operation)
            where = f"{method.upper()} {path} -> {response.status_code} {response.text[:300]}"
            if response.status_code not in successes(operation):
                refused.append(where)
                continue
            declared = operation["responses"][str(response.status_code)]
            media = declared.get("content", {}).get("application/json")
            if media is not None:
                validate(doc, media["schema"], response.json(), where)
        assert not refused, "examples refused:\n" + "\n".join(refused)
        assert {"order_id", "batch_id", "endpoint_id", "delivery_id"} <= set(calls.made)


ASSET = re.compile(r"""(?:src|href|spec-url)="([^"]+)"|url: '([^']+)'""")


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings()) as (_app, client):
        yield client


class TestDocs:
    @pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
    async def test_pages_load_everything_from_this_service(
        self, client: httpx.AsyncClient, page: str
    ) -> None:
        response = await client.get(page)  # no key: the docs are open
        assert response.status_code == 200
        html = response.text
        assert not re.search(r"https?:|//", html.replace("window.location.origin", "")), html
        urls = [a or b for a, b in ASSET.findall(html)]
        if page != "/docs/oauth2-redirect":
            assert "/openapi.json" in urls
            assert any(url.startswith("/docs/assets/") for url in urls), urls
        for url in urls:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url

    async def test_assets_are_the_installed_builds(self, client: httpx.AsyncClient) -> None:
        types = {
            "swagger-ui-bundle.js": "text/javascript",
            "swagger-ui.css": "text/css",
            "redoc.standalone.js": "text/javascript",
            "favicon.png": "image/png",
        }
        for name, media_type in types.items():
            response = await client.get(f"/docs/assets/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"].startswith(media_type), name
            assert len(response.content) > 1000, name
        assert b"SwaggerUIBundle" in (await client.get("/docs/assets/swagger-ui-bundle.js")).content
        assert b"Redoc" in (await client.get("/docs/assets/redoc.standalone.js")).content

    async def test_an_unknown_asset_is_not_found(self, client: httpx.AsyncClient) -> None:
        for name in ("nope.js", "..%2F..%2Fpyproject.toml", "__init__.py"):
            response = await client.get(f"/docs/assets/{name}")
            assert response.status_code == 404, name
            assert response.json()["error"]["code"] == "NOT_FOUND"
