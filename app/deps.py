"""FastAPI dependencies as ``Annotated`` aliases: the only way routes reach shared objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, cast

from fastapi import Depends, Path, Security
from fastapi.security import APIKeyHeader
from starlette.requests import HTTPConnection

from app.errors import InstrumentNotFound, UnknownInstrument
from app.middleware import RESPONSE_HEADERS
from app.services.access.auth import ApiKey, AuthService, Scope
from app.services.health import HealthService
from app.services.instruments.model import Instrument
from app.services.instruments.registry import InstrumentRegistry
from app.services.instruments.snapshot import RegistrySnapshot
from app.services.orders.entry import MarketData, OrderEntry
from app.services.orders.reads import OrderReads
from app.services.positions.reads import PositionReads
from app.services.ticker import CandleService, SubscriptionService, TickerService
from app.services.trading_day.service import CalendarService
from app.services.webhooks.endpoints import WebhookService
from app.settings import Settings
from app.state import AppState

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


def state_of(connection: HTTPConnection) -> AppState:
    return cast(AppState, connection.scope["state"])


# Dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
# which costs far more than the lookup itself.
async def get_state(connection: HTTPConnection) -> AppState:
    return state_of(connection)


async def get_settings(connection: HTTPConnection) -> Settings:
    return state_of(connection)["settings"]


async def get_health(connection: HTTPConnection) -> HealthService:
    return state_of(connection)["health"]


async def get_auth(connection: HTTPConnection) -> AuthService:
    return state_of(connection)["auth"]


async def get_registry(connection: HTTPConnection) -> InstrumentRegistry:
    return state_of(connection)["registry"]


async def get_orders(connection: HTTPConnection) -> OrderEntry:
    return state_of(connection)["orders"]


async def get_market(connection: HTTPConnection) -> MarketData:
    return state_of(connection)["market"]


async def get_order_reads(connection: HTTPConnection) -> OrderReads:
    return state_of(connection)["order_reads"]


async def get_webhooks(connection: HTTPConnection) -> WebhookService:
    return state_of(connection)["webhooks"]


async def get_ticker(connection: HTTPConnection) -> TickerService:
    return state_of(connection)["ticker"]


async def get_subscriptions(connection: HTTPConnection) -> SubscriptionService:
    return state_of(connection)["subscriptions"]


async def get_candles(connection: HTTPConnection) -> CandleService:
    return state_of(connection)["candles"]


async def get_positions(connection: HTTPConnection) -> PositionReads:
    return state_of(connection)["positions"]


async def get_calendar(connection: HTTPConnection) -> CalendarService:
    return state_of(connection)["calendar"]


def _named_instrument(
    connection: HTTPConnection, resolve: Callable[[RegistrySnapshot], Instrument]
) -> Instrument:
    """The instrument a URL path names. An unknown one is a missing resource: 404, code
    ``UNKNOWN_INSTRUMENT``, on every such route (in a body or a query filter it stays 422)."""
    try:
        return resolve(state_of(connection)["registry"].snapshot)
    except UnknownInstrument as exc:
        raise InstrumentNotFound(exc.message) from None


async def instrument_by_symbol(
    connection: HTTPConnection,
    symbol: Annotated[
        str,
        Path(
            max_length=64,
            description="EXCHANGE:TRADINGSYMBOL, a bare tradingsymbol, or an instrument_token",
            examples=["NSE:INFY"],
        ),
    ],
) -> Instrument:
    return _named_instrument(connection, lambda snapshot: snapshot.lookup(symbol))


async def instrument_by_token(
    connection: HTTPConnection,
    instrument_token: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> Instrument:
    return _named_instrument(connection, lambda snapshot: snapshot.instrument(instrument_token))


def add_response_headers(connection: HTTPConnection, headers: dict[str, str]) -> None:
    """Headers for this request's response, whatever the route returns or raises."""
    pending = connection.scope.get(RESPONSE_HEADERS)
    if pending is not None:
        pending.update(headers)


async def current_key(
    connection: HTTPConnection,
    presented: Annotated[str | None, Security(api_key_header)],
) -> ApiKey:
    """The request's key, authenticated and rate-limited (FastAPI runs it once per request).

    ``async`` although it never awaits: FastAPI would run a plain ``def`` dependency in the
    thread pool, which costs more than the check itself.

    Every non-open router is mounted on a router that depends on this, so a route without a
    scope alias still needs a key; the RateLimit headers go on the response.
    """
    address = connection.client.host if connection.client else None
    admission = state_of(connection)["auth"].admit(presented, address=address)
    add_response_headers(connection, admission.headers)
    return admission.key


_REQUIRED_SCOPES: dict[object, Scope] = {}


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    async def dependency(
        connection: HTTPConnection, key: Annotated[ApiKey, Depends(current_key)]
    ) -> ApiKey:
        return state_of(connection)["auth"].authorise(key, scope)

    dependency.__name__ = f"require_{scope.value}"
    _REQUIRED_SCOPES[dependency] = scope
    return dependency


def required_scope(dependency: Callable[..., object]) -> Scope | None:
    """The scope a dependency made by ``require`` checks (None for anything else)."""
    return _REQUIRED_SCOPES.get(dependency)


StateDep = Annotated[AppState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
HealthDep = Annotated[HealthService, Depends(get_health)]
RegistryDep = Annotated[InstrumentRegistry, Depends(get_registry)]
AuthDep = Annotated[AuthService, Depends(get_auth)]
CurrentKey = Annotated[ApiKey, Depends(current_key)]
ReadKey = Annotated[ApiKey, Depends(require(Scope.READ))]
TradeKey = Annotated[ApiKey, Depends(require(Scope.TRADE))]
AdminKey = Annotated[ApiKey, Depends(require(Scope.ADMIN))]

OrdersDep = Annotated[OrderEntry, Depends(get_orders)]
MarketDep = Annotated[MarketData, Depends(get_market)]
OrderReadsDep = Annotated[OrderReads, Depends(get_order_reads)]
WebhooksDep = Annotated[WebhookService, Depends(get_webhooks)]
TickerDep = Annotated[TickerService, Depends(get_ticker)]
SubscriptionsDep = Annotated[SubscriptionService, Depends(get_subscriptions)]
CandlesDep = Annotated[CandleService, Depends(get_candles)]
PositionsDep = Annotated[PositionReads, Depends(get_positions)]
CalendarDep = Annotated[CalendarService, Depends(get_calendar)]
# The instrument named by the path's ``{symbol}`` / ``{instrument_token}`` (404 if unknown).
SymbolInstrument = Annotated[Instrument, Depends(instrument_by_symbol)]
TokenInstrument = Annotated[Instrument, Depends(instrument_by_token)]
