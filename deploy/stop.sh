#!/usr/bin/env bash
# Stops every service the project's scripts start (deploy/run-local.sh, deploy/test.sh):
# the Kafka brokers (plain, secured, a 3-broker cluster), PostgreSQL, Keycloak and pcscd.
# Data stays; `deploy/kafka.sh wipe` and `deploy/postgres.sh wipe` remove it. Safe to run
# when nothing is running.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rc=0
bash "$here/kafka.sh" stop || rc=1
bash "$here/kafka.sh" --secure stop || rc=1
bash "$here/kafka.sh" --brokers 3 stop || rc=1
bash "$here/postgres.sh" stop || rc=1
bash "$here/keycloak.sh" stop || rc=1
for step in "$here"/services.d/*.sh; do
  [ -e "$step" ] || continue
  bash "$step" stop || rc=1
done
exit "$rc"
