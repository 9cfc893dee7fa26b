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


async def _loses_one_cancellation() -> None:
    """What Python 3.11's ``asyncio.wait_for`` does when the cancellation comes as the
    awaited call completes: it returns, and the loop around it goes on."""
    lost = False
    while True:
        try:
            await asyncio.sleep(3600 if not lost else 0.01)
        except asyncio.CancelledError:
            if lost:
                raise
            lost = True


async def test_a_task_that_lost_its_cancellation_is_cancelled_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    task = tasks.start("loop", _loses_one_cancellation())
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="app.background"):
        await tasks.stop(timeout=1)
    assert time.monotonic() - started < 1
    assert task.cancelled()
    (again,) = caplog.records
    assert again.levelno == logging.WARNING
    assert "cancelled again: loop at tests/test_background.py:" in again.getMessage()


async def test_a_task_that_does_not_end_is_logged_with_where_it_waits_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    released = asyncio.Event()
    stubborn = tasks.start("stubborn", _stubborn(released))
    tasks.start("polite", asyncio.sleep(3600))
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="app.background"):
        await tasks.stop(timeout=1)
    assert time.monotonic() - started < 2
    again, left = caplog.records
    assert again.levelno == logging.WARNING
    assert "cancelled again: stubborn at tests/test_background.py:" in again.getMessage()
    assert left.levelno == logging.ERROR
    assert "left: stubborn at tests/test_background.py:" in left.getMessage()
    assert "_stubborn" in left.getMessage()
    assert "polite" not in again.getMessage() + left.getMessage()  # it ended when cancelled
    released.set()
    await stubborn


async def test_one_task_that_does_not_end_does_not_keep_the_others_from_ending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks()
    released = asyncio.Event()
    stubborn = tasks.start("stubborn", _stubborn(released))  # stopped last
    losing = tasks.start("losing", _loses_one_cancellation())
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="app.background"):
        await tasks.stop(timeout=1)
    assert losing.cancelled()
    assert "losing" not in caplog.records[-1].getMessage()
    released.set()
    await stubborn


async def test_clean_up_after_the_cancellation_is_not_cut_short_within_half_the_bound() -> None:
    """A task's own clean-up (the webhook dispatcher gives its leases back) runs to its end
    when it takes less than half of the stop's bound."""
    tasks = BackgroundTasks()
    cleaned = False

    async def work() -> None:
        nonlocal cleaned
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.3)
            cleaned = True

    tasks.start("worker", work())
    await asyncio.sleep(0)
    await tasks.stop(timeout=1)
    assert cleaned


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
    assert text.startswith("sleeper at tests/test_background.py:")
    assert "_stubborn" in text
    released.set()
    await task
