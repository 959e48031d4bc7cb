-- wrk script for bench/receiver.py: unique, realistic ~2 KB Moneybird pushes,
-- each with its own Idempotency-Key, and a count of responses by status.
-- The token comes from the environment variable BENCH_TOKEN.

local threads = {}
local counter = 0
thread_id = 0
local token = os.getenv("BENCH_TOKEN") or "bench-token"
-- Each wrk run gets its own prefix so no push repeats one from an earlier run.
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local padding = string.rep("Consultancy hours for the quarterly close; ", 34)

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function request()
  counter = counter + 1
  local entity_id = string.format("4960%05d%010d", thread_id, counter)
  local body = string.format(
    '{"administration_id":"123456789","webhook_id":"4180000000000000001",' ..
    '"webhook_token":"%s","entity_type":"SalesInvoice","entity_id":"%s",' ..
    '"state":"paid","action":"sales_invoice_state_changed_to_paid",' ..
    '"entity":{"id":"%s","administration_id":"123456789","invoice_id":"2026-%d",' ..
    '"state":"paid","total_price_incl_tax":"121.0","currency":"EUR","version":%d,' ..
    '"details":[{"description":"%s","price":"100.0"}]}}',
    token, entity_id, entity_id, counter, 1790000000 + counter, padding)
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%s-%d-%d", run, thread_id, counter),
    ["User-Agent"] = "Moneybird webhook (bench)",
  }
  return wrk.format("POST", "/webhooks/moneybird", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for code, n in pairs(s) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', code, n))
  end
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write +
      summary.errors.timeout,
    table.concat(parts, ",")))
end
