# Shared steps of the callgrind scripts (bench/callgrind_reads.sh, callgrind_creates.sh,
# callgrind_transaction.sh): a benchmark data directory, the server under callgrind with
# instrumentation off, and the count per unit of work at the end. Sourced; the caller sets ROOT,
# BIN and SCRIPT_NAME, then calls callgrind_setup.

# Checks for valgrind (and, with "template", for the Observation template, setting TEMPLATE),
# makes WORK and removes it, stopping the server, on exit.
callgrind_setup() {
  command -v valgrind >/dev/null || { echo "$SCRIPT_NAME: valgrind is not installed" >&2; exit 2; }
  if [[ "${1:-}" == template ]]; then
    TEMPLATE="${KURA_BENCH_TEMPLATE:-$ROOT/../shared/bench/observation-template.json}"
    [[ -f "$TEMPLATE" ]] || { echo "$SCRIPT_NAME: no Observation template at $TEMPLATE" >&2; exit 2; }
  fi
  WORK="$(mktemp -d /tmp/kura-callgrind.XXXXXX)"
  trap 'kill -TERM "${VG_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
}

# Makes the data directory with bench/run.sh (100 Patients, 10,000 Observations) and moves it,
# the auth header and the named id lists into $WORK.
callgrind_prepare_data() {
  KURA_BINARY="$BIN" KURA_BENCH_DURATION=2 KURA_BENCH_KEEP=1 KURA_BENCH_RESULTS_DIR="$WORK" \
    "$ROOT/bench/run.sh" --phases read >"$WORK/setup.log" 2>&1
  local kept
  kept="$(sed -nE 's/.*\(data (.*)\/data\).*/\1/p' "$WORK/setup.log" | head -n 1)"
  [[ -d "$kept/data" ]] || { echo "$SCRIPT_NAME: setup failed, see $WORK/setup.log" >&2; exit 1; }
  local file
  for file in data auth.header "$@"; do mv "$kept/$file" "$WORK/"; done
  rm -rf "$kept"
}

# Starts the server on $WORK/data under callgrind with instrumentation off; sets PORT and VG_PID.
callgrind_start_server() {
  PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
    "$BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
  VG_PID=$!
  for _ in $(seq 1 240); do
    curl -sk -o /dev/null --max-time 5 "https://127.0.0.1:$PORT/healthz" && return 0
    sleep 0.5
  done
  echo "$SCRIPT_NAME: the server did not start, see $WORK/server.log" >&2
  exit 1
}

callgrind_instrument() { callgrind_control -i "$1" "$VG_PID" >/dev/null 2>&1; }

# Stops the server and prints the instructions of the whole server and of the writer thread per
# unit: callgrind_stop_and_report UNITS NOUN (e.g. 2400 read).
callgrind_stop_and_report() {
  kill -TERM "$VG_PID"
  wait "$VG_PID" || true
  VG_PID=""
  [[ -n "${KURA_CALLGRIND_OUT:-}" ]] && cp "$WORK/callgrind.out" "$KURA_CALLGRIND_OUT"
  callgrind_annotate --inclusive=yes "$WORK/callgrind.out" 2>/dev/null | awk -v units="$1" -v noun="$2" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /SqliteStore::WriterLoop\(\)/ && !writer { gsub(",", "", $1); writer = $1 }
    END {
      printf "%s %d: %.0f instructions per %s in the server, %.0f in the writer thread\n",
        noun (noun ~ /ch$/ ? "es" : "s"), units, total / units, noun, writer / units
    }'
}
