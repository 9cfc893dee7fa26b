"""Live ticks and order updates over WebSocket, fanned out across replicas through Redis.

Modules: ``ticks`` (tick state from committed journal units), ``hub`` (connections, bounded
send queues with per-instrument coalescing), ``protocol`` (messages), ``adapter`` (one
connection from open to close, whatever its protocol), ``sessions`` (our protocol: auth,
requests), ``order_events`` (``/ws/orders`` updates), ``fanout``
(Redis pub/sub), ``registry`` (replicas' connections and subscriptions in Redis, with TTL),
``service`` (``TickerService``: wiring, flushing, health), ``subscriptions`` (durable
instrument subscriptions) and ``candles`` (OHLCV from the recorded trades).
"""

from app.services.ticker.adapter import Socket
from app.services.ticker.candles import CandleService
from app.services.ticker.config import TickerLimits
from app.services.ticker.hub import ORDERS, TICKER
from app.services.ticker.service import TickerService
from app.services.ticker.subscriptions import SubscriptionIn, SubscriptionService

__all__ = [
    "ORDERS",
    "TICKER",
    "CandleService",
    "Socket",
    "SubscriptionIn",
    "SubscriptionService",
    "TickerLimits",
    "TickerService",
]
