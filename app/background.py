"""Background tasks owned by the lifespan: started by name, logged if they die, cancelled
in reverse order at shutdown and awaited, within a bound (``BackgroundTasks.stop``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._report)
        self._tasks.append(task)
        return task

    @staticmethod
    def _report(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())

    async def stop(self, timeout: float) -> None:
        """Cancel every task and await them. ``timeout``: the seconds they get together.
        Tasks still running at half of it are named in a warning and cancelled again (one
        may have lost its cancellation: caught, or taken by Python 3.11's
        ``asyncio.wait_for`` as the awaited call completed; redis-py still uses it); any
        still running at the end (one that waits on something uncancellable) are named in an
        error, with where they wait, and left: a shutdown must end."""
        tasks, self._tasks = self._tasks[::-1], []
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        _done, running = await asyncio.wait(tasks, timeout=timeout / 2)
        if running:
            log.warning(
                "background tasks still running %.1f s after they were cancelled, "
                "cancelled again: %s",
                timeout / 2,
                "; ".join(describe(task) for task in running),
            )
            for task in running:
                task.cancel()
            _done, running = await asyncio.wait(running, timeout=timeout / 2)
        if running:
            log.error(
                "background tasks still running %.0f s after they were cancelled, left: %s",
                timeout,
                "; ".join(describe(task) for task in running),
            )
        for task in tasks:
            if task.done() and not task.cancelled():
                with contextlib.suppress(Exception):
                    task.result()  # retrieved: no "exception was never retrieved" later


def describe(task: asyncio.Task[Any]) -> str:
    """A task's name and where it waits (outermost frame first), for a log line."""
    frames = [
        f"{_short(frame.f_code.co_filename)}:{frame.f_lineno} {frame.f_code.co_name}"
        for frame in task.get_stack()
    ]
    return f"{task.get_name()} at {' > '.join(frames) or 'no frame'}"


def _short(path: str) -> str:
    """A source file as its folder and name (``ticker/service.py``)."""
    return "/".join(path.split("/")[-2:])
