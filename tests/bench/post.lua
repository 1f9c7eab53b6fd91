-- wrk script for tests/bench/run: POSTs the file named by $BODY with the header
-- X-API-Key: $API_KEY, and ends with one line the run script parses:
--   BENCH requests=N duration_us=N p50_us=N p99_us=N non2xx=N errors=N
-- (errors: socket connect/read/write errors and timeouts).
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = os.getenv("API_KEY") or "secret"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d non2xx=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
