"""The API docs, served offline: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc).

FastAPI's own pages load their scripts, styles, favicon and fonts from public CDNs, so on a
desk's closed network they render blank. These pages are FastAPI's, pointed at the assets
that the ``fastapi-offline`` package ships (Swagger UI and ReDoc builds, a favicon), served
here from the installed package under ``/docs/assets/``: every URL the pages reference is on
this service. Open like the OpenAPI document they render (``app.routes.OPEN_PATHS``).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse, Response

from app.errors import NotFound

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"
ASSET_PATH = ASSETS_URL + "/{asset}"

_STATIC: Traversable = files("fastapi_offline") / "static"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# The assets change only with the installed package, whose version is not in their names.
_CACHE = "public, max-age=3600"
# Swagger UI would send the document to validator.swagger.io for its badge.
_SWAGGER_PARAMETERS = {"validatorUrl": None}

router = APIRouter(include_in_schema=False)


def _openapi_url(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return f"{root}{request.app.openapi_url}"


@router.get(DOCS_URL)
async def get_swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        swagger_ui_parameters=_SWAGGER_PARAMETERS,
    )


@router.get(OAUTH2_REDIRECT_URL)
async def get_swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get(REDOC_URL)
async def get_redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


@cache  # read once (2.8 MB in all), not on every page load
def _read(asset: str) -> bytes:
    return (_STATIC / asset).read_bytes()


@router.get(ASSET_PATH)
async def get_asset(asset: Annotated[str, Path(max_length=64)]) -> Response:
    media_type = _ASSETS.get(asset)
    if media_type is None:
        raise NotFound(f"no docs asset {asset!r}")
    return Response(_read(asset), media_type=media_type, headers={"Cache-Control": _CACHE})
