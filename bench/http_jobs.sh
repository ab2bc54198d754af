#!/usr/bin/env bash
# make bench-http: how many slow outbound http jobs one jobqd keeps in flight.
# A local server (bench/slow_server) answers every request after DELAY_MS;
# for each level N, N http jobs are submitted at once (build/bench/load) and
# the server reports how many of their requests it held at the same time.
# Prints one JSON line per level: submit time, time until the last answer,
# the peak concurrency the server saw, jobqd's threads and peak RSS.
# Figures, never assertions. Loopback only; every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load=${LOAD:-build/bench/load}
server=${SLOW_SERVER:-build/bench/slow_server}
levels=${LEVELS:-250 1000 2000}
delay_ms=${DELAY_MS:-1000}
workers=${WORKERS:-4}
bound_s=${BOUND_S:-120}      # per level: give up after this long
dir=$(mktemp -d)
spid=''
cleanup() {
	stop_jobqd
	if [ -n "$spid" ]; then kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT
# Every job needs a socket in jobqd and one in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

wait_line() { # wait_line FILE SED_EXPR -> prints the captured value
	local v=
	for _ in $(seq 1 200); do
		v=$(sed -n "$2" "$1")
		[ -n "$v" ] && { echo "$v"; return 0; }
		sleep 0.05
	done
	echo "bench: no line in $1" >&2
	return 1
}
field() { # field JSON NAME
	sed -n "s/.*\"$2\":\([0-9.-]*\).*/\1/p" <<< "$1"
}
now_ms() { date +%s%3N; }

for n in $levels; do
	"$server" "$delay_ms" > "$dir/server.out" 2> "$dir/server.err" &
	spid=$!
	sport=$(wait_line "$dir/server.out" 's|^slow_server: listening on http://127.0.0.1:\([0-9]*\)$|\1|p')
	rm -f "$dir"/jobq.db*
	start_jobqd "$dir/jobq.db" "$dir/jobqd.log" --workers "$workers"
	jport=$JQ_PORT
	jpid=$JQ_PID

	body="{\"type\":\"http\",\"payload\":{\"url\":\"http://127.0.0.1:$sport/slow\",\"timeout_s\":120},\"timeout_s\":120}"
	t0=$(now_ms)
	submit=$("$load" "http://127.0.0.1:$jport/v1/jobs" 64 "$n" "$body")
	t1=$(now_ms)
	# Wait until the server has answered every request (or the bound).
	stats=
	until_ms=$(( t0 + bound_s * 1000 ))
	while :; do
		stats=$(curl -s "http://127.0.0.1:$sport/stats")
		[ "$(field "$stats" answered)" -ge "$n" ] && break
		[ "$(now_ms)" -ge "$until_ms" ] && { echo "bench: level $n not done after ${bound_s}s" >&2; break; }
		sleep 0.1
	done
	t2=$(now_ms)
	threads=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$jpid/status")
	rss_kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$jpid/status")
	# Let the outcomes commit, then count them.
	succeeded=0
	for _ in $(seq 1 100); do
		q=$(curl -s "http://127.0.0.1:$jport/v1/queues/default")
		succeeded=$(sed -n 's/.*"succeeded":\([0-9]*\).*/\1/p' <<< "$q")
		[ "${succeeded:-0}" -ge "$n" ] && break
		sleep 0.1
	done
	stop_jobqd
	kill -TERM "$spid"; wait "$spid" || true; spid=

	printf '{"workload":"http_slow_%dms","jobs":%d,"workers":%d,"submit_ms":%d,"all_answered_ms":%d,' \
		"$delay_ms" "$n" "$workers" $(( t1 - t0 )) $(( t2 - t0 ))
	printf '"server_max_in_flight":%s,"answered":%s,"succeeded":%s,"jobqd_threads":%s,"jobqd_peak_rss_kb":%s,' \
		"$(field "$stats" max_in_flight)" "$(field "$stats" answered)" "${succeeded:-0}" "$threads" "$rss_kb"
	printf '"submit_per_second":%s}\n' "$(field "$submit" per_second)"
done
