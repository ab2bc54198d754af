-- The scripts' report: one JSON line with the rate, latency percentiles in
-- ms and the error counts. Socket errors and answers with an unexpected
-- status are reported, never hidden.
local M = {}

function M.line(summary, latency, unexpected)
	local s = summary.duration / 1e6
	local e = summary.errors
	io.write(string.format(
		'{"requests":%d,"seconds":%.3f,"per_second":%.1f,' ..
		'"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
		'"socket_errors":%d,"unexpected_status":%d}\n',
		summary.requests, s, summary.requests / s,
		latency:percentile(50) / 1000, latency:percentile(90) / 1000,
		latency:percentile(99) / 1000, latency.max / 1000,
		e.connect + e.read + e.write + e.timeout, unexpected))
end

-- A done() for scripts whose threads count answers with an unexpected
-- status in their global "unexpected".
function M.done_counting(threads)
	return function(summary, latency)
		local bad = 0
		for _, t in ipairs(threads) do
			bad = bad + t:get("unexpected")
		end
		M.line(summary, latency, bad)
	end
end

return M
