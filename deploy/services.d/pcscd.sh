#!/usr/bin/env bash
# pcscd with vsmartcard's vpcd driver: a real PC/SC reader, "Virtual PCD 00 00", whose
# card side listens on TCP 127.0.0.1:35963 (the tests' virtual card connects there).
# Usage: pcscd.sh start|stop|status
set -euo pipefail
pidfile=/run/pcscd/pcscd.pid
pid() { tr -cd 0-9 < "$pidfile" 2>/dev/null; }
running() { [ -f "$pidfile" ] && kill -0 "$(pid)" 2>/dev/null; }
case "${1:-}" in
  start)
    if running; then exit 0; fi
    command -v pcscd >/dev/null || bash "$(dirname "$0")/../setup.d/20-card.sh"
    [ -f /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || { echo "pcscd.sh: vsmartcard-vpcd missing" >&2; exit 1; }
    mkdir -p /run/pcscd
    pcscd
    for _ in $(seq 50); do
      # Listening is enough: connecting would look like a card to vpcd.
      running && ss -ltn 'sport = :35963' | grep -q 35963 && exit 0
      sleep 0.1
    done
    echo "pcscd.sh: pcscd started but vpcd is not listening on 127.0.0.1:35963" >&2; exit 1 ;;
  stop)
    if running; then kill "$(pid)"; fi ;;
  status)
    running && echo "pcscd running (pid $(pid))" || { echo "pcscd not running"; exit 3; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
