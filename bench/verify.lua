-- wrk script: a patrol's plate check, GET /api/v1/permits/verify, for random plates of
-- the register (file PLATES, one per line) at random gates of the example policy.
local token = os.getenv("TOKEN")
local plates = {}
for line in io.lines(os.getenv("PLATES")) do plates[#plates + 1] = line end
local gates = { "V01", "V02", "V04", "N01" }
math.randomseed(os.time())
request = function()
  local path = string.format("/api/v1/permits/verify?plate=%s&gate=%s",
    plates[math.random(1, #plates)], gates[math.random(1, #gates)])
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
done = function(summary, latency, requests)
  io.write(string.format("  non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
