"""The Kite Connect routes: each parses its Kite arguments and calls one service."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.errors import ValidationFailed
from app.routes.kite.app import Csv, KiteCall, KiteRoute, TokenMismatch, route
from app.routes.responses import INT64_MAX
from app.services.access.auth import Scope
from app.services.kite.account import profile

READ, TRADE = Scope.READ, Scope.TRADE


def _order_id(call: KiteCall) -> int:
    text = call.params["order_id"]
    if not text.isdigit() or not 0 < int(text) <= INT64_MAX:
        raise ValidationFailed(f"invalid order_id {text[:24]!r}")
    return int(text)


async def create_session(call: KiteCall) -> Any:
    """``generate_session``: the request token is one of our API keys and comes back as the
    access token. The ``checksum`` (SHA-256 of api_key + request_token + api_secret) cannot
    be checked: we hold no api_secret (see README)."""
    auth = call.state["auth"]
    admission = auth.admit(call.form.get("request_token") or None, address=call.address)
    key = admission.key
    if call.form.get("api_key") != key.account:
        raise TokenMismatch()
    now = datetime.now(UTC)
    return {
        **profile(key.account, call.state["registry"].snapshot),
        "api_key": key.account,
        "access_token": call.form["request_token"],
        "public_token": "",
        "refresh_token": "",
        "enctoken": "",
        "login_time": now.strftime("%Y-%m-%d %H:%M:%S"),
    }


async def delete_session(call: KiteCall) -> Any:
    # Our keys are revoked by removing their key file, not through the API.
    return True


async def get_profile(call: KiteCall) -> Any:
    return profile(call.account, call.state["registry"].snapshot)


async def get_margins(call: KiteCall) -> Any:
    assert call.key is not None
    cash = call.key.cash if call.key.cash is not None else call.kite.cash
    return await call.kite.account.margins(
        call.account, Decimal(str(cash)), call.params.get("segment")
    )


async def get_positions(call: KiteCall) -> Any:
    return await call.kite.account.positions(call.account)


async def get_holdings(call: KiteCall) -> Any:
    return []


async def place_order(call: KiteCall) -> Any:
    return await call.kite.orders.place(call.account, call.params["variety"], call.form)


async def modify_order(call: KiteCall) -> Any:
    return await call.kite.orders.modify(
        call.account, call.params["variety"], _order_id(call), call.form
    )


async def cancel_order(call: KiteCall) -> Any:
    return await call.kite.orders.cancel(call.account, call.params["variety"], _order_id(call))


async def list_orders(call: KiteCall) -> Any:
    return await call.kite.orders.orders(call.account)


async def order_history(call: KiteCall) -> Any:
    return await call.kite.orders.order_history(call.account, _order_id(call))


async def order_trades(call: KiteCall) -> Any:
    return await call.kite.orders.trades(call.account, _order_id(call))


async def list_trades(call: KiteCall) -> Any:
    return await call.kite.orders.trades(call.account)


async def instruments(call: KiteCall) -> Any:
    return Csv(call.kite.market.instruments(call.params.get("exchange")))


async def quote(call: KiteCall) -> Any:
    return await call.kite.market.quote(call.args("i"))


async def quote_ohlc(call: KiteCall) -> Any:
    return await call.kite.market.ohlc(call.args("i"))


async def quote_ltp(call: KiteCall) -> Any:
    return await call.kite.market.ltp(call.args("i"))


async def historical(call: KiteCall) -> Any:
    token = call.params["instrument_token"]
    if not token.isdigit() or not 0 < int(token) <= INT64_MAX:
        raise ValidationFailed(f"invalid instrument_token {token[:24]!r}")
    return await call.kite.market.historical(
        int(token),
        call.params["interval"],
        call.arg("from"),
        call.arg("to"),
        oi=call.arg("oi") in ("1", "true"),
    )


ROUTES: list[KiteRoute] = [
    route("POST", "/session/token", create_session, None),
    route("DELETE", "/session/token", delete_session, READ),
    route("GET", "/user/profile", get_profile, READ),
    route("GET", "/user/margins", get_margins, READ),
    route("GET", "/user/margins/{segment}", get_margins, READ),
    route("GET", "/portfolio/positions", get_positions, READ),
    route("GET", "/portfolio/holdings", get_holdings, READ),
    route("GET", "/orders", list_orders, READ),
    route("GET", "/trades", list_trades, READ),
    route("GET", "/orders/{order_id}/trades", order_trades, READ),
    route("GET", "/orders/{order_id}", order_history, READ),
    route("POST", "/orders/{variety}", place_order, TRADE),
    route("PUT", "/orders/{variety}/{order_id}", modify_order, TRADE),
    route("DELETE", "/orders/{variety}/{order_id}", cancel_order, TRADE),
    route("GET", "/instruments", instruments, READ),
    route("GET", "/instruments/historical/{instrument_token}/{interval}", historical, READ),
    route("GET", "/instruments/{exchange}", instruments, READ),
    route("GET", "/quote", quote, READ),
    route("GET", "/quote/ohlc", quote_ohlc, READ),
    route("GET", "/quote/ltp", quote_ltp, READ),
]
