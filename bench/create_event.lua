-- wrk script: POST realistic single events to /api/v1/events/create.
-- Each request carries a random user (of 50,000) and session, one of a few
-- event types and a small JSON payload (about 330 bytes of body), like a
-- backend service reporting what its users did.
-- Options after "--" (see wrk_common.lua): rate=N threads=N for a paced run.
--   wrk -t2 -c64 -d15s --timeout 10s -s bench/create_event.lua \
--       http://127.0.0.1:PORT/api/v1/events/create
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local types = {"user.login", "user.logout", "order.created", "payment.succeeded", "page.viewed"}
local headers = {["Content-Type"] = "application/json"}

common.install(function(opt)
  local users = tonumber(opt.users) or 50000
  local path = wrk.path ~= "" and wrk.path or "/api/v1/events/create"
  return function()
    local body = string.format(
      '{"event_type":"%s","event_source":"backend","event_category":"user_action",' ..
      '"user_id":"user_%d","session_id":"sess_%d","data":{"amount":%d,"currency":"EUR",' ..
      '"items":[{"sku":"sku-%d","qty":2}],"note":"benchmark event"},' ..
      '"metadata":{"ip_address":"10.0.0.%d","user_agent":"bench/1.0"}}',
      types[math.random(#types)], math.random(0, users - 1), math.random(0, 19999),
      math.random(0, 999), math.random(0, 299), math.random(0, 249))
    return wrk.format("POST", path, headers, body)
  end
end)
