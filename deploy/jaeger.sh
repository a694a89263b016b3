#!/usr/bin/env bash
# Jaeger (v2, the OpenTelemetry-collector based binary) for the trace tests, built
# from source through the Go module proxy and cached in deploy/jaeger/bin.
#   deploy/jaeger.sh build            build once (a few minutes the first time)
#   deploy/jaeger.sh path             print the binary's path (builds if missing)
#   deploy/jaeger.sh config OTLP QUERY  print a config: in-memory storage, an OTLP/HTTP
#                                     receiver on 127.0.0.1:OTLP, the query API and UI
#                                     on 127.0.0.1:QUERY, nothing else listening.
# The tests start their own Jaeger on free ports (tests/support/jaeger.py); CI
# runs `build` up front so the first trace test does not pay for it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${HUB_JAEGER_VERSION:-v1.75.0}
bin_dir=$here/jaeger/bin
bin=$bin_dir/jaeger-$version

build() {
  if [ -x "$bin" ]; then return; fi
  command -v go >/dev/null || { echo "jaeger.sh: Go is needed (https://go.dev/dl/)" >&2; exit 1; }
  mkdir -p "$bin_dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  (
    cd "$tmp"
    export GOFLAGS=-mod=mod GO111MODULE=on CGO_ENABLED=0
    go mod init jaegerbuild >/dev/null 2>&1
    go get "github.com/jaegertracing/jaeger@$version" >/dev/null
    go build -trimpath -o "$bin.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
  )
  mv "$bin.tmp" "$bin"
}

config() {
  local otlp=$1 query=$2
  cat <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:$query
    grpc:
      endpoint: 127.0.0.1:0
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$otlp
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
YAML
}

case "${1:-}" in
  build) build ;;
  path) build; echo "$bin" ;;
  config) config "${2:?OTLP port}" "${3:?query port}" ;;
  *) echo "usage: $0 build|path|config OTLP_PORT QUERY_PORT" >&2; exit 2 ;;
esac
