"""The gateway's split of a batch by shard and the merge of the replies in request order.

Shard assignment is pure (``shard_of``, ``Shard``). The split and the merge live in
``StreamOrderEntry.place_batch``, which talks to the matchers over Redis Streams only, so those
tests run it over the real Redis: either against real matchers (an ``OrderService`` per
shard behind a ``Matcher``), or against ``ScriptedShards``, which reads the shard streams
and answers as a test tells it to (late, with an error, or not at all)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from app.errors import ValidationFailed
from app.services.cluster import protocol
from app.services.cluster.gateway import StreamOrderEntry
from app.services.cluster.hop import ReplyListener, ShardTimeout, ShardUnavailable
from app.services.cluster.matcher import Matcher
from app.services.orders.entry import OrderEntry
from app.services.orders.market import MarketDataService
from app.services.orders.service import OrderService
from app.services.orders.shard import MAX_SHARDS, Shard, shard_of
from app.settings import Settings
from app.store.redis import RedisStore
from tests.conftest import REDIS_URL
from tests.support.orders import batch_body, codes, opened_registry, serving_on
from tests.support.trading import order

# Of two shards, INFY and RELIANCE are on shard 0, HDFCBANK on shard 1 (crc32 of the token).
INFY, RELIANCE, HDFCBANK = 408065, 738561, 341249


def hdfc(side: str, quantity: str, price: str, **extra: Any) -> dict[str, Any]:
    return order(side, quantity, price, symbol="NSE:HDFCBANK", **extra)


class TestShardOf:
    def test_the_documented_assignment(self) -> None:
        assert [shard_of(t, 2) for t in (INFY, RELIANCE, HDFCBANK)] == [0, 0, 1]

    def test_one_shard_owns_everything(self) -> None:
        assert {shard_of(token, 1) for token in range(1000)} == {0}
        assert shard_of(INFY, 0) == 0

    def test_every_shard_is_in_range_and_used(self) -> None:
        assigned = [shard_of(token, 7) for token in range(10_000)]
        assert set(assigned) == set(range(7))

    def test_a_shard_owns_what_shard_of_assigns_it(self) -> None:
        shards = [Shard(k, 3) for k in range(3)]
        for token in (INFY, RELIANCE, HDFCBANK, 1, 2, 3):
            assert [s.owns(token) for s in shards].count(True) == 1
            assert shards[shard_of(token, 3)].owns(token)
        assert Shard().owns(INFY)
        assert Shard().owns(HDFCBANK)

    def test_id_ranges_do_not_overlap(self) -> None:
        ranges = [(Shard(k, 4).id_base, Shard(k, 4).id_limit) for k in range(4)]
        assert ranges[0][0] == 0
        for (_, limit), (base, _) in zip(ranges, ranges[1:], strict=False):
            assert limit == base

    @pytest.mark.parametrize(
        ("shard_id", "shards"), [(1, 1), (-1, 2), (2, 2), (0, 0), (0, MAX_SHARDS + 1)]
    )
    def test_invalid_shards_are_refused(self, shard_id: int, shards: int) -> None:
        with pytest.raises(ValueError, match="not valid"):
            Shard(shard_id, shards)


class TestRouterInterface:
    @pytest.mark.parametrize("router", [OrderService, StreamOrderEntry])
    def test_both_routers_offer_every_method_with_its_signature(self, router: type) -> None:
        for name, declared in inspect.getmembers(OrderEntry, inspect.isfunction):
            if name.startswith("_"):
                continue
            implemented = getattr(router, name)
            assert inspect.iscoroutinefunction(implemented), name
            assert inspect.signature(implemented) == inspect.signature(declared), name


# --- over Redis --------------------------------------------------------------------------------


@dataclass
class ScriptedShards:
    """Reads every shard's command stream and answers each command with ``answer``'s reply
    (None: no reply at all). ``commands[shard]`` is what each shard received."""

    redis: RedisStore
    shards: int
    answer: Callable[[int, dict[str, Any]], dict[str, Any] | None]
    commands: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    async def run(self) -> None:
        streams: dict[Any, Any] = {
            self.redis.key("orders", shard): "0" for shard in range(self.shards)
        }
        while True:
            response: Any = await self.redis.client.xread(streams, block=100)
            for stream, entries in response or ():
                shard = int(stream.decode().rsplit(":", 1)[1])
                for entry_id, fields in entries:
                    streams[stream.decode()] = entry_id
                    command = protocol.decode(fields)
                    self.commands.setdefault(shard, []).append(command)
                    reply = self.answer(shard, command)
                    if reply is not None:
                        await self.redis.client.xadd(
                            command["reply_to"], protocol.encode({"id": command["id"], **reply})
                        )


def placed(shard: int, command: dict[str, Any]) -> dict[str, Any]:
    """A matcher's answer placing every order, its results in reverse (merge must reorder)."""
    results = [
        {
            "index": index,
            "client_order_id": item.get("client_order_id"),
            "order_id": str((shard << 48) + index + 1),
            "created": True,
            "status": "open",
            "filled_quantity": "0",
            "remaining_quantity": item["quantity"],
            "average_price": None,
            "fills": [],
        }
        for item, index in zip(command["orders"], command["indices"], strict=True)
    ]
    return {"result": {"batch_id": f"{command['batch_id']}.{shard}", "results": results[::-1]}}


@dataclass
class Gateway:
    router: StreamOrderEntry
    redis: RedisStore

    async def stream_length(self, shard: int) -> int:
        length: int = await self.redis.client.xlen(self.redis.key("orders", shard))
        return length


@asynccontextmanager
async def gateway(
    settings: Settings, *, shards: int = 2, timeout: float = 5.0
) -> AsyncIterator[Gateway]:
    """A ``StreamOrderEntry`` with its reply listener running, on the test's Redis prefix."""
    async with AsyncExitStack() as stack:
        database, registry, metrics = await stack.enter_async_context(opened_registry(settings))
        redis = RedisStore(aioredis.from_url(REDIS_URL), prefix=settings.redis.prefix)
        stack.push_async_callback(redis.close)
        replies = ReplyListener(redis, "gw-test")
        listening = asyncio.get_running_loop().create_task(replies.run())
        stack.push_async_callback(_cancelled, listening)
        await asyncio.sleep(0.1)  # its first XREAD ("$": replies from now on) is waiting
        router = StreamOrderEntry(
            redis=redis,
            database=database,
            registry=registry,
            replies=replies,
            metrics=metrics,
            shards=shards,
            timeout=timeout,
            max_batch_orders=settings.orders.max_batch_orders,
        )
        yield Gateway(router, redis)


@asynccontextmanager
async def scripted(
    redis: RedisStore, answer: Callable[[int, dict[str, Any]], dict[str, Any] | None]
) -> AsyncIterator[ScriptedShards]:
    shards = ScriptedShards(redis, 2, answer)
    task = asyncio.get_running_loop().create_task(shards.run())
    try:
        yield shards
    finally:
        await _cancelled(task)


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.fixture
def settings(make_settings: Callable[..., Settings], pg_url: str) -> Settings:
    return make_settings(db={"url": pg_url}, cluster={"shards": 2})


class TestSplit:
    async def test_each_shard_receives_its_orders_with_their_request_indices(
        self, settings: Settings
    ) -> None:
        async with gateway(settings) as gw, scripted(gw.redis, placed) as shards:
            await gw.router.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875", client_order_id="i0"),
                    hdfc("buy", "1", "1748", client_order_id="h1"),
                    order("buy", "1", "1300", symbol="NSE:RELIANCE", client_order_id="r2"),
                    hdfc("sell", "2", "1749", client_order_id="h3"),
                ),
            )
        (zero,), (one,) = shards.commands[0], shards.commands[1]
        assert [o["client_order_id"] for o in zero["orders"]] == ["i0", "r2"]
        assert zero["indices"] == [0, 2]
        assert [o["client_order_id"] for o in one["orders"]] == ["h1", "h3"]
        assert one["indices"] == [1, 3]
        for command in (zero, one):
            assert (command["kind"], command["account"], command["atomic"]) == (
                "batch",
                "a",
                False,
            )
        assert zero["batch_id"] == one["batch_id"]
        assert zero["id"] != one["id"]  # each part is its own command (and idempotency key)

    async def test_orders_refused_at_the_gateway_are_not_sent(self, settings: Settings) -> None:
        async with gateway(settings) as gw, scripted(gw.redis, placed) as shards:
            response = await gw.router.place_batch(
                "a",
                batch_body(
                    hdfc("buy", "1", "1748.01"),
                    order("buy", "1", "1875", symbol="NOPE:X"),
                    {"symbol": "NSE:INFY", "side": "buy"},
                    hdfc("buy", "1", "1748"),
                ),
            )
        assert 0 not in shards.commands
        assert shards.commands[1][0]["indices"] == [3]
        assert codes(response) == [
            "INVALID_TICK_SIZE",
            "UNKNOWN_INSTRUMENT",
            "VALIDATION_ERROR",
            None,
        ]

    async def test_an_atomic_batch_with_a_reject_sends_nothing(self, settings: Settings) -> None:
        async with gateway(settings) as gw, scripted(gw.redis, placed) as shards:
            response = await gw.router.place_batch(
                "a",
                batch_body(order("buy", "1", "1875"), order("buy", "1", "1875.01"), atomic=True),
            )
            assert await gw.stream_length(0) == 0
        assert shards.commands == {}
        assert codes(response) == ["BATCH_ABORTED", "INVALID_TICK_SIZE"]

    async def test_an_atomic_batch_must_stay_on_one_shard(self, settings: Settings) -> None:
        async with gateway(settings) as gw:
            with pytest.raises(ValidationFailed) as caught:
                await gw.router.place_batch(
                    "a",
                    batch_body(order("buy", "1", "1875"), hdfc("buy", "1", "1748"), atomic=True),
                )
            assert (await gw.stream_length(0), await gw.stream_length(1)) == (0, 0)
        assert caught.value.code == "ATOMIC_SPANS_SHARDS"

    async def test_an_atomic_batch_on_one_shard_is_sent_whole(self, settings: Settings) -> None:
        async with gateway(settings) as gw, scripted(gw.redis, placed) as shards:
            response = await gw.router.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875"),
                    order("buy", "1", "1300", symbol="NSE:RELIANCE"),
                    atomic=True,
                ),
            )
        assert shards.commands[0][0]["atomic"] is True
        assert shards.commands[0][0]["indices"] == [0, 1]
        assert codes(response) == [None, None]

    async def test_redis_refusing_the_first_part_refuses_the_batch(
        self, settings: Settings
    ) -> None:
        async with gateway(settings) as gw:
            await gw.redis.client.aclose()  # nothing can be sent any more
            gw.redis.client = aioredis.from_url("redis://127.0.0.1:1/0")
            with pytest.raises(ShardUnavailable):
                await gw.router.place_batch("a", batch_body(order("buy", "1", "1875")))


class TestMerge:
    async def test_replies_are_merged_in_request_order(self, settings: Settings) -> None:
        async with gateway(settings) as gw, scripted(gw.redis, placed):
            response = await gw.router.place_batch(
                "a",
                batch_body(
                    hdfc("buy", "1", "1748", client_order_id="h0"),
                    order("buy", "1", "1875", client_order_id="i1"),
                    hdfc("buy", "1", "1748.01", client_order_id="bad2"),
                    hdfc("buy", "1", "1748", client_order_id="h3"),
                    order("buy", "1", "1875", client_order_id="i4"),
                ),
            )
        results = response["results"]
        assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
        assert [r["client_order_id"] for r in results] == ["h0", "i1", "bad2", "h3", "i4"]
        assert codes(response) == [None, None, "INVALID_TICK_SIZE", None, None]
        assert (response["accepted"], response["rejected"], response["unknown"]) == (4, 1, 0)

    async def test_a_silent_shard_leaves_its_orders_unknown(self, settings: Settings) -> None:
        def only_shard_zero(shard: int, command: dict[str, Any]) -> dict[str, Any] | None:
            return placed(shard, command) if shard == 0 else None

        async with gateway(settings, timeout=0.3) as gw, scripted(gw.redis, only_shard_zero):
            response = await gw.router.place_batch(
                "a",
                batch_body(
                    hdfc("buy", "1", "1748", client_order_id="h0"),
                    order("buy", "1", "1875", client_order_id="i1"),
                ),
            )
        unknown, known = response["results"]
        assert (unknown["status"], unknown["error"]["code"]) == ("unknown", "SHARD_TIMEOUT")
        assert unknown["client_order_id"] == "h0"
        assert known["status"] == "open"
        assert (response["accepted"], response["rejected"], response["unknown"]) == (1, 0, 1)

    async def test_a_single_order_on_a_silent_shard_is_a_timeout(self, settings: Settings) -> None:
        async with gateway(settings, timeout=0.3) as gw, scripted(gw.redis, lambda *_: None):
            with pytest.raises(ShardTimeout) as caught:
                await gw.router.place_order(
                    "a", orjson.dumps(order("buy", "1", "1875", client_order_id="c"))
                )
        assert (caught.value.code, caught.value.status) == ("SHARD_TIMEOUT", 503)
        assert caught.value.details is not None
        assert (caught.value.details["index"], caught.value.details["status"]) == (0, "unknown")
        assert caught.value.details["client_order_id"] == "c"

    async def test_a_shard_error_rejects_its_part_only(self, settings: Settings) -> None:
        def shard_one_fails(shard: int, command: dict[str, Any]) -> dict[str, Any]:
            if shard == 0:
                return placed(shard, command)
            return {
                "error": {
                    "code": "JOURNAL_UNAVAILABLE",
                    "message": "the order journal is unavailable",
                    "status": 503,
                    "details": None,
                }
            }

        async with gateway(settings) as gw, scripted(gw.redis, shard_one_fails):
            response = await gw.router.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875"), hdfc("buy", "1", "1748"), hdfc("buy", "2", "1748")
                ),
            )
        assert codes(response) == [None, "JOURNAL_UNAVAILABLE", "JOURNAL_UNAVAILABLE"]
        assert [r["status"] for r in response["results"]] == ["open", "rejected", "rejected"]
        assert [r["index"] for r in response["results"]] == [0, 1, 2]
        assert (response["accepted"], response["rejected"], response["unknown"]) == (1, 2, 0)

    async def test_the_merged_response_is_what_the_key_replays(self, settings: Settings) -> None:
        body = batch_body(order("buy", "1", "1875"), hdfc("buy", "1", "1748"))
        async with gateway(settings) as gw, scripted(gw.redis, placed) as shards:
            first = await gw.router.place_batch("a", body, idempotency_key="k")
            again = await gw.router.place_batch("a", body, idempotency_key="k")
        assert again == first
        assert (len(shards.commands[0]), len(shards.commands[1])) == (1, 1)  # sent once


class TestAgainstMatchers:
    """The gateway in front of a real matcher per shard (one database, one Redis)."""

    async def test_a_spanning_batch_is_placed_and_merged(self, settings: Settings) -> None:
        async with gateway(settings) as gw, matchers(settings, gw.redis) as engines:
            response = await gw.router.place_batch(
                "a",
                batch_body(
                    hdfc("sell", "2", "1749", client_order_id="h0"),
                    order("sell", "3", "1876", client_order_id="i1"),
                    order("buy", "1", "1875.01"),
                    hdfc("buy", "1", "1748", client_order_id="h3"),
                ),
            )
            again = await gw.router.place_batch(
                "a", batch_body(order("buy", "9", "1870", client_order_id="i1"))
            )
            live = [engine.live_order_ids("a") for engine in engines]
        results = response["results"]
        assert [r["index"] for r in results] == [0, 1, 2, 3]
        assert codes(response) == [None, None, "INVALID_TICK_SIZE", None]
        assert (response["accepted"], response["rejected"], response["unknown"]) == (3, 1, 0)
        # Each order was placed by its own shard, with ids from that shard's range.
        assert Shard(1, 2).id_base < int(results[0]["order_id"]) < Shard(1, 2).id_limit
        assert Shard(0, 2).id_base < int(results[1]["order_id"]) < Shard(0, 2).id_limit
        assert [len(ids) for ids in live] == [1, 2]
        # A resubmitted client_order_id returns the original through the gateway too.
        (resubmitted,) = again["results"]
        assert (resubmitted["order_id"], resubmitted["created"]) == (results[1]["order_id"], False)


@asynccontextmanager
async def matchers(settings: Settings, redis: RedisStore) -> AsyncIterator[list[OrderService]]:
    """An ``OrderService`` and a ``Matcher`` consuming its stream, for each of two shards."""
    async with AsyncExitStack() as stack:
        engines = []
        for shard_id in range(2):
            database, registry, metrics = await stack.enter_async_context(opened_registry(settings))
            orders = await stack.enter_async_context(
                serving_on(database, registry, metrics, settings, Shard(shard_id, 2))
            )
            market = MarketDataService(orders=orders, registry=registry, database=database)
            matcher = Matcher(redis=redis, orders=orders, market=market)
            task = asyncio.get_running_loop().create_task(matcher.run())
            stack.push_async_callback(_cancelled, task)
            engines.append(orders)
        yield engines
