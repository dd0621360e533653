-- wrk script: POST /api/v1/events/create with the client's wall clock in the
-- event, for bench/delivery.sh's end-to-end latency. data.sent_at_us is the
-- time (CLOCK_REALTIME, microseconds) at which wrk builds the request, right
-- before writing it (after any pacing delay); the receiver subtracts it from
-- the delivery's arrival. Otherwise shaped like create_event.lua's events.
-- Options after "--" (see wrk_common.lua): type=EVENT_TYPE (required),
-- rate=N threads=N for a paced run.
--   wrk -t2 -c16 -d20s --timeout 10s -s bench/delivery_create.lua \
--       http://127.0.0.1:PORT/api/v1/events/create -- type=bench.delivery.latency rate=1000 threads=2
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local headers = {["Content-Type"] = "application/json"}

common.install(function(opt)
  local event_type = assert(opt.type, "type=EVENT_TYPE is required")
  local path = common.path("/api/v1/events/create")
  local seq = 0
  return function()
    seq = seq + 1
    local body = string.format(
      '{"event_type":"%s","event_source":"backend","event_category":"user_action",' ..
      '"user_id":"user_%d","session_id":"sess_%d","data":{"sent_at_us":%d,"thread":%d,"seq":%d,' ..
      '"amount":%d,"currency":"EUR","items":[{"sku":"sku-%d","qty":2}],"note":"benchmark event"},' ..
      '"metadata":{"ip_address":"10.0.0.%d","user_agent":"bench/1.0"}}',
      event_type, math.random(0, 49999), math.random(0, 19999), common.wall_us(), thread_no or 0, seq,
      math.random(0, 999), math.random(0, 299), math.random(0, 249))
    return wrk.format("POST", path, headers, body)
  end
end)
