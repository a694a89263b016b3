#!/usr/bin/env bash
# Apache Kafka (KRaft) on loopback, from Maven Central. Three shapes, each with its own
# ports and data directory, so that they can run side by side:
#
#   deploy/kafka.sh start|stop|restart|status|fetch|wipe
#       one PLAINTEXT broker (the default): 127.0.0.1:$HUB_KAFKA_PORT (9092), data in
#       $HUB_RUN_DIR/kafka (default .run/kafka), broker log $HUB_RUN_DIR/kafka/server.log.
#   deploy/kafka.sh --secure start|stop|restart|status|wipe
#       one broker with a SASL_SSL listener (SCRAM-SHA-512) on 127.0.0.1:$HUB_KAFKA_SECURE_PORT
#       (9192), the StandardAuthorizer with no access unless an ACL grants it, a CA and a
#       broker certificate made here, SCRAM users and ACLs made with Kafka's own tools
#       (docs/security.md, "Kafka"). Data in $HUB_RUN_DIR/kafka-secure; the CA certificate
#       is kafka-secure/tls/ca.pem, each user's password kafka-secure/credentials/<user>.password
#       (mode 0600, never printed).
#   deploy/kafka.sh --brokers 3 start|stop|restart|status|wipe|kill N|stop-one N|start-one N
#       a KRaft cluster of three nodes (each broker and controller), PLAINTEXT on
#       127.0.0.1:$HUB_KAFKA_CLUSTER_PORTS (9292,9293,9294), controllers on
#       $HUB_KAFKA_CLUSTER_CONTROLLER_PORTS (9392,9393,9394); replication factor 3,
#       min.insync.replicas 2, unclean leader election off. Data in $HUB_RUN_DIR/kafka-cluster.
#       `kill N` SIGKILLs node N (a crash), `stop-one N` stops it cleanly, `start-one N`
#       starts it again. `status` prints the bootstrap servers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
run_dir=${HUB_RUN_DIR:-$root/.run}
lib=$here/kafka/lib

mode=plain
brokers=1
while [ $# -gt 0 ]; do
  case "$1" in
    --secure) mode=secure; shift ;;
    --brokers) brokers=${2:?--brokers needs a number}; shift 2 ;;
    --brokers=*) brokers=${1#--brokers=}; shift ;;
    *) break ;;
  esac
done
case "$brokers" in [1-9]) ;; *) echo "kafka.sh: --brokers takes 1 to 9" >&2; exit 2 ;; esac
if [ "$brokers" -gt 1 ]; then
  [ "$mode" = plain ] || { echo "kafka.sh: --secure and --brokers do not combine" >&2; exit 2; }
  mode=cluster
fi

case "$mode" in
  plain)
    kdir=$run_dir/kafka
    port=${HUB_KAFKA_PORT:-9092}
    ports=($port)
    cports=(${HUB_KAFKA_CONTROLLER_PORT:-$((port + 1))}) ;;
  secure)
    kdir=$run_dir/kafka-secure
    port=${HUB_KAFKA_SECURE_PORT:-9192}
    ports=($port)
    cports=(${HUB_KAFKA_SECURE_CONTROLLER_PORT:-$((port + 1))}) ;;
  cluster)
    kdir=$run_dir/kafka-cluster
    default_ports=$(seq -s, 9292 $((9292 + brokers - 1)))
    default_cports=$(seq -s, 9392 $((9392 + brokers - 1)))
    IFS=, read -r -a ports <<<"${HUB_KAFKA_CLUSTER_PORTS:-$default_ports}"
    IFS=, read -r -a cports <<<"${HUB_KAFKA_CLUSTER_CONTROLLER_PORTS:-$default_cports}"
    if [ "${#ports[@]}" != "$brokers" ] || [ "${#cports[@]}" != "$brokers" ]; then
      echo "kafka.sh: HUB_KAFKA_CLUSTER_PORTS and HUB_KAFKA_CLUSTER_CONTROLLER_PORTS need $brokers ports each" >&2
      exit 2
    fi ;;
esac
replication=$(( brokers < 3 ? brokers : 3 ))
min_isr=$(( replication > 2 ? 2 : 1 ))
users=(admin hub backoffice application-edge)

fetch() {
  # The classpath is fetched again whenever pom.xml changes (its digest is the marker).
  local digest; digest=$(sha256sum "$here/kafka/pom.xml" | cut -d' ' -f1)
  if [ -f "$lib/.complete" ] && [ "$(cat "$lib/.complete")" = "$digest" ]; then return; fi
  command -v mvn >/dev/null || { echo "kafka.sh: Maven (mvn) is needed: apt-get install -y maven" >&2; exit 1; }
  # Into a new directory, then swapped in: a broker running from the old one keeps its jars.
  rm -rf "$lib.new" "$lib.old"
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$lib.new" -DincludeScope=runtime
  echo "$digest" >"$lib.new/.complete"
  [ -d "$lib" ] && mv "$lib" "$lib.old"
  mv "$lib.new" "$lib"
  rm -rf "$lib.old"
}

java_tool() {
  if [ ! -f "$kdir/tools-log4j2.yaml" ]; then
    mkdir -p "$kdir"
    printf '%s\n' "Configuration:" "  Appenders:" "    File: {name: file, fileName: $kdir/tools.log, PatternLayout: {pattern: \"[%d] %p %m (%c)%n\"}}" \
      "  Loggers:" "    Root: {level: WARN, AppenderRef: [{ref: file}]}" >"$kdir/tools-log4j2.yaml"
  fi
  java -Xms64m -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$kdir/tools-log4j2.yaml" -cp "$lib/*" "$@"
}

node_dir() { if [ "$mode" = cluster ]; then echo "$kdir/node$1"; else echo "$kdir"; fi; }

voters() {
  local i out=""
  for i in $(seq 1 "$brokers"); do out+="${out:+,}$i@127.0.0.1:${cports[$((i - 1))]}"; done
  echo "$out"
}

bootstrap() {
  local i out=""
  for i in $(seq 1 "$brokers"); do out+="${out:+,}127.0.0.1:${ports[$((i - 1))]}"; done
  echo "$out"
}

write_common_config() {  # node id, node dir, client port, controller port
  local id=$1 ndir=$2 p=$3 c=$4
  mkdir -p "$ndir/data"
  cat >"$ndir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$(voters)
controller.listener.names=CONTROLLER
log.dirs=$ndir/data
num.partitions=6
default.replication.factor=$replication
min.insync.replicas=$min_isr
unclean.leader.election.enable=false
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
message.max.bytes=2097152
PROPS
  if [ "$mode" = secure ]; then
    cat >>"$ndir/server.properties" <<PROPS
listeners=SASL_SSL://127.0.0.1:$p,CONTROLLER://127.0.0.1:$c
advertised.listeners=SASL_SSL://127.0.0.1:$p
listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$kdir/credentials/admin.password")";
ssl.keystore.type=PKCS12
ssl.keystore.location=$kdir/tls/broker.p12
ssl.keystore.password=$(cat "$kdir/tls/keystore.password")
ssl.key.password=$(cat "$kdir/tls/keystore.password")
ssl.truststore.type=PEM
ssl.truststore.location=$kdir/tls/ca.pem
ssl.enabled.protocols=TLSv1.3,TLSv1.2
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([^,]+).*\$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:kafka-broker
PROPS
    chmod 600 "$ndir/server.properties"
  else
    cat >>"$ndir/server.properties" <<PROPS
listeners=PLAINTEXT://127.0.0.1:$p,CONTROLLER://127.0.0.1:$c
advertised.listeners=PLAINTEXT://127.0.0.1:$p
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
PROPS
  fi
  if [ "$mode" = cluster ]; then
    # A crashed node is fenced, and its partitions led elsewhere, after 6 s without heartbeats.
    cat >>"$ndir/server.properties" <<PROPS
broker.session.timeout.ms=6000
broker.heartbeat.interval.ms=1000
replica.lag.time.max.ms=10000
PROPS
  fi
  cat >"$ndir/log4j2.yaml" <<LOG
Configuration:
  Appenders:
    File:
      name: file
      fileName: $ndir/server.log
      PatternLayout: {pattern: "[%d] %p %m (%c)%n"}
  Loggers:
    Root: {level: INFO, AppenderRef: [{ref: file}]}
LOG
}

make_secrets() {
  # A local CA, the broker's certificate (127.0.0.1 and localhost; also its client
  # certificate towards the controller listener) and a password per SCRAM user.
  # Made once; `wipe` removes them with the data.
  umask 077
  mkdir -p "$kdir/tls" "$kdir/credentials"
  chmod 700 "$kdir" "$kdir/tls" "$kdir/credentials"
  local u
  for u in "${users[@]}"; do
    [ -s "$kdir/credentials/$u.password" ] || openssl rand -hex 24 >"$kdir/credentials/$u.password"
  done
  [ -s "$kdir/tls/keystore.password" ] || openssl rand -hex 24 >"$kdir/tls/keystore.password"
  if [ ! -s "$kdir/tls/broker.p12" ]; then
    local t=$kdir/tls
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
      -subj "/O=procurement-hub/CN=procurement-hub local Kafka CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -keyout "$t/ca.key" -out "$t/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/O=procurement-hub/CN=kafka-broker" -keyout "$t/broker.key" -out "$t/broker.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$t/broker.ext"
    openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
      -days 825 -sha256 -extfile "$t/broker.ext" -out "$t/broker.pem" 2>/dev/null
    openssl pkcs12 -export -name kafka-broker -inkey "$t/broker.key" -in "$t/broker.pem" \
      -certfile "$t/ca.pem" -passout "file:$t/keystore.password" -out "$t/broker.p12"
    rm -f "$t/broker.csr" "$t/broker.ext" "$t/ca.srl"
    chmod 644 "$t/ca.pem"
  fi
  local pw; pw=$(cat "$kdir/credentials/admin.password")
  cat >"$kdir/credentials/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$pw";
ssl.truststore.type=PEM
ssl.truststore.location=$kdir/tls/ca.pem
PROPS
  umask 022
}

format_node() {  # node id, node dir
  local ndir=$2
  [ -f "$ndir/data/meta.properties" ] && return
  [ -s "$kdir/cluster.id" ] || java_tool kafka.tools.StorageTool random-uuid >"$kdir/cluster.id"
  local args=(format -t "$(cat "$kdir/cluster.id")" -c "$ndir/server.properties")
  if [ "$mode" = secure ]; then
    # The SCRAM users go into the bootstrap metadata: the broker knows them at its first start.
    local u
    for u in "${users[@]}"; do
      args+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(cat "$kdir/credentials/$u.password")]")
    done
  fi
  java_tool kafka.tools.StorageTool "${args[@]}" >"$ndir/format.log" 2>&1 \
    || { echo "kafka.sh: formatting $ndir failed; see $ndir/format.log" >&2; exit 1; }
}

pid_of() { cat "$(node_dir "$1")/broker.pid" 2>/dev/null || true; }
running() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
heap() { if [ "$mode" = cluster ]; then echo "-Xms128m -Xmx512m"; else echo "-Xms256m -Xmx1g"; fi; }

launch() {  # node number
  local n=$1 ndir; ndir=$(node_dir "$1")
  write_common_config "$n" "$ndir" "${ports[$((n - 1))]}" "${cports[$((n - 1))]}"
  format_node "$n" "$ndir"
  # A new log for each start, so that waiting reads this start's "started" line.
  [ -f "$ndir/server.log" ] && mv -f "$ndir/server.log" "$ndir/server.log.1"
  # shellcheck disable=SC2046
  nohup java $(heap) -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ndir/log4j2.yaml" -cp "$lib/*" \
    kafka.Kafka "$ndir/server.properties" >"$ndir/stdout.log" 2>&1 &
  echo $! >"$ndir/broker.pid"
}

wait_started() {  # node numbers
  local n ndir
  for _ in $(seq 1 240); do
    local all=1
    for n in "$@"; do
      ndir=$(node_dir "$n")
      if ! running "$n"; then
        echo "kafka: node $n exited; see $ndir/stdout.log and $ndir/server.log" >&2
        tail -20 "$ndir/stdout.log" >&2; exit 1
      fi
      grep -q "Kafka Server started" "$ndir/server.log" 2>/dev/null && port_open "${ports[$((n - 1))]}" || all=0
    done
    [ "$all" = 1 ] && return
    sleep 0.5
  done
  echo "kafka: not ready after 120 s; see the server.log files under $kdir" >&2
  exit 1
}

acl() {  # AclCommand arguments after --add
  java_tool org.apache.kafka.tools.AclCommand --bootstrap-server "127.0.0.1:${ports[0]}" \
    --command-config "$kdir/credentials/admin.properties" --add "$@" >>"$kdir/acls.log" 2>&1 \
    || { echo "kafka.sh: adding ACLs failed ($*); see $kdir/acls.log" >&2; exit 1; }
}

add_acls() {
  # One principal per role; each edge may write only the topics it owns (deploy/kafka/acls.txt).
  # The hub reads and writes every proc.* topic, creates and configures them (hub topics
  # apply), and uses the consumer groups hub.*.
  : >"$kdir/acls.log"
  acl --allow-principal User:hub --resource-pattern-type prefixed --topic proc. \
    --operation Read --operation Write --operation Describe --operation Create \
    --operation Alter --operation AlterConfigs --operation DescribeConfigs
  acl --allow-principal User:hub --resource-pattern-type prefixed --group hub. \
    --operation Read --operation Describe
  local principal topics t
  while read -r principal topics; do
    case "$principal" in ''|'#'*) continue ;; esac
    local args=()
    for t in $topics; do args+=(--topic "$t"); done
    acl --allow-principal "User:$principal" --operation Write --operation Describe "${args[@]}"
  done <"$here/kafka/acls.txt"
  touch "$kdir/acls.done"
}

start() {
  local n started=() down=()
  for n in $(seq 1 "$brokers"); do running "$n" || down+=("$n"); done
  if [ ${#down[@]} -eq 0 ]; then echo "kafka ($mode): already running on $(bootstrap)"; return; fi
  command -v java >/dev/null || { echo "kafka.sh: Java is needed: apt-get install -y openjdk-17-jre-headless" >&2; exit 1; }
  fetch
  mkdir -p "$kdir"
  if [ "$mode" = secure ]; then make_secrets; fi
  for n in "${down[@]}"; do
    launch "$n"
    started+=("$n")
  done
  wait_started "${started[@]}"
  if [ "$mode" = secure ] && [ ! -f "$kdir/acls.done" ]; then add_acls; fi
  echo "kafka ($mode): started on $(bootstrap), data in $kdir"
  if [ "$mode" = secure ]; then
    echo "kafka: CA $kdir/tls/ca.pem, passwords in $kdir/credentials (users: ${users[*]})"
  fi
}

stop_node() {  # node number
  local n=$1 pid; pid=$(pid_of "$n")
  if ! running "$n"; then rm -f "$(node_dir "$n")/broker.pid"; return; fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then echo "kafka: node $n: no clean stop in 30 s, killing" >&2; kill -KILL "$pid"; fi
  rm -f "$(node_dir "$n")/broker.pid"
}

stop() {
  local n any=0
  for n in $(seq 1 "$brokers"); do running "$n" && any=1; done
  if [ "$any" = 0 ]; then
    echo "kafka ($mode): not running"
    for n in $(seq 1 "$brokers"); do rm -f "$(node_dir "$n")/broker.pid"; done
    return
  fi
  # The stops run at once: a cluster's last nodes would otherwise wait for a quorum.
  for n in $(seq 1 "$brokers"); do stop_node "$n" & done
  wait
  echo "kafka ($mode): stopped"
}

status() {
  local n up=0
  for n in $(seq 1 "$brokers"); do
    if running "$n"; then
      up=$((up + 1))
      echo "kafka ($mode): node $n running (pid $(pid_of "$n")) on 127.0.0.1:${ports[$((n - 1))]}"
    else
      echo "kafka ($mode): node $n stopped"
    fi
  done
  echo "bootstrap: $(bootstrap)"
  [ "$up" -gt 0 ] || exit 3
}

node_arg() {
  local n=${1:?a node number is needed}
  case "$n" in [1-9]) [ "$n" -le "$brokers" ] && { echo "$n"; return; } ;; esac
  echo "kafka.sh: no node $n (1 to $brokers)" >&2; exit 2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  fetch) fetch ;;
  wipe) stop; rm -rf "$kdir" ;;
  kill)
    n=$(node_arg "${2:-}")
    if running "$n"; then
      pid=$(pid_of "$n"); kill -KILL "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "kafka: node $n killed"
    else
      echo "kafka: node $n not running"
    fi
    rm -f "$(node_dir "$n")/broker.pid" ;;
  stop-one) n=$(node_arg "${2:-}"); stop_node "$n"; echo "kafka: node $n stopped" ;;
  start-one)
    n=$(node_arg "${2:-}")
    if running "$n"; then echo "kafka: node $n already running"; exit 0; fi
    fetch; launch "$n"; wait_started "$n"; echo "kafka: node $n started on 127.0.0.1:${ports[$((n - 1))]}" ;;
  *) echo "usage: $0 [--secure | --brokers N] start|stop|restart|status|fetch|wipe|kill N|stop-one N|start-one N" >&2; exit 2 ;;
esac
