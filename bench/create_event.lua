-- wrk script: POST realistic single events to /api/v1/events/create.
-- Each request carries a random user (of 50,000) and session, one of a few
-- event types and a small JSON payload (about 330 bytes of body), like a
-- backend service reporting what its users did (wrk_common.lua's
-- backend_event).
-- Options after "--" (see wrk_common.lua): rate=N threads=N for a paced run.
--   wrk -t2 -c64 -d15s --timeout 10s -s bench/create_event.lua \
--       http://127.0.0.1:PORT/api/v1/events/create
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

local headers = {["Content-Type"] = "application/json"}

common.install(function(opt)
  local users = tonumber(opt.users) or 50000
  local path = common.path("/api/v1/events/create")
  return function()
    return wrk.format("POST", path, headers, common.backend_event(users))
  end
end)
