#!/usr/bin/env bash
# Install the deployment validators that pip cannot provide, idempotently (called by
# `make test` before pytest; tests/deploy/ uses them). Today that is promtool, taken from
# Debian's `prometheus` package: only the promtool binary is unpacked into the virtualenv
# (BIN, default .venv/bin), so no Prometheus server is installed or started. Needs apt-get;
# `apt-get update` (root) runs only when the package lists do not know the package yet.
set -euo pipefail
BIN="${1:-.venv/bin}"

if command -v promtool >/dev/null 2>&1 || [ -x "$BIN/promtool" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-tools: promtool is missing and apt-get is not available;" \
    "install Prometheus' promtool and put it on PATH" >&2
  exit 1
fi
policy="$(apt-cache policy prometheus 2>/dev/null || true)"
if [[ "$policy" != *"Candidate: "[0-9]* ]]; then
  echo "ensure-tools: apt-get update (to find the prometheus package)"
  apt-get update -qq
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "ensure-tools: fetching promtool from Debian's prometheus package"
(cd "$work" && apt-get download -qq -o APT::Sandbox::User=root prometheus)
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
install -m 0755 "$work/root/usr/bin/promtool" "$BIN/promtool"
"$BIN/promtool" --version | head -n 1
