#!/usr/bin/env bash
# System packages for the card agent's real parts: pcscd with vsmartcard's virtual
# reader (vpcd), the PC/SC headers, swig and a C compiler to build pyscard from PyPI
# (no Linux wheel), SoftHSM2 for PKCS#11, opensc's pkcs11-tool to inspect tokens.
set -euo pipefail
need=()
for pkg in pcscd vsmartcard-vpcd libpcsclite-dev swig build-essential python3-dev \
           softhsm2 opensc iproute2; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "setup: please install as root: ${need[*]}" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
