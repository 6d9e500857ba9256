#!/usr/bin/env bash
# Instructions per search, counted by callgrind (see bench/README.md and callgrind_reads.sh).
#
#   bench/callgrind_searches.sh [SEARCHES_PER_CLIENT]     (default 100, with 16 clients)
#
# The benchmark search of bench/search.lua (a random Patient's Observations with LOINC 8867-4,
# 20 to a page) against the data directory of bench/run.sh --phases read, where every one of
# the 10,000 Observations has that code (about 100 matches per Patient). Prints the instructions
# of the whole server and of the writer per search. KURA_BINARY picks the server (default
# build/kura); KURA_CALLGRIND_OUT=FILE keeps the profile for callgrind_annotate.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${KURA_BINARY:-$ROOT/build/kura}"
SCRIPT_NAME=callgrind_searches.sh
PER_CLIENT="${1:-100}"
CLIENTS=16
source "$ROOT/bench/callgrind_common.sh"
callgrind_setup

callgrind_prepare_data patients.ids
callgrind_start_server
load() {
  python3 "$ROOT/bench/read_load.py" "$PORT" "$WORK/patients.ids" "$WORK/auth.header" "$CLIENTS" \
    "$1" search
}
load 10
callgrind_instrument on
load "$PER_CLIENT"
callgrind_instrument off
callgrind_stop_and_report $((CLIENTS * PER_CLIENT)) search
