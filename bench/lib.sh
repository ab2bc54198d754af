# Helpers shared by the benchmark scripts; source it. Everything listens on
# 127.0.0.1, and every wait is bounded.
jobqd=${JOBQD:-build/jobqd}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JQ_PID=
JQ_PORT=

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_jobqd DB LOG [FLAG...]: starts jobqd on a free port and waits until
# /healthz answers; sets JQ_PID and JQ_PORT.
start_jobqd() {
	local db=$1 log=$2
	shift 2
	JQ_PORT=$(free_port)
	"$jobqd" --listen "127.0.0.1:$JQ_PORT" --db "$db" --log-level warn "$@" 2> "$log" &
	JQ_PID=$!
	for _ in $(seq 1 300); do
		curl -sf -o /dev/null "http://127.0.0.1:$JQ_PORT/healthz" && return 0
		kill -0 "$JQ_PID" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench: jobqd did not start; its log:" >&2
	cat "$log" >&2
	return 1
}

# stop_jobqd: SIGTERM, and wait for the drain.
stop_jobqd() {
	[ -n "$JQ_PID" ] || return 0
	kill -TERM "$JQ_PID" 2>/dev/null || true
	wait "$JQ_PID" 2>/dev/null || true
	JQ_PID=
}

# wrk_json SCRIPT CONNECTIONS SECONDS URL [ENV=VALUE...]: runs wrk with one
# of bench/wrk's scripts and prints its JSON line.
wrk_json() {
	local script=$1 conns=$2 secs=$3 url=$4
	shift 4
	local threads=2
	[ "$conns" -lt 2 ] && threads=1
	env JOBQ_WRK_DIR="$BENCH_DIR/wrk" "$@" \
		wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s -s "$BENCH_DIR/wrk/$script" "$url" |
		grep '^{"requests"'
}

# json_get JSON FIELD: one top-level number or string from a JSON object.
json_get() {
	python3 -c 'import json, sys; v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."): v = v[k]
print(v)' "$1" "$2"
}

# queue_counts PORT QUEUE: the queue's counts object as JSON.
queue_counts() {
	curl -sf "http://127.0.0.1:$1/v1/queues/$2" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["counts"]))'
}

now_ms() { date +%s%3N; }

# ctxt_switches PID: voluntary plus involuntary context switches of every
# thread of the process so far.
ctxt_switches() {
	awk '/ctxt_switches/ {n += $2} END {print n + 0}' /proc/"$1"/task/*/status
}
