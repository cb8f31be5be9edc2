-- wrk script: POST the seed's request. The body is built once, so wrk spends no Lua time per request.
-- With STOP_AFTER set, each thread stops after that many responses.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"type":"sms","data":{"from":"+1234567890","to":"+0987654321","msg":"Hello"}}'

local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
if stop_after > 0 then
  local done = 0
  function response(status, headers, body)
    done = done + 1
    if done >= stop_after then wrk.thread:stop() end
  end
end
