"""Fixtures of the console's browser tests: a live server on a real port (PostgreSQL, Redis),
accounts for each kind of user, and headless Chromium (Debian's, installed by
``scripts/ensure-browser.sh``) driven by Playwright. Skipped, with the reason, only where the
browser cannot be installed; under CI (``CI`` set) a missing browser fails instead."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from app.settings import Settings
from tests.console.support import CHROMIUM, LiveServer, PageWatch, chromium_missing, shoot
from tests.support.trading import add_accounts, write_key

TRADER_KEY = "test-console-trader-key-0123456789"
TRADER = {"X-API-Key": TRADER_KEY}
OPS_KEY = "test-console-ops-only-key-0123456789"  # admin scope alone

# The suite shares a 2-core machine: give the page time before an expectation fails.
expect.set_options(timeout=10_000)

_missing = chromium_missing()
if _missing and os.environ.get("CI"):
    raise pytest.UsageError(f"the console tests must run in CI: {_missing}")
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")


@pytest.fixture
async def server(
    make_settings: Callable[..., Settings], pg_url: str, tokens_dir: Path
) -> AsyncIterator[LiveServer]:
    add_accounts(tokens_dir)
    write_key(tokens_dir, "trader", "trader", ["read", "trade"], TRADER_KEY)
    write_key(tokens_dir, "ops", "ops", ["admin"], OPS_KEY)
    live = LiveServer(make_settings(db={"url": pg_url}, webhooks={"allow_loopback": True}))
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if _missing:
        pytest.skip(_missing)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        await launched.close()


@pytest.fixture
async def watch(
    browser: Browser, server: LiveServer, request: pytest.FixtureRequest
) -> AsyncIterator[PageWatch]:
    """A fresh page (its own sessionStorage); at the end a screenshot among the artefacts,
    and the test fails on any uncaught exception or console error of the page. Closed
    before ``server`` stops, so the page never sees the server go away at the end."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    observed = PageWatch(page).attach()
    yield observed
    await shoot(page, request.node.name)
    await context.close()
    assert not observed.errors, observed.errors


@pytest.fixture
def page(watch: PageWatch) -> Page:
    return watch.page
