"""Every error path of the Kite API raises the official client's own exception class, with
Kite's status; every one of our error codes maps to one of Kite's error types."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from kiteconnect import KiteConnect
from kiteconnect import exceptions as ex

from app.services.kite.errors import KITE_ERRORS
from app.settings import Settings
from tests.kite.support import DESK_A, DESK_B, READER, call, client, kite_server
from tests.support.live import LiveApp
from tests.support.secrets import remember
from tests.support.trading import ADMIN_KEY, DESK_B_KEY, READER_KEY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def live(
    make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
) -> AsyncIterator[LiveApp]:
    async with kite_server(make_settings(db={"url": pg_url}), tokens_dir) as app:
        yield app


def order(**extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "INFY",
        "transaction_type": "BUY",
        "quantity": 1,
        "product": "CNC",
        "order_type": "LIMIT",
        "price": 1875.4,
    }
    params.update(extra)
    return params


async def raises(
    kind: type[ex.KiteException], code: int, fn: Callable[..., Any], *a: Any, **kw: Any
) -> str:
    with pytest.raises(kind) as caught:
        await call(fn, *a, **kw)
    assert type(caught.value) is kind
    assert caught.value.code == code
    return str(caught.value)


class TestTokens:
    async def test_no_wrong_or_mismatched_token_is_a_token_exception(self, live: LiveApp) -> None:
        root = f"http://127.0.0.1:{live.port}"
        await raises(ex.TokenException, 403, KiteConnect(api_key=DESK_A, root=root).orders)
        await raises(ex.TokenException, 403, client(live, DESK_A, "not-a-key-0123456789").orders)
        message = await raises(ex.TokenException, 403, client(live, DESK_B, ADMIN_KEY).orders)
        assert "api_key" in message
        session = KiteConnect(api_key=DESK_B, root=root)
        await raises(ex.TokenException, 403, session.generate_session, ADMIN_KEY, "secret")

    async def test_a_read_only_key_cannot_trade(self, live: LiveApp) -> None:
        reader = client(live, READER, READER_KEY)
        assert await call(reader.orders) == []
        await raises(ex.PermissionException, 403, reader.place_order, **order())


class TestOrders:
    async def test_bad_input_is_an_input_exception(self, live: LiveApp) -> None:
        kite = client(live)
        for bad in (
            {"tradingsymbol": "NOSUCH"},
            {"price": 1875.43},  # off the tick grid
            {"quantity": 0},
            {"order_type": "STOPLOSS"},
            {"transaction_type": "HOLD"},
            {"product": "BO"},
            {"validity": "GTT"},
            {"validity": "TTL"},  # without validity_ttl
            {"variety": "amo"},
            {"variety": "co"},
            {"order_type": "MARKET"},  # a price on a market order
            {"tag": "x" * 21},
            {"tag": "a:b"},
        ):
            await raises(ex.InputException, 400, kite.place_order, **order(**bad))
        await raises(ex.InputException, 400, kite.place_autoslice_order, **order())

    async def test_orders_the_book_refuses_are_order_exceptions(self, live: LiveApp) -> None:
        kite = client(live)
        message = await raises(
            ex.OrderException, 400, kite.place_order, **order(order_type="MARKET", price=None)
        )
        assert "liquidity" in message.lower()

    async def test_unknown_and_finished_orders(self, live: LiveApp) -> None:
        kite = client(live)
        await raises(ex.OrderException, 404, kite.cancel_order, "regular", "999999")
        await raises(ex.OrderException, 404, kite.order_history, "999999")
        await raises(ex.OrderException, 404, kite.order_trades, "999999")
        await raises(ex.InputException, 400, kite.order_history, "not-a-number")
        order_id = await call(kite.place_order, **order())
        # another account's order is not found either
        other = client(live, DESK_B, DESK_B_KEY)
        await raises(ex.OrderException, 404, other.cancel_order, "regular", order_id)
        await raises(
            ex.InputException, 400, kite.modify_order, "regular", order_id, order_type="MARKET"
        )
        await raises(ex.InputException, 400, kite.modify_order, "regular", order_id, price=1.01)
        await raises(ex.InputException, 400, kite.cancel_order, "bo", order_id)
        await call(kite.cancel_order, "regular", order_id)
        await raises(ex.OrderException, 400, kite.cancel_order, "regular", order_id)
        await raises(ex.OrderException, 400, kite.modify_order, "regular", order_id, price=1876)


class TestMarketData:
    async def test_bad_historical_arguments(self, live: LiveApp) -> None:
        kite = client(live)
        good = ("2026-12-01 09:15:00", "2026-12-01 15:30:00")
        await raises(ex.InputException, 400, kite.historical_data, 408065, *good, "2minute")
        await raises(
            ex.InputException, 400, kite.historical_data, 408065, "yesterday", good[1], "day"
        )
        await raises(ex.InputException, 400, kite.historical_data, 42, *good, "minute")
        await raises(
            ex.InputException,
            400,
            kite.historical_data,
            408065,
            "2026-01-01",
            "2026-12-01",
            "minute",
        )
        await raises(ex.InputException, 400, kite.quote)


class TestAnswersOfTheStack:
    async def test_unknown_routes_and_methods_are_general_exceptions(self, live: LiveApp) -> None:
        kite = client(live)
        await raises(ex.GeneralException, 404, kite.get_gtts)
        await raises(ex.GeneralException, 404, kite.mf_orders)
        await raises(ex.GeneralException, 405, kite._put, "orders")
        response = await live.http.get("/nope", headers={"X-Kite-Version": "3"})
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {
            "status": "error",
            "message": "route not found: GET /nope",
            "error_type": "GeneralException",
            "data": None,
        }

    async def test_body_limit_and_rate_limit(
        self, make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
    ) -> None:
        key = "test-slow-key-0123456789"
        remember(key)
        (tokens_dir / "slow.json").write_text(
            json.dumps(
                {
                    "account": "slow",
                    "scopes": ["read", "trade"],
                    "key": key,
                    "rate_limit": 0.01,
                    "burst": 3,
                }
            )
        )
        settings = make_settings(db={"url": pg_url}, max_body_bytes=1024)
        async with kite_server(settings, tokens_dir) as live:
            kite = client(live, "slow", key)
            big = await live.http.post(
                "/orders/regular",
                content=b"x" * 4096,
                headers={"X-Kite-Version": "3", "Authorization": f"token slow:{key}"},
            )
            assert big.headers["content-type"] == "application/json"
            await raises(ex.InputException, 413, kite.place_order, **order(tag="x" * 2000))
            await call(kite.orders)
            message = await raises(ex.NetworkException, 429, kite.orders)
            assert "rate limit" in message
            raw = await live.http.get(
                "/orders", headers={"X-Kite-Version": "3", "Authorization": f"token slow:{key}"}
            )
            assert raw.status_code == 429
            assert "retry-after" in raw.headers
            assert raw.headers["content-type"] == "application/json"
            assert big.status_code == 413
            assert big.json()["error_type"] == "InputException"


# Files whose string constants are the codes our HTTP API can answer with.
_CODE_SOURCES = [
    "app/errors.py",
    "app/routes/errors.py",
    "app/engine/model.py",
    "app/services/instruments/registry.py",
    "app/services/access/auth.py",
    "app/services/ticker/candles.py",
    "app/services/ticker/subscriptions.py",
    "app/services/orders/*.py",
    "app/services/cluster/*.py",
    "app/services/webhooks/*.py",
    "app/services/instrument*.py",
]
_NOT_CODES = {"ALL_SCOPES", "API_KEY"}  # auth.py: names of key sources, not error codes
_CODE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$")


def our_codes() -> set[str]:
    codes = set()
    for pattern in _CODE_SOURCES:
        for path in ROOT.glob(pattern):
            for node in ast.walk(ast.parse(path.read_text())):
                constant = isinstance(node, ast.Constant) and isinstance(node.value, str)
                if constant and _CODE.match(node.value):
                    codes.add(node.value)
    return codes - _NOT_CODES


class TestMappingTable:
    def test_every_code_has_a_kite_error_type(self) -> None:
        codes = our_codes()
        assert {"ORDER_NOT_FOUND", "NO_LIQUIDITY", "RATE_LIMITED", "INVALID_TICK_SIZE"} <= codes
        assert sorted(codes - KITE_ERRORS.keys()) == []
        types = {error_type for _status, error_type in KITE_ERRORS.values()}
        assert types <= {name for name in dir(ex) if name.endswith("Exception")}

    def test_the_readme_table_is_the_mapping(self) -> None:
        readme = (ROOT / "README.md").read_text()
        for code, (status, error_type) in KITE_ERRORS.items():
            assert f"| `{code}` | {status} | `{error_type}` |" in readme, code


async def test_a_non_json_content_type_never_reaches_the_client(live: LiveApp) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live.port}") as http:
        for method, path in (("GET", "/"), ("POST", "/orders/regular"), ("DELETE", "/x/y/z")):
            response = await http.request(method, path, headers={"X-Kite-Version": "3"})
            assert response.headers["content-type"] == "application/json", path
            assert response.json()["status"] == "error"


_GARBAGE = ["", "0", "-1", "1e9", "nan", "9" * 30, "x" * 300, "\x00", "NSE:", ":", "%ff", "é"]


async def test_garbage_never_gets_a_500(live: LiveApp) -> None:
    headers = {"X-Kite-Version": "3", "Authorization": f"token {DESK_A}:{ADMIN_KEY}"}
    fields = ["exchange", "tradingsymbol", "transaction_type", "quantity", "product"]
    fields += ["order_type", "price", "trigger_price", "validity", "validity_ttl", "tag"]
    good = {k: str(v) for k, v in order().items() if k != "variety" and v is not None}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{live.port}", timeout=30) as http:
        requests: list[tuple[str, str, dict[str, Any]]] = []
        for value in _GARBAGE:
            for name in fields:
                requests.append(("POST", "/orders/regular", {"data": {**good, name: value}}))
                requests.append(("PUT", "/orders/regular/1", {"data": {name: value}}))
            path = quote(value, safe="") or "x"
            for template in (
                "/orders/regular/{}",
                "/orders/{}",
                "/orders/{}/trades",
                "/orders/{}/x",
                "/instruments/{}",
                "/instruments/historical/{}/minute",
                "/instruments/historical/408065/{}",
                "/user/margins/{}",
            ):
                for method in ("GET", "PUT", "DELETE", "POST"):
                    requests.append((method, template.format(path), {}))
            for route in ("/quote", "/quote/ltp", "/quote/ohlc"):
                requests.append(("GET", route, {"params": {"i": [value, "NSE:INFY"]}}))
            requests.append(
                (
                    "GET",
                    "/instruments/historical/408065/minute",
                    {"params": {"from": value, "to": "2026-12-01"}},
                )
            )
        for method, path, extra in requests:
            response = await http.request(method, path, headers=headers, **extra)
            assert response.status_code < 500, (method, path, extra, response.text)
            assert response.headers["content-type"] in ("application/json", "text/csv")
            if response.headers["content-type"] == "application/json":
                assert response.json()["status"] in ("success", "error")
