-- wrk script: POST /api/v1/cases with a valid request.
local token = os.getenv("TOKEN")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = '{"case_type":"ztl_permit","subject":"Permesso residenti","channel":"web",' ..
  '"citizen":{"fiscal_code":"RSSMRA80A01H501U","name":"Mario Rossi","email":"mario.rossi@example.it"}}'
