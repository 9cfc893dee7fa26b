"""Slow-client isolation: a client that stops reading never holds up the engine or other
clients; once its send has been blocked past ``WS_SLOW_CLIENT_SECONDS`` it is closed with
1013 and counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from app.settings import Settings
from tests.support.live import LiveApp, live_app, place, ws_client
from tests.support.rawws import RawWsClient
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, READER_KEY, add_accounts, order


class StalledClient(RawWsClient):
    """A WebSocket client over a raw socket with a tiny receive buffer, which it reads only
    when told to: the server's send buffer then fills and its sends must wait."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(url, key, read_limit=4096)
        self.ticks: list[dict[str, Any]] = []

    async def connect(self, port: int) -> None:
        await super().connect(port)
        self.protocol.events_received()

    async def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(orjson.dumps(message))
        await self._flush()

    async def read_until_closed(self, timeout: float) -> int | None:
        async with asyncio.timeout(timeout):
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    self.protocol.receive_eof()
                self.protocol.receive_data(data) if data else None
                for event in self.protocol.events_received():
                    if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        body = orjson.loads(event.data)
                        self.ticks.extend(body.get("ticks", [body]))
                if self.protocol.close_rcvd is not None:
                    return self.protocol.close_rcvd.code
                if not data:
                    return None

    def close(self) -> None:
        self.writer.transport.abort()


async def trade_everything(live: LiveApp, symbols: list[str], rounds: int) -> None:
    for _ in range(rounds):
        await place(live.http, ADMIN, *(order("sell", "1", p, symbol=s) for s, p in symbols))
        await place(live.http, DESK_B, *(order("buy", "1", p, symbol=s) for s, p in symbols))


class TestSlowClients:
    async def test_a_stalled_client_is_closed_with_1013_and_others_keep_up(
        self, make_settings: Callable[..., Settings], tokens_dir: Path
    ) -> None:
        add_accounts(tokens_dir)
        settings = make_settings(ticker={"slow_client_seconds": 1.0})
        async with live_app(settings) as live:
            instruments = (await live.http.get("/instruments?limit=40", headers=ADMIN)).json()
            symbols = [
                (i["symbol"], i["last_price"])
                for i in instruments["items"]
                if i["exchange"] == "NSE"
            ]
            names = [s for s, _ in symbols]
            hub = live.state["ticker"].hub
            stalled = StalledClient(live.ws_url + "/ws/ticker", READER_KEY)
            await stalled.connect(live.port)
            await stalled.send({"action": "subscribe", "symbols": names, "mode": "full"})
            # Resting sells above the traded price: five levels of depth make ticks bigger.
            await place(
                live.http,
                ADMIN,
                *(
                    order("sell", "1", str(Decimal(p) + Decimal("0.05") * k), symbol=s)
                    for s, p in symbols
                    for k in range(1, 6)
                ),
            )
            async with ws_client(live.ws_url + "/ws/ticker", key=ADMIN_KEY) as fast:
                await fast.send({"action": "subscribe", "symbols": [names[0]], "mode": "full"})
                await fast.expect("subscribed")
                rounds = 0
                while hub.connections and any(c.account == "reader" for c in hub.connections):
                    await trade_everything(live, symbols, 5)
                    rounds += 5
                    assert rounds < 1000, "the stalled client was never closed"
                # The fast client is current: its latest tick of each instrument shows
                # every trade so far.
                await place(live.http, ADMIN, order("sell", "1", symbols[0][1], symbol=names[0]))
                latest = await fast.tick(timeout=10, ask=symbols[0][1], volume=str(rounds))
                assert len(latest["depth"]["asks"]) == 5
            metrics = (await live.http.get("/metrics")).text
            assert "ticker_ws_slow_disconnects_total 1.0" in metrics
            # Reading again, the stalled client gets what was buffered, then the close.
            assert await stalled.read_until_closed(timeout=15) == 1013
            stalled.close()
            seqs = [t["seq"] for t in stalled.ticks if t.get("symbol") == names[0]]
            assert seqs == sorted(set(seqs))  # in order, none twice
            assert seqs[-1] < latest["seq"]  # it was cut off well behind the others
