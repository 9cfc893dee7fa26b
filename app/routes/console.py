"""The web console: ``GET /console`` and its files, served from the package (``app/console/``).

Static files only, no data: the page asks for the key, keeps it in ``sessionStorage`` and
calls the public API and the two WebSockets with it, like any client. Open (listed in
``app.routes.OPEN_PATHS``) like ``/docs``. Every URL the page uses is relative, so the
console works under a proxy's path prefix too.

The Content-Security-Policy lets the page load scripts, styles and images from this origin
only (no inline script or style, no CDN: desks run offline) and connect to this origin's HTTP
and WebSocket URLs. ``/favicon.ico`` is the console's icon, so the browser's own request for
it does not fail.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Annotated, Final

from fastapi import APIRouter, Path, Request
from starlette.responses import Response

from app.errors import NotFound

CONSOLE_URL: Final = "/console"
ASSET_PATH: Final = "/console/assets/{asset}"
FAVICON_URL: Final = "/favicon.ico"
PATHS: Final = (CONSOLE_URL, ASSET_PATH, FAVICON_URL)

_FILES: Traversable = files("app") / "console"
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Every file the package ships, by name: a request names one of these or gets 404.
_ASSETS: Final = {
    entry.name: _TYPES[suffix]
    for entry in _FILES.iterdir()
    if entry.is_file() and (suffix := "." + entry.name.rpartition(".")[2]) in _TYPES
}
_HEADERS: Final = {
    # The files change with the installed package: revalidate instead of caching blindly.
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_HOST: Final = re.compile(
    r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"
)

router = APIRouter(include_in_schema=False)


@cache
def _read(asset: str) -> bytes:
    return (_FILES / asset).read_bytes()


def _policy(request: Request) -> str:
    # 'self' covers same-origin WebSockets in current browsers; the explicit ws(s) sources are
    # for older ones, and only for a Host that is a plain host[:port].
    host = request.headers.get("host", "")
    sockets = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _file(asset: str, request: Request) -> Response:
    media_type = _ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"no console file {asset!r}")
    headers = {**_HEADERS, "Content-Security-Policy": _policy(request)}
    return Response(_read(asset), media_type=media_type, headers=headers)


@router.get(CONSOLE_URL)
async def get_console(request: Request) -> Response:
    return _file("index.html", request)


@router.get(ASSET_PATH)
async def get_console_asset(
    request: Request, asset: Annotated[str, Path(max_length=64)]
) -> Response:
    return _file(asset, request)


@router.get(FAVICON_URL)
async def get_favicon(request: Request) -> Response:
    return _file("favicon.svg", request)
