-- wrk script for bench/receiver.py: unique, realistic ~2 KB Moneybird pushes,
-- each with its own Idempotency-Key, and a count of responses by status.
--
-- The push is the template in the file BENCH_TEMPLATE (bench/pushbody.py writes it:
-- Moneybird's example contact as a contact_changed push) with its placeholders
-- filled in per request. wrk shares the machine with the server and Redis it
-- measures, so a request is a few concatenations onto text prepared once per thread.

local threads = {}
local counter = 0
thread_id = 0
-- Each wrk run gets its own prefix so no push repeats one from an earlier run.
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local head
local parts, slots, names = {}, {}, {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  local path = os.getenv("BENCH_TEMPLATE")
  local file = assert(io.open(path or "", "rb"), "BENCH_TEMPLATE: no push template")
  local text = file:read("*a")
  file:close()
  -- literal text at odd positions, placeholder values at even ones
  local at = 1
  for first, name, last in text:gmatch("()@(%u+)@()") do
    parts[#parts + 1] = text:sub(at, first - 1)
    parts[#parts + 1] = ""
    slots[#slots + 1], names[#names + 1] = #parts, name
    at = last
  end
  parts[#parts + 1] = text:sub(at)
  head = "POST /webhooks/moneybird HTTP/1.1\r\n" ..
    "Host: " .. wrk.headers["Host"] .. "\r\n" ..
    "Content-Type: application/json\r\n" ..
    "User-Agent: Moneybird webhook (bench)\r\n" ..
    "Idempotency-Key: bench-" .. run .. "-" .. thread_id .. "-"
end

function request()
  counter = counter + 1
  local values = {
    ID = string.format("4960%05d%010d", thread_id, counter),
    PERSON = string.format("4961%05d%010d", thread_id, counter),
    N = counter,
    VERSION = 1790000000 + counter,
  }
  for i = 1, #slots do
    parts[slots[i]] = values[names[i]]
  end
  local body = table.concat(parts)
  return head .. counter .. "\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body
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
