#!/usr/bin/env bash
# Kura load benchmark: keep-alive HTTPS, wrk + Lua (see bench/README.md).
#
#   bench/run.sh            # full run: 20 s create phase, 20 s read phase
#   bench/run.sh --quick    # smoke run: 5 s phases
#   bench/run.sh --phases search   # FHIR search and transaction ingest (see below)
#
# Starts a throwaway server (temp data dir, free loopback port, KURA_LOG_LEVEL=warn), creates
# 100 Patients, then
#   phase 1 "create": POST Observation from ../shared/bench/observation-template.json (random
#                     Patient, unique counter) for DURATION, collecting the created ids;
#   phase 2 "read":   GET Observation by random id over 10,000 stored Observations for DURATION.
# With --phases search (or all), on a server of its own data: loads 10,000 Observations with ten
#   transaction Bundles of 1,000 (four LOINC codes in turn, random Patients), then
#   phase 3 "search":      GET Observation?subject=Patient/{id}&code=http://loinc.org|8867-4 for a
#                          random Patient, 64 connections, for DURATION;
#   phase 4 "transaction": POST transaction Bundles of 1,000 Observations over 2 connections for
#                          DURATION, reported as resources ingested per second.
# Prints requests/s, p50/p99 latency, non-2xx counts and the server's peak RSS (VmHWM), writes
# bench/results/latest.json, stops the server with SIGTERM and removes the temp dir.
# Exit status: 0 on success, 1 when any request failed (non-2xx, socket error, timeout) or the
# setup failed, 2 on usage errors, 3 when KURA_BENCH_ENFORCE_TARGETS=1 and a target was missed.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/run.sh [--quick] [--phases create|read|both|search|all] [-h|--help]

  --quick            5 s phases (smoke run)
  --phases P         run only the create or the read phase (default: both); the read phase
                     preloads its Observations itself when there was no create phase; search
                     runs the search and transaction phases, all runs everything

Environment:
  KURA_BINARY                 server binary (default: <repo>/build/kura)
  KURA_BENCH_TEMPLATE         Observation template
                              (default: <repo>/../shared/bench/observation-template.json)
  KURA_BENCH_DURATION         seconds per phase (default 20; 5 with --quick)
  KURA_BENCH_CONNECTIONS      wrk connections (default 64)
  KURA_BENCH_THREADS          wrk threads (default 2)
  KURA_BENCH_TIMEOUT          wrk request timeout (default 10s)
  KURA_BENCH_PATIENTS         Patients to create (default 100)
  KURA_BENCH_READ_SET         Observations the read phase picks from (default 10000)
  KURA_BENCH_RESULTS_DIR      where latest.json goes (default: <repo>/bench/results)
  KURA_BENCH_LEAN=1           read phase without a Lua response() hook: cheaper for wrk, but only
                              statuses >= 400 count as failures (wrk's own count)
  KURA_BENCH_KEEP=1           keep the temp dir (server log, data, wrk output)
  KURA_BENCH_LOG_LEVEL        server log level (default warn; info adds the store counters at exit)
  KURA_BENCH_TX_SIZE          Observations per transaction Bundle (default 1000)
  KURA_BENCH_ENFORCE_TARGETS=1  exit 3 unless create >= 10000/s, read >= 20000/s,
                              search >= 10000/s and transaction >= 30000 resources/s
  KURA_BENCH_CREATE_TARGET, KURA_BENCH_READ_TARGET, KURA_BENCH_SEARCH_TARGET,
  KURA_BENCH_TRANSACTION_TARGET  override those targets (req/s; resources/s for transaction)
  KURA_BENCH_PRE_PHASE_HOOK   bash command run in the background as each measured phase starts,
                              with KURA_BENCH_PHASE and KURA_BENCH_SERVER_PID set, e.g. a profiler:
                              'sleep 5; exec perf record -g -p $KURA_BENCH_SERVER_PID -o /tmp/$KURA_BENCH_PHASE.data -- sleep 10'
                              (still running at exit: SIGTERM; use exec so it reaches the tool)
  KURA_SERVER_*, KURA_STORAGE_*, ...  passed through to the server (config overrides)
EOF
}

QUICK=0
PHASES=both
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --phases) PHASES="${2:-}"; shift ;;
    --phases=*) PHASES="${1#--phases=}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$PHASES" in create|read|both|search|all) ;; *) echo "bench/run.sh: --phases must be create, read, both, search or all" >&2; exit 2 ;; esac

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(git -C "$BENCH_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$BENCH_DIR/.." && pwd))"

if [[ $QUICK -eq 1 ]]; then DURATION=5; else DURATION="${KURA_BENCH_DURATION:-20}"; fi
DURATION="${DURATION%s}"
CONNECTIONS="${KURA_BENCH_CONNECTIONS:-64}"
THREADS="${KURA_BENCH_THREADS:-2}"
WRK_TIMEOUT="${KURA_BENCH_TIMEOUT:-10s}"
PATIENTS="${KURA_BENCH_PATIENTS:-100}"
READ_SET="${KURA_BENCH_READ_SET:-10000}"
CREATE_TARGET="${KURA_BENCH_CREATE_TARGET:-10000}"
READ_TARGET="${KURA_BENCH_READ_TARGET:-20000}"
SEARCH_TARGET="${KURA_BENCH_SEARCH_TARGET:-10000}"
TRANSACTION_TARGET="${KURA_BENCH_TRANSACTION_TARGET:-30000}"
TX_SIZE="${KURA_BENCH_TX_SIZE:-1000}"
KURA_BIN="${KURA_BINARY:-$REPO_ROOT/build/kura}"
TEMPLATE="${KURA_BENCH_TEMPLATE:-$REPO_ROOT/../shared/bench/observation-template.json}"
RESULTS_DIR="${KURA_BENCH_RESULTS_DIR:-$REPO_ROOT/bench/results}"

for v in DURATION CONNECTIONS THREADS PATIENTS READ_SET TX_SIZE; do
  if ! [[ "${!v}" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench/run.sh: $v must be a positive integer (got '${!v}')" >&2
    exit 2
  fi
done

die() {
  echo "bench/run.sh: $*" >&2
  if [[ -n "${SERVER_PID:-}" ]] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "bench/run.sh: the server (pid $SERVER_PID) is not running any more; its last log lines:" >&2
    tail -n 15 "$TMP/server.log" >&2 2>/dev/null || true
  fi
  exit 1
}
log() { printf '\n== %s\n' "$*"; }

# --- Prerequisites (nothing is installed or built here) -------------------------------------
if ! command -v wrk >/dev/null 2>&1; then
  die "wrk not found. Install it: Debian/Ubuntu 'sudo apt-get install wrk', macOS 'brew install wrk'."
fi
command -v curl >/dev/null 2>&1 || die "curl not found (Debian/Ubuntu: sudo apt-get install curl)."
[[ -x "$KURA_BIN" ]] || die "server binary $KURA_BIN not found or not executable. Build it first:
  cmake -S . -B build -G Ninja && ninja -C build kura
or point KURA_BINARY at a kura binary."
if [[ ! -r "$TEMPLATE" ]]; then
  die "Observation template not found: $TEMPLATE
It is expected at <repo>/../shared/bench/observation-template.json; set KURA_BENCH_TEMPLATE to use another file."
fi
grep -q '__PID__' "$TEMPLATE" || die "the template $TEMPLATE has no __PID__ placeholder."

# --- Temp dir, server lifecycle, cleanup ------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/kura-bench.XXXXXX")"
DATA="$TMP/data"
SERVER_PID=""
SERVER_EXIT=""
HOOK_PIDS=()

stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    # The server drains in-flight requests (idle keep-alive connections close at once).
    for _ in $(seq 1 250); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "bench/run.sh: server $SERVER_PID did not exit 25 s after SIGTERM; sending SIGKILL" >&2
      kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
  fi
  SERVER_EXIT=0
  wait "$SERVER_PID" 2>/dev/null || SERVER_EXIT=$?
  SERVER_PID=""
}

cleanup() {
  local rc=$?
  for p in ${HOOK_PIDS[@]+"${HOOK_PIDS[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
  stop_server
  if [[ "${KURA_BENCH_KEEP:-0}" == 1 ]]; then
    echo "bench/run.sh: kept $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Port the server listens on: --listen 127.0.0.1:0 and ask ss which port the pid bound.
listening_port() {
  ss -Hltnp 2>/dev/null | awk -v pid="pid=$1," 'index($0, pid) { n = split($4, a, ":"); print a[n]; exit }'
}

start_server() {
  local attempt port listen
  for attempt in 1 2 3 4 5; do
    if command -v ss >/dev/null 2>&1; then
      listen="127.0.0.1:0"
    else
      listen="127.0.0.1:$((20000 + RANDOM % 40000))"
    fi
    KURA_LOG_LEVEL="${KURA_BENCH_LOG_LEVEL:-warn}" "$KURA_BIN" serve --data-dir "$DATA" --listen "$listen" \
      2>>"$TMP/server.log" >/dev/null &
    SERVER_PID=$!
    port=""
    for _ in $(seq 1 100); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      if [[ "$listen" == *:0 ]]; then port="$(listening_port "$SERVER_PID")"; else port="${listen##*:}"; fi
      if [[ -n "$port" ]] &&
         curl -sk -o /dev/null --max-time 2 "https://127.0.0.1:$port/healthz" 2>/dev/null; then
        PORT="$port"
        return 0
      fi
      sleep 0.1
    done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    echo "bench/run.sh: server did not come up (attempt $attempt); log:" >&2
    tail -n 5 "$TMP/server.log" >&2 || true
  done
  die "could not start the server"
}

# /proc/PID/status field in kB (VmHWM = peak RSS, VmRSS = current RSS).
proc_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
# utime + stime of a process, in clock ticks.
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Sets CHILD_CPU to the CPU seconds (user + sys) of this shell's reaped children. `times` must run
# in this shell, not in a $(...) subshell, hence the file and the variable.
children_cpu() {
  times >"$TMP/times"
  CHILD_CPU="$(awk 'END { s = 0; for (i = 1; i <= NF; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); s += a[1] * 60 + a[2] }; printf "%.3f", s }' "$TMP/times")"
}
# Busy and total jiffies of the whole machine.
machine_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"
CPUS="$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo)"
CPU_MODEL="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"

# --- Setup -----------------------------------------------------------------------------------
log "setup: $KURA_BIN, $CPUS CPUs ($CPU_MODEL), wrk $THREADS threads / $CONNECTIONS connections, ${DURATION}s phases"
# Other load on the machine skews everything (the benchmark needs both cores): measure 1 s idle.
read -r b0 _ < <(machine_ticks)
sleep 1
read -r b1 _ < <(machine_ticks)
BACKGROUND_BUSY="$(awk -v a="$b0" -v b="$b1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')"
if awk -v x="$BACKGROUND_BUSY" 'BEGIN { exit !(x > 0.15) }'; then
  echo "WARNING: the machine is already busy ($BACKGROUND_BUSY of $CPUS cores before the benchmark starts);"
  echo "         results will be lower and noisier than on an idle machine."
fi
INIT_JSON="$("$KURA_BIN" init --data-dir "$DATA" --json 2>>"$TMP/server.log")" ||
  die "kura init failed: $(tail -n 3 "$TMP/server.log")"
TOKEN="$(printf '%s' "$INIT_JSON" | sed -nE 's/.*"admin_token":"([^"]+)".*/\1/p')"
[[ -n "$TOKEN" ]] || die "kura init printed no admin_token"
start_server
BASE="https://127.0.0.1:$PORT"
echo "server pid $SERVER_PID on $BASE (data $DATA)"
printf 'Authorization: Bearer %s\n' "$TOKEN" >"$TMP/auth.header"
chmod 600 "$TMP/auth.header"

# Patients: one curl process, one keep-alive connection, PATIENTS POSTs.
curl_args=()
for i in $(seq 1 "$PATIENTS"); do
  [[ $i -gt 1 ]] && curl_args+=(--next)
  curl_args+=(-sk --http1.1 -o /dev/null -D - -X POST
    -H @"$TMP/auth.header" -H "Content-Type: application/fhir+json"
    --data-binary "{\"resourceType\":\"Patient\",\"active\":true,\"name\":[{\"family\":\"Bench\",\"given\":[\"Patient$i\"]}],\"gender\":\"unknown\",\"birthDate\":\"1980-01-01\"}"
    "$BASE/fhir/R4/Patient")
done
curl "${curl_args[@]}" >"$TMP/patients.headers" || die "creating Patients failed (curl exit $?)"
tr -d '\r' <"$TMP/patients.headers" |
  sed -nE 's#^[Ll]ocation:.*/Patient/([^/]+)/_history/.*#\1#p' >"$TMP/patients.ids"
created_patients="$(wc -l <"$TMP/patients.ids")"
if [[ "$created_patients" -ne "$PATIENTS" ]]; then
  grep -m3 '^HTTP/' "$TMP/patients.headers" >&2 || true
  die "created $created_patients of $PATIENTS Patients"
fi
echo "created $created_patients Patients"

export KURA_BENCH_DIR="$BENCH_DIR"
export KURA_BENCH_TOKEN="$TOKEN"
export KURA_BENCH_TEMPLATE="$TEMPLATE"
export KURA_BENCH_PATIENTS="$TMP/patients.ids"
export KURA_BENCH_RUN="$(date +%s)"
IDS_FILE="$TMP/observations.ids"
: >"$IDS_FILE"
HWM_BASELINE_KB="$(proc_kb "$SERVER_PID" VmHWM)"

# run_phase NAME SCRIPT DURATION [ENV=VALUE...]: one wrk run; results in $TMP/NAME.result.
run_phase() {
  local name="$1" script="$2" duration="$3"
  shift 3
  local t0 t1 m0 m1 c0 c1 start end
  if [[ -n "${KURA_BENCH_PRE_PHASE_HOOK:-}" && "$name" != preload* ]]; then
    KURA_BENCH_PHASE="$name" KURA_BENCH_SERVER_PID="$SERVER_PID" \
      bash -c "$KURA_BENCH_PRE_PHASE_HOOK" &
    HOOK_PIDS+=($!)
  fi
  t0="$(proc_ticks "$SERVER_PID")"
  read -r m0 _ < <(machine_ticks)
  children_cpu; c0="$CHILD_CPU"
  start="$(date +%s.%N)"
  env "$@" KURA_BENCH_LABEL="$name" KURA_BENCH_RESULT="$TMP/$name.result" \
    wrk -t"$THREADS" -c"${PHASE_CONNECTIONS:-$CONNECTIONS}" -d"${duration}s" --timeout "$WRK_TIMEOUT" --latency \
    -s "$BENCH_DIR/$script" "$BASE" >"$TMP/$name.wrk.txt" 2>&1 || {
      cat "$TMP/$name.wrk.txt" >&2
      die "wrk failed in phase $name"
    }
  end="$(date +%s.%N)"
  children_cpu; c1="$CHILD_CPU"
  t1="$(proc_ticks "$SERVER_PID")"
  read -r m1 _ < <(machine_ticks)
  [[ -s "$TMP/$name.result" ]] || { cat "$TMP/$name.wrk.txt" >&2; die "wrk wrote no result in phase $name"; }
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 20 "$TMP/server.log" >&2; die "the server died during phase $name"; }
  awk -v t0="$t0" -v t1="$t1" -v m0="$m0" -v m1="$m1" -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" \
    -v s="$start" -v e="$end" \
    'BEGIN { w = e - s; if (w <= 0) w = 1;
             srv = (t1 - t0) / hz / w; all = (m1 - m0) / hz / w; wrk = (c1 - c0) / w;
             other = all - srv - wrk; if (other < 0) other = 0;
             printf "server_cpu_cores=%.2f\nmachine_busy_cores=%.2f\nwrk_cpu_cores=%.2f\nother_cpu_cores=%.2f\n",
                    srv, all, wrk, other }' \
    >>"$TMP/$name.result"
}

# result NAME KEY: one value from a phase's result file.
result() { awk -F= -v k="$2" '$1 == k { sub(/^[^=]*=/, ""); print; exit }' "$TMP/$1.result" 2>/dev/null; }

show_phase() {
  local name="$1"
  sed -n '/^Running/,$p' "$TMP/$name.wrk.txt" | grep -v '^\[' || true
  grep '^\[' "$TMP/$name.wrk.txt" || true
  printf '[%s] CPU: server %s cores, wrk %s cores, other %s cores (whole machine busy %s of %s)\n' "$name" \
    "$(result "$name" server_cpu_cores)" "$(result "$name" wrk_cpu_cores)" \
    "$(result "$name" other_cpu_cores)" "$(result "$name" machine_busy_cores)" "$CPUS"
  # "other" = whole machine - server - wrk: other processes plus kernel softirq time (loopback
  # networking accounts ~0.1 core there at these rates).
  if awk -v x="$(result "$name" other_cpu_cores)" 'BEGIN { exit !(x > 0.25) }'; then
    printf '[%s] WARNING: %s cores went to other processes during this phase; its figures understate the server\n' \
      "$name" "$(result "$name" other_cpu_cores)"
  fi
}

RAN_CREATE=0
RAN_READ=0
HWM_AFTER_CREATE_KB=""
HWM_AFTER_READ_KB=""

# --- Phase 1: create -------------------------------------------------------------------------
if [[ "$PHASES" == create || "$PHASES" == both || "$PHASES" == all ]]; then
  log "phase 1: create (POST Observation, ${DURATION}s)"
  ids_out=""
  [[ "$PHASES" == both || "$PHASES" == all ]] && ids_out="$IDS_FILE"
  run_phase create create.lua "$DURATION" KURA_BENCH_IDS_OUT="$ids_out"
  show_phase create
  HWM_AFTER_CREATE_KB="$(proc_kb "$SERVER_PID" VmHWM)"
  printf '[create] server peak RSS so far %s MiB (current %s MiB)\n' \
    "$(awk -v k="$HWM_AFTER_CREATE_KB" 'BEGIN { printf "%.1f", k / 1024 }')" \
    "$(awk -v k="$(proc_kb "$SERVER_PID" VmRSS)" 'BEGIN { printf "%.1f", k / 1024 }')"
  RAN_CREATE=1
fi

# --- Phase 2: read ---------------------------------------------------------------------------
if [[ "$PHASES" == read || "$PHASES" == both || "$PHASES" == all ]]; then
  have="$(wc -l <"$IDS_FILE")"
  round=0
  while [[ "$have" -lt "$READ_SET" ]]; do
    round=$((round + 1))
    [[ $round -le 20 ]] || die "could not preload $READ_SET Observations (have $have)"
    need=$((READ_SET - have))
    log "preload: creating $need more Observations for the read set (round $round)"
    run_phase "preload$round" create.lua 3 KURA_BENCH_IDS_OUT="$IDS_FILE" \
      KURA_BENCH_STOP_AFTER="$(((need + THREADS - 1) / THREADS))"
    [[ "$(result "preload$round" non2xx)" == 0 ]] || { grep '^\[' "$TMP/preload$round.wrk.txt" >&2; die "preload got non-2xx responses"; }
    have="$(wc -l <"$IDS_FILE")"
  done
  shuf -n "$READ_SET" "$IDS_FILE" >"$TMP/read.ids"
  # Sanity check: one of the ids reads back.
  probe="$(head -n 1 "$TMP/read.ids")"
  code="$(curl -sk -o /dev/null -w '%{http_code}' -H @"$TMP/auth.header" "$BASE/fhir/R4/Observation/$probe")"
  [[ "$code" == 200 ]] || die "GET Observation/$probe answered $code"
  log "phase 2: read (GET Observation by random id over $READ_SET of $have stored, ${DURATION}s)"
  run_phase read read.lua "$DURATION" KURA_BENCH_IDS="$TMP/read.ids"
  show_phase read
  HWM_AFTER_READ_KB="$(proc_kb "$SERVER_PID" VmHWM)"
  RAN_READ=1
  STORED_OBSERVATIONS="$have"
fi

# --- Phases 3 and 4: search, transaction ---------------------------------------------------------
if [[ "$PHASES" == search || "$PHASES" == all ]]; then
  if [[ "$PHASES" == all ]]; then
    # The search data set is exactly 10,000 Observations: start again on a fresh data directory.
    stop_server
    rm -rf "$DATA"
    INIT_JSON="$("$KURA_BIN" init --data-dir "$DATA" --json 2>>"$TMP/server.log")" || die "kura init failed"
    TOKEN="$(printf '%s' "$INIT_JSON" | sed -nE 's/.*"admin_token":"([^"]+)".*/\1/p')"
    export KURA_BENCH_TOKEN="$TOKEN"
    printf 'Authorization: Bearer %s\n' "$TOKEN" >"$TMP/auth.header"
    start_server
    BASE="https://127.0.0.1:$PORT"
    curl_args=()
    for i in $(seq 1 "$PATIENTS"); do
      [[ $i -gt 1 ]] && curl_args+=(--next)
      curl_args+=(-sk --http1.1 -o /dev/null -D - -X POST -H @"$TMP/auth.header"
        -H "Content-Type: application/fhir+json"
        --data-binary "{\"resourceType\":\"Patient\",\"active\":true,\"gender\":\"unknown\"}"
        "$BASE/fhir/R4/Patient")
    done
    curl "${curl_args[@]}" | tr -d '\r' |
      sed -nE 's#^[Ll]ocation:.*/Patient/([^/]+)/_history/.*#\1#p' >"$TMP/patients.ids"
    [[ "$(wc -l <"$TMP/patients.ids")" -eq "$PATIENTS" ]] || die "creating Patients failed"
  fi
  log "preload: 10 transaction Bundles of $TX_SIZE Observations"
  PHASE_CONNECTIONS="$THREADS" run_phase preload_tx transaction.lua 120 \
    KURA_BENCH_TX_SIZE="$TX_SIZE" KURA_BENCH_STOP_AFTER="$(((10 + THREADS - 1) / THREADS))"
  [[ "$(result preload_tx non2xx)" == 0 ]] || { grep '^\[' "$TMP/preload_tx.wrk.txt" >&2; die "the transaction preload got non-2xx responses"; }
  STORED_OBSERVATIONS=$(( $(result preload_tx ok_2xx) * TX_SIZE ))
  probe="$(head -n 1 "$TMP/patients.ids")"
  code="$(curl -sk -o "$TMP/probe.json" -w '%{http_code}' -H @"$TMP/auth.header" \
    "$BASE/fhir/R4/Observation?subject=Patient/$probe&code=http%3A%2F%2Floinc.org%7C8867-4&_summary=count")"
  [[ "$code" == 200 ]] || die "the probe search answered $code: $(head -c 300 "$TMP/probe.json")"
  echo "stored $STORED_OBSERVATIONS Observations; Patient/$probe has $(sed -nE 's/.*"total":([0-9]+).*/\1/p' "$TMP/probe.json") with code 8867-4"
  log "phase 3: search (GET Observation?subject&code, ${DURATION}s)"
  run_phase search search.lua "$DURATION"
  show_phase search
  log "phase 4: transaction (POST Bundles of $TX_SIZE Observations, $THREADS connections, ${DURATION}s)"
  PHASE_CONNECTIONS="$THREADS" run_phase transaction transaction.lua "$DURATION" KURA_BENCH_TX_SIZE="$TX_SIZE"
  show_phase transaction
  printf '[transaction] %s resources/s ingested\n' \
    "$(awk -v r="$(result transaction rps_2xx)" -v n="$TX_SIZE" 'BEGIN { printf "%.0f", r * n }')"
fi

PEAK_KB="$(proc_kb "$SERVER_PID" VmHWM)"
stop_server
if [[ "$SERVER_EXIT" != 0 ]]; then
  echo "bench/run.sh: WARNING: the server exited with status $SERVER_EXIT after SIGTERM (expected 0); log tail:" >&2
  tail -n 10 "$TMP/server.log" >&2 || true
fi

# --- Summary -----------------------------------------------------------------------------------
mib() { [[ -n "$1" ]] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }' || echo "null"; }
num_or_null() { [[ -n "$1" ]] && echo "$1" || echo "null"; }
failures=0
for p in create read search transaction; do
  [[ -f "$TMP/$p.result" ]] || continue
  for k in non2xx socket_errors timeouts; do
    v="$(result "$p" "$k")"
    [[ "${v:-0}" == 0 ]] || failures=$((failures + v))
  done
done

target_of() {  # target_of PHASE
  case "$1" in
    create) echo "$CREATE_TARGET" ;; read) echo "$READ_TARGET" ;;
    search) echo "$SEARCH_TARGET" ;; transaction) echo "$TRANSACTION_TARGET" ;;
  esac
}
rate_of() {  # rate_of PHASE: requests/s, or resources/s for transaction
  local rps
  rps="$(result "$1" rps_2xx)"
  [[ -n "$rps" && "$1" == transaction ]] && rps="$(awk -v r="$rps" -v n="$TX_SIZE" 'BEGIN { printf "%.2f", r * n }')"
  echo "$rps"
}
verdict() {  # verdict PHASE TARGET
  local rps
  rps="$(rate_of "$1")"
  [[ -n "$rps" ]] || { echo "-"; return; }
  awk -v r="$rps" -v t="$2" 'BEGIN { print (r >= t) ? "PASS" : "MISS" }'
}

log "summary"
printf '%-8s %12s %10s %10s %10s %8s %10s %8s %8s\n' phase "req/s" "p50 ms" "p99 ms" "max ms" non2xx "sock/tmo" target verdict
for p in create read search transaction; do
  [[ -f "$TMP/$p.result" ]] || continue
  t="$(target_of "$p")"
  printf '%-8s %12s %10s %10s %10s %8s %10s %8s %8s\n' "${p:0:8}" "$(rate_of $p)" \
    "$(result $p p50_ms)" "$(result $p p99_ms)" "$(result $p max_ms)" "$(result $p non2xx)" \
    "$(( $(result $p socket_errors) + 0 ))/$(( $(result $p timeouts) + 0 ))" "$t" "$(verdict $p "$t")"
done
printf 'server peak RSS (VmHWM): %s MiB (after setup %s, after create %s, after read %s)\n' \
  "$(mib "$PEAK_KB")" "$(mib "$HWM_BASELINE_KB")" "$(mib "$HWM_AFTER_CREATE_KB")" "$(mib "$HWM_AFTER_READ_KB")"
printf 'machine: %s CPUs (%s), load generator on the same machine (%s cores busy before start); wrk %s threads x %s connections; %ss per phase\n' \
  "$CPUS" "$CPU_MODEL" "$BACKGROUND_BUSY" "$THREADS" "$CONNECTIONS" "$DURATION"

# --- JSON --------------------------------------------------------------------------------------
phase_json() {
  local p="$1"
  [[ -f "$TMP/$p.result" ]] || { echo "null"; return; }
  local t
  t="$(target_of "$p")"
  printf '{"requests_per_second": %s, "requests_per_second_all": %s, "requests": %s, "ok_2xx": %s, ' \
    "$(result $p rps_2xx)" "$(result $p rps)" "$(result $p requests)" "$(result $p ok_2xx)"
  printf '"non2xx": %s, "non2xx_by_status": "%s", ' "$(result $p non2xx)" "$(result $p non2xx_by_status)"
  printf '"socket_errors": %s, "timeouts": %s, ' "$(result $p socket_errors)" "$(result $p timeouts)"
  printf '"latency_ms": {"p50": %s, "p90": %s, "p99": %s, "max": %s, "mean": %s}, ' \
    "$(result $p p50_ms)" "$(result $p p90_ms)" "$(result $p p99_ms)" "$(result $p max_ms)" "$(result $p mean_ms)"
  printf '"duration_s": %s, "server_cpu_cores": %s, "wrk_cpu_cores": %s, "other_cpu_cores": %s, "machine_busy_cores": %s, "target_rps": %s, "meets_target": %s}' \
    "$(result $p duration_s)" "$(result $p server_cpu_cores)" "$(result $p wrk_cpu_cores)" "$(result $p other_cpu_cores)" "$(result $p machine_busy_cores)" "$t" \
    "$([[ $(verdict $p "$t") == PASS ]] && echo true || echo false)"
}

mkdir -p "$RESULTS_DIR"
GIT_REV="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
GIT_DIRTY="$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo true || echo false)"
{
  printf '{\n'
  printf '  "timestamp": "%s",\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '  "git_revision": "%s", "git_dirty": %s, "binary": "%s",\n' "$GIT_REV" "$GIT_DIRTY" "$KURA_BIN"
  printf '  "config": {"duration_s": %s, "connections": %s, "wrk_threads": %s, "patients": %s, "read_set": %s, "quick": %s, "phases": "%s", "lean_read": %s},\n' \
    "$DURATION" "$CONNECTIONS" "$THREADS" "$PATIENTS" "$READ_SET" "$([[ $QUICK == 1 ]] && echo true || echo false)" "$PHASES" \
    "$([[ ${KURA_BENCH_LEAN:-0} == 1 ]] && echo true || echo false)"
  printf '  "machine": {"cpus": %s, "cpu_model": "%s", "load_generator_shares_cpus": true, "busy_cores_before_start": %s},\n' \
    "$CPUS" "${CPU_MODEL//\"/}" "$BACKGROUND_BUSY"
  printf '  "create": %s,\n' "$(phase_json create)"
  printf '  "read": %s,\n' "$(phase_json read)"
  printf '  "search": %s,\n' "$(phase_json search)"
  printf '  "transaction": %s, "transaction_bundle_size": %s,\n' "$(phase_json transaction)" "$TX_SIZE"
  printf '  "stored_observations": %s,\n' "$(num_or_null "${STORED_OBSERVATIONS:-}")"
  printf '  "server_peak_rss_mib": %s,\n' "$(mib "$PEAK_KB")"
  printf '  "server_peak_rss_mib_after_setup": %s, "server_peak_rss_mib_after_create": %s, "server_peak_rss_mib_after_read": %s,\n' \
    "$(mib "$HWM_BASELINE_KB")" "$(mib "$HWM_AFTER_CREATE_KB")" "$(mib "$HWM_AFTER_READ_KB")"
  printf '  "server_exit_status": %s,\n' "$SERVER_EXIT"
  printf '  "failed_requests": %s\n' "$failures"
  printf '}\n'
} >"$RESULTS_DIR/latest.json"
echo "wrote $RESULTS_DIR/latest.json"

if [[ "$SERVER_EXIT" != 0 ]]; then
  echo "bench/run.sh: FAILED: the server did not shut down cleanly (exit status $SERVER_EXIT)" >&2
  exit 1
fi
if [[ $failures -gt 0 ]]; then
  echo "bench/run.sh: FAILED: $failures requests failed (non-2xx, socket errors or timeouts)" >&2
  exit 1
fi
if [[ "${KURA_BENCH_ENFORCE_TARGETS:-0}" == 1 ]]; then
  for p in create read search transaction; do
    [[ -f "$TMP/$p.result" ]] || continue
    t="$(target_of "$p")"
    [[ "$(verdict $p "$t")" == PASS ]] || { echo "bench/run.sh: $p missed its target of $t" >&2; exit 3; }
  done
fi
exit 0
