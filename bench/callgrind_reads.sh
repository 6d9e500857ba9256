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
PER_CLIENT="${1:-150}"
CLIENTS=16
command -v valgrind >/dev/null || { echo "callgrind_reads.sh: valgrind is not installed" >&2; exit 2; }
WORK="$(mktemp -d /tmp/kura-callgrind.XXXXXX)"
trap 'kill -TERM "${VG_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

KURA_BINARY="$BIN" KURA_BENCH_DURATION=2 KURA_BENCH_KEEP=1 KURA_BENCH_RESULTS_DIR="$WORK" \
  "$ROOT/bench/run.sh" --phases read >"$WORK/setup.log" 2>&1
KEPT="$(sed -nE 's/.*\(data (.*)\/data\).*/\1/p' "$WORK/setup.log" | head -n 1)"
[[ -d "$KEPT/data" ]] || { echo "callgrind_reads.sh: setup failed, see $WORK/setup.log" >&2; exit 1; }
mv "$KEPT"/data "$KEPT"/auth.header "$KEPT"/read.ids "$WORK"/ && rm -rf "$KEPT"

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
  "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
VG_PID=$!
for _ in $(seq 1 240); do
  curl -sk -o /dev/null --max-time 5 "https://127.0.0.1:$PORT/healthz" && break
  sleep 0.5
done
load() { python3 "$ROOT/bench/read_load.py" "$PORT" "$WORK/read.ids" "$WORK/auth.header" "$CLIENTS" "$1"; }
load 10
callgrind_control -i on "$VG_PID" >/dev/null 2>&1
load "$PER_CLIENT"
callgrind_control -i off "$VG_PID" >/dev/null 2>&1
kill -TERM "$VG_PID"
wait "$VG_PID" || true
VG_PID=""
[[ -n "${KURA_CALLGRIND_OUT:-}" ]] && cp "$WORK/callgrind.out" "$KURA_CALLGRIND_OUT"
READS=$((CLIENTS * PER_CLIENT))
callgrind_annotate --inclusive=yes "$WORK/callgrind.out" 2>/dev/null | awk -v reads="$READS" '
  /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
  /SqliteStore::WriterLoop\(\)/ && !writer { gsub(",", "", $1); writer = $1 }
  END {
    printf "reads %d: %.0f instructions per read in the server, %.0f in the writer thread\n",
      reads, total / reads, writer / reads
  }'
