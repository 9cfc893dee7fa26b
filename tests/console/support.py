"""A live server the browser can reach, restartable on the same port, and a watch over the
page: every uncaught exception and every ``console.error`` fails the test, except the
browser's own line for an API response the test expects to fail (``allow``)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from playwright.async_api import ConsoleMessage, Error, Page, Response

from app.main import create_app
from app.settings import Settings
from app.wsprotocol import WS_IMPLEMENTATION
from tests.support.servers import free_port

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = Path(os.environ.get("TEST_ARTEFACTS", "build/artefacts")) / "console"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if CHROMIUM.exists():
        return None
    return (
        f"{CHROMIUM} is missing and scripts/ensure-browser.sh could not install it "
        f"(needs apt-get as root; chromedriver: {shutil.which('chromedriver')})"
    )


class LiveServer:
    """The app under uvicorn on a fixed loopback port, in the test's event loop; ``stop``
    and ``start`` again give a server restart that the page's sockets see."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            create_app(self.settings),
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            ws=WS_IMPLEMENTATION,
            ws_ping_interval=None,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server, self._task = server, asyncio.create_task(server.serve())
        while not server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn exited before starting")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 30)
        self._server = self._task = None


# Lines the browser itself writes for a failed request (not the page's own console.error).
_RESOURCE = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")
_SOCKET = re.compile(r"^WebSocket connection to '.*' failed")
_NETWORK = re.compile(r"^Failed to load resource: net::ERR_CONNECTION_(REFUSED|RESET|CLOSED)")


@dataclass
class PageWatch:
    """Problems seen on one page; ``problems()`` is empty when the page behaved."""

    page: Page
    errors: list[str] = field(default_factory=list)
    expected: list[tuple[str, int]] = field(default_factory=list)  # (path part, status)
    restarts: bool = False  # a server restart: refused connections are the browser's own

    def attach(self) -> PageWatch:
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("response", self._response)
        self.page.on("requestfailed", self._failed)
        return self

    def allow(self, path_part: str, status: int) -> None:
        """A failing API response that the test provokes (e.g. a refused order: 422)."""
        self.expected.append((path_part, status))

    def _is_expected(self, url: str, status: int) -> bool:
        return any(part in url and status == want for part, want in self.expected)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "assert"):
            return
        text, url = message.text, str(message.location.get("url", ""))
        resource = _RESOURCE.match(text)
        if resource and self._is_expected(url, int(resource.group(1))):
            return
        if self.restarts and (_SOCKET.match(text) or _NETWORK.match(text)):
            return
        self.errors.append(f"console.{message.type}: {text} ({url})")

    def _response(self, response: Response) -> None:
        own = "/console" in response.url or response.url.endswith("/favicon.ico")
        if response.status >= 400 and own:
            self.errors.append(f"{response.status} for the page's own file {response.url}")

    def _failed(self, request: Any) -> None:
        if "/console" in request.url or request.url.endswith("/favicon.ico"):
            self.errors.append(f"request failed: {request.url} ({request.failure})")


async def shoot(page: Page, name: str, *, docs: bool = False) -> Path:
    """A screenshot among the test artefacts (and, with ``docs``, the README's copy when
    ``UPDATE_SCREENSHOTS=1``)."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    if docs and os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
    return path


__all__ = ["Error", "LiveServer", "PageWatch", "chromium_missing", "shoot"]
