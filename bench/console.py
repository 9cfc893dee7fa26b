"""Console benchmark: the market view in headless Chromium (Debian's, driven by Playwright).

The service runs as ``ticker-service serve`` on PostgreSQL (a fresh database) and Redis. Setup
through the API: 1,000 trades on NSE:INFY (desk-b rests a sell, the default account takes it
one lot at a time), then 100 resting price levels a side. The page opens with
``?depth=100&tape=1000`` (the ladder's and tape's sizes) and the key already in
``sessionStorage``.

1. Time to first full render: from navigation start (``performance.now()`` = 0) to the frame
   in which the ladder shows 200 levels and the tape 1,000 trades; ``--loads`` reloads, median
   and worst.
2. The ladder under ``--rate`` ticks/s for ``--seconds``: the bench places and cancels orders
   inside the top five bid levels at that rate (every change is a journal commit and so a
   tick). Counted in the page: ticks received, ladder renders (one per animation frame at
   most: the ladder's frames per second), the time each render takes, and the page's own
   animation frames per second (how smooth the page stays).

    .venv/bin/python bench/console.py
    .venv/bin/python bench/console.py --rate 200 --seconds 20

The last output line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from playwright.async_api import Page, async_playwright

from bench.support import KEYS, drop_databases, free_port, fresh_database, serve, stop, wait_ready

CHROMIUM = "/usr/bin/chromium"
STORED = "ticker.console.key"  # where the page keeps the key (app/console/api.js)
SYMBOL = "NSE:INFY"
DEFAULT = {"X-API-Key": KEYS["default"]}
DESK_B = {"X-API-Key": KEYS["desk-b"]}


async def batch(http: httpx.AsyncClient, headers: dict[str, str], orders: list[dict]) -> None:
    for start in range(0, len(orders), 500):
        body = {"orders": orders[start : start + 500]}
        response = await http.post("/advanced/batch-orders", json=body, headers=headers)
        response.raise_for_status()
        assert response.json()["rejected"] == 0, response.text


def limit(side: str, quantity: int, price: float) -> dict[str, Any]:
    return {"symbol": SYMBOL, "side": side, "quantity": str(quantity), "price": f"{price:.2f}"}


async def seed(http: httpx.AsyncClient, trades: int, levels: int) -> None:
    await batch(http, DESK_B, [limit("sell", trades, 1875)])
    await batch(http, DEFAULT, [limit("buy", 1, 1875) for _ in range(trades)])
    asks = [limit("sell", 1 + i % 9, 1880 + i * 0.05) for i in range(levels)]
    bids = [limit("buy", 1 + i % 7, 1870 - i * 0.05) for i in range(levels)]
    await batch(http, DESK_B, asks + bids)


FULL = """([levels, trades]) => {
  const ladder = document.querySelectorAll('#ladder-bids tr, #ladder-asks tr').length;
  const tape = document.querySelectorAll('#tape tr').length;
  return ladder >= levels && tape >= trades ? performance.now() : false;
}"""


RESOURCES = """() => performance.getEntriesByType('resource').map((e) => ({
  name: e.name.replace(location.origin, ''), start: Math.round(e.startTime),
  end: Math.round(e.responseEnd)
}))"""


async def first_render(
    page: Page, url: str, levels: int, trades: int, loads: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """The times of ``loads`` loads, and the requests of the last one (where the time goes)."""
    times = []
    for _ in range(loads):
        await page.goto(url)
        handle = await page.wait_for_function(
            FULL, arg=[2 * levels, trades], polling="raf", timeout=60_000
        )
        times.append(round(await handle.json_value(), 1))
    return times, await page.evaluate(RESOURCES)


PROBE = """() => {
  const m = window.tickerConsole.market;
  const s = window.consoleBench = { ticks: 0, renders: [], frames: 0, running: true };
  const onTick = m.onTick.bind(m), render = m.render.bind(m);
  m.onTick = (t) => { s.ticks += 1; onTick(t); };
  m.render = () => {
    const t0 = performance.now(); render(); s.renders.push(performance.now() - t0);
  };
  const frame = () => { s.frames += 1; if (s.running) requestAnimationFrame(frame); };
  requestAnimationFrame(frame);
  s.started = performance.now();
}"""

COLLECT = """() => {
  const s = window.consoleBench; s.running = false;
  return { seconds: (performance.now() - s.started) / 1000, ticks: s.ticks, frames: s.frames,
           renders: s.renders };
}"""


async def churn(http: httpx.AsyncClient, rate: float, seconds: float, workers: int = 4) -> int:
    """``rate`` book changes a second in all: ``workers`` loops, each placing then cancelling
    a bid inside the top five levels (one loop alone cannot keep up with 100 a second when
    a round trip takes more than 10 ms)."""
    counts = await asyncio.gather(
        *(_churn(http, rate / workers, seconds, worker) for worker in range(workers))
    )
    return sum(counts)


async def _churn(http: httpx.AsyncClient, rate: float, seconds: float, worker: int) -> int:
    sent = 0
    period = 1 / rate
    started = time.perf_counter() + worker * period / 4
    order_id = None
    while time.perf_counter() - started < seconds:
        if order_id is None:
            price = 1870 - ((sent + worker) % 4) * 0.05
            response = await http.post("/orders", json=limit("buy", 1 + sent % 5, price),
                                       headers=DESK_B)  # fmt: skip
            order_id = response.json()["order_id"]
        else:
            await http.delete(f"/orders/{order_id}", headers=DESK_B)
            order_id = None
        sent += 1
        wait = started + sent * period - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
    return sent


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    name = f"bench_console_{port}"
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as work:
        server = serve(Path(work), port, DATABASE_URL=fresh_database(name))
        try:
            wait_ready(f"{url}/health/ready", server)
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                await seed(http, args.trades, args.levels)
                async with async_playwright() as playwright:
                    browser = await playwright.chromium.launch(
                        executable_path=CHROMIUM, args=["--no-sandbox"]
                    )
                    page = await browser.new_page(viewport={"width": 1280, "height": 900})
                    key = json.dumps(KEYS["default"])
                    await page.add_init_script(
                        f"sessionStorage.setItem('ticker.console.key', {key})"
                    )
                    page_url = f"{url}/console?depth={args.levels}&tape={args.trades}#{SYMBOL}"
                    loads, requests = await first_render(
                        page, page_url, args.levels, args.trades, args.loads
                    )
                    await page.evaluate(PROBE)
                    sent = await churn(http, args.rate, args.seconds)
                    await asyncio.sleep(0.5)
                    seen = await page.evaluate(COLLECT)
                    await browser.close()
        finally:
            stop(server)
            drop_databases(name)
    renders = sorted(seen["renders"])
    seconds = seen["seconds"]
    return {
        "bench": "console",
        "levels_per_side": args.levels,
        "tape_trades": args.trades,
        "first_render_ms": {"median": statistics.median(loads), "max": max(loads), "all": loads},
        "ladder": {
            "changes_sent_per_s": round(sent / args.seconds, 1),
            "ticks_received_per_s": round(seen["ticks"] / seconds, 1),
            "ladder_fps": round(len(renders) / seconds, 1),
            "page_fps": round(seen["frames"] / seconds, 1),
            "render_ms_median": round(statistics.median(renders), 3) if renders else None,
            "render_ms_p99": round(renders[int(0.99 * (len(renders) - 1))], 3) if renders else None,
        },
        "first_load_requests": requests,
        "chromium": CHROMIUM,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=100)
    parser.add_argument("--trades", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    result = asyncio.run(run(parser.parse_args()))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
