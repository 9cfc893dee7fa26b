"""The lifespan's background tasks: stopped in reverse order, and a stop that ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from app.background import BackgroundTasks, describe


async def _stubborn(released: asyncio.Event) -> None:
    """A task that takes no cancellation until ``released`` is set."""
    while not released.is_set():
        with contextlib.suppress(asyncio.CancelledError):
            await released.wait()


async def test_stop_cancels_every_task_latest_first() -> None:
    tasks = BackgroundTasks()
    stopped: list[str] = []

    async def work(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.append(name)

    tasks.start("first", work("first"))
    tasks.start("second", work("second"))
    await asyncio.sleep(0)
    await tasks.stop(timeout=5)
    assert stopped == ["second", "first"]


async def test_a_task_that_lost_its_cancellation_is_cancelled_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What Python 3.11's ``asyncio.wait_for`` does when the cancellation comes as the
    awaited call completes: it returns, and the loop around it goes on."""
    tasks = BackgroundTasks()
    laps = 0

    async def loop() -> None:
        nonlocal laps
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                if laps == 0:
                    await asyncio.sleep(3600)
            laps += 1
            await asyncio.sleep(0.01)

    task = tasks.start("loop", loop())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="app.background"):
        await tasks.stop(timeout=5)
    assert task.cancelled()
    assert laps >= 1  # it went on after the first cancellation
    assert not caplog.records


async def test_a_task_that_does_not_end_is_logged_with_where_it_waits_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    released = asyncio.Event()
    stubborn = tasks.start("stubborn", _stubborn(released))
    tasks.start("polite", asyncio.sleep(3600))
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="app.background"):
        await tasks.stop(timeout=1.5)  # one cancellation more after a second
    assert time.monotonic() - started < 3
    (record,) = [r for r in caplog.records if "still running" in r.getMessage()]
    assert "stubborn at test_background.py:" in record.getMessage()
    assert "_stubborn" in record.getMessage()
    assert "polite" not in record.getMessage()  # it ended when cancelled
    released.set()
    await stubborn


async def test_a_task_that_failed_before_the_stop_does_not_stop_it() -> None:
    tasks = BackgroundTasks()

    async def fail() -> None:
        raise RuntimeError("boom")

    failed = tasks.start("failing", fail())
    await asyncio.sleep(0)
    await tasks.stop(timeout=1)
    assert isinstance(failed.exception(), RuntimeError)


async def test_describe_names_the_task_and_its_frames() -> None:
    released = asyncio.Event()
    task = asyncio.create_task(_stubborn(released), name="sleeper")
    await asyncio.sleep(0)
    text = describe(task)
    assert text.startswith("sleeper at test_background.py:")
    assert "_stubborn" in text
    released.set()
    await task
