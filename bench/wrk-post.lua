-- wrk script for bench/webhook.py: POST a 1 KB JSON body (the size of the benchmark's event payloads)
-- to the receiver, as the worker does, so `wrk` gives the receiver's raw request rate as a reference.
-- Usage: wrk -t2 -c64 -d10s -s bench/wrk-post.lua http://127.0.0.1:PORT/hook
local head = '{"notification":"chargePoint.dataTransferReceived","chargePointId":1,"vendorId":"bench",'
  .. '"messageId":"wrk","data":"'
local tail = '"}'

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = head .. string.rep("x", 1024 - #head - #tail) .. tail
