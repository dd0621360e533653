-- wrk script: POST single events to the public frontend collection,
-- /api/v1/events/frontend, as a browser snippet would: one of five UI event
-- types with its category, the page's URL, a random user (of 50,000) and
-- session, a small data object and client metadata (about 330 bytes of
-- body), with a browser User-Agent and a Referer (the service records both,
-- and the client's address, in context.client).
-- The service limits this path per client address (frontend.rate_limit_per_
-- minute); every wrk connection comes from one address, so run it against a
-- service with the limit off (0), or most answers are 429.
-- Options after "--" (see wrk_common.lua): users=N, rate=N threads=N.
--   wrk -t2 -c64 -d15s --timeout 10s -s bench/frontend_event.lua \
--       http://127.0.0.1:PORT/api/v1/events/frontend
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "wrk_common.lua")

-- event_type, category
local kinds = {
  {"page_view", "page_view"},
  {"button_click", "click"},
  {"form_submit", "form_submit"},
  {"scroll_depth", "user_action"},
  {"video_play", "user_action"},
}
local pages = {"/", "/pricing", "/products", "/products/item", "/checkout", "/blog/post", "/account"}

common.install(function(opt)
  local users = tonumber(opt.users) or 50000
  local path = common.path("/api/v1/events/frontend")
  local headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    ["Referer"] = "https://shop.example.com/",
  }
  return function()
    local kind = kinds[math.random(#kinds)]
    local body = string.format(
      '{"event_type":"%s","category":"%s","page_url":"https://shop.example.com%s?id=%d",' ..
      '"user_id":"user_%d","session_id":"sess_%d","data":{"element":"cta-%d","scroll_pct":%d,' ..
      '"viewport":{"w":1280,"h":720},"note":"benchmark event"},' ..
      '"metadata":{"app_version":"web-1.4.2","locale":"en-GB","screen":"1920x1080"}}',
      kind[1], kind[2], pages[math.random(#pages)], math.random(0, 999),
      math.random(0, users - 1), math.random(0, 19999), math.random(0, 299), math.random(0, 100))
    return wrk.format("POST", path, headers, body)
  end
end)
