-- Shared helpers for the Kura wrk scripts (create.lua, read.lua); loaded with dofile().
--
-- Configuration comes from environment variables (set by bench/run.sh), because wrk only hands
-- command-line arguments to the per-thread init(), not to setup()/done():
--   KURA_BENCH_TOKEN    bearer token (required)
--   KURA_BENCH_RESULT   file that done() writes key=value result lines to (optional)
--
-- Per-thread counters are globals (thread:get() reads globals of the thread's Lua state):
--   bench_2xx, bench_non2xx, bench_status (status -> count), bench_error_sample (first non-2xx
--   body, truncated).

local M = {}

function M.env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then
    if default ~= nil then return default end
    error("bench: environment variable " .. name .. " is not set (run bench/run.sh)")
  end
  return v
end

function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then error("bench: cannot read " .. path .. ": " .. tostring(err)) end
  local data = f:read("*a")
  f:close()
  return data
end

function M.read_lines(path)
  local out = {}
  for line in io.lines(path) do
    line = line:gsub("%s+$", "")
    if line ~= "" then out[#out + 1] = line end
  end
  if #out == 0 then error("bench: " .. path .. " has no lines") end
  return out
end

-- "Host: ..." as wrk would send it, plus the Authorization header, with no trailing blank line.
-- Built with wrk.format so Host matches the URL given on the command line.
function M.head(method, path, extra_headers)
  local headers = { ["Authorization"] = "Bearer " .. M.env("KURA_BENCH_TOKEN") }
  for k, v in pairs(extra_headers or {}) do headers[k] = v end
  local req = wrk.format(method, path, headers, nil)
  -- wrk.format ends the head with "\r\n\r\n" when there is no body: keep one "\r\n".
  return req:sub(1, #req - 2)
end

-- setup()/done() run in the main Lua state; keep the thread handles to read their counters.
M.threads = {}

function M.setup(thread)
  M.threads[#M.threads + 1] = thread
  thread:set("bench_thread_index", #M.threads)
end

-- Call from init() in every thread.
function M.init_counters()
  bench_2xx = 0
  bench_non2xx = 0
  bench_status = {}
  bench_error_sample = nil
  math.randomseed(os.time() * 1000 + (bench_thread_index or 0) * 7919 + math.floor(os.clock() * 1e6))
  -- LuaJIT's first few random numbers after seeding are poorly mixed.
  for _ = 1, 10 do math.random() end
end

-- Call from response(); returns true for 2xx.
function M.count(status, body)
  if status >= 200 and status < 300 then
    bench_2xx = bench_2xx + 1
    return true
  end
  bench_non2xx = bench_non2xx + 1
  bench_status[status] = (bench_status[status] or 0) + 1
  if bench_error_sample == nil then
    bench_error_sample = (body or ""):sub(1, 300):gsub("[\r\n]", " ")
  end
  return false
end

local function ms(us) return string.format("%.3f", us / 1000.0) end

-- Aggregates the thread counters, prints a summary and writes KURA_BENCH_RESULT.
-- `extra` is a table of additional key=value pairs for the result file. `lean`: response() was
-- not used, so count wrk's own "status > 399" errors as the non-2xx responses.
function M.done(label, summary, latency, extra, lean)
  local ok, non2xx, statuses, sample = 0, 0, {}, nil
  for _, t in ipairs(M.threads) do
    ok = ok + (t:get("bench_2xx") or 0)
    non2xx = non2xx + (t:get("bench_non2xx") or 0)
    for status, n in pairs(t:get("bench_status") or {}) do
      statuses[status] = (statuses[status] or 0) + n
    end
    sample = sample or t:get("bench_error_sample")
  end
  local e = summary.errors
  if lean then
    non2xx = e.status
    ok = summary.requests - e.status
    if non2xx > 0 then statuses["4xx/5xx"] = non2xx end
  end
  local seconds = summary.duration / 1e6
  local socket_errors = e.connect + e.read + e.write
  local r = {
    label = label,
    duration_s = string.format("%.3f", seconds),
    requests = summary.requests,
    ok_2xx = ok,
    non2xx = non2xx,
    rps = string.format("%.1f", summary.requests / seconds),
    rps_2xx = string.format("%.1f", ok / seconds),
    p50_ms = ms(latency:percentile(50)),
    p90_ms = ms(latency:percentile(90)),
    p99_ms = ms(latency:percentile(99)),
    max_ms = ms(latency.max),
    mean_ms = ms(latency.mean),
    socket_errors = socket_errors,
    connect_errors = e.connect,
    read_errors = e.read,
    write_errors = e.write,
    timeouts = e.timeout,
    bytes = summary.bytes,
    lean = lean and 1 or 0,
  }
  local codes = {}
  for status, n in pairs(statuses) do codes[#codes + 1] = status .. ":" .. n end
  table.sort(codes)
  r.non2xx_by_status = table.concat(codes, ",")
  for k, v in pairs(extra or {}) do r[k] = v end

  print(string.format("[%s] %s requests in %.2fs: %s req/s (2xx: %s req/s), p50 %s ms, p99 %s ms",
                      label, r.requests, seconds, r.rps, r.rps_2xx, r.p50_ms, r.p99_ms))
  if non2xx > 0 then
    print(string.format("[%s] NON-2XX RESPONSES: %d (%s); first body: %s", label, non2xx,
                        r.non2xx_by_status, sample or ""))
  end
  if socket_errors > 0 or e.timeout > 0 then
    print(string.format("[%s] socket errors: connect %d, read %d, write %d; timeouts %d", label,
                        e.connect, e.read, e.write, e.timeout))
  end

  local path = os.getenv("KURA_BENCH_RESULT")
  if path and path ~= "" then
    local f = assert(io.open(path, "w"))
    local keys = {}
    for k in pairs(r) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do f:write(k, "=", tostring(r[k]):gsub("[\r\n]", " "), "\n") end
    f:close()
  end
  return r
end

return M
