"""Sending to a socket without a task per connection.

An ASGI ``send`` almost always completes without suspending (the server writes the frame to
the transport at once); it suspends only when the transport's buffer is full, i.e. when the
client reads too slowly. ``start`` therefore runs the send coroutine in place up to its first
suspension: done means sent, synchronously, for the cost of a function call. Only a send that
does suspend is handed to a task (``finish``), which drives the same coroutine on to the end,
exactly as ``await`` would have. Fanning a tick out to thousands of clients thus costs no task
switch per client, and a slow client occupies one task, not the sender loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

Send = Callable[[bytes], Awaitable[None]]
Suspended = tuple[Coroutine[Any, Any, None], Any]


def start(send: Send, frame: bytes) -> Suspended | None:
    """Run ``send(frame)`` until it completes (None) or suspends (the coroutine and what it
    is waiting for). Exceptions of the send propagate."""
    coro = send(frame)
    if not isinstance(coro, Coroutine):  # an awaitable of another kind: await it properly
        return _wrap(coro), None
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return coro, waiting


async def _wrap(awaitable: Awaitable[None]) -> None:
    await awaitable


async def finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive a coroutine suspended by ``start`` to completion (inside a task). Cancelling the
    task cancels what the coroutine waits for and throws the cancellation into it."""
    while True:
        error: BaseException | None = None
        try:
            if waiting is None:  # a bare yield (asyncio.sleep(0)): give way once
                await asyncio.sleep(0)
            else:
                # What a Task does with a future yielded to it: clear the flag the inner
                # ``await`` set, then wait for it (here by awaiting it ourselves).
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # handed to the coroutine, which decides
            error = exc
        try:
            waiting = coro.send(None) if error is None else coro.throw(error)
        except StopIteration:
            return
