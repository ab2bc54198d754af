#!/usr/bin/env bash
# make bench-waiters: 10,000 clients long-poll one running job; prints
# jobqd's RSS per waiting connection and how long after the job finished
# the last client was answered. Loopback only; bounded in time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
waiters=${WAITERS:-build/bench/waiters}
n=${N:-10000}
dir=$(mktemp -d)
cleanup() {
	stop_jobqd
	rm -rf "$dir"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
start_jobqd "$dir/jobq.db" "$dir/log"
port=$JQ_PORT
pid=$JQ_PID
id=$(curl -s -H 'Content-Type: application/json' -d '{"type":"sleep","payload":{"seconds":4}}' \
	"http://127.0.0.1:$port/v1/jobs" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
out=$("$waiters" "$port" "$id" "$n" "$pid")
finished=$(curl -s "http://127.0.0.1:$port/v1/jobs/$id" | sed -n 's/.*"finished_at":"\([^"]*\)".*/\1/p')
fin_unix=$(date -d "$finished" +%s.%N)
last=$(sed -n 's/.*"last_answer_unix":\([0-9.]*\).*/\1/p' <<< "$out")
echo "$out"
awk -v l="$last" -v f="$fin_unix" 'BEGIN { printf "{\"last_answer_after_finish_ms\":%.1f}\n", (l - f) * 1000 }'
