#!/usr/bin/env bash
# veraPDF, the PDF/A validator, from Maven Central (deploy/verapdf/pom.xml) into
# deploy/verapdf/lib, for the tests that let it judge the PDFs the hub writes.
#   deploy/verapdf.sh fetch            copy the jars once (Maven; cached afterwards)
#   deploy/verapdf.sh validate FILE…   veraPDF's text report, PDF/A-2b (--flavour 2b)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=$here/verapdf/lib

fetch() {
  if [ -f "$lib/.complete" ]; then return; fi
  command -v mvn >/dev/null || { echo "verapdf.sh: Maven (mvn) is needed: apt-get install -y maven" >&2; exit 1; }
  rm -rf "$lib"
  mvn -q -B -f "$here/verapdf/pom.xml" dependency:copy-dependencies -DoutputDirectory="$lib"
  touch "$lib/.complete"
}

case "${1:-}" in
  fetch) fetch ;;
  validate)
    shift
    fetch
    exec java -Xmx512m -cp "$lib/*" org.verapdf.apps.GreenfieldCliWrapper --flavour 2b \
      --format text "$@" ;;
  *) echo "usage: $0 fetch|validate FILE…" >&2; exit 2 ;;
esac
