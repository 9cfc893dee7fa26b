"""Prometheus metrics, one registry per app instance (so tests can build many apps).

Every metric the service exports is declared here, so ``alerts.yaml`` and dashboards have
one place to check names against.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    Summary,
)

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
        self.journal_failures = Counter(
            "ticker_journal_failures_total", "Journal commits that failed", registry=r
        )
        self.orders = Counter(
            "ticker_orders_total",
            "Orders by outcome (accepted/rejected) and reject code",
            ["outcome", "code"],
            registry=r,
        )
        self.fills = Counter("ticker_fills_total", "Trades matched and journaled", registry=r)
        self.batch_size = Histogram(
            "ticker_batch_orders",
            "Orders per batch request",
            buckets=(1, 5, 10, 25, 50, 100, 250, 500),
            registry=r,
        )
        self.order_ack_seconds = Histogram(
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
    routes' lean path. Label children are cached: ``labels()`` takes a lock and a dict
    lookup per metric, which adds up on the order path."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=r,
        )
        self.request_size = Summary(
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ["handler"],
            registry=r,
        )
        self.response_size = Summary(
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is "
            "respected. Otherwise ignored. No percentile calculated. ",
            ["handler"],
            registry=r,
        )
        self.latency_highr = Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate "
            "percentile calculations. ",
            buckets=_LATENCY_HIGHR_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation "
            "by handler is important. ",
            ["method", "handler"],
            buckets=(0.1, 0.5, 1, float("inf")),
            registry=r,
        )
        self._by_route: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._by_handler: dict[str, tuple[Summary, Summary]] = {}

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
