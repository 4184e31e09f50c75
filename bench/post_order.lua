-- wrk script: POST the example order of the API guide.
wrk.method = "POST"
wrk.body = '{"customer_id":"c_12345","restaurant_id":"r_456","items":["veggie_burger","fries"]}'
wrk.headers["Content-Type"] = "application/json"
