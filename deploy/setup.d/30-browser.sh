#!/usr/bin/env bash
# Debian's chromium for the browser tests of the contractor's pages and the card agent
# (Playwright drives it with executable_path=/usr/bin/chromium; Playwright's own browser
# download is not used).
set -euo pipefail
if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  [ "$(id -u)" = 0 ] || { echo "setup: please install as root: chromium" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# axe-core from npm (deploy/axe/package.json, pinned, with its lock file) for the staff
# console's accessibility checks (tests/e2e/test_console_browser.py), installed into
# deploy/axe/node_modules (ignored by git), never vendored.
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v npm >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "setup: please install as root: nodejs npm" >&2; exit 1; }
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -f "$root/deploy/axe/node_modules/axe-core/axe.min.js" ]; then
  npm ci --no-audit --no-fund --prefix "$root/deploy/axe" >/dev/null
fi
