// One WebSocket that authenticates with the key (first message), reconnects by itself with
// exponential back-off (0.5 s doubling to 15 s, with jitter) and tells the page its state:
// "connecting", "open", "reconnecting" (with the delay), "refused" (the key; no retry).

import { socketUrl } from "./api.js";

const REFUSED = new Set(["UNAUTHENTICATED", "AUTH_REQUIRED"]); // the key itself
const PING_MS = 30_000; // well inside the server's idle timeout

export class LiveSocket {
  constructor(path, key, { onOpen = () => {}, onMessage = () => {}, onState = () => {} } = {}) {
    this.path = path;
    this.key = key;
    this.handlers = { onOpen, onMessage, onState };
    this.attempt = 0;
    this.stopped = false;
    this.socket = null;
    this.timer = null;
    this.pinger = null;
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.socket) this.socket.close(1000, "bye");
    this.socket = null;
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  connect() {
    this.handlers.onState(this.attempt ? "reconnecting" : "connecting", {});
    const socket = new WebSocket(socketUrl(this.path));
    this.socket = socket;
    let authenticated = false;
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ action: "auth", api_key: this.key }));
    });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (message.type === "authenticated") {
        authenticated = true;
        this.attempt = 0;
        clearInterval(this.pinger);
        this.pinger = setInterval(() => this.send({ action: "ping" }), PING_MS);
        this.handlers.onState("open", message);
        this.handlers.onOpen(this, message);
      } else if (message.type === "error" && !authenticated && REFUSED.has(message.code)) {
        this.stopped = true;
        this.handlers.onState("refused", message);
      } else {
        this.handlers.onMessage(message);
      }
    });
    socket.addEventListener("close", () => {
      clearInterval(this.pinger);
      if (this.socket !== socket || this.stopped) return;
      const delay = Math.min(15_000, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
      this.attempt += 1;
      this.handlers.onState("reconnecting", { delay, attempt: this.attempt });
      this.timer = setTimeout(() => this.connect(), delay);
    });
  }
}
