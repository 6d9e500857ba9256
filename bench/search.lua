-- wrk script: GET /fhir/R4/Observation?subject=Patient/{id}&code=http://loinc.org|8867-4 for a
-- random Patient from KURA_BENCH_PATIENTS (the search phase of bench/run.sh).
--
-- Environment (see bench/run.sh): KURA_BENCH_DIR, KURA_BENCH_TOKEN, KURA_BENCH_PATIENTS,
-- KURA_BENCH_RESULT.

local bench = dofile((os.getenv("KURA_BENCH_DIR") or "bench") .. "/common.lua")

function setup(thread) bench.setup(thread) end

local requests_by_patient
local count

function init(args)
  bench.init_counters()
  requests_by_patient = {}
  for i, pid in ipairs(bench.read_lines(bench.env("KURA_BENCH_PATIENTS"))) do
    requests_by_patient[i] = bench.head("GET",
      "/fhir/R4/Observation?subject=Patient/" .. pid .. "&code=http%3A%2F%2Floinc.org%7C8867-4",
      { ["Accept"] = "application/fhir+json" }) .. "\r\n"
  end
  count = #requests_by_patient
end

function request()
  return requests_by_patient[math.random(count)]
end

function response(status, headers, body)
  bench.count(status, body)
end

function done(summary, latency, requests)
  bench.done(os.getenv("KURA_BENCH_LABEL") or "search", summary, latency)
end
