-- wrk script: POST the example order asking for a minimal answer
-- (RFC 7240 Prefer: return=minimal): 201, Location, no body.
wrk.method = "POST"
wrk.body = '{"customer_id":"c_12345","restaurant_id":"r_456","items":["veggie_burger","fries"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Prefer"] = "return=minimal"
