-- wrk script: POST the seed's request. With STOP_AFTER set, each thread stops after that many responses.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
local errors = 0

function request()
  n = n + 1
  local body = string.format('{"type":"sms","data":{"from":"+1234567890","to":"+1555%07d","msg":"Hello from wrk %d"}}', n % 10000000, n)
  return wrk.format(nil, nil, nil, body)
end

local done = 0
function response(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
  done = done + 1
  if stop_after > 0 and done >= stop_after then wrk.thread:stop() end
end
