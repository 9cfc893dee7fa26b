"""The official ``kiteconnect`` client against a live server: helpers shared by the Kite tests.

The client is synchronous (``requests``) and the server runs in the test's event loop, so
every call goes through ``call`` (a worker thread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from kiteconnect import KiteConnect

from app.settings import Settings
from tests.support.live import LiveApp, live_app
from tests.support.trading import ADMIN_KEY, DESK_B_KEY, READER_KEY, add_accounts

T = TypeVar("T")
DESK_A = "default"  # the account of ADMIN_KEY (the settings' API_KEY)
DESK_B = "desk-b"
READER = "reader"


def client(live: LiveApp, account: str = DESK_A, key: str = ADMIN_KEY) -> KiteConnect:
    kite = KiteConnect(api_key=account, root=f"http://127.0.0.1:{live.port}", timeout=10)
    kite.set_access_token(key)
    return kite


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


@asynccontextmanager
async def kite_server(settings: Settings, tokens_dir: Path) -> AsyncIterator[LiveApp]:
    add_accounts(tokens_dir)
    async with live_app(settings) as live:
        yield live


__all__ = ["DESK_B_KEY", "READER_KEY", "call", "client", "kite_server"]
