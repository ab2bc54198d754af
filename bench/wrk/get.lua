-- wrk script: a plain GET of the URL (the ceiling), printing the same JSON
-- line as the other scripts (see report.lua).
local report = dofile(os.getenv("JOBQ_WRK_DIR") .. "/report.lua")
function done(summary, latency)
	report.line(summary, latency, summary.errors.status)
end
