#!/usr/bin/env bash
# System packages from Debian: Java, Maven and OpenSSL for the Kafka brokers (and a JDK for the
# JP PINT gate's worker, deploy/jp_pint_gate.sh), PostgreSQL;
# poppler's pdfsig and NSS's certutil, outside validators of the signed PDFs in the tests
# (poppler's pdftoppm and pdfinfo also draw the review page's previews);
# Prometheus for its promtool (the alert rules in deploy/prometheus are checked by a test);
# the IPAex fonts, embedded in the PDFs the hub writes (pipelines/contract/pdfa.py).
set -euo pipefail
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)  # compiles the JP PINT gate worker
command -v mvn >/dev/null || need+=(maven)
command -v openssl >/dev/null || need+=(openssl)  # the secured broker's CA (deploy/kafka.sh --secure)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
command -v pdfsig >/dev/null || need+=(poppler-utils)
command -v certutil >/dev/null || need+=(libnss3-tools)
command -v promtool >/dev/null || need+=(prometheus)
[ -f /usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf ] \
  && [ -f /usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf ] || need+=(fonts-ipaexfont)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "setup: please install as root: ${need[*]}" >&2; exit 1; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
