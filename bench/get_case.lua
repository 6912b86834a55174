-- wrk script: GET /api/v1/cases/ZTL-YEAR-NNNNNN for random existing references.
local token = os.getenv("TOKEN")
local year = os.getenv("YEAR")
local max_seq = tonumber(os.getenv("MAX_SEQ"))
math.randomseed(os.time())
request = function()
  local path = string.format("/api/v1/cases/ZTL-%s-%06d", year, math.random(1, max_seq))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
done = function(summary, latency, requests)
  io.write(string.format("  non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
