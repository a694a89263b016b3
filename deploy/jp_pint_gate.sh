#!/usr/bin/env bash
# The JP PINT gate's worker (INV-4, pipelines/invoices/gate.py): Saxon-HE and its XML
# resolver from Maven Central into deploy/jp_pint_gate/lib, each jar checked against its
# SHA-256 below, and deploy/jp_pint_gate/GateWorker.java compiled into
# deploy/jp_pint_gate/classes. Idempotent: a second run only checks.
#   deploy/jp_pint_gate.sh build      fetch, check and compile (setup runs it)
#   deploy/jp_pint_gate.sh classpath  the worker's Java class path
# Updating Saxon: change the version and the checksum together (sha256sum of the jar from
# Maven Central), run build, and run the invoice tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$here/jp_pint_gate
lib=$dir/lib
classes=$dir/classes
jars=(
  "net.sf.saxon:Saxon-HE:12.8 Saxon-HE-12.8.jar 58220adcb289dbebe0053e7a73ee70c97545c88f4886943d64241bf24701b72a"
  "org.xmlresolver:xmlresolver:5.3.3 xmlresolver-5.3.3.jar 1fe4d5b92f708dcdb82dbce12919e0171e6b5ca62c6dca6220483625098feb5f"
)

fetch() {
  mkdir -p "$lib"
  for entry in "${jars[@]}"; do
    read -r artifact file sum <<<"$entry"
    if [ ! -f "$lib/$file" ]; then
      command -v mvn >/dev/null || { echo "jp_pint_gate.sh: Maven (mvn) is needed: apt-get install -y maven" >&2; exit 1; }
      mvn -q -B -C org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
        -Dartifact="$artifact" -DoutputDirectory="$lib" -Dmdep.overWriteReleases=true
    fi
    echo "$sum  $lib/$file" | sha256sum --quiet -c - \
      || { echo "jp_pint_gate.sh: $file does not match its checksum; removed" >&2; rm -f "$lib/$file"; exit 1; }
  done
}

build() {
  fetch
  local source=$dir/GateWorker.java
  if [ -f "$classes/GateWorker.class" ] && [ "$classes/GateWorker.class" -nt "$source" ]; then return; fi
  command -v javac >/dev/null || { echo "jp_pint_gate.sh: a JDK (javac) is needed: apt-get install -y openjdk-17-jdk-headless" >&2; exit 1; }
  rm -rf "$classes"
  javac -nowarn -d "$classes" -cp "$lib/*" "$source"
}

case "${1:-}" in
  build) build ;;
  classpath) echo "$classes:$lib/*" ;;
  *) echo "usage: $0 build|classpath" >&2; exit 2 ;;
esac
