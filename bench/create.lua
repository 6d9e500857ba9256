-- wrk script: POST /fhir/R4/Observation from the shared template.
--
-- Each request substitutes __PID__ with a random one of the Patients in KURA_BENCH_PATIENTS
-- (one id a line) and __N__ with a per-run unique counter. Every 2xx's Location id
-- (".../Observation/{id}/_history/1") is collected and, in done(), appended to
-- KURA_BENCH_IDS_OUT (one id a line) for the read phase.
--
-- Environment (see bench/run.sh):
--   KURA_BENCH_DIR        directory of this script (to load common.lua)
--   KURA_BENCH_TOKEN      bearer token
--   KURA_BENCH_TEMPLATE   the Observation template (JSON with __N__ and __PID__)
--   KURA_BENCH_PATIENTS   file of Patient ids
--   KURA_BENCH_IDS_OUT    file to append the created Observation ids to (optional)
--   KURA_BENCH_STOP_AFTER stop a thread once it has collected this many ids (optional; preload)
--   KURA_BENCH_RUN        a run tag mixed into __N__ so identifiers differ between runs
--   KURA_BENCH_RESULT     key=value result file (see common.lua)

local bench = dofile((os.getenv("KURA_BENCH_DIR") or "bench") .. "/common.lua")

local PATH = "/fhir/R4/Observation"

function setup(thread) bench.setup(thread) end

local parts      -- template split around placeholders: literal, key, literal, key, ..., literal
local pids
local head
local counter = 0
local prefix
local stop_after
local collect

function init(args)
  bench.init_counters()
  local template = bench.read_file(bench.env("KURA_BENCH_TEMPLATE")):gsub("%s+$", "")
  if not template:find("__PID__", 1, true) then
    error("bench: the Observation template has no __PID__ placeholder")
  end
  parts = {}
  local pos = 1
  while true do
    local s, e, key = template:find("__([A-Z]+)__", pos)
    if not s then break end
    if key ~= "N" and key ~= "PID" then error("bench: unknown template placeholder __" .. key .. "__") end
    parts[#parts + 1] = template:sub(pos, s - 1)
    parts[#parts + 1] = key
    pos = e + 1
  end
  parts[#parts + 1] = template:sub(pos)
  pids = bench.read_lines(bench.env("KURA_BENCH_PATIENTS"))
  head = bench.head("POST", PATH, {
    ["Content-Type"] = "application/fhir+json",
    ["Accept"] = "application/fhir+json",
  })
  prefix = bench.env("KURA_BENCH_RUN", tostring(os.time())) .. "-" .. bench_thread_index .. "-"
  stop_after = tonumber(os.getenv("KURA_BENCH_STOP_AFTER") or "")
  collect = (os.getenv("KURA_BENCH_IDS_OUT") or "") ~= ""
  bench_ids = {}
end

function request()
  counter = counter + 1
  local n = prefix .. counter
  local pid = pids[math.random(#pids)]
  local out = {}
  for i = 1, #parts do
    local p = parts[i]
    if i % 2 == 0 then
      out[i] = (p == "N") and n or pid
    else
      out[i] = p
    end
  end
  local body = table.concat(out)
  return head .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
end

function response(status, headers, body)
  if bench.count(status, body) and collect then
    local location = headers["Location"] or headers["location"]
    local id = location and location:match("/Observation/([^/]+)/_history/")
    if id then
      bench_ids[#bench_ids + 1] = id
      if stop_after and #bench_ids >= stop_after then wrk.thread:stop() end
    end
  end
end

function done(summary, latency, requests)
  local out = os.getenv("KURA_BENCH_IDS_OUT")
  local collected = 0
  if out and out ~= "" then
    local f = assert(io.open(out, "a"))
    for _, t in ipairs(bench.threads) do
      for _, id in ipairs(t:get("bench_ids") or {}) do
        f:write(id, "\n")
        collected = collected + 1
      end
    end
    f:close()
  end
  bench.done(os.getenv("KURA_BENCH_LABEL") or "create", summary, latency,
             { ids_collected = collected })
end
