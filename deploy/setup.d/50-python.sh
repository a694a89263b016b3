#!/usr/bin/env bash
# The project's virtualenv in .venv with the hub, the card agent, the reference peers and
# the dev tools.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
# The hub runs on 3.11 and later, but the reference ERP peer the demo and the tests start
# (spyne) runs on 3.11 only.
found=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
if [ "$found" != 3.11 ]; then
  echo "setup: Python 3.11 is needed for the demo and the tests (the reference SOAP ERP," \
       "spyne, runs on 3.11 only); found $py = $found. Install python3.11 or set PYTHON=" >&2
  exit 1
fi
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv"
fi
stamp="$root/.venv/.installed-$(cat "$root/pyproject.toml" "$root/card_agent/pyproject.toml" "$root"/deploy/setup.d/*.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$root/.venv/bin/pip" install -q --upgrade pip
  # Two distributions from this repository: the card agent (card_agent/pyproject.toml),
  # then the hub, whose `card` extra names the agent.
  "$root/.venv/bin/pip" install -q -e "$root/card_agent" -e "$root[dev]"
  rm -f "$root"/.venv/.installed-*
  touch "$stamp"
fi
