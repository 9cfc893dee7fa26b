"""The examples of the OpenAPI document, in one place.

Keyed by component schema name (``SCHEMAS``: a request or response body) and by parameter
name (``PARAMETERS``); ``app.routes.openapi`` puts each on every request body, response and
parameter that uses it, so Swagger's "Try it out" starts from a request the service accepts.
They live here rather than on the models because half of those models (the request bodies)
belong to the services, which know nothing of documentation.

They tell one small story on the seeded registry: the account rests a buy of NSE:INFY, amends
it, part of it trades. ``tests/routes/test_openapi.py`` checks every example against its
schema and sends every request example to a running service, expecting its success status.
"""

from __future__ import annotations

from typing import Any

INFY = 408065
ENDPOINT_ID = "we_5f0c6a9e2b7d4c1a8e3f9b20"
DELIVERY_ID = "msg_5f0c6a9e2b7d4c1a8e3f9b20_7"
BATCH_ID = "9d1e47c0b3a25f68e4c71a0b"
CREATED_NS = 1796375700123456000  # 2026-12-04T09:15:00.123456Z
UPDATED_NS = 1796375702500000000  # 2026-12-04T09:15:02.5Z
CREATED_AT = "2026-12-04T09:15:00.123456Z"
UPDATED_AT = "2026-12-04T09:15:02.500000Z"

FILL = {"trade_id": "43", "price": "1870.5", "quantity": "4", "liquidity": "maker"}
RESULT = {
    "index": 0,
    "client_order_id": "my-order-1",
    "order_id": "42",
    "status": "open",
    "filled_quantity": "0",
    "remaining_quantity": "10",
    "average_price": None,
    "fills": [],
}
ORDER = {
    "client_order_id": "my-order-1",
    "order_id": "42",
    "symbol": "NSE:INFY",
    "instrument_token": INFY,
    "side": "buy",
    "type": "limit",
    "time_in_force": "GTC",
    "post_only": False,
    "price": "1870.5",
    "trigger_price": None,
    "quantity": "10",
    "status": "partially_filled",
    "filled_quantity": "4",
    "remaining_quantity": "6",
    "average_price": "1870.5",
    "fills": [FILL],
    "reason": None,
    "batch_id": None,
    "created_ns": CREATED_NS,
    "updated_ns": UPDATED_NS,
    "created_at": CREATED_AT,
    "updated_at": UPDATED_AT,
}
INSTRUMENT = {
    "instrument_token": INFY,
    "exchange_token": 1594,
    "exchange": "NSE",
    "tradingsymbol": "INFY",
    "symbol": "NSE:INFY",
    "name": "INFOSYS",
    "instrument_type": "EQ",
    "segment": "NSE",
    "tick_size": "0.05",
    "lot_size": "1",
    "expiry": None,
    "strike": "0",
    "last_price": "1875.4",
    "status": "active",
    "updated_at": CREATED_AT,
}
BATCH = {
    "batch_id": BATCH_ID,
    "accepted": 2,
    "rejected": 0,
    "results": [
        RESULT | {"client_order_id": None, "order_id": "40", "remaining_quantity": "5"},
        RESULT | {"index": 1, "client_order_id": None, "order_id": "41", "remaining_quantity": "2"},
    ],
}
SUBSCRIPTION = {
    "instrument_token": INFY,
    "symbol": "NSE:INFY",
    "mode": "full",
    "status": "active",
    "created_at": CREATED_AT,
    "updated_at": CREATED_AT,
    "updated_by": "default",
}
WEBHOOK = {
    "id": ENDPOINT_ID,
    "url": "https://example.com/hooks/orders",  # resolves publicly: accepted online
    "description": "desk order feed",
    "events": ["order.partially_filled", "order.filled", "order.cancelled"],
    "enabled": True,
    "disabled_reason": None,
    "created_at": CREATED_AT,
    "updated_at": CREATED_AT,
}
DELIVERY = {
    "id": DELIVERY_ID,
    "endpoint_id": ENDPOINT_ID,
    "event_type": "webhook.test",
    "order_id": None,
    "status": "delivered",
    "attempt_count": 1,
    "created_at": UPDATED_AT,
    "next_attempt_at": None,
    "delivered_at": UPDATED_AT,
    "last_status_code": 200,
    "last_error": None,
    "attempts": [
        {"attempted_at": UPDATED_AT, "status_code": 200, "error": None, "duration_ms": 12}
    ],
    "payload": {
        "type": "webhook.test",
        "timestamp": UPDATED_AT,
        "data": {"endpoint_id": ENDPOINT_ID},
    },
}
ACCOUNT_FILL = {
    "trade_id": "43",
    "order_id": "42",
    "client_order_id": "my-order-1",
    "symbol": "NSE:INFY",
    "instrument_token": INFY,
    "side": "buy",
    "price": "1870.5",
    "quantity": "4",
    "liquidity": "maker",
    "time": UPDATED_AT,
    "ts_ns": UPDATED_NS,
}
LEVEL = {"price": "1870.5", "quantity": "6", "orders": 1}
# Long 4 after buying 10 at 1868 and selling 6 at 1871: realised 6 x 3, the rest marked at 1870.5
POSITION = {
    "symbol": "NSE:INFY",
    "instrument_token": INFY,
    "quantity": "4",
    "overnight_quantity": "0",
    "day_quantity": "4",
    "average_price": "1868",
    "last_price": "1870.5",
    "buy_quantity": "10",
    "buy_value": "18680",
    "buy_price": "1868",
    "sell_quantity": "6",
    "sell_value": "11226",
    "sell_price": "1871",
    "realised_pnl": "18",
    "unrealised_pnl": "10",
    "pnl": "28",
    "day": {
        "trading_day": "2026-12-04",
        "buy_quantity": "10",
        "buy_value": "18680",
        "sell_quantity": "6",
        "sell_value": "11226",
    },
}

# Request bodies, each one the service accepts on the seeded registry (the buys rest below
# the sells, so the account never crosses itself).
REQUESTS: dict[str, Any] = {
    "OrderIn": {
        "symbol": "NSE:INFY",
        "side": "buy",
        "type": "limit",
        "quantity": "10",
        "price": "1870.5",
        "time_in_force": "GTC",
        "client_order_id": "my-order-1",
    },
    "BatchIn": {
        "orders": [
            {"symbol": "NSE:INFY", "side": "buy", "quantity": "5", "price": "1869.5"},
            {"symbol": "NSE:TCS", "side": "sell", "quantity": "2", "price": "4110"},
        ],
        "atomic": False,
    },
    "AmendIn": {"quantity": "8", "price": "1871"},
    "SubscriptionIn": {"symbol": "NSE:INFY", "mode": "full", "status": "active"},
    "EndpointIn": {
        "url": WEBHOOK["url"],
        "events": WEBHOOK["events"],
        "description": WEBHOOK["description"],
    },
    "EndpointPatch": {
        "description": "desk fills only",
        "events": ["order.partially_filled", "order.filled"],
    },
}

RESPONSES: dict[str, Any] = {
    "OrderResultOut": RESULT,
    "BatchOut": BATCH,
    "BatchPage": {
        "items": [{"batch_id": BATCH_ID, "created_ns": CREATED_NS, "accepted": 2, "rejected": 0}],
        "next_cursor": None,
    },
    "OrderOut": ORDER,
    "OrderPage": {"items": [ORDER], "next_cursor": None},
    "CancelAllOut": {
        "cancelled": 1,
        "items": [ORDER | {"status": "cancelled", "reason": "CANCELLED_BY_USER"}],
    },
    "FillPage": {"items": [ACCOUNT_FILL], "next_cursor": None},
    "InstrumentOut": INSTRUMENT,
    "InstrumentPage": {"items": [INSTRUMENT], "next_cursor": None},
    "RefreshOut": {
        "refreshed": True,
        "instruments": 56,
        "counts": {"NSE": 20, "BSE": 10, "NFO": 26},
        "last_refresh": CREATED_AT,
        "age_seconds": 0.0,
        "duration_seconds": 0.042,
    },
    "OrderBookOut": {
        "symbol": "NSE:INFY",
        "instrument_token": INFY,
        "seq": 17,
        "bids": [LEVEL],
        "asks": [{"price": "1876", "quantity": "12", "orders": 2}],
    },
    "TradePage": {
        "symbol": "NSE:INFY",
        "items": [
            {
                "trade_id": "43",
                "price": "1870.5",
                "quantity": "4",
                "taker_side": "sell",
                "executed_at": UPDATED_AT,
                "ts_ns": UPDATED_NS,
            }
        ],
        "next_cursor": None,
    },
    "StatsOut": {
        "symbol": "NSE:INFY",
        "instrument_token": INFY,
        "status": "active",
        "seq": 17,
        "orders": 3,
        "pending_stops": 0,
        "bid_levels": 1,
        "ask_levels": 1,
        "bid_quantity": "6",
        "ask_quantity": "12",
        "best_bid": "1870.5",
        "best_ask": "1876",
        "volume": "4",
        "trade_count": 1,
        "last_price": "1870.5",
        "book_hash": "5d41402abc4b2a76b9719d911017c592",
        "day": {
            "trading_day": "2026-12-04",
            "open": "1868",
            "high": "1872",
            "low": "1866.5",
            "close": "1870.5",
            "volume": "4",
            "trade_count": 1,
        },
    },
    "PositionOut": POSITION,
    "PositionPage": {"items": [POSITION], "next_cursor": None},
    "CalendarOut": {
        "now": "2026-12-04T05:00:00Z",
        "source": "app/data/calendars.toml (BSE=india, NFO=india, NSE=india; others 24x7)",
        "items": [
            {
                "exchange": "NSE",
                "calendar": "india",
                "timezone": "Asia/Kolkata",
                "state": "open",
                "trading_day": "2026-12-04",
                "always_open": False,
                "session": {
                    "pre_open": "2026-12-04T09:00:00+05:30",
                    "open": "2026-12-04T09:15:00+05:30",
                    "close": "2026-12-04T15:30:00+05:30",
                    "post_close": "2026-12-04T16:00:00+05:30",
                },
                "holiday": False,
                "next_open": "2026-12-07T09:15:00+05:30",
                "next_close": "2026-12-04T15:30:00+05:30",
            }
        ],
        "next_cursor": None,
    },
    "CandlePage": {
        "symbol": "NSE:INFY",
        "instrument_token": INFY,
        "interval": "1m",
        "items": [
            {
                "start": "2026-12-04T09:15:00Z",
                "open": "1870.5",
                "high": "1870.5",
                "low": "1870.5",
                "close": "1870.5",
                "volume": "4",
                "trades": 1,
            }
        ],
        "next_cursor": None,
    },
    "SubscriptionOut": SUBSCRIPTION,
    "SubscriptionPage": {"items": [SUBSCRIPTION], "next_cursor": None},
    "WebhookOut": WEBHOOK | {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    "WebhookPage": {"items": [WEBHOOK], "next_cursor": None},
    "DeliveryOut": DELIVERY,
    "DeliveryPage": {"items": [DELIVERY], "next_cursor": None},
    "HealthOut": {
        "status": "ok",
        "environment": "development",
        "version": "0.1.0",
        "ticker": {"running": True},
        "dependencies": {
            "database": "ok",
            "redis": "ok",
            "instrument_registry": {
                "status": "ok",
                "cached_instruments": 56,
                "last_refresh": CREATED_AT,
                "age_seconds": 12.5,
            },
        },
    },
    "ReadyOut": {
        "status": "ready",
        "checks": {"database": "ok", "instrument_registry": "ok", "order_books": "ok"},
    },
    "LiveOut": {"status": "ok"},
    "MeOut": {
        "account": "desk-a",
        "scopes": ["read", "trade"],
        "fingerprint": "9fce2e68bab1",
        "rate_limit": {"requests_per_second": 100.0, "burst": 100},
        "limits": {
            "max_batch_orders": 500,
            "max_order_quantity": "1000000",
            "max_open_orders": 100000,
            "ws_max_instruments_per_connection": 1000,
            "ws_max_connections_per_key": 50,
        },
    },
}

SCHEMAS: dict[str, Any] = REQUESTS | RESPONSES

# By parameter name, wherever the route gives none of its own. Server-made ids (order,
# batch, endpoint, delivery) show their shape; a real call uses one the service returned.
PATH_PARAMETERS: dict[str, Any] = {
    "symbol": "NSE:INFY",
    "instrument_token": INFY,
    "order_id": 42,
    "client_order_id": "my-order-1",
    "batch_id": BATCH_ID,
    "endpoint_id": ENDPOINT_ID,
    "delivery_id": DELIVERY_ID,
}
# Only options that show a feature without hiding data: Swagger UI fills them in for "Try it
# out", where a filter example (symbol, status) would narrow a listing by surprise.
QUERY_PARAMETERS: dict[str, Any] = {
    "limit": 50,
    "depth": 5,
    "interval": "1m",
    "exchange": "NSE",
    "q": "INFY",
    "force": True,
}
