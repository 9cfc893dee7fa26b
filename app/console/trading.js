// Trading (trade scope): the order ticket, working orders (cancel, amend), fills, positions.
// Orders and fills are loaded once, then kept live from /ws/orders; after a reconnect they are
// loaded again, so nothing missed while the socket was down stays missing.

import { ApiError, del, get, patch, post } from "./api.js";
import { el, offGrid, price, quantity, time } from "./format.js";

const WORKING = new Set(["open", "partially_filled", "pending_trigger"]);
const NEEDS_PRICE = new Set(["limit", "stop_limit"]);
const NEEDS_TRIGGER = new Set(["stop", "stop_limit"]);

export class TradingView {
  constructor(instruments) {
    this.instruments = instruments; // token -> instrument, for tick sizes
    this.instrument = null;
    this.orders = new Map();
    this.form = document.getElementById("ticket");
    this.message = document.getElementById("t-message");
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.place(); });
    document.getElementById("t-type").addEventListener("change", () => this.syncFields());
    this.syncFields();
  }

  select(instrument) {
    this.instrument = instrument;
    document.getElementById("t-symbol").textContent =
      `${instrument.symbol} · tick ${instrument.tick_size} · lot ${instrument.lot_size}`;
  }

  syncFields() {
    const type = this.form.elements.type.value;
    this.form.elements.price.disabled = !NEEDS_PRICE.has(type);
    this.form.elements.trigger_price.disabled = !NEEDS_TRIGGER.has(type);
    this.form.elements.post_only.disabled = type !== "limit";
    if (type !== "limit") this.form.elements.post_only.checked = false;
  }

  say(text, error = false) {
    this.message.textContent = text;
    this.message.className = error ? "error" : "";
  }

  // The order the ticket describes, or the first problem with it (checked before sending).
  ticket() {
    const f = this.form.elements;
    const instrument = this.instrument;
    if (!instrument) return { problem: "choose an instrument first" };
    const order = {
      symbol: instrument.symbol, side: f.side.value, type: f.type.value,
      quantity: f.quantity.value.trim(), time_in_force: f.time_in_force.value,
    };
    const wrong = offGrid(order.quantity, instrument.lot_size);
    if (wrong) return { problem: `quantity ${wrong}`, field: f.quantity };
    if (NEEDS_PRICE.has(order.type)) {
      order.price = f.price.value.trim();
      const off = offGrid(order.price, instrument.tick_size);
      if (off) return { problem: `price ${off}`, field: f.price };
    }
    if (NEEDS_TRIGGER.has(order.type)) {
      order.trigger_price = f.trigger_price.value.trim();
      const off = offGrid(order.trigger_price, instrument.tick_size);
      if (off) return { problem: `trigger price ${off}`, field: f.trigger_price };
    }
    if (order.type === "limit" && f.post_only.checked) order.post_only = true;
    return { order };
  }

  async place() {
    const { order, problem, field } = this.ticket();
    if (problem) {
      this.say(problem, true);
      field?.setAttribute("aria-invalid", "true");
      field?.focus();
      return;
    }
    for (const input of this.form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    this.say("sending…");
    const submit = document.getElementById("t-submit");
    submit.disabled = true; // one order per press, however often it is pressed
    try {
      const result = await post("orders", order);
      this.track(result);
      this.say(`order ${result.order_id}: ${result.status}`);
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
      this.say(`rejected: ${failure.code} — ${failure.message}`, true);
    } finally {
      submit.disabled = false;
    }
  }

  async load() {
    const [orders, fills] = await Promise.all([get("orders?status=working&limit=200"), get("fills?limit=50")]);
    this.orders = new Map(orders.items.map((o) => [o.order_id, o]));
    this.renderOrders();
    document.getElementById("fills").replaceChildren(...fills.items.map((f) => this.fillRow(f)));
    await this.loadPositions();
  }

  // /positions comes with the trading-day work: shown when the service has it (its OpenAPI
  // document lists it and it answers 200); asking first keeps a 404 out of the browser's log.
  async loadPositions() {
    const note = document.getElementById("positions-note");
    const table = document.getElementById("positions-table");
    let body;
    try {
      this.hasPositions ??= Boolean((await get("openapi.json"))?.paths?.["/positions"]);
      if (!this.hasPositions) {
        note.textContent = "Positions are not available on this service yet.";
        table.hidden = true;
        return;
      }
      body = await get("positions");
    } catch (failure) {
      if (!(failure instanceof ApiError) || failure.status === 401) return;
      table.hidden = true;
      note.textContent = failure.status === 404 || failure.status === 405
        ? "Positions are not available on this service yet."
        : `Positions could not be read (${failure.code}).`;
      return;
    }
    const items = Array.isArray(body) ? body : body?.items ?? body?.positions ?? [];
    note.textContent = items.length ? "" : "No positions.";
    table.hidden = !items.length;
    // Read defensively: the fields of the trading-day issue's positions, or their usual names.
    const pick = (p, ...names) => names.map((n) => p?.[n]).find((v) => v !== undefined && v !== null);
    const money = (v) => (v === undefined ? "—" : String(v)); // exact decimals from the server
    document.getElementById("positions").replaceChildren(...items.map((p) => {
      const tick = this.instruments.get(p.instrument_token)?.tick_size;
      const pnl = Number(pick(p, "pnl", "total_pnl") ?? NaN);
      return el("tr", { dataset: { symbol: String(pick(p, "symbol", "tradingsymbol") ?? "") } },
        el("td", {}, String(pick(p, "symbol", "tradingsymbol") ?? "?")),
        el("td", { className: "num" }, quantity(pick(p, "net_quantity", "quantity", "net"))),
        el("td", { className: "num" }, price(pick(p, "average_price", "avg_price"), tick)),
        el("td", { className: "num" }, price(pick(p, "last_price", "ltp"), tick)),
        el("td", { className: "num" }, money(pick(p, "realised_pnl", "realized_pnl", "realised"))),
        el("td", { className: "num" }, money(pick(p, "unrealised_pnl", "unrealized_pnl", "unrealised"))),
        el("td", { className: `num ${pnl > 0 ? "up" : pnl < 0 ? "down" : ""}` }, money(pick(p, "pnl", "total_pnl"))));
    }));
  }

  // Positions change with every fill: read them again, at most every half second.
  positionsSoon() {
    if (this.positionsTimer) return;
    this.positionsTimer = setTimeout(() => {
      this.positionsTimer = null;
      this.loadPositions();
    }, 500);
  }

  onMessage(message) {
    if (message.type === "order") this.track(message.order);
    else if (message.type === "fill") {
      document.getElementById("fills").prepend(this.fillRow(message.fill));
      if (this.hasPositions) this.positionsSoon();
    }
  }

  track(order) {
    if (!order?.order_id) return;
    const known = this.orders.get(order.order_id);
    if (known && (known.updated_ns ?? 0) > (order.updated_ns ?? 0)) return;
    if (WORKING.has(order.status)) this.orders.set(order.order_id, { ...known, ...order });
    else this.orders.delete(order.order_id);
    this.renderOrders();
  }

  tickOf(order) { return this.instruments.get(order.instrument_token)?.tick_size; }

  renderOrders() {
    const rows = [...this.orders.values()]
      .sort((a, b) => Number(b.order_id) - Number(a.order_id))
      .map((o) => el("tr", { dataset: { orderId: o.order_id } },
        el("td", { className: "num" }, o.order_id),
        el("td", {}, o.symbol),
        el("td", { className: o.side === "buy" ? "up" : "down" }, o.side),
        el("td", {}, o.type),
        el("td", { className: "num" }, price(o.price ?? o.trigger_price, this.tickOf(o))),
        el("td", { className: "num" }, quantity(o.remaining_quantity)),
        el("td", { className: "num" }, quantity(o.filled_quantity)),
        el("td", {}, o.status),
        el("td", {}, this.actions(o))));
    document.getElementById("working").replaceChildren(...rows);
  }

  actions(order) {
    const cancel = el("button", { type: "button", className: "cancel", "aria-label": `Cancel order ${order.order_id}` }, "Cancel");
    cancel.addEventListener("click", () => this.run(() => del(`orders/${order.order_id}`)));
    const amend = el("button", { type: "button", className: "amend-open", "aria-label": `Amend order ${order.order_id}` }, "Amend");
    const box = el("span", {}, cancel, " ", amend);
    amend.addEventListener("click", () => box.replaceWith(this.amendForm(order)));
    return box;
  }

  amendForm(order) {
    const qty = el("input", { name: "quantity", value: order.remaining_quantity, "aria-label": `New quantity of order ${order.order_id}` });
    const px = el("input", { name: "price", value: order.price ?? "", "aria-label": `New price of order ${order.order_id}` });
    px.disabled = order.price === null || order.price === undefined;
    const form = el("form", { className: "amend" }, qty, px, el("button", { type: "submit" }, "Save"));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const instrument = this.instruments.get(order.instrument_token);
      const body = { quantity: qty.value.trim() };
      const wrong = offGrid(body.quantity, instrument?.lot_size ?? "1");
      if (wrong) { this.say(`quantity ${wrong}`, true); qty.focus(); return; }
      if (!px.disabled) {
        body.price = px.value.trim();
        const off = offGrid(body.price, instrument?.tick_size ?? "0.01");
        if (off) { this.say(`price ${off}`, true); px.focus(); return; }
      }
      this.run(() => patch(`orders/${order.order_id}`, body));
    });
    queueMicrotask(() => qty.focus());
    return form;
  }

  async run(call) {
    try {
      const result = await call();
      this.track(result);
      this.say(`order ${result.order_id}: ${result.status}`);
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
      this.say(`refused: ${failure.code} — ${failure.message}`, true);
      this.renderOrders();
    }
  }

  fillRow(f) {
    return el("tr", { dataset: { tradeId: f.trade_id } },
      el("td", {}, time(f.time ?? f.timestamp)),
      el("td", {}, f.symbol),
      el("td", { className: f.side === "buy" ? "up" : "down" }, f.side),
      el("td", { className: "num" }, price(f.price, this.instruments.get(f.instrument_token)?.tick_size)),
      el("td", { className: "num" }, quantity(f.quantity)),
      el("td", {}, f.liquidity ?? ""));
  }
}
