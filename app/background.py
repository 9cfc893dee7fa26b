"""Background tasks owned by the lifespan: started by name, logged if they die, cancelled
and awaited in reverse order at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

_RECANCEL_SECONDS = 1.0  # see ``BackgroundTasks.stop``


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

    async def stop(self, timeout: float | None = None) -> None:
        """Cancel every task and await them, in reverse order of start. A task still running
        a second after its cancellation (one that lost it: caught, or taken by Python 3.11's
        ``asyncio.wait_for`` as the awaited call completed) is cancelled again. ``timeout``:
        the seconds all of them get together; a task still running then (one that waits on
        something uncancellable) is logged with where it waits, and left: a shutdown must
        end."""
        tasks, self._tasks = self._tasks[::-1], []
        for task in tasks:
            task.cancel()
        loop = asyncio.get_running_loop()
        deadline = math.inf if timeout is None else loop.time() + timeout
        for task in tasks:
            while not task.done() and (left := deadline - loop.time()) > 0:
                await asyncio.wait([task], timeout=min(_RECANCEL_SECONDS, left))
                if not task.done():
                    task.cancel()
        running = [task for task in tasks if not task.done()]
        if running:
            log.error(
                "background tasks still running %.0f s after they were cancelled: %s",
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
        f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno} {frame.f_code.co_name}"
        for frame in task.get_stack()
    ]
    return f"{task.get_name()} at {' > '.join(frames) or 'no frame'}"
