-- The lag check's load (lag_check.py): each request is a line of the file named after `--`,
-- "key \t timestamp \t signature \t body", signed ahead of time; the two threads take turns
-- through the lines, so no request is sent twice.
local lines = {}
local next_line = 0
local thread_count = 0

function setup(thread)
  thread:set("offset", thread_count)
  thread_count = thread_count + 1
end

function init(args)
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
end

function request()
  local line = lines[(next_line + offset) % #lines + 1]
  next_line = next_line + 2
  local key, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
  return wrk.format("POST", "/webhooks/inbound", {
    ["X-API-Key"] = key,
    ["Content-Type"] = "application/json",
    ["X-Webhook-Timestamp"] = ts,
    ["X-Webhook-Signature"] = "sha256=" .. sig,
  }, body)
end

function done(summary, latency, requests)
  io.write(string.format("LAG-CHECK requests=%d non2xx=%d\n", summary.requests, summary.errors.status))
end
