#!/usr/bin/env bash
# Installs everything the hub and its tests need on a fresh Debian machine:
# runs deploy/setup.d/*.sh in order (system packages first, then the Python venv).
# Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
for step in "$here"/setup.d/*.sh; do
  echo "setup: $(basename "$step")"
  bash "$step"
done
