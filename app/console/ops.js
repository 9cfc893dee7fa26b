// Operations (admin scope): /health, halted instruments with halt/resume, webhook endpoints
// with their delivery log and retry, and live figures computed from /metrics.

import { ApiError, get, post } from "./api.js";
import { el } from "./format.js";

const POLL_MS = 2000;

export class OperationsView {
  constructor({ selected }) {
    this.account = "";
    this.scopes = [];
    this.selected = selected; // () -> the instrument the market view shows
    this.previous = null; // the last /metrics sample, for rates
    this.timer = null;
    this.endpoint = null;
    this.message = document.getElementById("halts-message");
    document.getElementById("halt-selected").addEventListener("click", () => this.halt());
  }

  start() {
    this.stop();
    const poll = async () => {
      const shown = this.endpoint ? [this.loadDeliveries(this.endpoint)] : [];
      await Promise.allSettled([this.loadHealth(), this.loadMetrics(), ...shown]);
      this.timer = setTimeout(poll, POLL_MS);
    };
    poll();
    if (this.scopes.includes("read")) this.loadHalted();
    else document.getElementById("halts-message").textContent = "Listing instruments needs the read scope.";
    document.getElementById("halt-selected").hidden = !this.selected();
    this.loadHooks();
  }

  stop() { clearTimeout(this.timer); this.timer = null; this.endpoint = null; }

  select(instrument) {
    document.getElementById("halt-symbol").textContent = instrument.symbol;
  }

  async loadHealth() {
    const report = await get("health").catch((failure) => failure.body ?? { status: "down" });
    const badge = document.getElementById("health-status");
    badge.textContent = report.status;
    badge.className = `badge ${report.status}`;
    const rows = [];
    const add = (name, value) => rows.push(el("dt", {}, name), el("dd", {}, value));
    add("environment", `${report.environment ?? "?"} · version ${report.version ?? "?"}`);
    for (const [name, value] of Object.entries(report.dependencies ?? {})) add(name, summary(value));
    if (report.ticker) {
      const t = report.ticker;
      add("ticker", `${t.running ? "running" : "stopped"} · ${t.connections ?? 0} connections · ${t.subscriptions ?? 0} subscriptions`);
    }
    for (const [name, value] of Object.entries(report)) {
      if (!["status", "environment", "version", "dependencies", "ticker"].includes(name)) add(name, summary(value));
    }
    document.getElementById("health").replaceChildren(...rows);
  }

  async loadMetrics() {
    const text = await get("metrics", { text: true });
    const sample = { at: performance.now(), ...parseMetrics(text) };
    const previous = this.previous;
    this.previous = sample;
    const set = (id, value) => { document.getElementById(id).textContent = value; };
    set("f-ws", String(sample.ws));
    if (!previous) return;
    const seconds = (sample.at - previous.at) / 1000;
    set("f-orders", ((sample.orders - previous.orders) / seconds).toFixed(1));
    set("f-fills", ((sample.fills - previous.fills) / seconds).toFixed(1));
    // p99 of the acknowledgements since the last sample (since start when there were none).
    const window = sample.ack.map(([le, n], i) => [le, n - (previous.ack[i]?.[1] ?? 0)]);
    const p99 = quantile(window.at(-1)?.[1] > 0 ? window : sample.ack, 0.99);
    set("f-ack", p99 === null ? "—" : p99 === Infinity ? "> 2.5 s" : `≤ ${formatSeconds(p99)}`);
  }

  async loadHalted() {
    const body = await get("instruments?status=halted&limit=1000");
    const items = body.items.map((i) => {
      const resume = el("button", { type: "button", "aria-label": `Resume ${i.symbol}` }, "Resume");
      resume.addEventListener("click", () => this.act(`admin/instruments/${i.instrument_token}/resume`, `${i.symbol} resumed`));
      return el("li", { dataset: { token: String(i.instrument_token) } }, el("span", {}, i.symbol), resume);
    });
    if (!items.length) items.push(el("li", { className: "muted" }, "none"));
    document.getElementById("halted").replaceChildren(...items);
  }

  async halt() {
    const instrument = this.selected();
    if (!instrument) return;
    await this.act(`admin/instruments/${instrument.instrument_token}/halt`, `${instrument.symbol} halted`);
  }

  async act(path, done) {
    try {
      await post(path);
      this.message.textContent = done;
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
      this.message.textContent = `refused: ${failure.code}`;
    }
    await this.loadHalted();
  }

  // Webhook routes are per account and need the trade scope: say whose endpoints these are.
  async loadHooks() {
    const note = document.getElementById("hooks-note");
    if (!this.scopes.includes("trade")) {
      note.textContent = `Webhook endpoints belong to an account and need the trade scope; this key (${this.account}) has none.`;
      return;
    }
    note.textContent = `Endpoints of account ${this.account} only (webhook routes are per account).`;
    const body = await get("advanced/webhooks?limit=100");
    const rows = body.items.map((h) => {
      const show = el("button", { type: "button", "aria-label": `Deliveries of ${h.id}` }, "Deliveries");
      show.addEventListener("click", () => this.loadDeliveries(h.id));
      return el("tr", {}, el("td", {}, h.id), el("td", {}, h.url), el("td", {}, h.enabled ? "yes" : "no"), el("td", {}, show));
    });
    document.getElementById("hooks").replaceChildren(...rows);
    if (!body.items.length) note.textContent += " None registered.";
  }

  async loadDeliveries(endpointId) {
    if (this.endpoint !== endpointId) this.deliveriesSeen = null;
    this.endpoint = endpointId;
    document.getElementById("deliveries-of").textContent = endpointId;
    const body = await get(`advanced/webhooks/${endpointId}/deliveries?limit=50`);
    // Polled: rebuilt only when something changed, so focus and clicks are not lost.
    const seen = JSON.stringify(body.items);
    if (seen === this.deliveriesSeen) return;
    this.deliveriesSeen = seen;
    const rows = body.items.map((d) => {
      const last = d.attempts?.at(-1);
      const retry = el("button", { type: "button", "aria-label": `Retry ${d.id}` }, "Retry");
      retry.addEventListener("click", async () => {
        // 202: sent in the background; the log shows the attempt at the next poll.
        try { await post(`advanced/webhooks/${endpointId}/deliveries/${d.id}/retry`); } catch (failure) {
          if (!(failure instanceof ApiError)) throw failure;
        }
      });
      return el("tr", {}, el("td", {}, d.id), el("td", {}, d.type ?? d.payload?.type ?? ""),
        el("td", {}, d.status), el("td", { className: "num" }, String(d.attempts?.length ?? 0)),
        el("td", {}, last ? String(last.status_code ?? last.error ?? "") : ""), el("td", {}, retry));
    });
    document.getElementById("deliveries").replaceChildren(...rows);
  }
}

function summary(value) {
  if (value === null || typeof value !== "object") return String(value);
  if ("status" in value) {
    const rest = Object.entries(value).filter(([k, v]) => k !== "status" && (v === null || typeof v !== "object"));
    return [value.status, ...rest.map(([k, v]) => `${k} ${v}`)].join(" · ");
  }
  return Object.entries(value).filter(([, v]) => v === null || typeof v !== "object")
    .map(([k, v]) => `${k} ${v}`).join(" · ") || "—";
}

// The few series the figures need, summed over their labels.
export function parseMetrics(text) {
  const out = { orders: 0, fills: 0, ws: 0, ack: [] };
  const ack = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    const name = line.slice(0, space);
    const value = Number(line.slice(space + 1));
    if (name.startsWith("ticker_orders_total")) out.orders += value;
    else if (name.startsWith("ticker_fills_total")) out.fills += value;
    else if (name.startsWith("ticker_ws_connections{") && name.includes('scope="replica"')) out.ws += value;
    else if (name.startsWith("ticker_order_ack_seconds_bucket")) {
      const le = name.match(/le="([^"]+)"/)?.[1];
      const bound = le === "+Inf" ? Infinity : Number(le);
      ack.set(bound, (ack.get(bound) ?? 0) + value);
    }
  }
  out.ack = [...ack.entries()].sort((a, b) => a[0] - b[0]);
  return out;
}

// The upper bound of the bucket that holds the q-quantile of cumulative buckets [le, count].
function quantile(buckets, q) {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (!total) return null;
  return buckets.find(([, count]) => count >= q * total)[0];
}

function formatSeconds(seconds) {
  return seconds < 1 ? `${(seconds * 1000).toFixed(seconds < 0.001 ? 2 : 1)} ms` : `${seconds} s`;
}
