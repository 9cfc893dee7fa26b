// Candlesticks with volume on a canvas, drawn here (no library): history from /candles, the
// newest candle kept up to date from the trades the tape receives.

import { get } from "./api.js";
import { price as formatPrice } from "./format.js";

const SECONDS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400 };

export class CandleChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.candles = []; // {t (ms), open, high, low, close, volume} oldest first
    this.interval = "1m";
    this.tick = "0.01";
    this.pending = false;
    this.generation = 0;
    new ResizeObserver(() => this.schedule()).observe(canvas);
    // The colours come from the stylesheet: redraw when the system turns dark or light.
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.schedule());
  }

  async load(symbol, interval, tick) {
    this.interval = interval;
    this.tick = tick;
    const generation = ++this.generation;
    const body = await get(`candles/${encodeURIComponent(symbol)}?interval=${interval}`);
    if (generation !== this.generation) return;
    this.candles = body.items.map((c) => ({
      t: Date.parse(c.start), open: +c.open, high: +c.high, low: +c.low, close: +c.close, volume: +c.volume,
    }));
    this.schedule();
  }

  clear() {
    this.generation += 1;
    this.candles = [];
    this.schedule();
  }

  // A trade from the tape: {price, quantity, ts_ns | executed_at}.
  addTrade(trade) {
    const span = SECONDS[this.interval] * 1000;
    const at = trade.ts_ns ? Number(BigInt(trade.ts_ns) / 1_000_000n) : Date.parse(trade.executed_at);
    const t = Math.floor(at / span) * span;
    const p = +trade.price;
    const q = +trade.quantity;
    const last = this.candles.at(-1);
    if (last && last.t === t) {
      last.high = Math.max(last.high, p);
      last.low = Math.min(last.low, p);
      last.close = p;
      last.volume += q;
    } else if (!last || t > last.t) {
      this.candles.push({ t, open: p, high: p, low: p, close: p, volume: q });
    } // an older trade than the newest candle is already in the history
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  // What the canvas shows, for screen readers (and the tests): the interval and last candle.
  describe() {
    const last = this.candles.at(-1);
    const p = (v) => formatPrice(v, this.tick);
    this.canvas.setAttribute("aria-label", last
      ? `Candlestick chart, ${this.interval}, ${this.candles.length} candles; last: open ${p(last.open)}, high ${p(last.high)}, low ${p(last.low)}, close ${p(last.close)}, volume ${last.volume}`
      : `Candlestick chart, ${this.interval}: no trades in this interval yet`);
  }

  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 640;
    const height = canvas.clientHeight || 320;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    const style = getComputedStyle(document.documentElement);
    const color = (name) => style.getPropertyValue(name).trim();
    g.clearRect(0, 0, width, height);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = color("--muted");
    const axis = 64;
    const plotWidth = width - axis;
    const slot = 8;
    const shown = this.candles.slice(-Math.max(1, Math.floor(plotWidth / slot)));
    this.describe();
    if (!shown.length) {
      g.fillText("no trades in this interval yet", 8, 20);
      return;
    }
    const priceHeight = height * 0.72;
    const volumeTop = height * 0.78;
    let low = Math.min(...shown.map((c) => c.low));
    let high = Math.max(...shown.map((c) => c.high));
    if (high === low) { high += 1; low -= 1; }
    const maxVolume = Math.max(...shown.map((c) => c.volume), 1);
    const y = (p) => 6 + (priceHeight - 12) * (1 - (p - low) / (high - low));
    g.strokeStyle = color("--line");
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const step = Number(this.tick) || 0.01; // axis labels on the tick grid
      const p = Math.round((low + ((high - low) * i) / 4) / step) * step;
      const at = Math.round(y(p)) + 0.5;
      g.beginPath(); g.moveTo(0, at); g.lineTo(plotWidth, at); g.stroke();
      g.fillText(formatPrice(p, this.tick), plotWidth + 4, at + 4);
    }
    const start = plotWidth - shown.length * slot;
    shown.forEach((c, i) => {
      const x = start + i * slot + slot / 2;
      const up = c.close >= c.open;
      g.strokeStyle = g.fillStyle = up ? color("--bid") : color("--ask");
      g.beginPath(); g.moveTo(Math.round(x) + 0.5, y(c.high)); g.lineTo(Math.round(x) + 0.5, y(c.low)); g.stroke();
      const top = y(Math.max(c.open, c.close));
      g.fillRect(x - slot / 2 + 1, top, slot - 2, Math.max(1, y(Math.min(c.open, c.close)) - top));
      const bar = ((height - volumeTop) * c.volume) / maxVolume;
      g.globalAlpha = 0.5;
      g.fillRect(x - slot / 2 + 1, height - bar, slot - 2, bar);
      g.globalAlpha = 1;
    });
  }
}
