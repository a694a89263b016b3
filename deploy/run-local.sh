#!/usr/bin/env bash
# The hub's main job on its embedded default, on a fresh machine: installs what is
# missing (deploy/setup.sh), starts the local Kafka broker (deploy/kafka.sh), then runs
# `hub demo`: the reference peers, a SQLite file, every pipeline, connector and job, the
# city's signer on SoftHSM2, the contractor's virtual IC card in pcscd's vpcd reader
# (deploy/services.d/pcscd.sh), and one complete case pushed through them, from the
# registration to the advance payment, with the timeline and the signed PDF printed.
# The broker keeps running afterwards (`bash deploy/kafka.sh stop` stops it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/setup.sh
bash deploy/kafka.sh start
bash deploy/services.d/pcscd.sh start
exec .venv/bin/hub demo
