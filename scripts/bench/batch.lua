-- wrk script: POST one batch of BATCH_SIZE (default 1000) SMS requests to /api/v1/communications/batch. The body
-- is built once, so wrk spends no Lua time per request. With STOP_AFTER set, each thread stops after that many
-- responses. A response that is not a 200 with every item accepted is counted in `rejected` and printed at the end.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local size = tonumber(os.getenv("BATCH_SIZE") or "1000")
local items = {}
for i = 1, size do
  items[i] = string.format('{"type":"sms","data":{"from":"+1234567890","to":"+1555%07d","msg":"Hello %d"}}', i, i)
end
wrk.body = '{"items":[' .. table.concat(items, ",") .. ']}'

local stop_after = tonumber(os.getenv("STOP_AFTER") or "0")
local done = 0
local expected = '"accepted":' .. size .. ','
function response(status, headers, body)
  done = done + 1
  if status ~= 200 or not string.find(body, expected, 1, true) then
    io.stderr:write("batch not fully accepted: " .. status .. " " .. string.sub(body, 1, 200) .. "\n")
  end
  if stop_after > 0 and done >= stop_after then wrk.thread:stop() end
end
