"""Prometheus metrics, one registry per app instance (so tests can build many apps).

Every metric the service exports is declared here, so ``alerts.yaml`` and dashboards have
one place to check names against.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

# The HTTP series keep the names, labels, help texts and buckets that
# prometheus-fastapi-instrumentator's default set had: alerts and dashboards read them.
_LATENCY_HIGHR_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5),
    *(7.5, 10, 30, 60, float("inf")),
)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # process_* (resident memory, CPU, open fds): the default registry has them, ours
        # must add them; alerts.yaml's HighMemoryUsage reads process_resident_memory_bytes.
        ProcessCollector(registry=r)
        self.build_info = Gauge(
            "ticker_build_info",
            "Build information; the value is always 1",
            ["version", "environment", "database", "python"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "ticker_dependency_up",
            "1 when the dependency answered its last health check",
            ["dependency"],
            registry=r,
        )
        self.http = HttpMetrics(r)
        self.auth_failures = Counter(
            "ticker_auth_failures_total",
            "Requests refused by authentication or authorisation",
            ["reason"],
            registry=r,
        )
        self.api_keys = Gauge("ticker_api_keys", "API keys currently accepted", registry=r)
        self.api_key_file_errors = Gauge(
            "ticker_api_key_file_errors",
            "Key files skipped at the last reload (malformed, unreadable or duplicate)",
            registry=r,
        )
        self.instruments_cached = Gauge(
            "ticker_instruments_cached", "Instruments in the registry snapshot", registry=r
        )
        self.registry_refresh_seconds = Histogram(
            "ticker_registry_refresh_seconds",
            "Duration of instrument registry refreshes",
            registry=r,
        )
        self.registry_refresh_failures = Counter(
            "ticker_registry_refresh_failures_total",
            "Instrument registry refreshes that failed",
            registry=r,
        )
        self.registry_age_seconds = Gauge(
            "ticker_registry_age_seconds",
            "Seconds since the registry snapshot was last loaded",
            registry=r,
        )
        self.journal_commit_seconds = Histogram(
            "ticker_journal_commit_seconds",
            "Duration of one journal group commit",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.journal_group_size = Histogram(
            "ticker_journal_group_size",
            "Requests committed together in one journal transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        # Each pass of the cyclic garbage collector stops the loop (``app.collector``).
        self.gc_pause_seconds = LoopMetric(
            "histogram",
            "ticker_gc_pause_seconds",
            "Pauses of the cyclic garbage collector, by generation (2: a full pass)",
            ["generation"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.journal_failures = Counter(
            "ticker_journal_failures_total", "Journal commits that failed", registry=r
        )
        # Updated per order request: loop metrics (no lock per update, see ``LoopMetric``).
        self.orders = LoopMetric(
            "counter",
            "ticker_orders_total",
            "Orders by outcome (accepted/rejected) and reject code",
            ["outcome", "code"],
            registry=r,
        )
        self.fills = Counter("ticker_fills_total", "Trades matched and journaled", registry=r)
        self.batch_size = LoopMetric(
            "histogram",
            "ticker_batch_orders",
            "Orders per batch request",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500),
            registry=r,
        )
        self.order_ack_seconds = LoopMetric(
            "histogram",
            "ticker_order_ack_seconds",
            "From request parsed to durable acknowledgement, per batch or single order",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.halts = Counter(
            "ticker_instrument_halts_total",
            "Instruments halted, by cause (circuit_breaker/admin)",
            ["cause"],
            registry=r,
        )
        self.orders_ended = Counter(
            "ticker_orders_ended_total",
            "Orders ended by the trading day, by reason (DAY_EXPIRED/INSTRUMENT_EXPIRED)",
            ["reason"],
            registry=r,
        )
        # Ticker: scope="replica" counts this process, scope="cluster" every live replica
        # registered in Redis (this one included).
        self.ws_connections = Gauge(
            "ticker_ws_connections",
            "Open WebSocket connections (ticker and order streams)",
            ["scope"],
            registry=r,
        )
        self.ticker_subscriptions = Gauge(
            "ticker_subscriptions",
            "Instrument subscriptions of WebSocket clients (connection x instrument)",
            ["scope"],
            registry=r,
        )
        self.ticks_sent = Counter(
            "ticker_ticks_sent_total", "Ticks delivered to WebSocket clients", registry=r
        )
        self.ws_frames_sent = Counter(
            "ticker_ws_frames_sent_total",
            "WebSocket frames sent (a frame may carry several ticks)",
            registry=r,
        )
        self.ws_slow_disconnects = Counter(
            "ticker_ws_slow_disconnects_total",
            "WebSocket clients closed with 1013 for staying behind",
            registry=r,
        )
        self.ws_messages = Counter(
            "ticker_ws_messages_total",
            "WebSocket messages by direction (in/out) and type (ticks excluded from out)",
            ["direction", "type"],
            registry=r,
        )
        self.ws_cancel_on_disconnect = Counter(
            "ticker_ws_cancel_on_disconnect_total",
            "Orders cancelled because an order stream with cancel_on_disconnect dropped",
            registry=r,
        )
        self.ticker_fanout_errors = Counter(
            "ticker_fanout_errors_total",
            "Redis operations of the ticker that failed (publish/listen/registry)",
            ["operation"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "ticker_webhook_deliveries_total",
            "Webhook delivery attempts by outcome (delivered/retrying/failed/endpoint_disabled)",
            ["outcome"],
            registry=r,
        )
        self.webhook_delivery_seconds = Histogram(
            "ticker_webhook_delivery_seconds",
            "Duration of one webhook delivery attempt (connect to response status)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.webhook_outbox_backlog = Gauge(
            "ticker_webhook_outbox_backlog",
            "Webhook messages not yet delivered (pending, to enabled endpoints)",
            registry=r,
        )
        self.webhook_outbox_oldest_age = Gauge(
            "ticker_webhook_outbox_oldest_age_seconds",
            "Age of the oldest pending webhook message (0 when none)",
            registry=r,
        )
        self.webhook_outbox_rows = Counter(
            "ticker_webhook_outbox_rows_total",
            "Webhook messages written to the outbox (one per event per endpoint)",
            registry=r,
        )


class HttpMetrics:
    """``http_requests_total{method,status,handler}`` and its companions, recorded by
    ``observe``: from the instrumentator's hook for the FastAPI routes, directly by the order
    routes' lean path. Loop metrics, their label children cached per route: five updates per
    request, on the order path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = LoopMetric(
            "counter",
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=r,
        )
        self.request_size = LoopMetric(
            "summary",
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ["handler"],
            registry=r,
        )
        self.response_size = LoopMetric(
            "summary",
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ["handler"],
            registry=r,
        )
        self.latency_highr = LoopMetric(
            "histogram",
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate "
            "percentile calculations. ",
            buckets=_LATENCY_HIGHR_BUCKETS,
            registry=r,
        )
        self.latency = LoopMetric(
            "histogram",
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation "
            "by handler is important. ",
            ["method", "handler"],
            buckets=(0.1, 0.5, 1, float("inf")),
            registry=r,
        )
        self._by_route: dict[tuple[str, str, str], tuple[LoopChild, LoopChild]] = {}
        self._by_handler: dict[str, tuple[LoopChild, LoopChild]] = {}

    def observe(
        self,
        method: str,
        status: str,
        handler: str,
        *,
        request_bytes: int,
        response_bytes: int,
        seconds: float,
    ) -> None:
        route = self._by_route.get((method, status, handler))
        if route is None:
            route = (
                self.requests.labels(method, status, handler),
                self.latency.labels(method, handler),
            )
            self._by_route[(method, status, handler)] = route
        sizes = self._by_handler.get(handler)
        if sizes is None:
            sizes = (self.request_size.labels(handler), self.response_size.labels(handler))
            self._by_handler[handler] = sizes
        route[0].inc()
        route[1].observe(seconds)
        sizes[0].observe(request_bytes)
        sizes[1].observe(response_bytes)
        self.latency_highr.observe(seconds)


class LoopChild:
    """One label set's numbers: a counter's value (``count``), or a histogram's or summary's
    observation count, sum and (histogram) per-bucket counts."""

    __slots__ = ("bounds", "buckets", "count", "created", "labels", "sum")

    def __init__(self, labels: tuple[str, ...], bounds: tuple[float, ...]) -> None:
        self.labels = labels
        self.bounds = bounds
        self.buckets = [0] * len(bounds)
        self.count = 0.0
        self.sum = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.count += amount

    def observe(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if self.bounds:
            self.buckets[bisect_left(self.bounds, value)] += 1


class LoopMetric:
    """A counter, histogram or summary updated from the event loop's thread alone (or, for
    the garbage collector's pauses, from whichever thread a pass runs in: CPython runs one
    pass at a time).

    prometheus_client's metrics take a lock on every update (a histogram's ``observe`` takes
    two), ~0.5 us each with the call around it; one single order made 14 of them (issue 17).
    A loop metric keeps plain numbers per label set (``LoopChild``) and builds, when scraped,
    the same families as prometheus_client's metric of that kind: name, help, labels,
    buckets (with ``+Inf``), ``_count``, ``_sum`` and ``_created``. A scrape in another
    thread reads numbers the loop may be updating: no value is torn (the GIL holds each
    update whole), a scrape may only see an observation in the count before its sum."""

    def __init__(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float] = (),
        registry: CollectorRegistry,
    ) -> None:
        if kind not in ("counter", "histogram", "summary"):
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.name = name.removesuffix("_total") if kind == "counter" else name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        bounds = tuple(float(b) for b in buckets) if kind == "histogram" else ()
        if kind == "histogram" and (not bounds or bounds[-1] != math.inf):
            bounds += (math.inf,)
        self._bounds = bounds
        self._le = [_go_float(b) for b in bounds]
        # By the label values as given and as text (``labels(200)`` is ``labels("200")``).
        self._children: dict[tuple[object, ...], LoopChild] = {}
        registry.register(self)

    def labels(self, *values: object, **named: object) -> LoopChild:
        key = tuple(named[n] for n in self.labelnames) if named else values
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
            text = tuple(str(v) for v in key)
            child = self._children.get(text) or LoopChild(text, self._bounds)
            self._children[key] = self._children[text] = child
        return child

    def inc(self, amount: float = 1) -> None:
        self.labels().inc(amount)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        children = {child.labels: child for child in list(self._children.values())}
        for labels, child in children.items():
            if isinstance(family, CounterMetricFamily):
                family.add_metric(labels, child.count, created=child.created)
                continue
            if isinstance(family, HistogramMetricFamily):
                total, cumulative = 0, []
                for le, count in zip(self._le, list(child.buckets), strict=True):
                    total += count
                    cumulative.append((le, float(total)))
                family.add_metric(labels, cumulative, child.sum)
            elif isinstance(family, SummaryMetricFamily):
                family.add_metric(labels, int(child.count), child.sum)
            created = dict(zip(self.labelnames, labels, strict=True))
            family.samples.append(Sample(f"{self.name}_created", created, child.created))
        yield family

    def _family(self) -> Metric:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        if self.kind == "histogram":
            return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        return SummaryMetricFamily(self.name, self.documentation, labels=self.labelnames)


# A bucket bound as prometheus_client writes it in ``le`` ("0.1", "1.0", "+Inf").
_go_float = cast(Callable[[float], str], floatToGoString)
