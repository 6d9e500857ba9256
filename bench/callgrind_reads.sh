#!/usr/bin/env bash
# Instructions per audited read, counted by callgrind: repeatable where wall-clock runs are not
# (a noisy VM, no hardware counters). See bench/README.md ("Audit search indexes folded").
#
#   bench/callgrind_reads.sh [READS_PER_CLIENT]     (default 150, with 16 clients)
#
# Makes a data directory with bench/run.sh (100 Patients, 10,000 Observations), starts the server
# on it under valgrind --tool=callgrind with instrumentation off, warms it up with 10 reads per
# client, counts the measured reads with instrumentation on, and prints the instructions of the
# whole server and of the writer per read. KURA_BINARY picks the server (default build/kura);
# KURA_CALLGRIND_OUT=FILE keeps the profile for callgrind_annotate.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${KURA_BINARY:-$ROOT/build/kura}"
SCRIPT_NAME=callgrind_reads.sh
PER_CLIENT="${1:-150}"
CLIENTS=16
source "$ROOT/bench/callgrind_common.sh"
callgrind_setup

callgrind_prepare_data read.ids
callgrind_start_server
load() { python3 "$ROOT/bench/read_load.py" "$PORT" "$WORK/read.ids" "$WORK/auth.header" "$CLIENTS" "$1"; }
load 10
callgrind_instrument on
load "$PER_CLIENT"
callgrind_instrument off
callgrind_stop_and_report $((CLIENTS * PER_CLIENT)) read
