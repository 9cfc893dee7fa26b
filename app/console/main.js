// The console's entry: log in with a key, then the views the key's scopes allow (market:
// read; trading: trade; operations: admin), live over /ws/ticker and /ws/orders.

import { ApiError, get, session, whenRefused } from "./api.js";
import { el } from "./format.js";
import { MarketView } from "./market.js";
import { OperationsView } from "./ops.js";
import { LiveSocket } from "./socket.js";
import { TradingView } from "./trading.js";

const $ = (id) => document.getElementById(id);
const instruments = new Map(); // token -> instrument (tick and lot sizes)
let market = null;
let trading = null;
let operations = null;
let sockets = [];
let ticker = null; // the /ws/ticker socket
let current = null;

function banner(id, text) {
  $(id).textContent = text ?? "";
  $(id).hidden = !text;
}

function socketBanner(id, what) {
  return (state, detail) => {
    if (state === "open") banner(id, null);
    else if (state === "reconnecting" && detail.delay !== undefined) {
      banner(id, `${what} disconnected — reconnecting in ${(detail.delay / 1000).toFixed(1)} s (attempt ${detail.attempt}).`);
    } else if (state === "reconnecting") banner(id, `${what} disconnected — reconnecting now…`);
    else if (state === "refused") refused(new ApiError(401, detail.code, detail.message));
  };
}

function refused(failure) {
  logout();
  banner("banner-key", `The service refused the key (${failure.code}). Log in again with a valid key.`);
}

function logout() {
  for (const socket of sockets) socket.stop();
  sockets = [];
  ticker = null;
  current = null;
  operations?.stop();
  session.key = null;
  location.hash = "";
  document.body.dataset.account = "";
  for (const id of ["tabs", "search", "who", "view-market", "view-trading", "view-operations"]) $(id).hidden = true;
  for (const id of ["banner-ticker", "banner-orders"]) banner(id, null);
  $("login").hidden = false;
  $("login-key").value = "";
  $("login-key").focus();
}

function show(view) {
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-pressed", String(tab.dataset.view === view));
  for (const section of document.querySelectorAll(".view")) section.hidden = section.dataset.view !== view;
  if (view === "operations") operations?.start();
  else operations?.stop();
  if (view === "market") market?.chart.schedule();
}

async function login(key) {
  let me;
  try {
    me = await get("me", { key });
  } catch (failure) {
    if (!(failure instanceof ApiError)) throw failure;
    $("login-error").textContent = failure.status === 401
      ? `The key was refused (${failure.code}).`
      : `The service did not accept the request (${failure.code}).`;
    return;
  }
  session.key = key;
  banner("banner-key", null);
  banner("banner-api", null);
  $("login").hidden = true;
  $("login-error").textContent = "";
  $("who-account").textContent = me.account;
  $("who-scopes").textContent = me.scopes.join(", ");
  document.body.dataset.account = me.account;
  for (const id of ["tabs", "who"]) $(id).hidden = false;
  const scopes = new Set(me.scopes);
  const reads = scopes.has("read");
  // Market data, orders and fills need the read scope (and both WebSockets do).
  document.querySelector('.tab[data-view="market"]').hidden = !reads;
  document.querySelector('.tab[data-view="trading"]').hidden = !(reads && scopes.has("trade"));
  document.querySelector('.tab[data-view="operations"]').hidden = !scopes.has("admin");
  $("search").hidden = !reads;
  if (!reads) {
    banner("banner-api", "This key has no read scope: market data, orders and fills need it.");
  }
  if (scopes.has("admin")) {
    operations ??= new OperationsView({ selected: () => current });
    operations.account = me.account;
    operations.scopes = me.scopes;
  }
  if (!reads) {
    if (operations) show("operations");
    return;
  }
  const page = await get("instruments?limit=1000");
  for (const i of page.items) instruments.set(i.instrument_token, i);

  market ??= new MarketView();
  if (scopes.has("trade")) {
    trading ??= new TradingView(instruments);
    sockets.push(new LiveSocket("ws/orders", key, {
      onOpen: () => trading.load(),
      onMessage: (m) => trading.onMessage(m),
      onState: socketBanner("banner-orders", "Order updates"),
    }).start());
  }
  let opened = false;
  ticker = new LiveSocket("ws/ticker", key, {
    onOpen: (socket) => {
      if (current) socket.send({ action: "subscribe", symbols: [current.instrument_token], mode: "full" });
      if (opened && current) market.open(current); // after a reconnect: a fresh snapshot
      opened = true;
    },
    onMessage: (m) => {
      if (m.type === "tick") market.onTick(m);
      else if (m.type === "ticks") for (const t of m.ticks) market.onTick(t);
    },
    onState: socketBanner("banner-ticker", "Live prices"),
  }).start();
  sockets.push(ticker);
  show("market");
  const wanted = decodeURIComponent(location.hash.slice(1));
  await choose([...instruments.values()].find((i) => i.symbol === wanted) ?? page.items[0]);
}

async function choose(instrument) {
  if (!instrument) return;
  if (current && current !== instrument) ticker?.send({ action: "unsubscribe", symbols: [current.instrument_token] });
  current = instrument;
  instruments.set(instrument.instrument_token, instrument);
  history.replaceState(null, "", `#${instrument.symbol}`);
  $("search-box").value = instrument.symbol;
  ticker?.send({ action: "subscribe", symbols: [instrument.instrument_token], mode: "full" });
  trading?.select(instrument);
  operations?.select(instrument);
  await market.open(instrument);
}

let searching = null;
async function suggest() {
  const text = $("search-box").value.trim();
  const body = await get(`instruments?limit=20&q=${encodeURIComponent(text.split(":").pop())}`);
  for (const i of body.items) instruments.set(i.instrument_token, i);
  $("search-results").replaceChildren(...body.items.map((i) => el("option", { value: i.symbol }, i.name ?? "")));
  return body.items;
}

$("search-box").addEventListener("input", () => {
  clearTimeout(searching);
  searching = setTimeout(() => suggest().catch(() => {}), 200);
});

$("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("search-box").value.trim().toUpperCase();
  const found = [...instruments.values()].find((i) => i.symbol === text || i.tradingsymbol === text)
    ?? (await suggest())[0];
  if (found) await choose(found);
});

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  login($("login-key").value.trim());
});
$("logout").addEventListener("click", logout);
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));
whenRefused(refused);
// An API error no view handled itself: a refused key has logged out already (whenRefused);
// anything else is said in a banner until the next successful login. Other exceptions stay
// uncaught: they are bugs (the browser tests fail on them).
window.addEventListener("unhandledrejection", (event) => {
  if (!(event.reason instanceof ApiError)) return;
  event.preventDefault();
  if (event.reason.status !== 401) banner("banner-api", `The service refused a request: ${event.reason.code} — ${event.reason.message}`);
});
window.tickerConsole = { get market() { return market; } }; // for bench/console.py

if (session.key) login(session.key);
else $("login-key").focus();
