#!/usr/bin/env bash
# make bench: durable submits against a ceiling measured in the same run.
#   ceiling  GET /healthz          (HTTP only: no store work)
#   submit   POST /v1/jobs echo    (--sync full: every 201 is fsynced)
#   normal   POST /v1/jobs echo    (--sync normal)
# Prints one JSON line per workload and the ratios. Loopback only.
set -euo pipefail
jobqd=${JOBQD:-build/jobqd}
load=${LOAD:-build/bench/load}
total=${TOTAL:-40000}
conc=${CONCURRENCY:-64}
dir=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

start() { # start SYNC
	rm -f "$dir"/jobq.db*
	"$jobqd" --listen 127.0.0.1:0 --db "$dir/jobq.db" --workers 2 --sync "$1" --log-level warn 2> "$dir/log" &
	pid=$!
	port=
	for _ in $(seq 1 200); do
		port=$(sed -n 's|^jobqd: listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$dir/log")
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	echo "bench: jobqd did not start" >&2
	exit 1
}
stop() {
	kill -TERM "$pid"
	wait "$pid"
	pid=
}
field() { # field JSON NAME
	sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<< "$1"
}

start full
ceiling=$("$load" "http://127.0.0.1:$port/healthz" "$conc" "$total")
submit=$("$load" "http://127.0.0.1:$port/v1/jobs" "$conc" "$total" '{"type":"echo","payload":{"n":1}}')
stop
start normal
normal=$("$load" "http://127.0.0.1:$port/v1/jobs" "$conc" "$total" '{"type":"echo","payload":{"n":1}}')
stop

echo "{\"workload\":\"ceiling_get_healthz\",$(cut -c2- <<< "$ceiling")"
echo "{\"workload\":\"submit_sync_full\",$(cut -c2- <<< "$submit")"
echo "{\"workload\":\"submit_sync_normal\",$(cut -c2- <<< "$normal")"
c=$(field "$ceiling" per_second)
f=$(field "$submit" per_second)
n=$(field "$normal" per_second)
awk -v c="$c" -v f="$f" -v n="$n" 'BEGIN {
	printf "{\"ratio_submit_full_to_ceiling\":%.3f,\"ratio_submit_normal_to_ceiling\":%.3f}\n", f / c, n / c }'
