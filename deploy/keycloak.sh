#!/usr/bin/env bash
# Keycloak (OpenID Connect provider) in dev mode on loopback, from Maven Central, with the
# realm of deploy/keycloak/realm-procurement.json imported: clients, roles, groups and the
# test users of docs/identity.md. For tests and local trials only (dev mode: H2 file
# database, plain HTTP on 127.0.0.1).
#   deploy/keycloak.sh start|stop|restart|status|fetch|wipe|url
# Port $HUB_KEYCLOAK_PORT (default 8380), management (health) port +1. Logs and the
# admin password (generated, mode 0600) live in $HUB_RUN_DIR/keycloak (default .run/keycloak).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
run_dir=${HUB_RUN_DIR:-$root/.run}
kdir=$run_dir/keycloak
version=$(sed -n 's:.*<keycloak.version>\(.*\)</keycloak.version>.*:\1:p' "$here/keycloak/pom.xml")
dist=$here/keycloak/dist/keycloak-$version
port=${HUB_KEYCLOAK_PORT:-8380}
mport=$((port + 1))
pidfile=$kdir/keycloak.pid

fetch() {
  if [ -x "$dist/bin/kc.sh" ]; then return; fi
  command -v mvn >/dev/null || { echo "keycloak.sh: Maven (mvn) is needed: apt-get install -y maven" >&2; exit 1; }
  rm -rf "$here/keycloak/dist"
  mvn -q -B -f "$here/keycloak/pom.xml" dependency:unpack -DoutputDirectory="$here/keycloak/dist"
}

java_home() {
  # Keycloak 26 runs on Java 17 or 21.
  for candidate in "${KEYCLOAK_JAVA_HOME:-}" /usr/lib/jvm/java-21-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-amd64; do
    if [ -n "$candidate" ] && [ -x "$candidate/bin/java" ]; then echo "$candidate"; return; fi
  done
  dirname "$(dirname "$(readlink -f "$(command -v java)")")"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

healthy() { curl -fsS "http://127.0.0.1:$mport/health/ready" >/dev/null 2>&1; }

start() {
  if running; then echo "keycloak: already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return; fi
  fetch
  mkdir -p "$kdir" "$dist/data/import"
  cp "$here/keycloak/realm-procurement.json" "$dist/data/import/"
  if [ ! -s "$kdir/admin-password" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$kdir/admin-password")
  fi
  JAVA_HOME=$(java_home) \
  KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=$(cat "$kdir/admin-password") \
  JAVA_OPTS_KC_HEAP="-Xms128m -Xmx512m" \
    nohup "$dist/bin/kc.sh" start-dev --import-realm --http-host=127.0.0.1 --http-port="$port" \
      --http-management-port="$mport" --health-enabled=true --hostname-strict=false \
      >"$kdir/server.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 360); do
    if healthy; then
      echo "keycloak: started (pid $(cat "$pidfile")) on http://127.0.0.1:$port, log $kdir/server.log"
      return
    fi
    running || { echo "keycloak: exited; see $kdir/server.log" >&2; tail -20 "$kdir/server.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "keycloak: not ready after 180 s; see $kdir/server.log" >&2
  exit 1
}

stop() {
  if ! running; then echo "keycloak: not running"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  pkill -TERM -P "$pid" 2>/dev/null || true   # kc.sh's java child
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then echo "keycloak: no clean stop in 30 s, killing" >&2; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  echo "keycloak: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "keycloak: running (pid $(cat "$pidfile")) on http://127.0.0.1:$port"; else echo "keycloak: stopped"; exit 3; fi ;;
  fetch) fetch ;;
  url) echo "http://127.0.0.1:$port" ;;
  wipe) stop; rm -rf "$kdir" "$dist/data" ;;
  *) echo "usage: $0 start|stop|restart|status|fetch|wipe|url" >&2; exit 2 ;;
esac
