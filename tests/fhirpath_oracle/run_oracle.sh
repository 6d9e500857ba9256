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
for tool in node python3; do
  command -v "$tool" >/dev/null || die "'$tool' not found (node/npm: apt-get install nodejs npm)"
done
[[ -x $TOOL ]] || die "$TOOL is not an executable"

"$HERE/../npm_pinned_install.sh" fhirpath_oracle "$HERE" "$CACHE_DIR" fhirpath hl7.fhir.r4.examples
CACHE_DIR=$(cd "$CACHE_DIR" && pwd)

python3 "$HERE/compare.py" "$TOOL" "$CACHE_DIR" "$CACHE_DIR/run"
