"""Request limits: oversized bodies (declared or streamed), deep or huge JSON, absurd
numbers, unicode where ASCII is expected.

Each must be a 4xx JSON error with a stable code (or, inside a well-formed batch, a rejected
order with one), never a 5xx, and must change nothing (the ``client`` fixture compares the
account's live orders and the book before and after; refused requests record no batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from app.settings import Settings
from tests.hardening.support import BATCHES, LIMIT, batch_ids, error, rejected
from tests.support.live import live_app
from tests.support.trading import ADMIN, batch, order

SURROGATE = "\ud800"


def padded(size: int) -> bytes:
    """A valid batch body of exactly ``size`` bytes (whitespace is still JSON)."""
    body = orjson.dumps(batch(order("buy", "1", "1700")))
    return body + b" " * (size - len(body))


class TestBodySize:
    async def test_declared_length_over_the_limit(self, client: httpx.AsyncClient) -> None:
        before = await batch_ids(client)
        for url, method in ((BATCHES, "POST"), ("/orders", "POST"), ("/orders/1", "PATCH")):
            response = await client.request(method, url, content=padded(LIMIT + 1), headers=ADMIN)
            error(response, 413, "PAYLOAD_TOO_LARGE")
        assert await batch_ids(client) == before

    async def test_chunked_body_over_the_limit(self, client: httpx.AsyncClient) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            body = padded(LIMIT * 3)
            for start in range(0, len(body), 4096):
                yield body[start : start + 4096]

        before = await batch_ids(client)
        response = await client.post(BATCHES, content=chunks(), headers=ADMIN)
        assert "content-length" not in response.request.headers
        error(response, 413, "PAYLOAD_TOO_LARGE")
        assert await batch_ids(client) == before

    async def test_exactly_the_limit_is_read(self, client: httpx.AsyncClient) -> None:
        response = await client.post(BATCHES, content=padded(LIMIT), headers=ADMIN)
        assert response.status_code == 200
        # undo it, so that the fixture's "nothing changed" holds for the refused ones
        (result,) = response.json()["results"]
        cancel = await client.delete(f"/orders/{result['order_id']}", headers=ADMIN)
        assert cancel.status_code == 200

    async def test_garbage_content_length(self, client: httpx.AsyncClient) -> None:
        headers = ADMIN | {"Content-Length": "12abc"}
        response = await client.post(BATCHES, content=b"{}", headers=headers)
        error(response, 413, "PAYLOAD_TOO_LARGE")


class TestBodySizeOverTheWire:
    """The same against uvicorn on a real port: refused before the body is sent."""

    async def test_refused_from_the_headers_alone(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        settings = make_settings(max_body_bytes=LIMIT)
        async with live_app(settings) as live:
            reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
            writer.write(
                b"POST /advanced/batch-orders HTTP/1.1\r\nHost: x\r\n"
                b"X-API-Key: " + ADMIN["X-API-Key"].encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n"
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 413"), head
            writer.close()

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(LIMIT // 1024 + 10):
                    yield b" " * 1024

            response = await live.http.post(BATCHES, content=chunks(), headers=ADMIN)
            error(response, 413, "PAYLOAD_TOO_LARGE")
            health = await live.http.get("/health/live")
            assert health.status_code == 200


class TestJson:
    async def test_deep_nesting(self, client: httpx.AsyncClient) -> None:
        deep = b"[" * 30_000 + b"]" * 30_000
        # The same answer whoever parses the body: the order service or FastAPI's models.
        for url, method in (
            (BATCHES, "POST"),
            ("/orders", "POST"),
            ("/orders/1", "PATCH"),
            ("/advanced/webhooks", "POST"),
        ):
            response = await client.request(method, url, content=deep, headers=ADMIN)
            error(response, 400, "INVALID_JSON")
        nested_field = b'{"orders": [{"symbol": ' + b"[" * 500 + b"]" * 500 + b"}]}"
        response = await client.post(BATCHES, content=nested_field, headers=ADMIN)
        rejected(response, "VALIDATION_ERROR")

    async def test_huge_arrays_and_strings(self, client: httpx.AsyncClient) -> None:
        response = await client.post(BATCHES, json={"orders": [{}] * 20_000}, headers=ADMIN)
        error(response, 413, "BATCH_TOO_LARGE")
        response = await client.post(
            "/advanced/webhooks",
            json={"url": "https://example.com/h", "events": ["order.filled"] * 3000},
            headers=ADMIN,
        )
        error(response, 422, "VALIDATION_ERROR")
        long_symbol = batch(order("buy", "1", "1700", symbol="A" * 60_000))
        response = await client.post(BATCHES, json=long_symbol, headers=ADMIN)
        rejected(response, "VALIDATION_ERROR")

    @pytest.mark.parametrize(
        "body",
        [b"", b"null", b"[]", b'"orders"', b"1", b"{}", b'{"orders": {}}', b'{"orders": []}',
         b'{"orders": [1], "atomic": "yes"}', b'{"orders": [1], "extra": 1}', b"{'orders': []}",
         b'{"orders": [\xff\xfe]}', b'{"orders": ["\\ud800"]}', b"\x00", b'{"orders": [1]}x'],
    )  # fmt: skip
    async def test_malformed_envelopes(self, client: httpx.AsyncClient, body: bytes) -> None:
        before = await batch_ids(client)
        response = await client.post(BATCHES, content=body, headers=ADMIN)
        assert await batch_ids(client) == before
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"]["code"] in (
            "INVALID_JSON", "VALIDATION_ERROR", "EMPTY_BATCH"
        )  # fmt: skip
        if body == b'{"orders": [1]}x':
            assert response.json()["error"]["code"] == "INVALID_JSON"


BAD_NUMBERS = [
    "1" * 33, "9" * 32, "1e5", "1E5", "1e999", "NaN", "nan", "Infinity", "-1", "+1", "0",
    "0.000", " 1", "1 ", "1_000", "１２", "٣", "0x10", "1.2.3", ".5", "5.", "", "1,5",
    1.5, True, None, [], {}, 10**40, -5, 0,
]  # fmt: skip
NUMBER_CODES = {
    "quantity": ("INVALID_QUANTITY", "INVALID_LOT_SIZE", "VALIDATION_ERROR", "RISK_MAX_QUANTITY"),
    "price": ("INVALID_PRICE", "INVALID_TICK_SIZE", "VALIDATION_ERROR", "PRICE_OUT_OF_BAND"),
    "trigger_price": ("INVALID_PRICE", "INVALID_TICK_SIZE", "VALIDATION_ERROR"),
}


class TestNumbers:
    @pytest.mark.parametrize("field", sorted(NUMBER_CODES))
    async def test_absurd_decimals_are_rejected_per_order(
        self, client: httpx.AsyncClient, field: str
    ) -> None:
        for value in BAD_NUMBERS:
            item = order("buy", "1", "1700", type="stop_limit", trigger_price="1710")
            item[field] = value
            if value is None and field != "quantity":
                continue  # a missing price/trigger is its own (valid) case
            response = await client.post(BATCHES, json=batch(item), headers=ADMIN)
            rejected(response, *NUMBER_CODES[field])

    async def test_single_order_and_amend(self, client: httpx.AsyncClient) -> None:
        placed = await client.post(BATCHES, json=batch(order("buy", "2", "1700")), headers=ADMIN)
        order_id = placed.json()["results"][0]["order_id"]
        before = (await client.get(f"/orders/{order_id}", headers=ADMIN)).json()
        for value in ("1e5", "1" * 33, "NaN", "-1", "１２", "0.001"):
            response = await client.post("/orders", json=order("buy", value, "1700"), headers=ADMIN)
            error(response, 422, *NUMBER_CODES["quantity"])
            for name in ("quantity", "price"):
                amend = await client.patch(f"/orders/{order_id}", json={name: value}, headers=ADMIN)
                error(amend, 422, *NUMBER_CODES[name])
        assert (await client.get(f"/orders/{order_id}", headers=ADMIN)).json() == before
        await client.delete(f"/orders/{order_id}", headers=ADMIN)


class TestUnicode:
    SYMBOLS = ["NSE:ＩＮＦＹ", "NSE:INFY\u0000", "NSE:INFY\n", "NSE:\u200bINFY", "💥", "NSE:İNFY",
               "NSE:INFY ", "NSE:", ":", "NSE:INFY:NSE", SURROGATE]  # fmt: skip
    CLIENT_IDS = ["ordér-1", "a\n", "a" * 65, "", "\u0000", "a b", "ａ", "💥", "a/b", SURROGATE]

    async def test_symbols(self, client: httpx.AsyncClient) -> None:
        for symbol in self.SYMBOLS:
            body = with_string(batch(order("buy", "1", "1700", symbol="PLACEHOLDER")), symbol)
            response = await client.post(BATCHES, content=body, headers=ADMIN)
            if symbol == SURROGATE:  # not valid UTF-8 once decoded: the whole body is refused
                error(response, 400, "INVALID_JSON")
                continue
            rejected(response, "UNKNOWN_INSTRUMENT", "AMBIGUOUS_SYMBOL", "VALIDATION_ERROR")
            # an unknown instrument in the path is a missing resource; in a query, bad input
            response = await client.get(f"/orderbook/{quote(symbol)}", headers=ADMIN)
            if response.status_code == 404:
                error(response, 404, "UNKNOWN_INSTRUMENT")
            else:
                error(response, 422, "AMBIGUOUS_SYMBOL", "VALIDATION_ERROR")
            response = await client.get(f"/orders?symbol={quote(symbol)}", headers=ADMIN)
            error(response, 422, "UNKNOWN_INSTRUMENT", "AMBIGUOUS_SYMBOL", "VALIDATION_ERROR")

    async def test_client_order_ids(self, client: httpx.AsyncClient) -> None:
        for cid in self.CLIENT_IDS:
            item = order("buy", "1", "1700", client_order_id="PLACEHOLDER")
            body = with_string(batch(item), cid)
            response = await client.post(BATCHES, content=body, headers=ADMIN)
            if cid == SURROGATE:
                error(response, 400, "INVALID_JSON")
            else:
                rejected(response, "VALIDATION_ERROR")


def with_string(body: Any, value: str) -> bytes:
    """``body`` as JSON with "PLACEHOLDER" replaced by ``value`` (which may be a lone
    surrogate, that no JSON encoder would write but any client can send)."""
    encoded = b'"\\ud800"' if value == SURROGATE else orjson.dumps(value)
    return orjson.dumps(body).replace(b'"PLACEHOLDER"', encoded)
