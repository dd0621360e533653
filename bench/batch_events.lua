-- wrk script: POST /api/v1/events/batch with n events per request (default
-- 100, the service's default max_batch), each shaped like create_event.lua's.
--   wrk -t2 -c8 -d15s --timeout 10s -s bench/batch_events.lua \
--       http://127.0.0.1:PORT/api/v1/events/batch -- n=100
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local headers = {["Content-Type"] = "application/json"}

common.install(function(opt)
  local n = tonumber(opt.n) or 100
  local users = tonumber(opt.users) or 50000
  local path = common.path("/api/v1/events/batch")
  return function()
    local parts = {}
    for i = 1, n do parts[i] = common.backend_event(users) end
    return wrk.format("POST", path, headers, '{"events":[' .. table.concat(parts, ",") .. ']}')
  end
end)
