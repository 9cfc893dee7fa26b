"""The official KiteTicker, unmodified, in its own process (it runs Twisted's reactor).

Usage: ticker_client.py ROOT API_KEY ACCESS_TOKEN FULL_TOKENS LTP_TOKENS QUOTE_TOKENS
(comma-separated instrument tokens). It subscribes to all of them on connect, sets the
``full`` and ``ltp`` modes, and prints one JSON line per event to stdout: ``connect``,
``ticks`` (as the client parsed them), ``order`` (``on_order_update``), ``error``, ``close``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from kiteconnect import KiteTicker


def emit(event: str, **body: Any) -> None:
    print(json.dumps({"event": event, **body}, default=str), flush=True)


def tokens(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def main() -> None:
    root, api_key, access_token = sys.argv[1:4]
    full, ltp, quote = (tokens(arg) for arg in sys.argv[4:7])
    kws = KiteTicker(api_key, access_token, root=root, reconnect=False)

    def on_connect(ws: Any, _response: Any) -> None:
        ws.subscribe(full + ltp + quote)
        if full:
            ws.set_mode(ws.MODE_FULL, full)
        if ltp:
            ws.set_mode(ws.MODE_LTP, ltp)
        emit("connect")

    kws.on_connect = on_connect
    kws.on_ticks = lambda _ws, ticks: emit("ticks", ticks=ticks)
    kws.on_order_update = lambda _ws, data: emit("order", data=data)
    kws.on_error = lambda _ws, code, reason: emit("error", code=code, reason=str(reason))
    kws.on_close = lambda _ws, code, reason: emit("close", code=code, reason=str(reason))
    kws.on_noreconnect = lambda _ws: emit("noreconnect")
    kws.connect()


if __name__ == "__main__":
    main()
