-- wrk script: back-office pages with a session cookie (COOKIE). PAGE=home, list or case
-- (a random case of the MAX_SEQ first of YEAR).
local cookie = os.getenv("COOKIE")
local page = os.getenv("PAGE")
local year = os.getenv("YEAR")
local max_seq = tonumber(os.getenv("MAX_SEQ") or "1")
math.randomseed(os.time())
request = function()
  local path = "/ufficio"
  if page == "list" then
    path = "/ufficio/pratiche?overdue=true"
  elseif page == "case" then
    path = string.format("/ufficio/pratiche/ZTL-%s-%06d", year, math.random(1, max_seq))
  end
  return wrk.format("GET", path, { ["Cookie"] = cookie })
end
done = function(summary, latency, requests)
  io.write(string.format("  non-2xx or errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
