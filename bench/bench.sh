#!/usr/bin/env bash
# make bench: every jobq benchmark in one run, each against a fresh jobqd and
# database, then a table and bench/results/latest.json (bench/report.py).
#
#   bench/bench.sh [PART...]     default: all parts, in this order
#     machine   cores, CPU, and the data disk's fdatasync rate
#     ceiling   wrk against GET /healthz (64 and 256 connections)
#     submit    wrk, single-job POST /v1/jobs at 64 and 256 connections
#     batch     wrk, POST /v1/batches of 1,000 jobs (queue paused)
#     e2e       100,000 no-op jobs from 64 connections, submitted and finished
#     peers     the peers' three workloads with their producer shape
#               (enqueue, end to end, round trip; bench/peers/jobq_peer.py)
#     external  the same end to end run by 2 Python worker processes over
#               the lease API, and the lease round trip (bench/external/run.py)
#     waiters   10,000 long-polls on one job (bench/waiters.sh)
#     growth    submit rate and GET latency with 0, 1M and 5M finished rows
#               stored, then with 1M rows queued on a paused queue
#     outbound  1,000 concurrent http jobs against a server answering in 1 s
#     backlog   1M queued no-op jobs (BACKLOG_JOBS) drained by the default workers
#     soak      SOAK_SECONDS (180) of 64 submitters, default workers: submit and
#               execution rates, jobqd RSS, WAL size and queue depth every 5 s
# Each part writes bench/results/parts/PART.json; report.py joins whatever
# parts exist. Figures, never assertions. Loopback only; bounded waits.
#
# BACKEND=pg runs them against jobqd on PostgreSQL: a private cluster
# (scripts/pg-cluster.sh) is started here and stopped on any exit, every
# jobqd gets a fresh schema on it, and the parts that cannot apply are
# skipped with their reason (growth and backlog fill the schema with
# bench/fill_pg.py). One part more, after machine:
#     pgbench   PostgreSQL's own commit rate on that cluster: pgbench with
#               single-row INSERT transactions, 1 client and 64 clients,
#               BENCH_SECONDS each (the ceiling sequential and concurrent
#               submits are held against, as fdatasync is on SQLite)
# Parts go to bench/results/parts/pg/, the report to
# bench/results/latest-pg.json.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${BENCH_SECONDS:-5}
BACKEND=${BACKEND:-sqlite}
case $BACKEND in
sqlite)
	parts_dir=bench/results/parts
	latest=bench/results/latest.json
	;;
pg)
	parts_dir=bench/results/parts/pg
	latest=bench/results/latest-pg.json
	;;
*)
	echo "bench: BACKEND must be sqlite or pg, not '$BACKEND'" >&2
	exit 2
	;;
esac
mkdir -p "$parts_dir"
dir=$(mktemp -d)
pgdir=
cleanup() {
	stop_jobqd
	[ -z "$pgdir" ] || pg_cluster_stop "$pgdir"
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo_job='{"type":"echo","queue":"bench","payload":{}}'
printf '%s' "$echo_job" > "$dir/job.json"
python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(json.dumps({"jobs": [j] * 1000}))' \
	"$echo_job" > "$dir/batch.json"

fresh() { # fresh [FLAG...]: a new database and jobqd
	stop_jobqd
	rm -f "$dir"/jobq.db*
	start_jobqd "$dir/jobq.db" "$dir/jobqd.log" "$@"
}
url() { echo "http://127.0.0.1:$JQ_PORT$1"; }
# again [FLAG...]: jobqd once more on the database the last one used
# (the same file, or on pg the same schema).
again() {
	BENCH_PG_SCHEMA=$JQ_SCHEMA start_jobqd "$dir/jobq.db" "$dir/jobqd.log" "$@"
}
# fill_db [--queued QUEUE] ROWS: tops the last jobqd's database up to ROWS
# jobs, jobqd stopped: bench/fill.py on SQLite, bench/fill_pg.py on pg.
fill_db() {
	local q=()
	if [ "$1" = --queued ]; then
		q=(--queued "$2")
		shift 2
	fi
	if [ "$BACKEND" = pg ]; then
		python3 bench/fill_pg.py "${q[@]}" "$BENCH_PG_URL" "$JQ_SCHEMA" "$1" "$dir/ids.txt" >&2
	else
		python3 bench/fill.py "${q[@]}" "$dir/jobq.db" "$1" "$dir/ids.txt" >&2
	fi
}
post_wrk() { # post_wrk CONNS SECONDS BODY_FILE [ENV...]
	local c=$1 s=$2 b=$3
	shift 3
	wrk_json post.lua "$c" "$s" "$(url /v1/jobs)" JOBQ_BODY_FILE="$b" "$@"
}
say() { echo "bench: $*" >&2; }

part_machine() {
	python3 bench/fsync_probe.py "$dir" --machine
}

# pgbench on the bench's own cluster, in this run: one client, then 64.
part_pgbench() {
	local a b
	a=$(pgbench_insert "$BENCH_PG_URL" 1 "$SECS")
	b=$(pgbench_insert "$BENCH_PG_URL" 64 "$SECS")
	echo "{\"c1\":$a,\"c64\":$b,\"settings\":$(pg_settings "$BENCH_PG_URL")}"
}

part_ceiling() {
	fresh --workers 2
	local a b
	a=$(wrk_json get.lua 64 "$SECS" "$(url /healthz)")
	b=$(wrk_json get.lua 256 "$SECS" "$(url /healthz)")
	echo "{\"c64\":$a,\"c256\":$b}"
}

part_submit() {
	local a b
	fresh --workers 2
	a=$(post_wrk 64 "$SECS" "$dir/job.json")
	fresh --workers 2
	b=$(post_wrk 256 "$SECS" "$dir/job.json")
	echo "{\"c64\":$a,\"c256\":$b,\"sync\":\"full\",\"workers\":2,\"note\":\"echo jobs run while they are submitted\"}"
}

part_batch() {
	fresh --workers 2
	curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$echo_job" "$(url /v1/jobs)"
	curl -sf -o /dev/null -X POST "$(url /v1/queues/bench/pause)"
	local r
	r=$(wrk_json post.lua 4 "$SECS" "$(url /v1/batches)" JOBQ_BODY_FILE="$dir/batch.json")
	local queued
	queued=$(json_get "$(queue_counts "$JQ_PORT" bench)" queued)
	echo "{\"c4\":$r,\"jobs_per_batch\":1000,\"jobs_queued\":$queued,\"note\":\"queue paused: ingestion only\"}"
}

part_e2e() {
	# wrk knows only durations: it runs in the background, each thread
	# stops sending at its share of the jobs, and it is interrupted once
	# jobqd holds them all. The queue's own counts say when all are done.
	local n=${E2E_JOBS:-100000} workers=${E2E_WORKERS:-16}
	fresh --workers "$workers"
	local t0 wpid w
	t0=$(now_ms)
	env JOBQ_WRK_DIR="$BENCH_DIR/wrk" JOBQ_BODY_FILE="$dir/job.json" JOBQ_PER_THREAD=$((n / 2)) \
		wrk -t2 -c64 -d600s --timeout 30s -s "$BENCH_DIR/wrk/post.lua" "$(url /v1/jobs)" > "$dir/wrk.out" &
	wpid=$!
	w=$(python3 bench/drain_wait.py "$JQ_PORT" bench "$n" --interrupt "$wpid" --timeout 1200)
	wait "$wpid" || true
	python3 -c 'import json, sys
w, t0, workers = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
wall = (w["ended_at_ms"] - t0) / 1000
print(json.dumps({"submitted": w["total"], "succeeded": w["succeeded"], "submit_phase_s": (w["held_at_ms"] - t0) / 1000,
                  "wall_s": wall, "per_second": round(w["succeeded"] / wall, 1),
                  "connections": 64, "workers": workers}))' "$w" "$t0" "$workers"
}

part_peers() {
	fresh --workers 2
	timeout 900 python3 bench/peers/jobq_peer.py "$JQ_PORT"
}

part_external() {
	fresh --workers 2 --external-queue 'py.*'
	PYTHONPATH="$PWD/clients/python:$PWD" timeout 900 python3 bench/external/run.py "$JQ_PORT"
}

part_waiters() {
	stop_jobqd
	JOBQD=$jobqd bench/waiters.sh | python3 -c 'import json, sys
d = {}
for line in sys.stdin:
    d.update(json.loads(line))
print(json.dumps(d))'
}

part_growth() {
	local levels=${GROWTH_ROWS:-"0 1000000 5000000"} queued=${GROWTH_QUEUED_ROWS:-1000000} rows out=() sub get
	stop_jobqd
	rm -f "$dir"/jobq.db*
	start_jobqd "$dir/jobq.db" "$dir/jobqd.log" --workers 2
	curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$echo_job" "$(url '/v1/jobs')"
	sleep 0.5
	stop_jobqd
	# Levels grow one database: fill.py tops the jobs table up to N rows
	# (copies of one finished job, with its attempt history).
	for rows in $levels; do
		say "growth: $rows rows"
		fill_db "$rows"
		growth_level "$rows" finished
	done
	# Then a fresh database whose rows wait queued (copies of one job on
	# a paused queue no submit goes to), as a backlog builds up.
	if [ "$queued" -gt 0 ]; then
		say "growth: $queued rows queued"
		stop_jobqd
		rm -f "$dir"/jobq.db*
		start_jobqd "$dir/jobq.db" "$dir/jobqd.log" --workers 2
		curl -sf -o /dev/null -X POST "$(url /v1/queues/backlog/pause)"
		curl -sf -o /dev/null -H 'Content-Type: application/json' \
			-d '{"type":"echo","queue":"backlog","payload":{}}' "$(url /v1/jobs)"
		stop_jobqd
		fill_db --queued backlog "$queued"
		growth_level "$queued" queued
	fi
	local IFS=,
	echo "{\"levels\":[${out[*]}]}"
}

# growth_level ROWS STATE: submit and GET rates against the database as
# it is; appends the level's JSON to out.
growth_level() {
	again --workers 2
	sub=$(post_wrk 64 "$SECS" "$dir/job.json")
	get=$(wrk_json get_ids.lua 64 "$SECS" "$(url /v1/jobs)" JOBQ_IDS_FILE="$dir/ids.txt")
	stop_jobqd
	out+=("{\"rows\":$1,\"state\":\"$2\",\"submit\":$sub,\"get\":$get}")
}

part_outbound() {
	stop_jobqd
	LEVELS=1000 JOBQD=$jobqd bench/http_jobs.sh | tail -1
}

# Queued rows come from fill.py (copies of one queued job, queue paused), so
# the fill does not depend on the submit path; the drain is timed from the
# resume until the queue's counts say every job ended.
part_backlog() {
	local n=${BACKLOG_JOBS:-1000000} workers t0 t1 done=0 cs0 cs1
	workers=$(nproc)
	stop_jobqd
	rm -f "$dir"/jobq.db*
	start_jobqd "$dir/jobq.db" "$dir/jobqd.log"
	curl -sf -o /dev/null -X POST "$(url /v1/queues/bench/pause)"
	curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$echo_job" "$(url /v1/jobs)"
	stop_jobqd
	fill_db --queued bench "$n"
	again
	cs0=$(ctxt_switches "$JQ_PID")
	t0=$(now_ms)
	curl -sf -o /dev/null -X POST "$(url /v1/queues/bench/resume)"
	done=$(json_get "$(python3 bench/drain_wait.py "$JQ_PORT" bench "$n" --timeout 3600)" ended)
	t1=$(now_ms)
	cs1=$(ctxt_switches "$JQ_PID")
	python3 -c 'import json, sys
n, t0, t1, w, cs0, cs1 = map(int, sys.argv[1:7])
s = (t1 - t0) / 1000
print(json.dumps({"jobs": n, "drain_s": s, "per_second": round(n / s, 1), "workers": w,
                  "ctxt_switches_per_job": round((cs1 - cs0) / n, 2),
                  "loadavg": open("/proc/loadavg").read().split()[:3]}))' "$done" "$t0" "$t1" "$workers" "$cs0" "$cs1"
}

# wrk submits for SOAK_SECONDS; meanwhile the queue's counts, jobqd's RSS and
# the WAL's size are read every 5 s (a sampling interval, not a wait).
part_soak() {
	local secs=${SOAK_SECONDS:-180} wpid t0 t c rss wal samples=() sub done
	fresh
	t0=$(now_ms)
	post_wrk 64 "$secs" "$dir/job.json" > "$dir/soak-wrk.out" &
	wpid=$!
	while kill -0 "$wpid" 2>/dev/null; do
		t=$(( ($(now_ms) - t0) / 1000 ))
		c=$(queue_counts "$JQ_PORT" bench 2>/dev/null || echo '{}')
		rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$JQ_PID/status")
		if [ "$BACKEND" = pg ]; then # the server's pg_wal directory
			wal=$(du -sb "$pgdir/data/pg_wal" 2>/dev/null | cut -f1)
		else
			wal=$(stat -c %s "$dir/jobq.db-wal" 2>/dev/null || echo 0)
		fi
		samples+=("$(python3 -c 'import json, sys
c = json.loads(sys.argv[4])
print(json.dumps({"t_s": int(sys.argv[1]), "rss_kb": int(sys.argv[2]), "wal_bytes": int(sys.argv[3]),
                  "queued": c.get("queued", 0), "succeeded": c.get("succeeded", 0)}))' "$t" "$rss" "$wal" "$c")")
		for _ in $(seq 1 50); do
			kill -0 "$wpid" 2>/dev/null || break
			sleep 0.1
		done
	done
	wait "$wpid" || true
	c=$(queue_counts "$JQ_PORT" bench)
	sub=$(grep '^{"requests"' "$dir/soak-wrk.out")
	local IFS=,
	python3 -c 'import json, sys
w, c, secs = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3])
samples = json.loads("[" + sys.argv[4] + "]")
print(json.dumps({"seconds": secs, "submit_per_s": w["per_second"],
                  "exec_per_s": round(c.get("succeeded", 0) / w["seconds"], 1),
                  "queued_at_end": c.get("queued", 0), "workers": int(sys.argv[5]),
                  "loadavg": open("/proc/loadavg").read().split()[:3], "samples": samples}))' \
		"$sub" "$c" "$secs" "${samples[*]}" "$(nproc)"
}

# skip_reason PART: why PART cannot run on this backend (nothing when it can).
skip_reason() {
	case $BACKEND:$1 in
	sqlite:pgbench) echo "pgbench measures PostgreSQL: run it with BACKEND=pg" ;;
	esac
}

all=(machine ceiling submit batch e2e peers external waiters growth outbound backlog soak)
[ "$BACKEND" = pg ] && all=(machine pgbench ceiling submit batch e2e peers external waiters growth outbound backlog soak)
[ "$#" -gt 0 ] && all=("$@")
for p in "${all[@]}"; do
	declare -F "part_$p" > /dev/null || { echo "bench: no part '$p' (parts: machine pgbench ceiling submit batch e2e peers external waiters growth outbound backlog soak)" >&2; exit 2; }
done
if [ "$BACKEND" = pg ]; then
	pgdir=$(mktemp -d)
	BENCH_PG_URL=$(pg_cluster_start "$pgdir")
	export BENCH_PG_URL # bench/waiters.sh and bench/http_jobs.sh start their jobqd through lib.sh
	say "backend pg: a private cluster at $BENCH_PG_URL, a fresh schema per jobqd"
fi
for p in "${all[@]}"; do
	why=$(skip_reason "$p")
	if [ -n "$why" ]; then
		say "$p: skipped on $BACKEND: $why"
		continue
	fi
	say "$p ..."
	"part_$p" > "$dir/part.json"
	python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$dir/part.json"
	mv "$dir/part.json" "$parts_dir/$p.json"
	say "$p: $(cat "$parts_dir/$p.json")"
done
stop_jobqd
python3 bench/report.py "$parts_dir" "$latest" --backend "$BACKEND"
