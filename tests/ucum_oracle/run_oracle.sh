#!/usr/bin/env bash
# run_oracle.sh — Kura's UCUM conversion against ucum-lhc, the reference implementation, on every
# UCUM atom and prefix, the unit combinations LOINC uses and the UCUM codes of the official FHIR
# R4 examples (see oracle.mjs for what is compared and the accepted disagreements).
#
# usage: tests/ucum_oracle/run_oracle.sh KURA_UCUM_TOOL CACHE_DIR
#
#   KURA_UCUM_TOOL  the built kura_ucum_tool
#   CACHE_DIR       where @lhncbc/ucum-lhc and hl7.fhir.r4.examples are installed once
#                   (npm ci --ignore-scripts, versions pinned by package-lock.json here)
#
# Needs: node >= 20, npm (first run only, npm registry), flock, timeout.
set -euo pipefail

[[ $# -eq 2 ]] || { sed -n '2,12p' "$0" >&2; exit 2; }
TOOL=$1
CACHE_DIR=$2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v node >/dev/null || { echo "ucum_oracle: FAIL: node not found" >&2; exit 1; }
[[ -x $TOOL ]] || { echo "ucum_oracle: FAIL: $TOOL is not an executable" >&2; exit 1; }

"$HERE/../npm_pinned_install.sh" ucum_oracle "$HERE" "$CACHE_DIR" @lhncbc/ucum-lhc \
  hl7.fhir.r4.examples
node "$HERE/oracle.mjs" "$TOOL" "$(cd "$CACHE_DIR" && pwd)/node_modules"
