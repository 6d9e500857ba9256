#!/usr/bin/env bash
# run_oracle.sh — Kura's search parameter FHIRPath evaluation against fhirpath.js on the official
# FHIR R4 examples (see compare.py for what is compared and the listed disagreements).
#
# usage: tests/fhirpath_oracle/run_oracle.sh KURA_SEARCH_EXTRACT_TOOL CACHE_DIR
#
#   KURA_SEARCH_EXTRACT_TOOL  the built kura_search_extract_tool
#   CACHE_DIR                 where fhirpath and hl7.fhir.r4.examples are installed once
#                             (npm ci --ignore-scripts, versions pinned by package-lock.json here)
#                             and the run's files are written (CACHE_DIR/run)
#
# Environment (optional): KURA_ORACLE_INSTALL_TIMEOUT seconds for the npm install (default 300).
# Needs: node >= 20, npm (first run only, npm registry), python3, flock, timeout.
set -euo pipefail

die() { echo "fhirpath_oracle: FAIL: $*" >&2; exit 1; }

[[ $# -eq 2 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
TOOL=$1
CACHE_DIR=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in node npm python3 flock timeout sha256sum; do
  command -v "$tool" >/dev/null || die "'$tool' not found (node/npm: apt-get install nodejs npm)"
done
[[ -x $TOOL ]] || die "$TOOL is not an executable"

mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)
want_stamp=$(cat "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)

exec 9>"$CACHE_DIR/.install.lock"
flock -w 900 9 || die "could not lock $CACHE_DIR/.install.lock"
if [[ -f $CACHE_DIR/node_modules/fhirpath/package.json &&
      -f $CACHE_DIR/node_modules/hl7.fhir.r4.examples/package.json &&
      "$(cat "$CACHE_DIR/.kura-stamp" 2>/dev/null)" == "$want_stamp" ]]; then
  echo "fhirpath_oracle: packages already installed in $CACHE_DIR"
else
  echo "fhirpath_oracle: installing fhirpath and the R4 examples into $CACHE_DIR (npm ci)"
  rm -f "$CACHE_DIR/.kura-stamp"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$CACHE_DIR/"
  if ! (cd "$CACHE_DIR" && timeout "${KURA_ORACLE_INSTALL_TIMEOUT:-300}" \
          npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
          >"$CACHE_DIR/npm-install.log" 2>&1; then
    tail -n 30 "$CACHE_DIR/npm-install.log" >&2
    die "npm ci failed (log: $CACHE_DIR/npm-install.log)"
  fi
  echo "$want_stamp" >"$CACHE_DIR/.kura-stamp"
fi
flock -u 9

python3 "$HERE/compare.py" "$TOOL" "$CACHE_DIR" "$CACHE_DIR/run"
