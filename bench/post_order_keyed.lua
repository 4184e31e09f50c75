-- wrk script: POST the example order, each with an Idempotency-Key of its
-- own (so every request creates an order, and its key's isolate takes it).
local body = '{"customer_id":"c_12345","restaurant_id":"r_456","items":["veggie_burger","fries"]}'
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1, 1000000000))
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/orders", {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. "-" .. counter,
  }, body)
end
