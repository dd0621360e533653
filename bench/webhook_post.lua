-- wrk script: POST one webhook body (a file) to a receiver, with the headers
-- the service sends (a fresh webhook-id per request, a fixed signature), so
-- that the receiver does for each request what it does for a delivery.
-- bench/delivery.sh uses it for the receiver's own ceiling.
-- Options after "--" (see wrk_common.lua): body=FILE (required), id=PREFIX.
--   wrk -t2 -c64 -d10s --timeout 10s -s bench/webhook_post.lua \
--       http://127.0.0.1:PORT/ceiling -- body=/tmp/sample.json
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

common.install(function(opt)
  local f = assert(io.open(assert(opt.body, "body=FILE is required"), "rb"))
  local body = f:read("*a")
  f:close()
  local prefix = (opt.id or "wrk") .. "_" .. tostring(thread_no or 0) .. "_"
  local n = 0
  local path = common.path("/")
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "wrk",
    ["webhook-signature"] = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
  }
  return function()
    n = n + 1
    headers["webhook-id"] = prefix .. n
    headers["webhook-timestamp"] = tostring(os.time())
    return wrk.format("POST", path, headers, body)
  end
end)
