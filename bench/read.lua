-- wrk script: GET /fhir/R4/Observation/{id} for a random id from KURA_BENCH_IDS.
--
-- All request strings are built once in init(); request() only picks one at random.
--
-- Environment (see bench/run.sh):
--   KURA_BENCH_DIR      directory of this script (to load common.lua)
--   KURA_BENCH_TOKEN    bearer token
--   KURA_BENCH_IDS      file of Observation ids (one a line)
--   KURA_BENCH_RESULT   key=value result file (see common.lua)
--   KURA_BENCH_LEAN=1   do not define response(): wrk then skips handing headers and body to
--                       Lua (cheaper for the load generator), and only statuses >= 400 are
--                       counted as failures (wrk's own count), not 1xx/3xx

local bench = dofile((os.getenv("KURA_BENCH_DIR") or "bench") .. "/common.lua")

function setup(thread) bench.setup(thread) end

local requests_by_id
local count

function init(args)
  bench.init_counters()
  local ids = bench.read_lines(bench.env("KURA_BENCH_IDS"))
  requests_by_id = {}
  for i, id in ipairs(ids) do
    requests_by_id[i] = bench.head("GET", "/fhir/R4/Observation/" .. id,
                                   { ["Accept"] = "application/fhir+json" }) .. "\r\n"
  end
  count = #requests_by_id
  if os.getenv("KURA_BENCH_LEAN") == "1" then response = nil end
end

function request()
  return requests_by_id[math.random(count)]
end

function response(status, headers, body)
  bench.count(status, body)
end

function done(summary, latency, requests)
  bench.done(os.getenv("KURA_BENCH_LABEL") or "read", summary, latency, nil,
             os.getenv("KURA_BENCH_LEAN") == "1")
end
