"""Failure drills against ``ticker-service serve`` in a subprocess, under concurrent load.

Each drill has its own PostgreSQL database and, where Redis is the point, its own
redis-server on a spare port. Every batch carries unique ``client_order_id``s, so the journal
can be checked batch by batch afterwards: a batch is wholly there or not at all, what was
acknowledged is there, what was refused is not.

- Redis stopped under load: orders keep working (ROLE=all), ticks keep reaching local
  WebSocket clients, /health is degraded; after Redis comes back, health is ok again.
- PostgreSQL lost under load: orders answer 503 ``JOURNAL_UNAVAILABLE``, health is down,
  nothing is half-written; once the database answers again the same process takes orders.
- SIGTERM under load: every request in flight finishes; no batch is cut in half.

(SIGKILL under load: ``tests/services/orders/test_crash.py``. A webhook receiver that is
down: ``tests/services/webhooks/test_dispatcher.py``.)
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL
from tests.services.orders.test_crash import MID, SYMBOLS, all_orders
from tests.support import secrets
from tests.support.drills import journal_hashes
from tests.support.live import ws_client
from tests.support.servers import RedisServer, ServiceProcess
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, service_env

pytestmark = pytest.mark.slow


@dataclass
class Sent:
    headers: dict[str, str]
    cids: list[str]
    started: float
    finished: float = 0.0
    status: int | None = None  # None: no response (the error says why)
    error: str | None = None
    body: Any = None


@dataclass
class Load:
    """Workers posting batches of unique client_order_ids until ``stop``; every request kept."""

    url: str
    workers: int = 6
    size: int = 10
    sent: list[Sent] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._work(n)) for n in range(self.workers)]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stop.set()
        await asyncio.gather(*self._tasks)

    async def _work(self, n: int) -> None:
        rng = random.Random(n)
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                headers = rng.choice([ADMIN, DESK_B])
                tag = uuid.uuid4().hex[:12]
                orders = [random_order(rng, f"{tag}-{i}") for i in range(self.size)]
                sent = Sent(headers, [o["client_order_id"] for o in orders], time.monotonic())
                self.sent.append(sent)
                try:
                    response = await client.post(
                        "/advanced/batch-orders", json={"orders": orders}, headers=headers
                    )
                except httpx.HTTPError as exc:
                    sent.error = type(exc).__name__
                    await asyncio.sleep(0.05)  # the server is gone or going: do not spin
                else:
                    sent.status, sent.body = response.status_code, response.json()
                sent.finished = time.monotonic()

    def between(self, start: float, end: float) -> list[Sent]:
        return [s for s in self.sent if start <= s.started and s.finished <= end]


def random_order(rng: random.Random, cid: str) -> dict[str, Any]:
    symbol = rng.choice(SYMBOLS)
    cents = MID[symbol] + rng.randint(-20, 20) * 5
    return {
        "symbol": symbol,
        "side": rng.choice(["buy", "sell"]),
        "quantity": str(rng.randint(1, 20)),
        "price": f"{cents // 100}.{cents % 100:02d}",
        "client_order_id": cid,
    }


def drill_env(tmp_path: Path, database_url: str, redis_url: str, prefix: str) -> dict[str, str]:
    return service_env(
        tmp_path,
        database_url,
        redis_url,
        prefix,
        DATABASE_CONNECT_TIMEOUT="1",
        REDIS_SOCKET_TIMEOUT="1",
        HEALTH_CHECK_TIMEOUT="1",
    )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as server:
        yield server


async def journal_check(url: str, load: Load, database_url: str) -> dict[str, dict[str, Any]]:
    """Batch by batch against the journal (read back through the API): each batch wholly
    there or not at all; every acknowledged order there; the rebuilt books equal the journal.
    Returns the stored orders by client_order_id."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        stored = {o["client_order_id"]: o for o in await all_orders(client)}
        hashes = {}
        for symbol in SYMBOLS:
            stats = (await client.get(f"/stats/{symbol}", headers=ADMIN)).json()
            hashes[stats["instrument_token"]] = stats["book_hash"]
    for sent in load.sent:
        present = [cid for cid in sent.cids if cid in stored]
        assert len(present) in (0, len(sent.cids)), f"half a batch in the journal: {sent}"
        if sent.status == 200:
            for result in sent.body["results"]:
                if result["order_id"] is not None:
                    assert stored[result["client_order_id"]]["order_id"] == result["order_id"]
    expected = await journal_hashes(database_url)
    assert hashes == {token: expected.get(token) for token in hashes}
    return stored


async def health(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await client.get("/health")
        body: dict[str, Any] = response.json()
        body["http_status"] = response.status_code
        return body


async def eventually_healthy(url: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = await health(url)
        if report["status"] == "ok" or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.2)


def no_secrets_in(service: ServiceProcess) -> None:
    assert not secrets.leaks([service.log_path], secrets.known_secrets())


class TestRedisLoss:
    async def test_orders_and_local_ticks_continue_and_health_recovers(
        self, tmp_path: Path, pg_url: str, redis_server: RedisServer, redis_prefix: str
    ) -> None:
        env = drill_env(tmp_path, pg_url, redis_server.url, redis_prefix)
        with ServiceProcess(env, tmp_path / "run") as service:
            pid = service.process.pid  # type: ignore[union-attr]
            ws_url = f"ws://127.0.0.1:{service.port}/ws/ticker"
            # close_timeout: the watcher leaves with ticks unread; no need to wait for them
            watching = ws_client(ws_url, key=ADMIN_KEY, close_timeout=1)
            async with watching as watcher, Load(service.url) as load:
                await watcher.send({"action": "subscribe", "symbols": ["NSE:INFY"], "mode": "ltp"})
                await watcher.expect("subscribed")
                await asyncio.sleep(1.0)
                await asyncio.to_thread(redis_server.stop)
                down_at = time.monotonic()
                await asyncio.sleep(2.0)
                report = await health(service.url)
                assert report["http_status"] == 200
                assert report["status"] == "degraded"
                assert report["dependencies"]["redis"] != "ok"
                assert report["dependencies"]["database"] == "ok"
                await watcher.tick(timeout=5)  # local ticks keep flowing
                during = load.between(down_at, time.monotonic())
                await asyncio.to_thread(redis_server.start)  # same port, empty
                recovered = await eventually_healthy(service.url)
                assert recovered["status"] == "ok", recovered
                await asyncio.sleep(0.5)
            assert len(during) >= 10
            assert {s.status for s in during} == {200}, {(s.status, s.error) for s in during}
            assert {s.status for s in load.sent} == {200}
            async with ws_client(ws_url, key=ADMIN_KEY) as again:
                await again.send({"action": "ping", "id": 1})
                assert (await again.expect("pong"))["id"] == 1
            await journal_check(service.url, load, pg_url)
            assert service.process.pid == pid  # type: ignore[union-attr]
        no_secrets_in(service)


class TestDatabaseLoss:
    async def test_503_while_down_nothing_half_written_recovers_without_restart(
        self, tmp_path: Path, pg_url: str, redis_server: RedisServer, redis_prefix: str
    ) -> None:
        name = pg_url.rsplit("/", 1)[1]
        env = drill_env(tmp_path, pg_url, redis_server.url, redis_prefix)
        with ServiceProcess(env, tmp_path / "run") as service:
            pid = service.process.pid  # type: ignore[union-attr]
            async with Load(service.url) as load:
                await asyncio.sleep(1.0)
                cut_at = time.monotonic()
                await asyncio.to_thread(cut_database, name, allow=False)
                try:
                    await asyncio.sleep(2.0)
                    report = await health(service.url)
                    assert report["http_status"] == 503
                    assert report["status"] == "down"
                    assert report["dependencies"]["journal"]["status"] == "unavailable"
                    await reads_during_the_outage(service.url)
                finally:
                    restored_at = time.monotonic()
                    await asyncio.to_thread(cut_database, name, allow=True)
                recovered = await eventually_healthy(service.url)
                assert recovered["status"] == "ok", recovered
                healthy_at = time.monotonic()
                await asyncio.sleep(1.0)
            during = load.between(cut_at + 0.5, restored_at)
            assert len(during) >= 10
            codes = {(s.status, (s.body or {}).get("error", {}).get("code")) for s in during}
            assert codes == {(503, "JOURNAL_UNAVAILABLE")}, codes
            after = load.between(healthy_at, time.monotonic())
            assert after
            assert {s.status for s in after} == {200}
            assert {s.status for s in load.sent} <= {200, 503}
            stored = await journal_check(service.url, load, pg_url)
            refused = [s for s in load.sent if s.status == 503]
            kept = [s for s in refused if s.cids[0] in stored]
            # A commit cut off in the very act may have been kept although it answered 503
            # (resubmitting with the same client_order_ids is then a no-op): at most one.
            assert len(kept) <= 1, kept
            assert service.process.pid == pid  # type: ignore[union-attr]
        no_secrets_in(service)


async def reads_during_the_outage(url: str) -> None:
    """The book answers from memory; journal reads are a 503 to retry; not ready."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        book = await client.get("/orderbook/NSE:INFY", headers=ADMIN)
        assert book.status_code == 200
        orders = await client.get("/orders", headers=ADMIN)
        assert orders.status_code == 503, orders.text
        assert orders.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
        assert orders.headers["retry-after"] == "1"
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "NOT_READY"


def cut_database(name: str, *, allow: bool) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')  # type: ignore[arg-type]
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )


class TestGracefulShutdown:
    async def test_sigterm_under_load_finishes_in_flight_requests(
        self, tmp_path: Path, pg_url: str, redis_server: RedisServer, redis_prefix: str
    ) -> None:
        env = drill_env(tmp_path, pg_url, redis_server.url, redis_prefix)
        service = ServiceProcess(env, tmp_path / "run")
        service.start()
        try:
            process = service.process
            assert process is not None
            async with Load(service.url, workers=8) as load:
                await asyncio.sleep(1.5)
                term_at = time.monotonic()
                os.kill(process.pid, signal.SIGTERM)
                code = await asyncio.to_thread(process.wait, 30)
                gone_at = time.monotonic()
            service.process = None
            # uvicorn re-raises the signal once shut down: killed by SIGTERM, after the
            # lifespan's shutdown (journal flushed, pools closed) completed.
            assert code in (0, -signal.SIGTERM), code
            assert "Application shutdown complete" in service.log_path.read_text()
            before = [s for s in load.sent if s.started < term_at]
            assert len(before) >= 20
            # Every request got a complete answer or a connection error, and one sent well
            # before the SIGTERM (it had reached the server: in flight) got its answer.
            for sent in load.sent:
                assert sent.status == 200 or sent.error is not None, sent
            cut_off = [s for s in before if s.status != 200 and s.started < term_at - 0.5]
            assert not cut_off, cut_off
            assert gone_at - term_at < 15
            service.start()
            stored = await journal_check(service.url, load, pg_url)
            for sent in load.sent:
                if sent.status is None:  # no answer: then it was not processed either
                    assert not any(cid in stored for cid in sent.cids), sent
        finally:
            if service.process is not None:
                service.kill()
        no_secrets_in(service)
