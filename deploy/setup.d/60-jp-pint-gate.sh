#!/usr/bin/env bash
# The JP PINT gate's worker: Saxon-HE from Maven Central (checksums pinned) and the worker
# compiled (deploy/jp_pint_gate.sh). Needs Java and Maven from 10-system.sh.
set -euo pipefail
bash "$(cd "$(dirname "$0")/.." && pwd)/jp_pint_gate.sh" build
