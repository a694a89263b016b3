#!/usr/bin/env bash
# System packages for the card agent's real parts: pcscd with vsmartcard's virtual
# reader (vpcd), the PC/SC headers and swig to build pyscard, SoftHSM2 for PKCS#11.
set -euo pipefail
need=()
for pkg in pcscd vsmartcard-vpcd libpcsclite-dev swig softhsm2 opensc; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "setup: please install as root: ${need[*]}" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
