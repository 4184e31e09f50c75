-- wrk script: GET /orders/{id}, cycling through the ids listed one per line
-- in the file named by IDS_FILE.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local next_index = 0
request = function()
  next_index = next_index % #ids + 1
  return wrk.format("GET", "/orders/" .. ids[next_index])
end
