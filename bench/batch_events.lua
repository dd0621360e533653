-- wrk script: POST /api/v1/events/batch with n events per request (default
-- 100, the service's default max_batch), each shaped like create_event.lua's.
--   wrk -t2 -c8 -d15s --timeout 10s -s bench/batch_events.lua \
--       http://127.0.0.1:PORT/api/v1/events/batch -- n=100
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local types = {"user.login", "user.logout", "order.created", "payment.succeeded", "page.viewed"}
local headers = {["Content-Type"] = "application/json"}

common.install(function(opt)
  local n = tonumber(opt.n) or 100
  local users = tonumber(opt.users) or 50000
  local path = wrk.path ~= "" and wrk.path or "/api/v1/events/batch"
  return function()
    local parts = {}
    for i = 1, n do
      parts[i] = string.format(
        '{"event_type":"%s","event_source":"backend","event_category":"user_action",' ..
        '"user_id":"user_%d","session_id":"sess_%d","data":{"amount":%d,"currency":"EUR",' ..
        '"items":[{"sku":"sku-%d","qty":2}],"note":"benchmark event"},' ..
        '"metadata":{"ip_address":"10.0.0.%d","user_agent":"bench/1.0"}}',
        types[math.random(#types)], math.random(0, users - 1), math.random(0, 19999),
        math.random(0, 999), math.random(0, 299), math.random(0, 249))
    end
    return wrk.format("POST", path, headers, '{"events":[' .. table.concat(parts, ",") .. ']}')
  end
end)
