-- wrk script: POST the seed's request. The body is built once, so wrk spends no Lua time per request.
-- With STOP_AFTER set, each thread stops after that many responses.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- With API_KEY set, every request carries it (the keyed accepts of scripts/bench.sh).
local api_key = os.getenv("API_KEY") or ""
if api_key ~= "" then wrk.headers["Authorization"] = "Bearer " .. api_key end
wrk.body = '{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}'

local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
if stop_after > 0 then
  local done = 0
  function response(status, headers, body)
    done = done + 1
    if done >= stop_after then wrk.thread:stop() end
  end
end
