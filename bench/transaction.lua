-- wrk script: POST a transaction Bundle of KURA_BENCH_TX_SIZE Observations to /fhir/R4.
--
-- Each thread builds its Bundle once in init(): entry i is the shared Observation template with
-- its LOINC code cycling through four codes (8867-4, 8480-6, 8462-4, 9279-1), a random Patient
-- from KURA_BENCH_PATIENTS and a urn:uuid fullUrl. Every request posts that Bundle again, so each
-- 2xx stores KURA_BENCH_TX_SIZE new Observations (the search phase's data set).
--
-- Environment (see bench/run.sh):
--   KURA_BENCH_DIR, KURA_BENCH_TOKEN, KURA_BENCH_TEMPLATE, KURA_BENCH_PATIENTS, KURA_BENCH_RESULT
--   KURA_BENCH_TX_SIZE      entries per Bundle (default 1000)
--   KURA_BENCH_STOP_AFTER   stop a thread after this many 2xx (optional; loading)

local bench = dofile((os.getenv("KURA_BENCH_DIR") or "bench") .. "/common.lua")

local CODES = { "8867-4", "8480-6", "8462-4", "9279-1" }

function setup(thread) bench.setup(thread) end

local request_text
local stop_after
local done_count = 0

function init(args)
  bench.init_counters()
  local template = bench.read_file(bench.env("KURA_BENCH_TEMPLATE")):gsub("%s+$", "")
  local pids = bench.read_lines(bench.env("KURA_BENCH_PATIENTS"))
  local size = tonumber(os.getenv("KURA_BENCH_TX_SIZE") or "1000")
  local entries = {}
  for i = 1, size do
    local obs = template:gsub("__PID__", pids[math.random(#pids)])
                        :gsub("__N__", "tx-" .. bench_thread_index .. "-" .. i)
                        :gsub('"code":"8867%-4"', '"code":"' .. CODES[(i - 1) % 4 + 1] .. '"', 1)
    entries[i] = string.format(
      '{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":%s,' ..
      '"request":{"method":"POST","url":"Observation"}}', i, obs)
  end
  local body = '{"resourceType":"Bundle","type":"transaction","entry":[' ..
               table.concat(entries, ",") .. "]}"
  request_text = bench.head("POST", "/fhir/R4", {
    ["Content-Type"] = "application/fhir+json",
    ["Accept"] = "application/fhir+json",
    ["Prefer"] = "return=minimal",
  }) .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
  stop_after = tonumber(os.getenv("KURA_BENCH_STOP_AFTER") or "")
end

function request()
  return request_text
end

function response(status, headers, body)
  if bench.count(status, body) then
    done_count = done_count + 1
    if stop_after and done_count >= stop_after then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  bench.done(os.getenv("KURA_BENCH_LABEL") or "transaction", summary, latency)
end
