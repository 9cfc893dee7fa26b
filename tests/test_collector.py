"""``app.collector``: no older pass runs on its own where books are kept; the full pass runs
when the order path is quiet, young passes ran since the last and the minimum interval is
over, and collects the cyclic garbage that survived a young pass; every pass is timed; each
service's registration is its own, and the last release restores the thresholds."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from app import collector
from app.collector import QuietCollector
from app.metrics import Metrics


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def applied(metrics: Metrics) -> Iterator[collector.PauseTimer]:
    before, callbacks = gc.get_threshold(), list(gc.callbacks)
    timer = collector.apply(metrics.gc_pause_seconds, keeps_books=True)
    try:
        yield timer
    finally:
        collector.release(timer)
        assert gc.get_threshold() == before
        assert gc.callbacks == callbacks


def passes(metrics: Metrics) -> dict[str, float]:
    """Passes timed, by generation."""
    found = {}
    for family in metrics.gc_pause_seconds.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                found[sample.labels["generation"]] = sample.value
    return found


def old_garbage() -> weakref.ref[Node]:
    """A cycle that survives a young pass (into the older generation), then dies."""
    node = Node()
    gc.collect(0)
    return weakref.ref(node)


def test_young_passes_only(applied: collector.PauseTimer) -> None:
    young, older, oldest = gc.get_threshold()
    assert young == collector.YOUNG_THRESHOLD
    assert older > 10**8
    assert oldest > 10**8
    dead = old_garbage()
    count = gc.get_count()[1]
    kept = [[] for _ in range(30 * young)]  # held: ~30 young passes on their own
    assert gc.get_count()[1] >= count + 25  # CPython's own older thresholds are 10 and 10
    assert dead() is not None  # no pass but the young ones ran
    del kept


def test_the_full_pass_waits_for_quiet_and_young_passes(applied: collector.PauseTimer) -> None:
    idle = [0.0]
    quiet = QuietCollector(lambda: idle[0], quiet_seconds=2.0, young_passes=2, min_interval=0)
    dead = old_garbage()
    gc.collect(0)
    gc.collect(0)  # two young passes since the last full one
    assert not quiet.tick()  # busy
    assert dead() is not None
    idle[0] = 2.5
    assert quiet.tick()
    assert dead() is None
    assert not quiet.tick()  # no young pass since


def test_full_passes_keep_their_distance(applied: collector.PauseTimer) -> None:
    quiet = QuietCollector(lambda: 10.0, young_passes=1, min_interval=600)
    gc.collect(0)
    assert quiet.tick()
    gc.collect(0)
    assert not quiet.tick()  # within ten minutes of the last


def test_each_pass_is_timed(applied: collector.PauseTimer, metrics: Metrics) -> None:
    gc.disable()  # only the passes below (explicit ones still call the callbacks)
    try:
        gc.collect(0)
        gc.collect()
        assert passes(metrics) == {"0": 1, "1": 0, "2": 1}
    finally:
        gc.enable()


def test_each_service_has_its_own_registration(metrics: Metrics) -> None:
    before, callbacks = gc.get_threshold(), list(gc.callbacks)
    first = collector.apply(metrics.gc_pause_seconds, keeps_books=True)
    other = Metrics()
    second = collector.apply(other.gc_pause_seconds, keeps_books=True)
    collector.release(first)
    assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD  # the second still runs
    gc.disable()
    try:
        gc.collect(0)
    finally:
        gc.enable()
    assert passes(other)["0"] == 1
    collector.release(second)
    assert gc.get_threshold() == before
    assert gc.callbacks == callbacks
    collector.release(second)  # a second release changes nothing


def test_a_gateway_keeps_cpythons_generations(metrics: Metrics) -> None:
    timer = collector.apply(metrics.gc_pause_seconds, keeps_books=False)
    try:
        young, older, oldest = gc.get_threshold()
        assert young > collector.YOUNG_THRESHOLD
        assert older < 10**8
        assert oldest < 10**8
    finally:
        collector.release(timer)
