// Decimal strings in, decimal strings out: prices and quantities never go through floats
// when they are checked against the tick and lot size (the server refuses off-grid values).

const DECIMAL = /^\d+(\.\d+)?$/;

export function decimals(step) {
  const text = String(step ?? "");
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.length - dot - 1;
}

// "12.35" with 2 places -> 1235n; null when the text is not a plain positive decimal.
export function toUnits(text, places) {
  const value = String(text).trim();
  if (!DECIMAL.test(value)) return null;
  const [whole, fraction = ""] = value.split(".");
  if (fraction.length > places) {
    if (/[^0]/.test(fraction.slice(places))) return null;
  }
  return BigInt(whole + fraction.slice(0, places).padEnd(places, "0"));
}

// Why ``value`` is not on the grid of ``step`` (null when it is): "not a number", "must be
// more than 0", "must be a multiple of 0.05".
export function offGrid(value, step) {
  const places = Math.max(decimals(step), decimals(value));
  const units = toUnits(value, places);
  if (units === null) return "is not a positive decimal number";
  if (units === 0n) return "must be more than 0";
  const stepUnits = toUnits(step, places);
  if (stepUnits && units % stepUnits !== 0n) return `must be a multiple of ${step}`;
  return null;
}

// A price shown with the instrument's tick places ("1875.4" at tick 0.05 -> "1875.40").
export function price(value, tick) {
  if (value === null || value === undefined || value === "") return "—";
  if (tick === null || tick === undefined) return String(value); // tick size not known here
  const number = Number(value);
  if (!Number.isFinite(number)) return String(value);
  return number.toFixed(decimals(tick));
}

export function quantity(value) {
  if (value === null || value === undefined || value === "") return "—";
  return String(value);
}

export function time(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toISOString().slice(11, 23);
}

export function signed(number, places) {
  if (!Number.isFinite(number)) return "—";
  return (number > 0 ? "+" : "") + number.toFixed(places);
}

// Build an element: el("td", {className: "num"}, "12").
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("aria-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child);
  return node;
}
