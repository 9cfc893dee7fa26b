"""HTTP ceilings: what uvicorn alone does on this machine, served by the same settings as the
service (one worker, httptools, uvloop). Nothing else.

- ``app``: bench/orders.py's ceiling, one FastAPI route that parses and echoes the batch with
  orjson;
- ``single``: bench/single.py's ceiling (``--ceiling``), a bare ASGI app that reads a
  ``POST /orders`` body, parses it with orjson and answers 201 with a constant order result of
  the size ours sends. No routing, no auth, no book, no journal: no order service can be
  faster than this behind uvicorn.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI()


@app.post("/advanced/batch-orders")
async def echo(request: Request) -> Response:
    batch = orjson.loads(await request.body())
    return Response(orjson.dumps(batch), media_type="application/json")


_RESULT = orjson.dumps(
    {
        "index": 0,
        "order_id": 1234567,
        "client_order_id": None,
        "status": "open",
        "symbol": "NSE:INFY",
        "side": "buy",
        "type": "limit",
        "quantity": "10",
        "filled_quantity": "0",
        "remaining_quantity": "10",
        "price": "1875.40",
        "trigger_price": None,
        "average_price": None,
        "time_in_force": "GTC",
        "created": True,
        "fills": [],
    }
)
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_RESULT))]


async def single(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    status = 200  # a GET: the readiness probe
    if scope["method"] == "POST":
        orjson.loads(body)
        status = 201
    await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _RESULT})
