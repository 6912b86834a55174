-- wrk script: the filtered list of the issue's target (status + case type, 50 a page).
local token = os.getenv("TOKEN")
local n = 0
request = function()
  n = n + 1
  local path = string.format("/api/v1/cases?status=received&case_type=ztl_permit&per_page=50&page=%d", 1 + (n % 20))
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
