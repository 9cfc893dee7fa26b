// The public API with the key the user typed (sessionStorage: this tab only). Every error is
// the service's envelope {"error": {"code", "message"}}, raised as ApiError.

const KEY = "ticker.console.key";

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(`${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

// Called with the error when the service refuses the key (401): the page logs out.
let onRefused = () => {};
export function whenRefused(handler) { onRefused = handler; }

// Relative to the page (/console), so the console works under a path prefix too.
export function url(path) { return new URL(path.replace(/^\//, ""), document.baseURI).href; }

export function socketUrl(path) {
  const target = new URL(url(path));
  target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
  return target.href;
}

export async function api(method, path, body, { key = session.key, text = false } = {}) {
  const headers = { "X-API-Key": key ?? "" };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path), init);
  } catch (failure) {
    throw new ApiError(0, "NETWORK_ERROR", `the service did not answer (${failure.message})`);
  }
  if (response.ok) {
    if (response.status === 204) return null;
    return text ? response.text() : response.json();
  }
  let payload = null;
  try { payload = await response.json(); } catch { payload = null; }
  const error = payload?.error ?? {};
  const failure = new ApiError(
    response.status, error.code ?? `HTTP_${response.status}`, error.message ?? response.statusText, payload,
  );
  if (response.status === 401) onRefused(failure);
  throw failure;
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body, options);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);
