-- Shared by the wrk scripts of bench/ (loaded with dofile from the script's
-- own directory). It provides:
--   * options from the command line after "--", as key=value
--     (rate=N  threads=N  seed=N  plus whatever a script reads itself);
--   * pacing: with rate=N (requests/s over all threads), each thread hands out
--     send slots on a fixed timeline of N/threads per second, so the offered
--     load is N/s whatever the latency (up to the connections available). A
--     slot missed because every connection was busy is not made up later;
--     the achieved rate is printed so a run that fell short is visible;
--   * a count of responses by status, and the first non-2xx body of each
--     thread (truncated), merged over threads at the end;
--   * one machine-readable line at the end:
--     RESULT requests=.. duration_s=.. rps=.. p50_ms=.. p90_ms=.. p99_ms=..
--            max_ms=.. mean_ms=.. sock_errors=.. non2xx=.. statuses=201:n,..
--     followed by "NON2XX_SAMPLE thread=N <status> <body>" lines, if any.
-- Latency is wrk's: from writing a request to reading its whole response.
-- It also has small helpers for the scripts: wall_us(), path(default) and
-- backend_event(users), described where they are defined.
local M = {}

local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec_t;
int clock_gettime(int clk_id, bench_timespec_t *tp);
]])
local CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
local tsbuf = ffi.new("bench_timespec_t")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, tsbuf)
  return tonumber(tsbuf.tv_sec) * 1000 + tonumber(tsbuf.tv_nsec) / 1e6
end

-- wall_us(): the wall clock (CLOCK_REALTIME) in whole microseconds, for
-- times that go in a request.
function M.wall_us()
  ffi.C.clock_gettime(CLOCK_REALTIME, tsbuf)
  return tonumber(tsbuf.tv_sec) * 1000000 + math.floor(tonumber(tsbuf.tv_nsec) / 1000)
end

-- path(default): the path of the URL wrk was given, or default if it has none.
function M.path(default)
  return wrk.path ~= "" and wrk.path or default
end

-- backend_event(users): one event as a backend service reports what its
-- users did, as JSON: one of five event types, a random user (of users) and
-- session, and a small payload (about 330 bytes).
-- create_event.lua posts one a request, batch_events.lua n.
local backend_types = {"user.login", "user.logout", "order.created", "payment.succeeded", "page.viewed"}
function M.backend_event(users)
  return string.format(
    '{"event_type":"%s","event_source":"backend","event_category":"user_action",' ..
    '"user_id":"user_%d","session_id":"sess_%d","data":{"amount":%d,"currency":"EUR",' ..
    '"items":[{"sku":"sku-%d","qty":2}],"note":"benchmark event"},' ..
    '"metadata":{"ip_address":"10.0.0.%d","user_agent":"bench/1.0"}}',
    backend_types[math.random(#backend_types)], math.random(0, users - 1), math.random(0, 19999),
    math.random(0, 999), math.random(0, 299), math.random(0, 249))
end

local function parse_args(args)
  local opt = {}
  for _, a in ipairs(args or {}) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then opt[k] = v end
  end
  return opt
end

-- Installs wrk's global hooks. make_request(opt) is called once per thread
-- (in init) and returns the request() function of that thread.
function M.install(make_request)
  local threads = {}

  function setup(thread)
    threads[#threads + 1] = thread
    thread:set("thread_no", #threads)
  end

  function init(args)
    local opt = parse_args(args)
    math.randomseed((tonumber(opt.seed) or os.time()) + 7919 * (thread_no or 0))
    status_counts = {}
    bad_sample = ""
    request = make_request(opt)
    if opt.lean == "1" then
      response = nil
      lean = 1
    end
    -- pool=N: N requests made up front and sent in turn, so making a request
    -- costs the load generator next to nothing (for scripts whose requests
    -- may repeat; not for ones that need a unique id per request).
    local pool = tonumber(opt.pool) or 0
    if pool > 0 then
      local reqs, make, i = {}, request, 0
      for k = 1, pool do reqs[k] = make() end
      request = function()
        i = i % pool + 1
        return reqs[i]
      end
    end

    local rate = tonumber(opt.rate)
    if rate and rate > 0 then
      local interval = 1000 * (tonumber(opt.threads) or 1) / rate
      local next_slot = nil
      delay = function()
        local t = now_ms()
        if next_slot == nil or next_slot < t then next_slot = t end
        local d = next_slot - t
        next_slot = next_slot + interval
        return math.floor(d + 0.5)
      end
    end
  end

  -- lean=1: no response hook (wrk then hands no response to Lua); answers
  -- are counted by wrk itself, which only tells those with status >= 400
  -- (statuses=ok:N,err:M; no per-status counts and no samples).
  function response(status, headers, body)
    status_counts[status] = (status_counts[status] or 0) + 1
    if (status < 200 or status > 299) and bad_sample == "" then
      bad_sample = tostring(status) .. " " .. tostring(body):sub(1, 300):gsub("%s+", " ")
    end
  end

  function done(summary, latency, requests)
    local merged, non2xx, samples = {}, 0, {}
    local e = summary.errors
    if threads[1] and threads[1]:get("lean") == 1 then
      merged = nil
      non2xx = e.status
    end
    for _, t in ipairs(merged and threads or {}) do
      for status, n in pairs(t:get("status_counts") or {}) do
        merged[status] = (merged[status] or 0) + n
        if status < 200 or status > 299 then non2xx = non2xx + n end
      end
      local s = t:get("bad_sample")
      if s and s ~= "" then samples[#samples + 1] = string.format("thread=%d %s", t:get("thread_no"), s) end
    end
    local parts = {}
    if merged then
      local keys = {}
      for status in pairs(merged) do keys[#keys + 1] = status end
      table.sort(keys)
      for _, status in ipairs(keys) do parts[#parts + 1] = string.format("%d:%d", status, merged[status]) end
    else
      parts = {string.format("ok:%d", summary.requests - e.status), string.format("err:%d", e.status)}
    end
    local secs = summary.duration / 1e6
    io.write(string.format(
      "RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f mean_ms=%.2f sock_errors=%d non2xx=%d statuses=%s\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
      latency.max / 1000, latency.mean / 1000,
      e.connect + e.read + e.write + e.timeout, non2xx,
      #parts > 0 and table.concat(parts, ",") or "none"))
    for _, s in ipairs(samples) do io.write("NON2XX_SAMPLE ", s, "\n") end
  end
end

return M
