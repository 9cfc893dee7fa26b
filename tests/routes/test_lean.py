"""The order routes' lean path (``app.routes.lean``): its own parts, and that it answers as
the FastAPI routes it stands in for (the same app with ``lean_path`` off is the reference)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.httpprotocol import WholeCycle
from app.middleware import new_request_id
from app.routes.lean import LeanApp, LeanOrderPath
from app.settings import Settings
from tests.conftest import running_app
from tests.support.live import live_app
from tests.support.trading import ADMIN, READER, add_accounts, batch, order

HEX32 = re.compile(r"[0-9a-f]{32}")
LIMIT = 2048


@asynccontextmanager
async def lean_app(settings: Settings) -> AsyncIterator[tuple[LeanApp, httpx.AsyncClient]]:
    async with running_app(settings) as (app, client):
        assert isinstance(app, LeanApp)
        assert app.lean_path is not None
        yield app, client


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tokens_dir: Path) -> Settings:
    add_accounts(tokens_dir)
    return make_settings(max_body_bytes=LIMIT)


async def both_ways(app: LeanApp, send: Callable[[], Any]) -> tuple[httpx.Response, httpx.Response]:
    """The same request through the lean path, then through FastAPI alone."""
    lean = await send()
    saved, app.lean_path = app.lean_path, None
    try:
        reference = await send()
    finally:
        app.lean_path = saved
    return lean, reference


def assert_same(lean: httpx.Response, reference: httpx.Response) -> None:
    assert lean.status_code == reference.status_code, (lean.text, reference.text)
    assert lean.content == reference.content
    skip = {"x-request-id", "ratelimit"}  # a new id; one token fewer in the bucket
    names = sorted(name for name, _ in lean.headers.multi_items() if name not in skip)
    expected = sorted(name for name, _ in reference.headers.multi_items() if name not in skip)
    assert names == expected
    for name in names:
        assert lean.headers.get_list(name) == reference.headers.get_list(name), name
    assert HEX32.fullmatch(lean.headers["x-request-id"])


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


class TestRequestIds:
    def test_32_hex_digits_and_unique(self) -> None:
        ids = [new_request_id() for _ in range(20_000)]
        assert all(HEX32.fullmatch(i) for i in ids)
        assert len(set(ids)) == len(ids)

    def test_another_process_or_a_fork_draws_another_prefix(self) -> None:
        ours = new_request_id()[:16]
        code = "from app.middleware import new_request_id; print(new_request_id())"
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert HEX32.fullmatch(other)
        assert other[:16] != ours
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report its id and leave at once
            os.write(write, new_request_id().encode())
            os._exit(0)
        os.close(write)
        forked = os.read(read, 64).decode()
        os.close(read)
        os.waitpid(pid, 0)
        assert HEX32.fullmatch(forked)
        assert forked[:16] != ours

    async def test_generated_or_echoed_on_a_lean_route(self, settings: Settings) -> None:
        async with lean_app(settings) as (_app, client):
            body = order("buy", "1", "1700")
            generated = await client.post("/orders", json=body, headers=ADMIN)
            echoed = await client.post(
                "/orders", json=body, headers=ADMIN | {"X-Request-ID": "trace-1"}
            )
            refused = await client.post(
                "/orders", json=body, headers=ADMIN | {"X-Request-ID": "bad id"}
            )
        assert generated.status_code == 201
        assert HEX32.fullmatch(generated.headers["x-request-id"])
        assert echoed.headers["x-request-id"] == "trace-1"
        assert HEX32.fullmatch(refused.headers["x-request-id"])


class TestAccessLog:
    async def test_one_line_per_lean_request(
        self, settings: Settings, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="ticker.access")
        async with lean_app(settings) as (_app, client):
            await client.post("/orders", json=order("buy", "1", "1700"), headers=ADMIN)
            await client.delete("/orders/1")
        lines = [
            (r.method, r.path, r.status)  # type: ignore[attr-defined]
            for r in caplog.records
            if r.name == "ticker.access" and getattr(r, "path", "").startswith("/orders")
        ]
        assert lines == [("POST", "/orders", 201), ("DELETE", "/orders/1", 401)]


class TestMetrics:
    async def test_series_carry_the_route_template(self, settings: Settings) -> None:
        async with lean_app(settings) as (_app, client):
            placed = await client.post("/orders", json=order("buy", "1", "1700"), headers=ADMIN)
            order_id = placed.json()["order_id"]
            amended = await client.patch(
                f"/orders/{order_id}", json={"quantity": "2"}, headers=ADMIN
            )
            cancelled = await client.delete(f"/orders/{order_id}", headers=ADMIN)
            missing = await client.delete(f"/orders/{order_id}", headers=ADMIN)
            batched = await client.post(
                "/advanced/batch-orders", json=batch(order("buy", "1", "1700")), headers=ADMIN
            )
            everything = await client.delete("/orders?symbol=NSE:INFY", headers=ADMIN)
            read = await client.get("/orders", headers=ADMIN)  # FastAPI's
            text = (await client.get("/metrics")).text
        statuses = [r.status_code for r in (placed, amended, cancelled, batched, everything)]
        assert statuses == [201, 200, 200, 200, 200]
        assert missing.status_code == 409, missing.text
        assert read.status_code == 200
        total = samples(text, "http_requests_total")

        def count(method: str, status: str, handler: str) -> float:
            labels = {"method": method, "status": status, "handler": handler}
            return total.get(tuple(sorted(labels.items())), 0.0)

        assert count("POST", "201", "/orders") == 1
        assert count("PATCH", "200", "/orders/{order_id}") == 1
        assert count("DELETE", "200", "/orders/{order_id}") == 1
        assert count("DELETE", "409", "/orders/{order_id}") == 1
        assert count("POST", "200", "/advanced/batch-orders") == 1
        assert count("DELETE", "200", "/orders") == 1
        assert count("GET", "200", "/orders") == 1
        durations = samples(text, "http_request_duration_seconds_count")
        assert durations[(("handler", "/orders/{order_id}"), ("method", "DELETE"))] == 2
        sizes = samples(text, "http_request_size_bytes_count")
        assert sizes[(("handler", "/orders"),)] == 3  # POST, DELETE and the GET
        assert samples(text, "http_request_duration_highr_seconds_count")[()] >= 7


class TestRefusals:
    async def test_401_403_and_errors_of_the_service(self, settings: Settings) -> None:
        async with lean_app(settings) as (app, client):
            body = order("buy", "1", "1700")
            for send in (
                lambda: client.post("/orders", json=body),
                lambda: client.post("/orders", json=body, headers={"X-API-Key": "nope-000000"}),
                lambda: client.post("/advanced/batch-orders", json=batch(body), headers=READER),
                lambda: client.delete("/orders/12345", headers=READER),
                lambda: client.delete("/orders/12345", headers=ADMIN),
                lambda: client.patch("/orders/12345", json={"price": "1700"}, headers=ADMIN),
                lambda: client.post("/orders", content=b"{not json", headers=ADMIN),
                lambda: client.post("/advanced/batch-orders", json={}, headers=ADMIN),
            ):
                assert_same(*await both_ways(app, send))

    async def test_429_with_retry_after_and_ratelimit(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(auth={"rate_limit": 2, "rate_limit_burst": 2})
        async with lean_app(settings) as (_app, client):
            statuses = [
                (await client.delete("/orders", headers=ADMIN)).status_code for _ in range(2)
            ]
            limited = await client.delete("/orders", headers=ADMIN)
        assert statuses == [200, 200]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "RATE_LIMITED"
        assert limited.headers["retry-after"] == "1"
        assert limited.headers["ratelimit"].startswith('"default";r=0;')
        assert limited.headers["ratelimit-policy"] == '"default";q=2;w=1'
        assert HEX32.fullmatch(limited.headers["x-request-id"])

    async def test_413_declared_or_streamed(self, settings: Settings) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b" " * 1024

        async with lean_app(settings) as (app, client):
            for send in (
                lambda: client.post("/orders", content=b" " * (LIMIT + 1), headers=ADMIN),
                lambda: client.patch("/orders/1", content=b" " * (LIMIT + 1), headers=ADMIN),
                lambda: client.post("/advanced/batch-orders", content=chunks(), headers=ADMIN),
            ):
                lean, reference = await both_ways(app, send)
                assert lean.status_code == 413
                assert lean.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
                assert_same(lean, reference)


class TestFallThrough:
    @pytest.fixture
    def lean_calls(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """The templates of the requests the lean path answered itself."""
        calls: list[str] = []
        answer = LeanOrderPath._answer

        async def counted(self: LeanOrderPath, template: str, *args: Any) -> Any:
            calls.append(template)
            return await answer(self, template, *args)

        monkeypatch.setattr(LeanOrderPath, "_answer", counted)
        return calls

    async def test_other_routes_are_served_by_fastapi(
        self, settings: Settings, lean_calls: list[str]
    ) -> None:
        async with lean_app(settings) as (_app, client):
            await client.get("/orders", headers=ADMIN)
            await client.get("/orders/1", headers=ADMIN)
            await client.get("/health/live")
            await client.delete("/orders/1", headers=ADMIN | {"Origin": "https://a.example"})
            await client.delete("/orders/1", headers=ADMIN | {"X-Kite-Version": "3"})
            assert lean_calls == []
            await client.delete("/orders/1", headers=ADMIN)
            assert lean_calls == ["/orders/{order_id}"]

    async def test_what_fastapi_validates_gets_fastapis_answer(self, settings: Settings) -> None:
        async with lean_app(settings) as (app, client):
            for send in (
                lambda: client.patch("/orders/1", json={"price": "abc"}, headers=ADMIN),
                lambda: client.patch("/orders/1", content=b"[1]", headers=ADMIN),
                lambda: client.patch("/orders/1", content=b"{nope", headers=ADMIN),
                lambda: client.patch("/orders/1", headers=ADMIN),
                lambda: client.delete("/orders/0", headers=ADMIN),
                lambda: client.delete(f"/orders/{2**63}", headers=ADMIN),
                lambda: client.delete("/orders?symbol=" + "X" * 65, headers=ADMIN),
                lambda: client.post(
                    "/advanced/batch-orders",
                    json=batch(order("buy", "1", "1700")),
                    headers=ADMIN | {"Idempotency-Key": "k" * 129},
                ),
            ):
                lean, reference = await both_ways(app, send)
                assert lean.status_code in (400, 422), lean.text
                assert_same(lean, reference)

    async def test_cors_requests_go_through_fastapi(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        settings = make_settings(cors_origins=["https://desk.example"])
        async with lean_app(settings) as (_app, client):
            response = await client.delete(
                "/orders", headers=ADMIN | {"Origin": "https://desk.example"}
            )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://desk.example"


async def test_concurrent_single_orders_each_get_their_own_answer(settings: Settings) -> None:
    async with lean_app(settings) as (_app, client):
        responses = await asyncio.gather(
            *(
                client.post(
                    "/orders",
                    json=order("buy", "1", "1700", client_order_id=f"c{i}"),
                    headers=ADMIN,
                )
                for i in range(20)
            )
        )
    assert [r.json()["client_order_id"] for r in responses] == [f"c{i}" for i in range(20)]
    assert len({r.headers["x-request-id"] for r in responses}) == 20


class TestUnderTheServer:
    """Under uvicorn and the server's protocol the lean path hands its answers over
    rendered (``WholeCycle.answer_whole``) and its errors as ASGI messages: each carries
    what it carries through the in-process client, plus the server's ``date`` and
    ``server``."""

    async def test_answers_carry_the_same_headers(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rendered: list[int] = []  # the statuses answered through ``answer_whole``
        answer_whole = WholeCycle.answer_whole

        def spy(cycle: WholeCycle, status: int, lines: bytes, body: bytes) -> bool:
            taken = answer_whole(cycle, status, lines, body)
            if taken:
                rendered.append(status)
            return taken

        monkeypatch.setattr(WholeCycle, "answer_whole", spy)
        body = order("buy", "1", "1700")
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/orders", {"json": body, "headers": ADMIN}),  # answer_whole
            ("DELETE", "/orders", {"headers": ADMIN}),  # answer_whole
            ("POST", "/orders", {"content": b" " * (LIMIT + 1), "headers": ADMIN}),  # 413
            ("POST", "/orders", {"json": body}),  # 401: an error, as ASGI messages
            ("POST", "/orders", {"json": {}, "headers": ADMIN}),  # 400 from the service
        ]
        async with live_app(settings) as live:
            served = [await live.http.request(m, path, **kw) for m, path, kw in requests]
        async with lean_app(settings) as (_app, client):
            local = [await client.request(m, path, **kw) for m, path, kw in requests]
        for answer, reference in zip(served, local, strict=True):
            assert answer.status_code == reference.status_code, answer.text
            names = [name for name, _ in answer.headers.multi_items()]
            assert names[:2] == ["date", "server"]
            assert sorted(names[2:]) == sorted(n for n, _ in reference.headers.multi_items())
            assert int(answer.headers["content-length"]) == len(answer.content)
            assert answer.headers["content-type"] == reference.headers["content-type"]
            assert HEX32.fullmatch(answer.headers["x-request-id"])
            if answer.status_code >= 400:  # the others name orders, whose ids differ
                assert answer.content == reference.content
        assert [answer.status_code for answer in served] == [201, 200, 413, 401, 422]
        # Ours rendered; the 413 (over the limit: uvicorn's own cycle) and errors as messages.
        assert rendered == [201, 200]
