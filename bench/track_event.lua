-- wrk script: POST /v1/track calls of the Segment/RudderStack tracking API,
-- as the analytics SDKs send them: HTTP Basic auth with the write key as the
-- user and an empty password, and a body of event, userId (a random user of
-- 50,000), properties, messageId, timestamp and sentAt (about 290 bytes).
-- Every request has its own messageId: the service names the event after it,
-- and a repeated messageId is answered 200 but stores nothing, so ids must
-- not repeat within a database. They are "bench-<run>-t<thread>-<n>".
-- timestamp is a few ms to 2 s before sentAt, which is the wall clock when
-- the request is built.
-- Options after "--" (see wrk_common.lua):
--   key=WRITEKEY  one of the service's tracking.write_keys (required)
--   run=TAG       part of every messageId; give each run against the same
--                 database its own (default: the time and a random number)
--   users=N, rate=N threads=N
--   wrk -t2 -c64 -d15s --timeout 10s -s bench/track_event.lua \
--       http://127.0.0.1:PORT/v1/track -- key=WRITEKEY run=r1
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local function iso(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", math.floor(ms / 1000)) .. string.format(".%03dZ", ms % 1000)
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {math.floor(n / 262144) % 64, math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64}
    out[#out + 1] = b64chars:sub(q[1] + 1, q[1] + 1) .. b64chars:sub(q[2] + 1, q[2] + 1) ..
      (b and b64chars:sub(q[3] + 1, q[3] + 1) or "=") .. (c and b64chars:sub(q[4] + 1, q[4] + 1) or "=")
  end
  return table.concat(out)
end

-- event names; the service files "...Clicked" under click, "Form ..." under
-- form_submit and the others under user_action
local events = {"Product Viewed", "Product Added", "Order Completed", "Button Clicked", "Form Submitted"}

common.install(function(opt)
  local key = opt.key
  if key == nil or key == "" then
    error("track_event.lua: key=WRITEKEY is required (one of tracking.write_keys)")
  end
  local users = tonumber(opt.users) or 50000
  local run = opt.run or string.format("%d%04d", os.time(), math.random(0, 9999))
  local path = common.path("/v1/track")
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Basic " .. base64(key .. ":"),
    ["User-Agent"] = "analytics-node/2.1.0",
  }
  local prefix = string.format("bench-%s-t%d-", run, thread_no or 0)
  local n = 0
  return function()
    n = n + 1
    local sent = math.floor(common.wall_us() / 1000) -- wall clock, ms
    local body = string.format(
      '{"event":"%s","userId":"user_%d","properties":{"product_id":"sku-%d","price":%d.%02d,' ..
      '"currency":"EUR","quantity":%d,"order_id":"ord_%d","note":"benchmark event"},' ..
      '"messageId":"%s%d","timestamp":"%s","sentAt":"%s"}',
      events[math.random(#events)], math.random(0, users - 1), math.random(0, 299),
      math.random(1, 499), math.random(0, 99), math.random(1, 5), math.random(0, 999999),
      prefix, n, iso(sent - math.random(5, 2000)), iso(sent))
    return wrk.format("POST", path, headers, body)
  end
end)
