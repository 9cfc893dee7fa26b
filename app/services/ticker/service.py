"""The ticker: journal -> tick state -> flush -> local clients and Redis -> other replicas.

The journal listener (sync, after each commit) updates the tick state and marks instruments
dirty; the flusher wakes at most every ``TICKER_FLUSH_INTERVAL_MS``, bumps each dirty
instrument's ``seq`` once, renders the full tick once and hands it to the hub (local
subscribers) and, for instruments wanted elsewhere (other replicas' clients, durable
subscriptions), to the fan-out. A burst of trades therefore yields the latest state, not a
backlog. An instrument is "owned" by the replica whose journal commits touch it: only owned
instruments are published, and a replica never lets a remote tick overwrite fresher own state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Coroutine
from typing import Any

import orjson

from app.background import BackgroundTasks
from app.metrics import Metrics
from app.services.access.auth import AuthService
from app.services.clock import SYSTEM_CLOCK, Clock
from app.services.instruments.snapshot import SnapshotSource
from app.services.orders.journal import JournalUnit
from app.services.ticker.adapter import Socket, SocketAdapter
from app.services.ticker.config import CancelAll, LocalBooks, TickerLimits
from app.services.ticker.fanout import Fanout
from app.services.ticker.hub import Hub
from app.services.ticker.order_events import order_events
from app.services.ticker.registry import ReplicaRegistry
from app.services.ticker.remote import RemoteTicks
from app.services.ticker.sessions import SessionLimits, Sessions
from app.services.ticker.status import TickerStatus, housekeeping
from app.services.ticker.subscriptions import SubscriptionService
from app.services.ticker.ticks import NS_PER_DAY, InstrumentTicks, TickState, render
from app.services.trading_day.days import TradingDays
from app.store.database import Database
from app.store.redis import RedisStore
from app.store.ticker import day_stats

log = logging.getLogger(__name__)


class TickerService:
    def __init__(
        self,
        *,
        local_books: LocalBooks | None,
        cancel_all: CancelAll,
        registry: SnapshotSource,
        auth: AuthService,
        redis: RedisStore,
        database: Database,
        subscriptions: SubscriptionService,
        metrics: Metrics,
        limits: TickerLimits,
        replica_id: str | None = None,
        days: TradingDays | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._local_books = local_books
        self._days = days
        self._clock = clock
        self._registry = registry
        self._database = database
        self.subscriptions = subscriptions
        self._metrics = metrics
        self._limits = limits
        self.replica = replica_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.state = TickState() if days is None else TickState(days.day_of)
        self.hub = Hub(
            metrics=metrics,
            queue_limit=limits.send_queue_limit,
            slow_seconds=limits.slow_client_seconds,
            idle_seconds=limits.idle_timeout_seconds,
            on_interest_change=self._local_interest_changed,
        )
        self.fanout = Fanout(
            redis=redis,
            replica=self.replica,
            metrics=metrics,
            on_ticks=self._remote_ticks,
            on_orders=self._remote_orders,
            on_control=self._control,
            on_connected=self._redis_connected,
        )
        self.replicas = ReplicaRegistry(
            redis=redis,
            replica=self.replica,
            ttl=limits.registry_ttl_seconds,
            metrics=metrics,
            local=lambda: self.status.entry(),
            on_remote_change=self._wanted_elsewhere_changed,
            announce=lambda: self.fanout.announce("registry"),
        )
        self.sockets = SocketAdapter(hub=self.hub, snapshots=self.snapshots)
        self.sessions = Sessions(
            hub=self.hub,
            adapter=self.sockets,
            auth=auth,
            registry=registry,
            cancel_all=cancel_all,
            limits=SessionLimits(
                limits.max_instruments,
                limits.max_connections_per_key,
                limits.auth_timeout_seconds,
            ),
            metrics=metrics,
        )
        self.remote = RemoteTicks(self.fanout)
        self._owned: set[int] = set()  # instruments whose changes this replica journals
        self._tasks: set[asyncio.Task[None]] = set()
        self._published: set[int] = set()
        self._dirty: set[int] = set()
        self._flush_wake = asyncio.Event()
        self._registry_task: asyncio.Task[Any] | None = None
        self.status = TickerStatus(
            hub=self.hub,
            fanout=self.fanout,
            replicas=self.replicas,
            subscriptions=subscriptions,
            metrics=metrics,
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, background: BackgroundTasks) -> None:
        """Load today's trades and the books' depth, listen to the journal, start the tasks.

        With ROLE=all the books are rebuilt and no request has run yet, so the state is
        exact. A matcher rebuilds its books later (once it holds its shard's lease): the
        depth is then loaded when the books are ready; loading replaces any order already
        indexed, and every later commit carries each changed order's full state, so the
        index converges to the committed books."""
        try:
            await self._load_day_stats()
        except Exception:  # ticks then start from zero volume: worth a log, not a refusal
            log.exception("could not read today's trades; day statistics start empty")
        local = self._local_books
        if local is not None:
            local.journal.add_listener(self._on_commit)
            if local.ready:
                self._load_books(local)
            else:
                background.start("ticker-books", self._load_books_when_ready(local))
        self.subscriptions.add_listener(self._durable_changed)
        try:
            await self.subscriptions.reload()
        except Exception:
            log.exception("could not read the durable subscriptions; retrying in the background")
        self.status.install_gauges()
        background.start("ticker-flusher", self._run_flusher())
        background.start("ticker-publisher", self.fanout.run_publisher())
        background.start("ticker-listener", self.fanout.run_listener())
        self._registry_task = background.start("ticker-registry", self.replicas.run())
        background.start(
            "ticker-housekeeping",
            housekeeping(
                self.hub,
                heartbeat_seconds=self._limits.heartbeat_seconds,
                reload_seconds=self._limits.registry_ttl_seconds / 3,
                reload=self._reload_durable,
            ),
        )
        self.status.running = True
        log.info("ticker started", extra={"replica": self.replica})

    async def _load_day_stats(self) -> None:
        """Each instrument's trading day so far (its exchange's day, UTC by default)."""
        now = self._clock.now_ns()
        if self._days is None:
            today = now // NS_PER_DAY * NS_PER_DAY
            for stats in await day_stats(self._database, today):
                self.state.get(stats.instrument_token).load(stats)
            return
        by_start: dict[int, set[int]] = {}
        bounds: dict[int, int] = {}
        for instrument in self._registry.snapshot:
            token = instrument.instrument_token
            start, _end, day = self._days.bounds(token, now)
            by_start.setdefault(start, set()).add(token)
            bounds[token] = day
        for start, tokens in by_start.items():  # one query per distinct day start
            for stats in await day_stats(self._database, start):
                if stats.instrument_token in tokens:
                    token = stats.instrument_token
                    self.state.get(token).load(stats, bounds[token])

    def _load_books(self, local: LocalBooks) -> None:
        for token, book in local.books.items():
            self.state.depth.load(book.snapshot(), token)
            self._owned.add(token)

    async def _load_books_when_ready(self, local: LocalBooks) -> None:
        await local.wait_ready()
        self._load_books(local)

    async def stop(self) -> None:
        """Leave the registry at once rather than when the entry's TTL runs out."""
        self.status.running = False
        if self._registry_task is not None:  # first, so that it cannot register again
            self._registry_task.cancel()
            # Bounded, without taking the caller's own cancellation or the task's outcome.
            await asyncio.wait([self._registry_task], timeout=1.0)
        await self.replicas.deregister()

    async def serve(self, socket: Socket, kind: str) -> None:
        await self.sessions.serve(socket, kind)

    # -- committed changes -> ticks -------------------------------------------------------

    def _on_commit(self, units: list[JournalUnit]) -> None:
        changed = self.state.apply(units)
        if changed:
            self._owned |= changed
            self._dirty |= changed
            self._flush_wake.set()
        local, remote = self.hub.by_account, self.replicas.remote_accounts
        if local or remote:
            wanted = local.keys() | remote
            events = order_events(units, wanted, self._registry.snapshot.get)
            for account, kind, message in events:
                self.hub.push_account(account, message, kind)
            elsewhere = [(a, m) for a, _kind, m in events if a in remote]
            if elsewhere:
                self.fanout.offer_orders(elsewhere)

    async def _run_flusher(self) -> None:
        """Flush when something changed, at most once per interval: a change waits only for
        what is left of the interval since the last flush began (none, when flushes take
        longer than the interval), and changes arriving meanwhile join that flush."""
        interval = self._limits.flush_interval_seconds
        clock = time.monotonic
        last = clock() - interval
        while True:
            await self._flush_wake.wait()
            wait = last + interval - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._flush_wake.clear()
            last = clock()
            self.flush()

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        subscribed, published = self.hub.by_token, self._published
        snapshot, depth = self._registry.snapshot, self.state.depth
        emitted = False
        for token in dirty:
            state = self.state.get(token)
            state.seq += 1
            local, remote = token in subscribed, token in published
            instrument = snapshot.get(token) if local or remote else None
            if instrument is None:
                continue
            full = render(state, instrument, depth)
            if local:
                self.hub.deliver(token, full)
            if remote:
                self.fanout.offer_tick(token, full)
            emitted = True
        self.hub.send_ready()
        if emitted:
            self.status.last_tick_ns = time.time_ns()

    async def snapshots(self, tokens: list[int]) -> dict[int, dict[str, Any]]:
        """The current tick of each instrument (full mode), for a new subscriber."""
        await self.remote.fetch(tokens, self._owned)
        if not self._dirty.isdisjoint(tokens):
            self.flush()  # emit pending changes first: a snapshot's seq then names its state
        snapshot, out = self._registry.snapshot, {}
        for token in tokens:
            instrument = snapshot.get(token)
            if instrument is None:
                continue
            state = self.state.instruments.get(token)
            remote = self.remote.latest.get(token)
            if remote is not None and self.remote.newer(remote, state, self._owned):
                out[token] = remote
            else:
                out[token] = render(state or InstrumentTicks(token), instrument, self.state.depth)
        return out

    # -- other replicas ---------------------------------------------------------------------

    def _remote_ticks(self, ticks: list[dict[str, Any]]) -> None:
        subscribed = self.hub.by_token
        for tick in ticks:
            token = tick.get("instrument_token")
            if not isinstance(token, int):
                continue
            if not self.remote.newer(tick, self.state.instruments.get(token), self._owned):
                continue
            self.remote.latest[token] = tick
            if token in subscribed:
                self.hub.deliver(token, tick)
        self.hub.send_ready()
        self.status.last_tick_ns = time.time_ns()

    def _remote_orders(self, events: list[list[Any]]) -> None:
        for account, message in events:
            if isinstance(account, str) and isinstance(message, dict):
                kind = "fill" if message.get("type") == "fill" else "order"
                self.hub.push_account(account, orjson.dumps(message), kind)

    def _control(self, kind: str, sender: str) -> None:
        if kind == "registry":
            self.replicas.refresh()
        elif kind == "durable":
            self._spawn(self._reload_durable())

    def _redis_connected(self) -> None:
        """(Re)connected to Redis: register again and catch up on durable changes."""
        self.replicas.local_changed()
        self._spawn(self._reload_durable())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_durable(self) -> None:
        try:
            await self.subscriptions.reload()
        except Exception as exc:
            log.warning("could not reload durable subscriptions: %s", type(exc).__name__)

    def _local_interest_changed(self) -> None:
        self.replicas.local_changed()

    def _durable_changed(self, local: bool) -> None:
        if local:
            self.fanout.announce("durable")
        self._wanted_elsewhere_changed()

    def _wanted_elsewhere_changed(self) -> None:
        wanted = set(self.replicas.remote_interest) | set(self.subscriptions.active)
        added = (wanted - self._published) & self._owned
        self._published = wanted
        if added:  # publish their current state now, not at their next trade
            self._dirty |= added
            self._flush_wake.set()

    def health(self) -> dict[str, Any]:
        return self.status.health()
