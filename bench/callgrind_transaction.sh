#!/usr/bin/env bash
# Instructions per ingested resource of a transaction Bundle, counted by callgrind: repeatable
# where wall-clock runs are not. See bench/README.md ("Keyed HMAC contexts").
#
#   bench/callgrind_transaction.sh [BUNDLES]     (default 2 measured Bundles of 1,000)
#
# Makes a data directory with bench/run.sh (100 Patients, 10,000 Observations), writes transaction
# Bundles of 1,000 Observations the way bench/transaction.lua does (four LOINC codes in turn,
# random Patients, urn:uuid fullUrls), starts the server under valgrind --tool=callgrind with
# instrumentation off, posts one Bundle to warm it up, counts the measured Bundles with
# instrumentation on, and prints the instructions of the whole server and of the writer per
# resource. KURA_BINARY picks the server (default build/kura); KURA_BENCH_TEMPLATE the Observation
# template; KURA_CALLGRIND_OUT=FILE keeps the profile for callgrind_annotate.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${KURA_BINARY:-$ROOT/build/kura}"
SCRIPT_NAME=callgrind_transaction.sh
BUNDLES="${1:-2}"
ENTRIES=1000
source "$ROOT/bench/callgrind_common.sh"
callgrind_setup template

callgrind_prepare_data patients.ids
python3 - "$WORK" "$TEMPLATE" "$BUNDLES" "$ENTRIES" <<'PY'
import random, sys
work, template_path, bundles, entries = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
template = open(template_path).read().strip()
patients = [line.strip() for line in open(work + "/patients.ids") if line.strip()]
codes = ["8867-4", "8480-6", "8462-4", "9279-1"]
for bundle in range(bundles + 1):
    listed = []
    for i in range(1, entries + 1):
        observation = (template.replace("__PID__", random.choice(patients))
                       .replace("__N__", f"cg-{bundle}-{i}")
                       .replace('"code":"8867-4"', '"code":"%s"' % codes[(i - 1) % 4], 1))
        listed.append('{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":%s,'
                      '"request":{"method":"POST","url":"Observation"}}' % (i, observation))
    with open(f"{work}/bundle{bundle}.json", "w") as out:
        out.write('{"resourceType":"Bundle","type":"transaction","entry":[' + ",".join(listed) + "]}")
PY

callgrind_start_server
post() {
  local status
  status="$(curl -sk -o /dev/null -w '%{http_code}' -H @"$WORK/auth.header" \
    -H 'Content-Type: application/fhir+json' -H 'Prefer: return=minimal' \
    --data-binary @"$WORK/$1" "https://127.0.0.1:$PORT/fhir/R4")"
  [[ "$status" == 200 ]] || { echo "$SCRIPT_NAME: $1 got HTTP $status" >&2; exit 1; }
}
post bundle0.json
callgrind_instrument on
for bundle in $(seq 1 "$BUNDLES"); do post "bundle$bundle.json"; done
callgrind_instrument off
callgrind_stop_and_report $((BUNDLES * ENTRIES)) resource
