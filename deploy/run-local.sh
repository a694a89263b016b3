#!/usr/bin/env bash
# The hub's main job on its embedded default, on a fresh machine: installs what is
# missing (deploy/setup.sh), starts the local Kafka broker (deploy/kafka.sh), then runs
# `hub demo`: the reference peers, a SQLite file, every pipeline and connector, and a
# sample contractor and case pushed through them, with the timeline printed.
# The broker keeps running afterwards (`bash deploy/kafka.sh stop` stops it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/setup.sh
bash deploy/kafka.sh start
exec .venv/bin/hub demo
