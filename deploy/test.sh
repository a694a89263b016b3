#!/usr/bin/env bash
# Sets up and runs the whole test suite against the real parts: a Kafka broker, a secured
# one (SASL_SSL with ACLs), PostgreSQL, Keycloak (the staff's OpenID Connect provider),
# and the peers the tests start themselves. The chaos tests start and stop their own
# 3-broker cluster (deploy/kafka.sh --brokers 3).
# Lint and type checks run first. Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/setup.sh
bash deploy/kafka.sh start
bash deploy/kafka.sh --secure start
bash deploy/postgres.sh start
bash deploy/keycloak.sh start
for step in deploy/services.d/*.sh; do [ -e "$step" ] && bash "$step" start; done
export HUB_TEST_KAFKA=127.0.0.1:${HUB_KAFKA_PORT:-9092}
export HUB_TEST_KAFKA_SECURE=127.0.0.1:${HUB_KAFKA_SECURE_PORT:-9192}
export HUB_TEST_KAFKA_SECURE_DIR=${HUB_RUN_DIR:-$root/.run}/kafka-secure
export HUB_TEST_POSTGRES_URL=$(bash deploy/postgres.sh url hub_test)
export HUB_TEST_KEYCLOAK=$(bash deploy/keycloak.sh url)
.venv/bin/ruff check .
.venv/bin/mypy
# Message schemas against the last release in schemas/released (SCH-1, docs/operations.md).
.venv/bin/python -m hub.cli schemas check
# Jaeger for the trace test (tests/e2e/test_traces_jaeger.py): built once, then cached.
bash deploy/jaeger.sh build
# veraPDF, the PDF/A validator, for tests/integration/test_generated_pdfs.py: fetched once.
bash deploy/verapdf.sh fetch
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "test.sh: pytest collected no tests; that is a failure" >&2; exit 1; fi
exit "$rc"
