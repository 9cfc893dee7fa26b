"""The authorisation matrix: every HTTP route, every method, every kind of caller.

Callers: no key, an unknown key, an empty key, and keys with each scope alone and together,
on four accounts. The owner (account ``default``, all scopes) creates the resources (orders,
batches, webhook endpoints and their deliveries); every other caller probes them. Expected:
401 ``UNAUTHENTICATED`` without a valid key, 403 ``FORBIDDEN`` without the route's scope,
404 for another account's resource (the same as a missing one), its own exact status for
the owner, and the resource unchanged after every refused call. No response to another
account ever carries one of the owner's identifiers. A route without a probe here fails
the test, so a new route must say what each caller gets.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.deps import required_scope
from app.routes import OPEN_PATHS, HttpRoute, dependency_calls, http_routes
from app.services.access.auth import Scope
from app.settings import Settings
from tests.conftest import running_app
from tests.services.webhooks.receiver import Receiver
from tests.support.trading import ADMIN, DESK_B, READER, add_accounts, write_key

TRADER = {"X-API-Key": "test-trader-only-key-0123456789"}
OPS = {"X-API-Key": "test-ops-admin-only-key-0123456789"}
OWNER = "default"
TCS = 2953217  # NSE:TCS, halted and resumed (orders go to NSE:INFY)
INFY = 408065


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    account: str | None
    scopes: frozenset[Scope]


CALLERS = [
    Caller("no key", {}, None, frozenset()),
    Caller("unknown key", {"X-API-Key": "unknown-key-0123456789abcdef"}, None, frozenset()),
    Caller("empty key", {"X-API-Key": ""}, None, frozenset()),
    Caller("reader", READER, "reader", frozenset({Scope.READ})),
    Caller("trader", TRADER, "trader", frozenset({Scope.TRADE})),
    Caller("ops", OPS, "ops", frozenset({Scope.ADMIN})),
    Caller("desk-b", DESK_B, "desk-b", frozenset({Scope.READ, Scope.TRADE})),
    Caller("owner", ADMIN, OWNER, frozenset(Scope)),  # last: its calls may change things
]


@dataclass
class Target:
    url: str
    json: Any = None
    watch: str | None = None  # read back (as the owner) after each refused call: unchanged
    shows: str | None = None  # the owner's response must contain this (a list shows its own)


@dataclass
class Owner:
    """The owner's resources, created on demand, and every identifier that must not leak."""

    client: httpx.AsyncClient
    receiver: Receiver
    markers: set[str] = field(default_factory=set)  # unique strings: searched as text
    order_ids: set[str] = field(default_factory=set)  # small numbers: compared by field

    async def call(self, method: str, url: str, json: Any = None, status: int = 200) -> Any:
        response = await self.client.request(method, url, json=json, headers=ADMIN)
        assert response.status_code == status, (method, url, response.text)
        return response.json() if response.content else None

    async def order(self) -> str:
        cid = f"owner-{uuid.uuid4().hex[:12]}"
        body = {"orders": [{"symbol": "NSE:INFY", "side": "buy", "quantity": "3",
                            "price": "1700", "client_order_id": cid}]}  # fmt: skip
        batch = await self.call("POST", "/advanced/batch-orders", body)
        (result,) = batch["results"]
        assert result["status"] == "open", result
        self.markers.update({cid, batch["batch_id"]})
        order_id: str = result["order_id"]
        self.order_ids.add(order_id)
        return order_id

    async def fill(self) -> str:
        """The owner takes desk-b's offer (above every owner bid): a fill on each side."""
        cid = f"owner-fill-{uuid.uuid4().hex[:12]}"
        offer = {"symbol": "NSE:INFY", "side": "sell", "quantity": "1", "price": "1710"}
        response = await self.client.post("/orders", json=offer, headers=DESK_B)
        assert response.status_code == 201, response.text
        taken = await self.call("POST", "/orders", {**offer, "side": "buy", "client_order_id": cid},
                                status=201)  # fmt: skip
        assert taken["status"] == "filled", taken
        self.markers.add(cid)
        self.order_ids.add(taken["order_id"])
        return cid

    async def client_order_id(self) -> str:
        order_id = await self.order()
        cid: str = (await self.call("GET", f"/orders/{order_id}"))["client_order_id"]
        return cid

    async def batch(self) -> str:
        order_id = await self.order()
        batch_id: str = (await self.call("GET", f"/orders/{order_id}"))["batch_id"]
        return batch_id

    async def endpoint(self) -> str:
        description = f"owner-endpoint-{uuid.uuid4().hex[:8]}"
        created = await self.call(
            "POST",
            "/advanced/webhooks",
            {"url": self.receiver.url(), "description": description},
            status=201,
        )
        self.markers.update({created["id"], created["secret"], description})
        endpoint_id: str = created["id"]
        return endpoint_id

    async def delivery(self) -> tuple[str, str]:
        endpoint_id = await self.endpoint()
        sent = await self.call("POST", f"/advanced/webhooks/{endpoint_id}/test")
        self.markers.add(sent["id"])
        return endpoint_id, sent["id"]


Make = Callable[[Owner], Awaitable[Target]]


@dataclass
class Probe:
    method: str
    route: str
    scope: Scope | None  # None: any valid key
    make: Make
    status: int  # for the owner, or for any caller with the scope when nothing is owned
    other: int | None = None  # for a caller with the scope on another account
    before_each: Callable[[Owner], Awaitable[None]] | None = None


def fixed(url: str, json: Any = None) -> Make:
    async def make(_owner: Owner) -> Target:
        return Target(url, json)

    return make


async def own_order(owner: Owner, suffix: str = "", json: Any = None) -> Target:
    order_id = await owner.order()
    return Target(f"/orders/{order_id}{suffix}", json, watch=f"/orders/{order_id}")


async def own_endpoint(owner: Owner, suffix: str = "", json: Any = None) -> Target:
    endpoint_id = await owner.endpoint()
    url = f"/advanced/webhooks/{endpoint_id}"
    return Target(url + suffix, json, watch=url)


async def own_delivery(owner: Owner, suffix: str = "") -> Target:
    endpoint_id, delivery_id = await owner.delivery()
    url = f"/advanced/webhooks/{endpoint_id}/deliveries/{delivery_id}"
    return Target(url + suffix, watch=url)


async def listing(owner: Owner, url: str, mine: Callable[[Owner], Awaitable[str]]) -> Target:
    return Target(url, shows=await mine(owner))


async def cancel_all(owner: Owner) -> Target:
    """Everyone cancels their own open orders: the owner's stays open until the owner's call."""
    order_id = await owner.order()
    return Target("/orders", watch=f"/orders/{order_id}")


async def own_client_order_id(owner: Owner) -> Target:
    return Target(f"/orders/by-client-id/{await owner.client_order_id()}")


async def own_batch(owner: Owner) -> Target:
    return Target(f"/advanced/batch-orders/{await owner.batch()}")


async def halted(owner: Owner) -> None:
    await owner.call("POST", f"/admin/instruments/{TCS}/halt")


async def halted_list(owner: Owner) -> Target:
    """The status filter the console's operations view uses: the halted instrument shows."""
    await halted(owner)
    return Target("/instruments?status=halted", shows="NSE:TCS")


async def resumed(owner: Owner) -> None:
    await owner.call("POST", f"/admin/instruments/{TCS}/resume")


async def subscribed(owner: Owner) -> None:
    await owner.client.post("/subscriptions", json={"symbol": "NSE:TCS"}, headers=ADMIN)


async def unsubscribed(owner: Owner) -> None:
    await owner.client.delete(f"/subscriptions/{TCS}", headers=ADMIN)


NEW_ORDER = {"symbol": "NSE:INFY", "side": "buy", "quantity": "1", "price": "1690"}
HOOKS = "/advanced/webhooks"
DELIVERY = "/advanced/webhooks/{endpoint_id}/deliveries/{delivery_id}"

R, T, A = Scope.READ, Scope.TRADE, Scope.ADMIN  # the scope the README gives each route

PROBES = [
    Probe("GET", "/me", None, fixed("/me"), 200),
    Probe("GET", "/instruments", R, fixed("/instruments?limit=5"), 200),
    Probe("GET", "/instruments", R, halted_list, 200, before_each=halted),
    Probe("GET", "/instruments/{instrument_token}", R, fixed(f"/instruments/{INFY}"), 200),
    Probe("POST", "/admin/instrument-refresh", A, fixed("/admin/instrument-refresh"), 200),
    Probe("POST", "/admin/instruments/{instrument_token}/halt", A,
          fixed(f"/admin/instruments/{TCS}/halt"), 200, before_each=resumed),
    Probe("POST", "/admin/instruments/{instrument_token}/resume", A,
          fixed(f"/admin/instruments/{TCS}/resume"), 200, before_each=halted),
    Probe("GET", "/orderbook/{symbol}", R, fixed("/orderbook/NSE:INFY"), 200),
    Probe("GET", "/trades/{symbol}", R, fixed("/trades/NSE:INFY"), 200),
    Probe("GET", "/stats/{symbol}", R, fixed("/stats/NSE:INFY"), 200),
    Probe("GET", "/candles/{symbol}", R, fixed("/candles/NSE:INFY"), 200),
    Probe("GET", "/subscriptions", R, fixed("/subscriptions"), 200),
    Probe("POST", "/subscriptions", A, fixed("/subscriptions", {"symbol": "NSE:TCS"}), 201,
          before_each=unsubscribed),
    Probe("DELETE", "/subscriptions/{instrument_token}", A, fixed(f"/subscriptions/{TCS}"), 200,
          before_each=subscribed),
    Probe("POST", "/advanced/batch-orders", T,
          fixed("/advanced/batch-orders", {"orders": [NEW_ORDER]}), 200),
    Probe("GET", "/advanced/batch-orders", R,
          lambda o: listing(o, "/advanced/batch-orders", Owner.batch), 200),
    Probe("GET", "/advanced/batch-orders/{batch_id}", R, own_batch, 200, 404),
    Probe("POST", "/orders", T, fixed("/orders", NEW_ORDER), 201),
    Probe("GET", "/orders", R, lambda o: listing(o, "/orders", Owner.order), 200),
    Probe("GET", "/orders/{order_id}", R, own_order, 200, 404),
    Probe("GET", "/orders/by-client-id/{client_order_id}", R, own_client_order_id, 200, 404),
    Probe("GET", "/fills", R, lambda o: listing(o, "/fills", Owner.fill), 200),
    # Each account's own positions (another's are never shown: tests/routes/test_positions.py)
    Probe("GET", "/positions", R, fixed("/positions"), 200),
    Probe("GET", "/positions/{symbol}", R, fixed("/positions/NSE:INFY"), 200),
    Probe("GET", "/calendar", R, fixed("/calendar"), 200),
    Probe("PATCH", "/orders/{order_id}", T,
          lambda o: own_order(o, json={"quantity": "2"}), 200, 404),
    Probe("DELETE", "/orders/{order_id}", T, own_order, 200, 404),
    Probe("POST", HOOKS, T, fixed(HOOKS, {"url": "http://127.0.0.1:9/hook"}), 201),
    Probe("GET", HOOKS, T, lambda o: listing(o, HOOKS, Owner.endpoint), 200),
    Probe("GET", HOOKS + "/{endpoint_id}", T, own_endpoint, 200, 404),
    Probe("PATCH", HOOKS + "/{endpoint_id}", T,
          lambda o: own_endpoint(o, json={"description": "changed"}), 200, 404),
    Probe("DELETE", HOOKS + "/{endpoint_id}", T, own_endpoint, 204, 404),
    Probe("POST", HOOKS + "/{endpoint_id}/test", T,
          lambda o: own_endpoint(o, "/test"), 200, 404),
    Probe("GET", HOOKS + "/{endpoint_id}/deliveries", T,
          lambda o: own_endpoint(o, "/deliveries"), 200, 404),
    Probe("GET", DELIVERY, T, own_delivery, 200, 404),
    Probe("POST", DELIVERY + "/retry", T, lambda o: own_delivery(o, "/retry"), 202, 404),
    # Last: the owner's call cancels every open order of the account.
    Probe("DELETE", "/orders", T, cancel_all, 200),
]  # fmt: skip


def scope_of(route: HttpRoute) -> Scope | None:
    scopes = {required_scope(call) for call in dependency_calls(route.dependant)} - {None}
    assert len(scopes) <= 1, route
    return scopes.pop() if scopes else None


def expected(probe: Probe, caller: Caller) -> tuple[int, str | None]:
    if caller.account is None:
        return 401, "UNAUTHENTICATED"
    if probe.scope is not None and probe.scope not in caller.scopes:
        return 403, "FORBIDDEN"
    if probe.other is not None and caller.account != OWNER:
        return probe.other, None
    return probe.status, None


ORDER_ID_FIELDS = frozenset({"order_id", "maker_order_id", "taker_order_id"})


def order_ids_in(body: Any) -> Iterator[str]:
    if isinstance(body, dict):
        for name, value in body.items():
            if name in ORDER_ID_FIELDS and value is not None:
                yield str(value)
            else:
                yield from order_ids_in(value)
    elif isinstance(body, list):
        for item in body:
            yield from order_ids_in(item)


@pytest.fixture
async def owner(
    make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
) -> AsyncIterator[Owner]:
    add_accounts(tokens_dir)
    write_key(tokens_dir, "trader", "trader", ["trade"], TRADER["X-API-Key"])
    write_key(tokens_dir, "ops", "ops", ["admin"], OPS["X-API-Key"])
    settings = make_settings(
        db={"url": pg_url},
        webhooks={"allow_loopback": True, "max_endpoints_per_account": 100},
    )
    with Receiver() as receiver:
        async with running_app(settings) as (_app, client):
            yield Owner(client, receiver)


class TestAuthorisationMatrix:
    async def test_every_route_every_caller(self, owner: Owner) -> None:
        from app.main import create_app

        routes = {
            (method, route.path): route
            for route in http_routes(create_app(Settings(environment="development")))
            if route.path not in OPEN_PATHS
            for method in route.methods - {"HEAD", "OPTIONS"}
        }
        probed = {(p.method, p.route) for p in PROBES}
        assert probed == set(routes), (
            f"routes without a probe: {sorted(set(routes) - probed)}; "
            f"probes without a route: {sorted(probed - set(routes))}"
        )
        for probe in PROBES:
            assert scope_of(routes[(probe.method, probe.route)]) is probe.scope, probe
            await self.check(probe, await probe.make(owner), owner)
        assert owner.order_ids
        assert owner.markers

    async def check(self, probe: Probe, target: Target, owner: Owner) -> None:
        for caller in CALLERS:
            if probe.before_each is not None:
                await probe.before_each(owner)
            before = await owner.call("GET", target.watch) if target.watch else None
            response = await owner.client.request(
                probe.method, target.url, json=target.json, headers=caller.headers
            )
            where = f"{probe.method} {target.url} as {caller.name}: {response.text[:300]}"
            status, code = expected(probe, caller)
            assert response.status_code == status, where
            if code is not None:
                assert response.json()["error"]["code"] == code, where
            if caller.account == OWNER:
                if target.shows is not None:
                    assert target.shows in response.text, where
                continue
            if status >= 400:
                assert set(response.json()) == {"error"}, where
            if target.watch is not None:
                assert await owner.call("GET", target.watch) == before, where
            body = response.json() if response.content else None
            leaked = owner.order_ids & set(order_ids_in(body))
            leaked |= {marker for marker in owner.markers if marker in response.text}
            assert not leaked, f"{where}: carries the owner's {sorted(leaked)}"
