"""The dispatcher: claims due outbox messages, signs and POSTs them, records every attempt.

It runs as one background task per process. It wakes when a journal commit wrote outbox rows
(``wake``), when a delivery finishes (so an order's next event follows at once), and every
``poll_seconds`` (retries coming due, rows written by other replicas). Deliveries run as
tasks under an overall and a per-endpoint concurrency limit; a hanging receiver holds at
most its endpoint's slots until the timeouts, and never the order path, which only ever
inserts rows. 2xx is delivered; 410 disables the endpoint (its messages wait, pending, until
it is enabled again); anything else is retried with exponential backoff and full jitter
until the retry horizon, then the message is ``failed`` (visible in the delivery log, and
retriable by hand). Delivery is at least once: a crash between the POST and its record
repeats the POST, with the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import RetryCallState, Retrying, wait_random_exponential

from app.metrics import Metrics
from app.services.webhooks import claims
from app.services.webhooks.claims import Claimed, Outcome
from app.services.webhooks.delivery import Sender
from app.services.webhooks.outbox import OutboxWriter
from app.services.webhooks.ssrf import TargetPolicy
from app.store.database import Database
from app.store.webhooks import DELIVERED, FAILED, PENDING

log = logging.getLogger(__name__)

_RETRYING = Retrying()
_ROUTES_REFRESH_SECONDS = 5.0  # endpoint changes made on other replicas
_PURGE_SECONDS = 600.0
_MIN_CYCLE_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    concurrency: int = 64
    endpoint_concurrency: int = 4
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retry_initial_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    poll_seconds: float = 1.0
    retention_seconds: float = 7 * 86400.0


def backoff_seconds(wait: Any, attempt_number: int) -> float:
    """tenacity's wait strategy for the ``attempt_number``-th failure, used to plan a row."""
    state = RetryCallState(retry_object=_RETRYING, fn=None, args=(), kwargs={})
    state.attempt_number = attempt_number
    return float(wait(state))


class Dispatcher:
    def __init__(
        self,
        *,
        database: Database,
        outbox: OutboxWriter,
        metrics: Metrics,
        policy: TargetPolicy,
        config: DispatchConfig,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._database = database
        self._outbox = outbox
        self._metrics = metrics
        self.config = config
        self._clock = clock
        self._wait = wait_random_exponential(
            multiplier=config.retry_initial_seconds,
            max=config.retry_max_seconds,
            min=config.retry_initial_seconds,
        )
        self._wakeup = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._per_endpoint: Counter[str] = Counter()
        self._done: list[Outcome] = []
        self._sender = Sender(
            metrics=metrics,
            policy=policy,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            endpoint_connections=config.endpoint_concurrency,
            clock=clock,
        )
        # Outlives any attempt; the lease of a dispatcher that died simply expires.
        self.lease_ns = int((2 * self._sender.attempt_timeout + 5) * 1e9)
        self._last_cycle = time.monotonic()
        self._next_stats = self._next_routes = self._next_purge = self._next_expand = 0.0
        self._expand_now = False
        self._stopped = False
        self.backlog = 0
        self.oldest_pending_ns: int | None = None
        self.last_error: str | None = None

    # --- control ------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wakeup.set()

    def batches_written(self) -> None:
        """A local commit queued messages: expand them and deliver, now."""
        self._expand_now = True
        self._wakeup.set()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def health(self) -> dict[str, Any]:
        """``ok`` while the loop turns; ``stalled``/``stopped`` when it does not (which is
        our fault). A receiver that is down only grows the backlog: that is the endpoint
        owner's problem, shown here and in the metrics, not a reason to degrade health."""
        stalled = time.monotonic() - self._last_cycle > max(30.0, 10 * self.config.poll_seconds)
        status = "stopped" if self._stopped else "stalled" if stalled else "ok"
        oldest = self.oldest_pending_ns
        return {
            "status": status,
            "backlog": self.backlog,
            "oldest_pending_age_seconds": (
                0.0 if oldest is None else round(max(0, self._clock() - oldest) / 1e9, 3)
            ),
            "in_flight": self.in_flight,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        try:
            if self._database.is_sqlite:
                await claims.clear_leases(self._database)
            while True:
                self._wakeup.clear()
                started = time.monotonic()
                try:
                    await self.cycle()
                except Exception as exc:  # the database hiccuped: keep the loop alive
                    error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    if error != self.last_error:
                        log.warning("webhook dispatcher cycle failed: %s", error)
                    self.last_error = error
                else:
                    self._last_cycle = time.monotonic()
                    self.last_error = None
                try:
                    async with asyncio.timeout(self.config.poll_seconds):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
                else:  # woken: let a few more completions and commits gather first
                    await asyncio.sleep(max(0.0, started + _MIN_CYCLE_SECONDS - time.monotonic()))
        finally:
            self._stopped = True
            await self._shutdown()

    async def cycle(self) -> None:
        await self._flush()
        await self._housekeeping()
        limit = self.config.endpoint_concurrency
        busy = {endpoint for endpoint, n in self._per_endpoint.items() if n >= limit}
        endpoints = self._outbox.endpoint_ids()
        # Every endpoint at its limit (say, hanging): nothing could be sent now, so neither
        # expand new batches (they wait, counted in the backlog, until a slot frees) nor
        # query for due messages on every commit.
        saturated = bool(endpoints) and not endpoints - busy
        now_mono = time.monotonic()
        if not saturated and (self._expand_now or now_mono >= self._next_expand):
            self._next_expand = now_mono + self.config.poll_seconds
            # A bounded catch-up per cycle, so deliveries go on meanwhile.
            added, self._expand_now = await claims.expand(self._database, rounds=4)
            self._metrics.webhook_outbox_rows.inc(added)
            if self._expand_now:
                self._wakeup.set()
        free = self.config.concurrency - len(self._inflight)
        if free <= 0 or saturated:
            return
        counts = Counter(self._per_endpoint)
        taken = 0

        def accept(endpoint_id: str) -> bool:
            nonlocal taken
            if taken >= free or counts[endpoint_id] >= limit:
                return False
            counts[endpoint_id] += 1
            taken += 1
            return True

        now = self._clock()
        claimed = await claims.claim(
            self._database,
            now=now,
            lease_until=now + self.lease_ns,
            fetch=min(2 * free, 500),
            exclude=busy,
            accept=accept,
        )
        for item in claimed:
            self._per_endpoint[item.endpoint_id] += 1
            self._inflight[item.id] = asyncio.create_task(
                self._deliver(item), name=f"webhook-{item.message_id}"
            )

    async def _deliver(self, item: Claimed) -> None:
        try:
            outcome = await self.attempt(item)
            # Appended after the await: ``_flush`` may have swapped the list meanwhile.
            self._done.append(outcome)
        finally:
            self._inflight.pop(item.id, None)
            self._per_endpoint[item.endpoint_id] -= 1
            if self._per_endpoint[item.endpoint_id] <= 0:
                del self._per_endpoint[item.endpoint_id]
            self._wakeup.set()

    async def _flush(self) -> None:
        if not self._done:
            return
        done, self._done = self._done, []
        try:
            await self.record(done)
        except BaseException:
            self._done[:0] = done  # kept for the next cycle; the leases keep them ours
            raise

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_routes:
            self._next_routes = now + _ROUTES_REFRESH_SECONDS
            await self._outbox.refresh()
            await self._sender.prune()
        if now >= self._next_stats:
            self._next_stats = now + min(max(self.config.poll_seconds, 1.0), 5.0)
            self.backlog, self.oldest_pending_ns = await claims.backlog(self._database)
            self._metrics.webhook_outbox_backlog.set(self.backlog)
            oldest = self.oldest_pending_ns
            age = 0.0 if oldest is None else max(0, self._clock() - oldest) / 1e9
            self._metrics.webhook_outbox_oldest_age.set(age)
        if now >= self._next_purge:
            self._next_purge = now + _PURGE_SECONDS
            cutoff = self._clock() - int(self.config.retention_seconds * 1e9)
            await claims.purge(self._database, before_ns=cutoff)

    async def _shutdown(self) -> None:
        tasks = list(self._inflight.values())
        interrupted = list(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._flush()
            await claims.release(self._database, interrupted)
        except Exception as exc:  # their leases expire instead
            log.warning("could not release webhook leases at shutdown: %s", type(exc).__name__)
        await self._sender.aclose()

    async def attempt(self, item: Claimed) -> Outcome:
        return await self._sender.attempt(item, self._render)

    def _render(self, item: Claimed) -> bytes:
        return self._outbox.render(item.event_type, item.created_ns, item.payload)

    async def record(self, outcomes: list[Outcome], *, final: bool = False) -> None:
        """Decide each outcome (delivered, retry at, failed) and store it with its attempt.
        ``final``: no retry (a test message)."""
        now = self._clock()
        disable: set[str] = set()
        counted: list[str] = []
        for outcome in outcomes:
            code = outcome.status_code
            if code is not None and 200 <= code < 300:
                outcome.status = DELIVERED
                counted.append("delivered")
                continue
            if code == 410:
                disable.add(outcome.claimed.endpoint_id)
                counted.append("endpoint_disabled")
            deadline = outcome.claimed.deadline_ns
            if final or now >= deadline:
                outcome.status = FAILED
                outcome.next_attempt_ns = now
                counted.append("failed")
                continue
            delay = backoff_seconds(self._wait, outcome.claimed.attempt_count + 1)
            outcome.status = PENDING
            outcome.next_attempt_ns = min(now + int(delay * 1e9), deadline)
            if code != 410:
                counted.append("retrying")
        if disable:
            # Before the commit that disables them: while it is on its way, this process may
            # answer that they are disabled and commit orders, which must not route to them.
            self._outbox.stop_routing(disable)
        try:
            await claims.record(self._database, outcomes, disable=disable)
        except BaseException:
            if disable:  # still enabled: route to them again
                await self._outbox.refresh()
            raise
        for label in counted:  # once stored (a failed write is recorded again later)
            self._metrics.webhook_deliveries.labels(outcome=label).inc()
        if disable:
            log.warning("webhook endpoints disabled (receiver answered 410): %s", sorted(disable))
            await self._outbox.refresh()
