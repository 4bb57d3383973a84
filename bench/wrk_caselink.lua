-- wrk script for the caselink query benchmark (bench/query.py --tool wrk).
--
-- Usage: wrk -t C -c C -d 20s -s bench/wrk_caselink.lua http://127.0.0.1:PORT -- requests.tsv
-- requests.tsv: one request per line, "METHOD<TAB>PATH<TAB>JSON body or empty". Each thread cycles
-- through the lines from its own offset. The server's timings_ms and answer path are picked out of
-- each response body, summed per thread, and printed by done() as one line starting with "JSON ".

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

local keys = {"prepare", "encode", "vector", "bm25", "fusion", "fetch", "total"}

function init(args)
  requests = {}
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    local method, path, body = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
    if method then
      local headers = {}
      if body ~= nil and body ~= "" then
        headers["Content-Type"] = "application/json"
      else
        body = nil
      end
      table.insert(requests, wrk.format(method, path, headers, body))
    end
  end
  f:close()
  idx = ((tid or 1) - 1) * 7919 % #requests
  sums = {}
  counts = {}
  for _, k in ipairs(keys) do sums[k] = 0; counts[k] = 0 end
  paths = {hybrid = 0, dense = 0, keyword = 0}
  non2xx = 0
end

function request()
  idx = idx % #requests + 1
  return requests[idx]
end

function response(status, headers, body)
  if status < 200 or status >= 300 then
    non2xx = non2xx + 1
    return
  end
  local timings = body:match('"timings_ms"%s*:%s*(%b{})')
  if timings then
    for _, k in ipairs(keys) do
      local v = timings:match('"' .. k .. '"%s*:%s*([-%d%.eE]+)')
      if v then
        sums[k] = sums[k] + tonumber(v)
        counts[k] = counts[k] + 1
      end
    end
  end
  local p = body:match('"path"%s*:%s*"(%a+)"')
  if p and paths[p] then paths[p] = paths[p] + 1 end
end

local function json_table(t)
  local parts = {}
  for k, v in pairs(t) do table.insert(parts, string.format('"%s":%s', k, tostring(v))) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local sums, counts, paths = {}, {}, {hybrid = 0, dense = 0, keyword = 0}
  local non2xx = 0
  for _, k in ipairs(keys) do sums[k] = 0; counts[k] = 0 end
  for _, thread in ipairs(threads) do
    local s, c, p = thread:get("sums"), thread:get("counts"), thread:get("paths")
    for _, k in ipairs(keys) do
      sums[k] = sums[k] + (s[k] or 0)
      counts[k] = counts[k] + (c[k] or 0)
    end
    for k, v in pairs(p) do paths[k] = (paths[k] or 0) + v end
    non2xx = non2xx + (thread:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write("JSON {")
  io.write(string.format('"requests":%d,"duration_us":%d,"bytes":%d,', summary.requests, summary.duration, summary.bytes))
  io.write(string.format('"errors":%d,"non2xx":%d,', e.connect + e.read + e.write + e.timeout, non2xx))
  io.write(string.format('"p50_us":%d,"p95_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%f,',
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
  io.write('"sums":' .. json_table(sums) .. ',"counts":' .. json_table(counts) .. ',"paths":' .. json_table(paths))
  io.write("}\n")
end
