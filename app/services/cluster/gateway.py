"""The gateway role: validates, splits each batch by shard, forwards over Redis Streams.

A gateway holds no book. It checks what it can alone (shape, instrument, tick and lot
grid), sends each shard its part of the batch (``XADD orders:{shard}``), waits for the
replies on its own stream and merges the results back into request order. A shard that does
not answer within ``SHARD_TIMEOUT_SECONDS`` leaves its orders with status ``unknown`` and
code ``SHARD_TIMEOUT``: they may or may not have been placed, and the client finds out by
``client_order_id`` (``GET /orders``), or by resubmitting the batch, which places nothing
twice. Cancels and amends go to the shard of the order's instrument (read from the journal).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from typing import Any

import orjson
from sqlalchemy import insert

from app.errors import ValidationFailed
from app.metrics import Metrics
from app.services.cluster.hop import ReplyListener, ShardTimeout, ShardUnavailable, StreamHop
from app.services.instruments.model import Instrument
from app.services.orders import journal_queries
from app.services.orders.entry import InstrumentControl
from app.services.orders.errors import OrderNotFound
from app.services.orders.idempotency import IdempotencyGuard
from app.services.orders.parsing import parse_batch, parse_order, parse_single
from app.services.orders.placement import screen, single_result
from app.services.orders.records import OrderTerms
from app.services.orders.shard import shard_of
from app.services.render import render_reject
from app.store.database import Database
from app.store.journal import batches
from app.store.redis import RedisStore

log = logging.getLogger(__name__)


class StreamOrderEntry:
    """``OrderEntry`` over Redis Streams (``ROLE=gateway``)."""

    def __init__(
        self,
        *,
        redis: RedisStore,
        database: Database,
        registry: InstrumentControl,
        replies: ReplyListener,
        metrics: Metrics,
        shards: int,
        timeout: float,
        max_batch_orders: int,
    ) -> None:
        self._database = database
        self._registry = registry
        self._hop = StreamHop(redis=redis, replies=replies, timeout=timeout)
        self._metrics = metrics
        self.shards = shards
        self.max_batch_orders = max_batch_orders
        self._idempotency = IdempotencyGuard(database)

    def _shard(self, instrument: Instrument) -> int:
        return shard_of(instrument.instrument_token, self.shards)

    # --- batches -------------------------------------------------------------------------------

    async def place_batch(
        self, account: str, body: bytes, *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        items, atomic = parse_batch(body, self.max_batch_orders)
        request_hash = hashlib.sha256(body).hexdigest() if idempotency_key else None
        if idempotency_key is None:
            return await self._place(account, items, atomic, None, None)
        self._idempotency.claim(account, idempotency_key)
        try:
            stored = await self._idempotency.replay(account, idempotency_key, request_hash)
            if stored is not None:
                return stored
            return await self._place(account, items, atomic, idempotency_key, request_hash)
        finally:
            self._idempotency.release(account, idempotency_key)

    async def _place(
        self,
        account: str,
        items: list[Any],
        atomic: bool,
        idempotency_key: str | None,
        request_hash: str | None,
        terms: list[OrderTerms | None] | None = None,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        batch_id = secrets.token_hex(12)
        snapshot = self._registry.snapshot

        def check(index: int, item: Any) -> int:
            """What the gateway can check without the book: the order's shard."""
            request = parse_order(item)
            instrument = snapshot.resolve(request.symbol)
            instrument.quantity_to_lots(request.quantity)
            for price in (request.price, request.trigger_price):
                if price is not None:
                    instrument.price_to_ticks(price)
            return self._shard(instrument)

        screened = screen(items, atomic, check)
        results = screened.results
        parts: dict[int, tuple[list[Any], list[int]]] = {}
        for index, shard in screened.passed:
            orders, indices = parts.setdefault(shard, ([], []))
            orders.append(items[index])
            indices.append(index)
        if atomic and len(parts) > 1:
            raise ValidationFailed(
                "an atomic batch must stay within one matcher shard", code="ATOMIC_SPANS_SHARDS"
            )
        sent: list[tuple[dict[str, Any], list[int], asyncio.Future[dict[str, Any]]]] = []
        for shard, (shard_orders, indices) in parts.items():
            command: dict[str, Any] = {
                "kind": "batch",
                "account": account,
                "batch_id": batch_id,
                "orders": shard_orders,
                "indices": indices,
                "atomic": atomic,
            }
            if terms is not None:  # the Kite adapter's, per order (``OrderTerms.to_json``)
                command["terms"] = [_json_terms(terms[index]) for index in indices]
            try:
                future = await self._hop.send(shard, command)
            except ShardUnavailable:
                if not sent:
                    raise  # nothing was sent: nothing was placed, the whole batch is 503
                # Earlier parts are on their way: answer them, and refuse this part alone.
                for item, index in zip(shard_orders, indices, strict=True):
                    results[index] = render_reject(
                        index,
                        item.get("client_order_id"),
                        ShardUnavailable.code,
                        "this part of the batch could not reach its matcher; not placed",
                    )
                continue
            sent.append((command, indices, future))
        for command, indices, future in sent:
            reply = await self._hop.wait(command["id"], future)
            for result in self._part_results(reply, command, indices):
                results[result["index"]] = result
        final = [r for r in results if r is not None]
        accepted = sum(1 for r in final if r["status"] not in ("rejected", "unknown"))
        unknown = sum(1 for r in final if r["status"] == "unknown")
        response = {
            "batch_id": batch_id,
            "accepted": accepted,
            "rejected": len(final) - accepted - unknown,
            "unknown": unknown,
            "results": final,
        }
        await self._store(account, response, idempotency_key, request_hash)
        self._metrics.batch_size.observe(len(items))
        self._metrics.order_ack_seconds.observe(time.perf_counter() - started)
        return response

    @staticmethod
    def _part_results(
        reply: dict[str, Any] | None, command: dict[str, Any], indices: list[int]
    ) -> list[dict[str, Any]]:
        if reply is not None and "result" in reply:
            results: list[dict[str, Any]] = reply["result"]["results"]
            return results
        if reply is None:
            code, message, status = "SHARD_TIMEOUT", ShardTimeout.message, "unknown"
        else:
            code, message, status = reply["error"]["code"], reply["error"]["message"], "rejected"
        out = []
        for item, index in zip(command["orders"], indices, strict=True):
            result = render_reject(index, item.get("client_order_id"), code, message)
            result["status"] = status
            out.append(result)
        return out

    async def _store(
        self,
        account: str,
        response: dict[str, Any],
        idempotency_key: str | None,
        request_hash: str | None,
    ) -> None:
        """The merged response, for ``GET /advanced/batch-orders`` and Idempotency-Key replays
        (each shard's part is journaled by its matcher)."""
        row = {
            "batch_id": response["batch_id"],
            "account": account,
            "created_ns": time.time_ns(),
            "idempotency_key": idempotency_key,
            "request_hash": request_hash,
            "accepted": response["accepted"],
            "rejected": response["rejected"],
            "response": orjson.dumps(response).decode(),
        }
        try:
            async with self._database.engine.begin() as conn:
                await conn.execute(insert(batches), [row])
        except Exception:  # the orders are journaled by the matchers; this is a convenience copy
            log.exception("could not store the merged batch %s", response["batch_id"])

    async def place_order(
        self, account: str, body: bytes, *, terms: OrderTerms | None = None
    ) -> dict[str, Any]:
        items = [parse_single(body)]
        result = single_result(
            await self._place(account, items, False, None, None, None if terms is None else [terms])
        )
        if result["status"] == "unknown":
            raise ShardTimeout(details=result)
        return result

    # --- one order -----------------------------------------------------------------------------

    async def _order_shard(self, account: str, order_id: int) -> int:
        record = await journal_queries.order_record(self._database, account, order_id)
        if record is None:
            raise OrderNotFound()
        return shard_of(record.instrument_token, self.shards)

    async def cancel_order(self, account: str, order_id: int) -> dict[str, Any]:
        shard = await self._order_shard(account, order_id)
        command = {"kind": "cancel", "account": account, "order_id": order_id}
        result: dict[str, Any] = await self._hop.call(shard, command)
        return result

    async def amend_order(
        self, account: str, order_id: int, *, quantity: str | None, price: str | None
    ) -> dict[str, Any]:
        shard = await self._order_shard(account, order_id)
        command = {
            "kind": "amend",
            "account": account,
            "order_id": order_id,
            "quantity": quantity,
            "price": price,
        }
        result: dict[str, Any] = await self._hop.call(shard, command)
        return result

    async def cancel_all(
        self, account: str, symbol: str | None = None, *, reason: str | None = None
    ) -> dict[str, Any]:
        if symbol is not None:
            shards = [self._shard(self._registry.snapshot.lookup(symbol))]
        else:
            shards = list(range(self.shards))
        replies = await asyncio.gather(
            *(
                self._hop.call(
                    shard,
                    {"kind": "cancel_all", "account": account, "symbol": symbol, "reason": reason},
                )
                for shard in shards
            )
        )
        items = [item for reply in replies for item in reply["items"]]
        return {"cancelled": len(items), "items": items}

    async def set_halted(self, instrument_token: int, halted: bool) -> Instrument:
        instrument = self._registry.snapshot.instrument(instrument_token)
        command = {"kind": "halt", "instrument_token": instrument_token, "halted": halted}
        await self._hop.call(self._shard(instrument), command)
        status = "halted" if halted else "active"
        # The matcher stored the status; this gateway's snapshot follows without a reload.
        return await self._registry.set_status(instrument_token, status)  # type: ignore[arg-type]

    # --- market data (books live in the matchers) ----------------------------------------------

    async def order_book(self, symbol: str, depth: int) -> dict[str, Any]:
        instrument = self._registry.snapshot.lookup(symbol)
        command = {"kind": "book", "symbol": instrument.symbol, "depth": depth}
        result: dict[str, Any] = await self._hop.call(self._shard(instrument), command)
        return result

    async def stats(self, symbol: str) -> dict[str, Any]:
        instrument = self._registry.snapshot.lookup(symbol)
        result: dict[str, Any] = await self._hop.call(
            self._shard(instrument), {"kind": "stats", "symbol": instrument.symbol}
        )
        return result

    async def trades(self, symbol: str, limit: int, cursor: str | None = None) -> dict[str, Any]:
        from app.services.orders.market import trade_page

        instrument = self._registry.snapshot.lookup(symbol)
        return await trade_page(self._database, instrument, limit, cursor)


def _json_terms(terms: OrderTerms | None) -> list[Any] | None:
    return None if terms is None else terms.to_json()
