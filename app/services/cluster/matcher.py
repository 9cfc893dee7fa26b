"""The matcher role: owns the books of one shard, fed by that shard's Redis stream.

Start: take the shard's lease (waiting while another matcher holds it), store the fencing
token, rebuild the shard's books from PostgreSQL, then read the stream with the consumer
group — first this shard's own pending entries (commands a previous matcher read but did not
acknowledge), then new ones. Each command is matched and committed (the journal checks the
fencing token in the same transaction), then answered and acknowledged (``XACK``). A
command replayed after a crash is idempotent: a batch is stored under its command id and
answers from there; cancels and amends of finished orders answer 409.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.exceptions import ResponseError

from app.errors import AppError
from app.services.cluster import protocol
from app.services.orders.market import MarketDataService
from app.services.orders.records import OrderTerms
from app.services.orders.service import OrderService
from app.store.redis import RedisStore

log = logging.getLogger(__name__)


class Matcher:
    def __init__(
        self,
        *,
        redis: RedisStore,
        orders: OrderService,
        market: MarketDataService,
        batch: int = 256,
    ) -> None:
        self._redis = redis
        self._orders = orders
        self._market = market
        self._shard = orders.shard.shard_id
        self.stream = redis.key("orders", self._shard)
        self._consumer = f"matcher-{self._shard}"
        self._batch = batch
        self.commands = 0

    async def _ensure_group(self) -> None:
        try:
            await self._redis.client.xgroup_create(
                self.stream, protocol.GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        while True:
            try:
                await self._ensure_group()
                await self._drain_pending()
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: wait for it and go on
                log.warning("matcher stream read failed: %s; retrying", type(exc).__name__)
                await asyncio.sleep(0.5)

    async def _drain_pending(self) -> None:
        """Entries delivered to this shard's consumer before a crash, not yet acknowledged."""
        while True:
            entries = await self._read("0")
            if not entries:
                return
            await self._handle_all(entries)

    async def _consume(self) -> None:
        while True:
            entries = await self._read(">", block=1000)
            if entries:
                await self._handle_all(entries)

    async def _read(self, start: str, block: int | None = None) -> list[tuple[bytes, Any]]:
        response: Any = await self._redis.client.xreadgroup(
            protocol.GROUP,
            self._consumer,
            {self.stream: start},
            count=self._batch,
            block=block,
        )
        if not response:
            return []
        return list(response[0][1])

    async def _handle_all(self, entries: list[tuple[bytes, Any]]) -> None:
        # Started in stream order; each applies its book changes before its first await on
        # the journal, so concurrent commands share group commits.
        await asyncio.gather(*(self._handle(entry_id, fields) for entry_id, fields in entries))

    async def _handle(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        if not fields:  # trimmed or deleted entry
            await self._redis.client.xack(self.stream, protocol.GROUP, entry_id)
            return
        command = protocol.decode(fields)
        try:
            reply = {"id": command["id"], "result": await self.execute(command)}
        except AppError as exc:
            reply = protocol.error_reply(command["id"], exc)
        except Exception:
            log.exception("matcher command failed", extra={"kind": command.get("kind")})
            reply = protocol.error_reply(command["id"], AppError("internal error"))
        self.commands += 1
        await self._redis.client.xadd(
            command["reply_to"],
            protocol.encode(reply),
            maxlen=protocol.REPLY_MAXLEN,
            approximate=True,
        )
        await self._redis.client.xack(self.stream, protocol.GROUP, entry_id)

    async def execute(self, command: dict[str, Any]) -> Any:
        kind = command["kind"]
        account = command.get("account", "")
        orders = self._orders
        if kind == "batch":
            return await orders.place_items(
                account,
                command["orders"],
                command["atomic"],
                batch_id=f"{command['batch_id']}.{self._shard}",
                idempotency_key=protocol.COMMAND_PREFIX + command["id"],
                request_hash=command["id"],
                indices=command["indices"],
                terms=_terms(command.get("terms")),
            )
        if kind == "cancel":
            return await orders.cancel_order(account, command["order_id"])
        if kind == "amend":
            return await orders.amend_order(
                account, command["order_id"], quantity=command["quantity"], price=command["price"]
            )
        if kind == "cancel_all":
            return await orders.cancel_all(
                account, command.get("symbol"), reason=command.get("reason")
            )
        if kind == "halt":
            instrument = await orders.set_halted(command["instrument_token"], command["halted"])
            return instrument.to_json()
        if kind == "book":
            return await self._market.order_book(command["symbol"], command["depth"])
        if kind == "stats":
            return await self._market.stats(command["symbol"])
        raise AppError(f"unknown command kind {kind!r}", code="BAD_COMMAND")


def _terms(value: list[Any] | None) -> list[OrderTerms | None] | None:
    """A batch command's ``terms`` (the gateway's ``OrderTerms.to_json`` per order)."""
    return None if value is None else [OrderTerms.from_json(item) for item in value]
