-- wrk script: GET the URL's path; with users=N, appends ?user_id=user_<random
-- of N> (for GET /api/v1/events/statistics?user_id=...).
--   wrk -t2 -c8 -d10s --timeout 10s -s bench/get.lua \
--       http://127.0.0.1:PORT/api/v1/events/statistics [-- users=50000]
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

common.install(function(opt)
  local users = tonumber(opt.users)
  local path = common.path("/")
  if users == nil then
    local req = wrk.format("GET", path)
    return function() return req end
  end
  return function()
    return wrk.format("GET", string.format("%s?user_id=user_%d", path, math.random(0, users - 1)))
  end
end)
