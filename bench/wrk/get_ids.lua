-- wrk script: GET /v1/jobs/{id} for ids picked at random from the file
-- named by JOBQ_IDS_FILE (one id a line). Non-200 answers are counted as
-- "unexpected". Prints one JSON line (see report.lua).
local ids = {}
for line in io.lines(os.getenv("JOBQ_IDS_FILE")) do
	table.insert(ids, line)
end
assert(#ids > 0, "no ids")

local report = dofile(os.getenv("JOBQ_WRK_DIR") .. "/report.lua")
local threads = {}
unexpected = 0 -- a global: done() reads it with thread:get

function setup(thread)
	table.insert(threads, thread)
end

function init()
	math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 1000)
end

function request()
	return wrk.format("GET", "/v1/jobs/" .. ids[math.random(#ids)])
end

function response(status)
	if status ~= 200 then
		unexpected = unexpected + 1
	end
end

done = report.done_counting(threads)
