-- wrk script: POST /api/v1/events/query {"user_id": "user_N", "limit": 50}
-- for a random user N of the ones bench/ingest.sh loads (default 50,000).
--   wrk -t2 -c8 -d10s --timeout 10s -s bench/query_user.lua \
--       http://127.0.0.1:PORT/api/v1/events/query -- users=50000 limit=50
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local headers = {["Content-Type"] = "application/json"}

common.install(function(opt)
  local users = tonumber(opt.users) or 50000
  local limit = tonumber(opt.limit) or 50
  local path = common.path("/api/v1/events/query")
  return function()
    local body = string.format('{"user_id":"user_%d","limit":%d}', math.random(0, users - 1), limit)
    return wrk.format("POST", path, headers, body)
  end
end)
