#!/usr/bin/env bash
# The project's virtualenv in .venv with the hub, the reference peers and the dev tools.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv"
fi
stamp="$root/.venv/.installed-$(cat "$root/pyproject.toml" "$root"/deploy/setup.d/*.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$root/.venv/bin/pip" install -q --upgrade pip
  "$root/.venv/bin/pip" install -q -e "$root[dev]"
  rm -f "$root"/.venv/.installed-*
  touch "$stamp"
fi
