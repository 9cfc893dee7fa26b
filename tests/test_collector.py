"""``app.collector``: no older pass runs on its own once applied; the full pass runs when the
order path is quiet and young passes ran since the last, and collects the cyclic garbage
that survived a young pass."""

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
def applied(metrics: Metrics) -> Iterator[None]:
    before, callbacks = gc.get_threshold(), list(gc.callbacks)
    collector.apply(metrics.gc_pause_seconds)
    try:
        yield
    finally:
        collector.release()
        assert gc.get_threshold() == before
        assert gc.callbacks == callbacks


def pauses(metrics: Metrics) -> dict[str, float]:
    """Passes observed by generation."""
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


def test_young_passes_only(applied: None) -> None:
    young, older, oldest = gc.get_threshold()
    assert young == collector.YOUNG_THRESHOLD
    assert older > 10**8
    assert oldest > 10**8
    dead = old_garbage()
    passes = gc.get_count()[1]
    kept = [[] for _ in range(30 * young)]  # held: ~30 young passes on their own
    assert gc.get_count()[1] >= passes + 25  # CPython's older thresholds are 10 and 20
    assert dead() is not None  # no pass but the young ones ran
    del kept


def test_the_full_pass_waits_for_quiet_and_young_passes(applied: None) -> None:
    idle = [0.0]
    quiet = QuietCollector(lambda: idle[0], quiet_seconds=2.0, young_passes=2)
    dead = old_garbage()
    gc.collect(0)
    gc.collect(0)  # two young passes since the last full one
    assert not quiet.tick()  # busy
    assert dead() is not None
    idle[0] = 2.5
    assert quiet.tick()
    assert dead() is None
    assert not quiet.tick()  # no young pass since


def test_each_pass_is_timed(applied: None, metrics: Metrics) -> None:
    gc.collect(0)
    gc.collect()
    assert pauses(metrics) == {"0": 1, "1": 0, "2": 1}
    collector.apply(metrics.gc_pause_seconds)  # applied again: still one timer
    gc.collect(0)
    assert pauses(metrics)["0"] == 2


def test_release_lets_older_passes_run_again(applied: None) -> None:
    collector.release()
    assert gc.get_threshold()[1] < 10**8
    collector.release()  # a second release changes nothing
