"""The HTTP ceiling for bench/orders.py: one route that parses and echoes the batch with
orjson, served by the same uvicorn settings as the service. Nothing else."""

from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI()


@app.post("/advanced/batch-orders")
async def echo(request: Request) -> Response:
    batch = orjson.loads(await request.body())
    return Response(orjson.dumps(batch), media_type="application/json")
