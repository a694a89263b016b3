#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) on loopback, from Maven Central.
#   deploy/kafka.sh start|stop|restart|status|fetch|wipe
# Data and logs live in $HUB_RUN_DIR/kafka (default .run/kafka); the broker log is
# $HUB_RUN_DIR/kafka/server.log. The port is $HUB_KAFKA_PORT (default 9092).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
run_dir=${HUB_RUN_DIR:-$root/.run}
kdir=$run_dir/kafka
lib=$here/kafka/lib
port=${HUB_KAFKA_PORT:-9092}
cport=${HUB_KAFKA_CONTROLLER_PORT:-$((port + 1))}
pidfile=$kdir/broker.pid

fetch() {
  if [ -f "$lib/.complete" ]; then return; fi
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is needed: apt-get install -y maven" >&2; exit 1; }
  rm -rf "$lib"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$lib" -DincludeScope=runtime
  touch "$lib/.complete"
}

write_config() {
  mkdir -p "$kdir/data"
  cat > "$kdir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$kdir/data
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
message.max.bytes=2097152
PROPS
  cat > "$kdir/log4j2.yaml" <<LOG
Configuration:
  Appenders:
    File:
      name: file
      fileName: $kdir/server.log
      PatternLayout: {pattern: "[%d] %p %m (%c)%n"}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: file}]}
LOG
}

java_cmd() {
  java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$kdir/log4j2.yaml" -cp "$lib/*" "$@"
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  if running; then echo "kafka: already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return; fi
  command -v java >/dev/null || { echo "kafka.sh: Java is needed: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
  fetch
  write_config
  if [ ! -f "$kdir/data/meta.properties" ]; then
    java_cmd kafka.tools.StorageTool format -t "$(java_cmd kafka.tools.StorageTool random-uuid)" \
      -c "$kdir/server.properties" >"$kdir/format.log" 2>&1
  fi
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$kdir/log4j2.yaml" -cp "$lib/*" \
    kafka.Kafka "$kdir/server.properties" >"$kdir/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 120); do
    if grep -q "Kafka Server started" "$kdir/server.log" 2>/dev/null && port_open; then
      echo "kafka: started (pid $(cat "$pidfile")) on 127.0.0.1:$port, log $kdir/server.log"
      return
    fi
    running || { echo "kafka: the broker exited; see $kdir/stdout.log and $kdir/server.log" >&2; tail -20 "$kdir/stdout.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "kafka: not ready after 60 s; see $kdir/server.log" >&2
  exit 1
}

stop() {
  if ! running; then echo "kafka: not running"; rm -f "$pidfile"; return; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then echo "kafka: no clean stop in 30 s, killing" >&2; kill -KILL "$pid"; fi
  rm -f "$pidfile"
  # Truncate the server log so the next start waits for its own "started" line.
  : >"$kdir/server.log"
  echo "kafka: stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) if running; then echo "kafka: running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; else echo "kafka: stopped"; exit 3; fi ;;
  fetch) fetch ;;
  wipe) stop; rm -rf "$kdir" ;;
  *) echo "usage: $0 start|stop|restart|status|fetch|wipe" >&2; exit 2 ;;
esac
