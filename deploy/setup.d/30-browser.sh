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
