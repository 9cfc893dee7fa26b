#!/usr/bin/env bash
# Install the browser the console tests (tests/console/) and bench/console.py drive, idempotently
# (called by `make test` before pytest): Debian's `chromium` and `chromium-driver`. Playwright
# for Python drives that executable, so no browser is downloaded by pip. Needs apt-get as root;
# `apt-get update` runs only when the package lists do not know the package yet. Without
# apt-get or root the tests skip with that reason (tests/console/conftest.py), so say why here.
set -euo pipefail

if [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  echo "ensure-browser: chromium is missing and cannot be installed here (needs apt-get as root);" \
    "the console tests will be skipped" >&2
  exit 0
fi
policy="$(apt-cache policy chromium 2>/dev/null || true)"
if [[ "$policy" != *"Candidate: "[0-9]* ]]; then
  echo "ensure-browser: apt-get update (to find the chromium package)"
  apt-get update -qq
fi
echo "ensure-browser: installing chromium and chromium-driver from Debian"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  chromium chromium-driver >/dev/null
/usr/bin/chromium --version
