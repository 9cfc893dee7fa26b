// The market view of one instrument: quote figures, depth ladder, trade tape and chart.
//
// The ladder's top levels come live from `full` ticks (5 levels a side); deeper levels (up to
// the `depth` page parameter) from GET /orderbook, refetched at most once a second while
// ticks arrive. Trades come from GET /trades: once at open, then whenever a tick's trade count
// moves (one request in flight), so the tape has each trade's aggressor (`taker_side`).
// Rendering happens once per animation frame, reusing the ladder's rows.

import { get } from "./api.js";
import { CandleChart } from "./chart.js";
import { el, price, quantity, signed, time, decimals } from "./format.js";

const params = new URLSearchParams(location.search);
const DEPTH = Math.min(100, Math.max(5, Number(params.get("depth")) || 20));
const TAPE = Math.min(1000, Math.max(10, Number(params.get("tape")) || 100));

export class MarketView {
  constructor() {
    this.instrument = null;
    this.tick = null;
    this.book = { bids: [], asks: [] };
    this.trades = [];
    this.seen = new Set();
    this.tradeCount = null;
    this.fetchingTrades = false;
    this.tradesAgain = false;
    this.bookTimer = null;
    this.bookFetchedAt = 0;
    this.dirty = false;
    this.frames = 0; // ladder renders, for the benchmark
    this.chart = new CandleChart(document.getElementById("chart"));
    this.interval = "1m";
    for (const button of document.querySelectorAll("#intervals button")) {
      button.addEventListener("click", () => this.setInterval(button.dataset.interval));
    }
  }

  get tickSize() { return this.instrument?.tick_size ?? "0.01"; }

  async open(instrument) {
    this.instrument = instrument;
    this.tick = null;
    this.book = { bids: [], asks: [] };
    this.trades = [];
    this.seen = new Set();
    this.tradeCount = null;
    this.wanted = 0;
    document.getElementById("tape").replaceChildren();
    document.getElementById("m-symbol").textContent = `${instrument.symbol} · ${instrument.name ?? ""}`;
    document.getElementById("m-status").textContent = instrument.status;
    document.getElementById("t-quote").textContent = "";
    this.chart.clear();
    const symbol = encodeURIComponent(instrument.symbol);
    const [book, trades] = await Promise.all([
      get(`orderbook/${symbol}?depth=${DEPTH}`),
      get(`trades/${symbol}?limit=${TAPE}`),
      this.chart.load(instrument.symbol, this.interval, this.tickSize),
    ]);
    if (this.instrument !== instrument) return;
    this.book = { bids: book.bids, asks: book.asks };
    this.bookFetchedAt = performance.now();
    this.addTrades(trades.items, false);
    this.schedule();
  }

  async setInterval(interval) {
    this.interval = interval;
    for (const button of document.querySelectorAll("#intervals button")) {
      button.setAttribute("aria-pressed", String(button.dataset.interval === interval));
    }
    if (this.instrument) await this.chart.load(this.instrument.symbol, interval, this.tickSize);
  }

  onTick(tick) {
    if (!this.instrument || tick.instrument_token !== this.instrument.instrument_token) return;
    this.tick = tick;
    if (tick.trades !== undefined && tick.trades !== this.tradeCount) {
      // As many as the count moved (the first tick: a few, to close the gap since the page's
      // first read); ones already shown are skipped.
      const moved = this.tradeCount === null ? 20 : tick.trades - this.tradeCount;
      this.tradeCount = tick.trades;
      this.fetchTrades(Math.min(TAPE, Math.max(10, moved + 5)));
    }
    if (DEPTH > 5) this.refreshBookSoon();
    this.schedule();
  }

  // Deeper levels than a tick carries, at most once a second.
  refreshBookSoon() {
    if (this.bookTimer) return;
    const wait = Math.max(0, 1000 - (performance.now() - this.bookFetchedAt));
    this.bookTimer = setTimeout(async () => {
      const instrument = this.instrument;
      try {
        const book = await get(`orderbook/${encodeURIComponent(instrument.symbol)}?depth=${DEPTH}`);
        if (this.instrument === instrument) {
          this.book = { bids: book.bids, asks: book.asks };
          this.schedule();
        }
      } catch { /* the next tick tries again; a refused key logs out */ }
      this.bookFetchedAt = performance.now();
      this.bookTimer = null;
    }, wait);
  }

  async fetchTrades(limit) {
    this.wanted = Math.min(TAPE, (this.wanted ?? 0) + limit); // trades since the last read
    if (this.fetchingTrades) { this.tradesAgain = true; return; }
    this.fetchingTrades = true;
    const instrument = this.instrument;
    try {
      do {
        this.tradesAgain = false;
        const wanted = this.wanted;
        this.wanted = 0;
        const body = await get(`trades/${encodeURIComponent(instrument.symbol)}?limit=${wanted}`);
        if (this.instrument !== instrument) return;
        this.addTrades(body.items, true);
      } while (this.tradesAgain);
    } catch { /* shown by the banners when the key or the service is the problem */ }
    finally { this.fetchingTrades = false; }
  }

  // ``items`` newest first; only the ones not seen yet are added (and, live, to the chart).
  addTrades(items, live) {
    const fresh = items.filter((t) => !this.seen.has(t.trade_id));
    if (!fresh.length) return;
    for (const trade of fresh) this.seen.add(trade.trade_id);
    if (live) for (const trade of [...fresh].reverse()) this.chart.addTrade(trade);
    this.trades = fresh.concat(this.trades).slice(0, TAPE);
    const tick = this.tickSize;
    const rows = fresh.map((t) => el("tr", { className: t.taker_side, dataset: { tradeId: t.trade_id } },
      el("td", {}, time(t.executed_at)),
      el("td", { className: "num" }, price(t.price, tick)),
      el("td", { className: "num" }, quantity(t.quantity)),
      el("td", {}, t.taker_side === "buy" ? "buy ▲" : "sell ▼")));
    const tape = document.getElementById("tape");
    tape.prepend(...rows);
    while (tape.rows.length > TAPE) tape.lastElementChild.remove();
  }

  schedule() {
    if (this.dirty) return;
    this.dirty = true;
    requestAnimationFrame(() => { this.dirty = false; this.render(); });
  }

  // Tick levels first, then the snapshot's levels beyond the tick's worst one.
  levels(side) {
    const live = this.tick?.depth?.[side];
    const deep = this.book[side];
    if (!live) return deep;
    if (live.length < 5 || !live.length) return live;
    const worst = Number(live.at(-1).price);
    const beyond = side === "bids" ? (l) => Number(l.price) < worst : (l) => Number(l.price) > worst;
    return live.concat(deep.filter(beyond));
  }

  render() {
    if (!this.instrument) return;
    this.frames += 1;
    const tick = this.tickSize;
    const bids = this.levels("bids");
    const asks = this.levels("asks");
    const most = Math.max(1, ...bids.map((l) => +l.quantity), ...asks.map((l) => +l.quantity));
    fill(document.getElementById("ladder-asks"), [...asks].reverse(), "ask", most, tick);
    fill(document.getElementById("ladder-bids"), bids, "bid", most, tick);
    const spread = bids.length && asks.length ? Number(asks[0].price) - Number(bids[0].price) : null;
    document.getElementById("ladder-spread").textContent =
      spread === null ? "spread —" : `spread ${spread.toFixed(decimals(tick))}`;
    this.renderQuote();
  }

  renderQuote() {
    const t = this.tick;
    if (!t) return;
    const tick = this.tickSize;
    const set = (id, text) => { document.getElementById(id).textContent = text; };
    set("m-ltp", price(t.ltp, tick));
    set("m-open", price(t.ohlc?.open, tick));
    set("m-high", price(t.ohlc?.high, tick));
    set("m-low", price(t.ohlc?.low, tick));
    set("m-volume", quantity(t.volume));
    // The ticket's line (trading view): the touch and the last price of the same instrument.
    set("t-quote", `bid ${price(t.bid, tick)} × ${quantity(t.bid_quantity)} · ask ${price(t.ask, tick)} × ${quantity(t.ask_quantity)} · last ${price(t.ltp, tick)}`);
    const change = document.getElementById("m-change");
    if (t.ohlc?.open && t.ltp) {
      const diff = Number(t.ltp) - Number(t.ohlc.open);
      const percent = (100 * diff) / Number(t.ohlc.open);
      change.textContent = `${signed(diff, decimals(tick))} (${signed(percent, 2)}%)`;
      change.className = `num ${diff > 0 ? "up" : diff < 0 ? "down" : ""}`;
    } else {
      change.textContent = "—";
    }
  }
}

function fill(body, levels, side, most, tick) {
  while (body.rows.length < levels.length) body.append(row(side));
  while (body.rows.length > levels.length) body.lastElementChild.remove();
  levels.forEach((level, i) => {
    const cells = body.rows[i].cells;
    const bar = side === "bid" ? cells[1] : cells[3];
    const orders = side === "bid" ? cells[0] : cells[4];
    setText(cells[2], price(level.price, tick));
    setText(bar.lastChild, quantity(level.quantity));
    setText(orders, String(level.orders ?? ""));
    bar.firstChild.style.width = `${(100 * Number(level.quantity)) / most}%`;
  });
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function row(side) {
  const cell = (className) => el("td", { className });
  const bar = () => el("td", { className: `${side}-qty` }, el("span", { className: "bar" }), el("span", { className: "v" }));
  return side === "bid"
    ? el("tr", { className: "bid" }, cell("orders"), bar(), cell("price"), cell("ask-qty"), cell("orders"))
    : el("tr", { className: "ask" }, cell("orders"), cell("bid-qty"), cell("price"), bar(), cell("orders"));
}
