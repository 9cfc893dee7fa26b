"""Decoding one order: our hand-written parser against msgspec, in process.

Issue 17 asked to choose msgspec for decoding and validation if it measures faster than the
hand-written parser with the same reject codes. This measures, per order body, on the same
bodies bench/single.py sends:

- ``ours``: ``orjson.loads`` then ``parse_order`` (``app.services.orders.parsing``), the path
  every order takes today;
- ``msgspec``: ``msgspec.json.decode`` into a ``Struct`` with the order's fields (types,
  required and unknown fields checked in C), then what msgspec cannot express with our codes
  and our leniency: the case-insensitive enum values, the client_order_id pattern, price
  rules by order type. A body msgspec refuses would go to the hand parser for its message
  and code, so a valid order's cost is what counts; both sides are timed on valid orders.

msgspec is not a dependency of the service; without it the bench says so and measures ours.

    .venv/bin/python bench/parsing.py [--orders 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from app.engine import OrderType, SelfTradePrevention, TimeInForce
from app.services.orders.parsing import (
    _CLIENT_ORDER_ID,
    _SIDES,
    _STPS,
    _TIFS,
    _TYPES,
    OrderInvalid,
    OrderRequest,
    parse_order,
)
from bench.single import ours_spec, price_stream


def ours(body: bytes) -> OrderRequest:
    return parse_order(orjson.loads(body))


def msgspec_decoder() -> Any:
    try:
        import msgspec
    except ImportError:
        return None

    class Order(msgspec.Struct, forbid_unknown_fields=True):
        symbol: str
        side: str
        quantity: str | int
        type: str = "limit"
        price: str | int | None = None
        trigger_price: str | int | None = None
        time_in_force: str = "GTC"
        post_only: bool = False
        client_order_id: str | None = None
        stp: str = "cancel_newest"

    decoder = msgspec.json.Decoder(Order)

    def choice(choices: dict[str, Any], value: str, name: str) -> Any:
        found = choices.get(value) or choices.get(value.lower()) or choices.get(value.upper())
        if found is None:
            raise OrderInvalid("VALIDATION_ERROR", f"{name} must be one of {', '.join(choices)}")
        return found

    def decode(body: bytes) -> OrderRequest:
        o = decoder.decode(body)
        order_type = choice(_TYPES, o.type, "type")
        needs_price = order_type is OrderType.LIMIT or order_type is OrderType.STOP_LIMIT
        needs_trigger = order_type is OrderType.STOP or order_type is OrderType.STOP_LIMIT
        if (o.price is None) == needs_price or (o.trigger_price is None) == needs_trigger:
            raise OrderInvalid("VALIDATION_ERROR", "price or trigger_price")
        cid = o.client_order_id
        if cid is not None and not _CLIENT_ORDER_ID.fullmatch(cid):
            raise OrderInvalid("VALIDATION_ERROR", "client_order_id")
        return OrderRequest(
            symbol=o.symbol,
            side=choice(_SIDES, o.side, "side"),
            order_type=order_type,
            quantity=str(o.quantity),
            price=None if o.price is None else str(o.price),
            trigger_price=None if o.trigger_price is None else str(o.trigger_price),
            time_in_force=choice(_TIFS, o.time_in_force, "time_in_force") or TimeInForce.GTC,
            post_only=o.post_only,
            client_order_id=cid,
            stp=choice(_STPS, o.stp, "stp") or SelfTradePrevention.CANCEL_NEWEST,
        )

    return decode


def timed(parse: Any, bodies: list[bytes], rounds: int) -> float:
    """The best of ``rounds`` passes over ``bodies``: microseconds per order."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for body in bodies:
            parse(body)
        best = min(best, time.perf_counter() - started)
    return best / len(bodies) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bodies = [b.encode() for b in ours_spec(price_stream(args.orders))["bodies"]]
    result: dict[str, Any] = {"bench": "parsing", "orders": len(bodies)}
    result["ours_us"] = round(timed(ours, bodies, args.rounds), 3)
    print(f"ours (orjson + parse_order): {result['ours_us']:.2f} us per order")
    decode = msgspec_decoder()
    if decode is None:
        print("msgspec skipped: not installed (pip install msgspec)")
    else:
        assert all(decode(b) == ours(b) for b in bodies[:1000]), "the two parsers disagree"
        result["msgspec_us"] = round(timed(decode, bodies, args.rounds), 3)
        print(f"msgspec (Struct + our rules): {result['msgspec_us']:.2f} us per order")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
