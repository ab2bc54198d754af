-- wrk script: POST the JSON in the file named by JOBQ_BODY_FILE to the
-- URL's path. JOBQ_PER_THREAD, when set, stops each wrk thread after that
-- many answers (wrk itself only knows durations). JOBQ_EXPECT is the status
-- every answer must have (201); others are counted as "unexpected".
-- Prints one JSON line (see report.lua).
local f = assert(io.open(os.getenv("JOBQ_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local report = dofile(os.getenv("JOBQ_WRK_DIR") .. "/report.lua")
local per_thread = tonumber(os.getenv("JOBQ_PER_THREAD") or "0")
local expect = tonumber(os.getenv("JOBQ_EXPECT") or "201")
local threads = {}
answered, unexpected = 0, 0 -- globals: done() reads them with thread:get

function setup(thread)
	table.insert(threads, thread)
end

function response(status)
	answered = answered + 1
	if status ~= expect then
		unexpected = unexpected + 1
	end
	if per_thread > 0 and answered >= per_thread then
		wrk.thread:stop()
	end
end

done = report.done_counting(threads)
