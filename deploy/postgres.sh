#!/usr/bin/env bash
# A throw-away PostgreSQL cluster on loopback for tests and benchmarks, from
# Debian's packages.  deploy/postgres.sh start|stop|status|wipe|where|url
# Data in $HUB_RUN_DIR/postgres (default .run/postgres), port $HUB_PG_PORT (55432).
# Started as root, the server runs as the `postgres` user, which must be able to reach
# its data directory: a clone below a directory that user cannot enter (/root, a
# `mktemp -d`) keeps its cluster in /var/lib/postgresql/procurement-hub/<hash of the run
# directory> instead; `deploy/postgres.sh where` prints the directory in use.
# Role `hub` and databases `hub` and `hub_test` are created on first start.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
run_dir=${HUB_RUN_DIR:-$root/.run}
pgdir=$run_dir/postgres
port=${HUB_PG_PORT:-55432}

bin_dir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return; }; done
  return 1
}

# Sets pgdir to a data directory the server's user can reach (see the header).
resolve_pgdir() {
  [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 || return 0
  mkdir -p "$run_dir"
  runuser -u postgres -- test -x "$run_dir" && return 0
  pgdir=/var/lib/postgresql/procurement-hub/$(printf '%s' "$run_dir" | sha256sum | cut -c1-16)
  mkdir -p "$(dirname "$pgdir")"
  chown postgres: "$(dirname "$pgdir")"
  chmod 0700 "$(dirname "$pgdir")"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

ensure_installed() {
  bin_dir >/dev/null && return
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "postgres.sh: PostgreSQL is not installed; run as root or: sudo apt-get install postgresql" >&2; exit 1
  fi
}

start() {
  ensure_installed
  resolve_pgdir
  local bin; bin=$(bin_dir)
  mkdir -p "$run_dir"
  if [ ! -f "$pgdir/PG_VERSION" ]; then
    mkdir -p "$pgdir"
    chmod 0700 "$pgdir"
    [ "$(id -u)" = 0 ] && chown postgres: "$pgdir"
    as_pg "$bin/initdb" -D "$pgdir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$pgdir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pgdir'
max_connections = 200
fsync = on
synchronous_commit = on
shared_buffers = 256MB
logging_collector = off
CONF
  fi
  if as_pg "$bin/pg_ctl" -D "$pgdir" status >/dev/null 2>&1; then
    echo "postgres: already running on 127.0.0.1:$port"
  else
    as_pg "$bin/pg_ctl" -D "$pgdir" -l "$pgdir/server.log" -w -t 60 start >/dev/null
    echo "postgres: started on 127.0.0.1:$port, log $pgdir/server.log"
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qtA)
  if [ -z "$("${psql[@]}" -c "select 1 from pg_roles where rolname='hub'")" ]; then
    "${psql[@]}" -c "create role hub login createdb"
  fi
  # Tests drop their databases "with (force)", which must end sessions of other roles too.
  "${psql[@]}" -c "grant pg_signal_backend to hub" >/dev/null
  for db in hub hub_test; do
    if [ -z "$("${psql[@]}" -c "select 1 from pg_database where datname='$db'")" ]; then
      "${psql[@]}" -c "create database $db owner hub"
    fi
  done
}

stop() {
  local bin; bin=$(bin_dir) || { echo "postgres: not installed"; return; }
  resolve_pgdir
  if [ -f "$pgdir/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$pgdir" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$pgdir" -m fast -w stop >/dev/null
    echo "postgres: stopped"
  else
    echo "postgres: not running"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) bin=$(bin_dir) && resolve_pgdir && as_pg "$bin/pg_ctl" -D "$pgdir" status ;;
  wipe) stop; rm -rf "$pgdir" ;;
  where) resolve_pgdir; echo "$pgdir" ;;
  url) echo "postgresql+psycopg://hub@127.0.0.1:$port/${2:-hub}" ;;
  *) echo "usage: $0 start|stop|status|wipe|where|url [db]" >&2; exit 2 ;;
esac
