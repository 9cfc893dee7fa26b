"""``app.metrics``: a loop metric scrapes exactly as prometheus_client's metric of its kind."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, generate_latest

from app.metrics import LoopMetric, Metrics


def exposition(registry: CollectorRegistry) -> str:
    """The text format with the ``_created`` timestamps blanked (they differ by creation)."""
    return re.sub(r"(_created(?:\{[^}]*\})?) \S+", r"\1 T", generate_latest(registry).decode())


def test_loop_metrics_scrape_as_prometheus_client_metrics() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("c_total", "a counter", ["method", "status"], registry=theirs)
    histogram = Histogram("h_seconds", "a histogram", ["route"], buckets=(0.1, 1), registry=theirs)
    summary = Summary("s_bytes", "a summary", ["route"], registry=theirs)
    bare = Histogram("b_seconds", "no labels", buckets=(0.5, 2, float("inf")), registry=theirs)
    loop_counter = LoopMetric(
        "counter", "c_total", "a counter", ["method", "status"], registry=ours
    )
    loop_histogram = LoopMetric(
        "histogram", "h_seconds", "a histogram", ["route"], buckets=(0.1, 1), registry=ours
    )
    loop_summary = LoopMetric("summary", "s_bytes", "a summary", ["route"], registry=ours)
    loop_bare = LoopMetric(
        "histogram", "b_seconds", "no labels", buckets=(0.5, 2, float("inf")), registry=ours
    )
    for value in (0.05, 0.1, 0.7, 3.0, 12.5):
        histogram.labels("/orders").observe(value)
        loop_histogram.labels("/orders").observe(value)
        bare.observe(value)
        loop_bare.observe(value)
    histogram.labels("/other").observe(1)
    loop_histogram.labels(route="/other").observe(1)
    counter.labels("POST", "201").inc()
    counter.labels(method="POST", status=201).inc(2)  # an int label is its text
    loop_counter.labels("POST", "201").inc()
    loop_counter.labels(method="POST", status=201).inc(2)
    counter.labels("GET", "200")  # a child with nothing recorded is scraped too
    loop_counter.labels("GET", "200")
    summary.labels("/orders").observe(120)
    loop_summary.labels("/orders").observe(120)

    assert exposition(ours) == exposition(theirs)
    assert ours.get_sample_value("c_total", {"method": "POST", "status": "201"}) == 3
    assert ours.get_sample_value("h_seconds_bucket", {"route": "/orders", "le": "1.0"}) == 3
    assert ours.get_sample_value("b_seconds_sum") == pytest.approx(16.35)


def test_loop_metrics_refuse_what_prometheus_client_refuses() -> None:
    registry = CollectorRegistry()
    counter = LoopMetric("counter", "c_total", "a counter", ["outcome"], registry=registry)
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("accepted").inc(-1)
    with pytest.raises(ValueError, match="expected labels"):
        counter.labels("accepted", "extra")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        LoopMetric("counter", "c_total", "the same name again", registry=registry)


def test_the_order_paths_series_keep_their_names() -> None:
    """What alerts and dashboards read: the HTTP series and the order counters."""
    metrics = Metrics()
    metrics.http.observe(
        "POST", "201", "/orders", request_bytes=120, response_bytes=300, seconds=0.004
    )
    metrics.orders.labels(outcome="accepted", code="").inc()
    metrics.batch_size.observe(1)
    metrics.order_ack_seconds.observe(0.002)
    sample = metrics.registry.get_sample_value
    assert sample("http_requests_total", {"method": "POST", "status": "201", "handler": "/orders"})
    assert sample("http_request_duration_seconds_count", {"method": "POST", "handler": "/orders"})
    assert sample("http_request_duration_highr_seconds_count") == 1
    assert sample("http_request_size_bytes_sum", {"handler": "/orders"}) == 120
    assert sample("http_response_size_bytes_sum", {"handler": "/orders"}) == 300
    assert sample("ticker_orders_total", {"outcome": "accepted", "code": ""}) == 1
    assert sample("ticker_batch_orders_bucket", {"le": "1.0"}) == 1
    assert sample("ticker_order_ack_seconds_bucket", {"le": "0.0025"}) == 1
