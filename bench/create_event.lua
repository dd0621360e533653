-- wrk script: POST realistic single events to /api/v1/events/create.
-- Each request carries a different user and a small JSON payload, like a
-- backend service reporting what its users did.
local counter = 0
local types = {"user.login", "user.logout", "order.created", "payment.succeeded", "page.viewed"}

request = function()
  counter = counter + 1
  local body = string.format(
    '{"event_type":"%s","event_source":"backend","event_category":"user_action",' ..
    '"user_id":"user_%d","session_id":"sess_%d","data":{"amount":%d,"currency":"EUR",' ..
    '"items":[{"sku":"sku-%d","qty":2}],"note":"benchmark event"},' ..
    '"metadata":{"ip_address":"10.0.0.%d","user_agent":"bench/1.0"}}',
    types[(counter % #types) + 1], counter % 5000, counter % 20000, counter % 1000,
    counter % 300, counter % 250)
  return wrk.format("POST", "/api/v1/events/create", {["Content-Type"] = "application/json"}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.3f rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
