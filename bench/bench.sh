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
# and one at the end (issue 14):
#     cluster   1, 2 and 3 jobqd on one schema: CLUSTER_JOBS (10,000) no-op
#               jobs submitted across the nodes from 64 connections and all
#               finished; then the claim latency of a job submitted on one
#               node, on the same node alone and on the others
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
# The cluster part's nodes: several jobqd on one schema, each on its own
# port, started and stopped apart from JQ_PID's one.
node_pids=()
node_ports=()
node_logs=0
node_start() { # node_start SCHEMA: one more jobqd on SCHEMA, default workers
	node_logs=$((node_logs + 1))
	BENCH_PG_SCHEMA=$1 start_jobqd "$dir/jobq.db" "$dir/node$node_logs.log"
	node_pids+=("$JQ_PID")
	node_ports+=("$JQ_PORT")
	JQ_PID=
}
nodes_stop() { # nodes_stop FIRST: SIGTERM to the nodes from index FIRST on, the newest first
	local i
	for ((i = ${#node_pids[@]} - 1; i >= $1; i--)); do
		kill -TERM "${node_pids[$i]}" 2>/dev/null || true
		wait "${node_pids[$i]}" 2>/dev/null || true
		unset 'node_pids[i]' 'node_ports[i]'
	done
}
cleanup() {
	stop_jobqd
	nodes_stop 0
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

# deadlocks: the cluster's "deadlock detected" errors so far (its log).
deadlocks() {
	grep -c 'ERROR:  deadlock detected' "$pgdir/server.log" 2>/dev/null || true
}
# outcomes_lost: the nodes' "could not record the outcome" errors so far.
outcomes_lost() {
	cat "$dir"/node*.log 2>/dev/null | grep -c 'could not record the outcome' || true
}

# Many jobqd on one schema (issue 14). Throughput: 1, then 2, then 3 nodes
# with their default workers; CLUSTER_JOBS no-op jobs of a queue of their
# own from 64 connections spread over the nodes (bench/load.c, connection i
# to node i mod k), timed until the queue's counts say all ended. Then the
# claim latency (bench/cluster_probe.py, CLUSTER_PROBES probes, one at a
# time): on one node alone, the job runs where it was submitted; for the
# cross-node figure the first node's workers are all held by sleep jobs it
# claimed alone, so every probe submitted to it is claimed by another node.
# That node is started fresh for it: a node claims ahead of its workers
# only once it has seen short jobs end, and one that never did claims
# nothing with no worker free. Before that, the jobs a throughput run left
# running (an outcome that could not be recorded stays running while its
# node lives) are rescued when their nodes leave, and run to the end.
part_cluster() {
	local n=${CLUSTER_JOBS:-10000} probes=${CLUSTER_PROBES:-200} load=${LOAD:-build/bench/load}
	local workers schema k urls t0 sub accepted drain dl0 ol0 after tput=() lat=() la=() i ready parked first
	workers=$(nproc)
	stop_jobqd
	schema=bench_cluster_$(date +%s%N)
	la+=("$(cut -d' ' -f1-3 /proc/loadavg)")
	for k in 1 2 3; do
		node_start "$schema"
		python3 bench/cluster_ready.py "${node_ports[0]}" "$k" > /dev/null
		urls=$(printf 'http://127.0.0.1:%s/v1/jobs,' "${node_ports[@]}")
		say "cluster: $k node(s), $n jobs"
		dl0=$(deadlocks)
		ol0=$(outcomes_lost)
		t0=$(now_ms)
		# load exits 1 when an answer was not 2xx: counted, not fatal.
		sub=$("$load" "${urls%,}" 64 "$n" "{\"type\":\"echo\",\"queue\":\"cl$k\",\"payload\":{}}" || true)
		accepted=$(python3 -c 'import json, sys; s = json.loads(sys.argv[1]); print(s["requests"] - s["errors"] - s["non_2xx"])' "$sub")
		drain=$(python3 bench/drain_wait.py "${node_ports[0]}" "cl$k" "$accepted" --timeout 1200 --stall "${CLUSTER_STALL_S:-20}")
		tput+=("{\"nodes\":$k,\"t0_ms\":$t0,\"submit\":$sub,\"drain\":$drain,\"deadlocks\":$(($(deadlocks) - dl0)),\"outcomes_lost\":$(($(outcomes_lost) - ol0))}")
	done
	la+=("$(cut -d' ' -f1-3 /proc/loadavg)")
	# Claim latency, one node: the job runs where it was submitted.
	nodes_stop 0
	node_start "$schema"
	python3 bench/cluster_ready.py "${node_ports[0]}" 1 > /dev/null
	after=()
	for k in 1 2 3; do
		after+=("$(python3 bench/drain_wait.py "${node_ports[0]}" "cl$k" 0 --timeout 600 --stall "${CLUSTER_STALL_S:-20}")")
	done
	say "cluster: claim latency, 1 node"
	lat+=("{\"nodes\":1,\"where\":\"local\",\"probe\":$(python3 bench/cluster_probe.py "${node_ports[0]}" "$probes" --warmup 1)}")
	# Across nodes: a fresh first node, its workers held by sleep jobs.
	nodes_stop 0
	node_start "$schema"
	python3 bench/cluster_ready.py "${node_ports[0]}" 1 > /dev/null
	for ((i = 0; i < workers; i++)); do
		curl -sf -o /dev/null -H 'Content-Type: application/json' \
			-d '{"type":"sleep","queue":"park","payload":{"seconds":3600}}' "http://127.0.0.1:${node_ports[0]}/v1/jobs"
	done
	parked=
	for i in $(seq 1 200); do
		parked=$(queue_counts "${node_ports[0]}" park 2>/dev/null || echo '{}')
		[ "$(json_get "$parked" running 2>/dev/null)" = "$workers" ] && break
		sleep 0.05
	done
	[ "$(json_get "$parked" running 2>/dev/null)" = "$workers" ] ||
		{ say "cluster: the first node's $workers sleep jobs are not all running ($parked)"; return 1; }
	first=$(json_get "$(curl -sf "http://127.0.0.1:${node_ports[0]}/v1/cluster")" node)
	for k in 2 3; do
		node_start "$schema"
		ready=$(python3 bench/cluster_ready.py "${node_ports[0]}" "$k")
		say "cluster: claim latency across nodes, $k nodes"
		lat+=("{\"nodes\":$k,\"where\":\"other\",\"probe\":$(python3 bench/cluster_probe.py "${node_ports[0]}" "$probes" --warmup 1),\"first\":\"$first\",\"nodes_before\":$ready,\"nodes_after\":$(python3 bench/cluster_ready.py "${node_ports[0]}" "$k")}")
	done
	nodes_stop 0
	la+=("$(cut -d' ' -f1-3 /proc/loadavg)")
	local IFS=,
	python3 - "$n" "$workers" "[${tput[*]}]" "[${lat[*]}]" "${la[*]}" "$(uptime)" "[${after[*]}]" <<'PY'
import json, os, sys
n, workers = int(sys.argv[1]), int(sys.argv[2])
tput, lat = json.loads(sys.argv[3]), json.loads(sys.argv[4])
loads = sys.argv[5].split(",")
after = json.loads(sys.argv[7])
rows = []
for t, f in zip(tput, after):
    d = t["drain"]
    wall = (d["ended_at_ms"] - t["t0_ms"]) / 1000
    rows.append({"nodes": t["nodes"], "jobs": d["total"], "succeeded": d["succeeded"], "wall_s": wall,
                 "per_second": round(d["succeeded"] / wall, 1), "submit_s": t["submit"]["seconds"],
                 "submit_per_s": t["submit"]["per_second"], "submit_p50_ms": t["submit"]["p50_ms"],
                 "submit_p99_ms": t["submit"]["p99_ms"], "submit_errors": t["submit"]["errors"] + t["submit"]["non_2xx"],
                 "stalled": bool(d.get("stalled")), "left_running": d.get("running", 0),
                 "deadlocks": t["deadlocks"], "outcomes_not_recorded": t["outcomes_lost"],
                 "succeeded_after_restart": f["succeeded"], "ended_after_restart": f["ended"]})
claims = []
for l in lat:
    c = {"nodes": l["nodes"], "where": l["where"]}
    c.update(l["probe"])
    if "nodes_before" in l:
        # The node the probes went to runs only its sleep jobs, before and after.
        c["first_node_running"] = [next((x["running"] for x in l[k] if x["id"] == l["first"]), None)
                                   for k in ("nodes_before", "nodes_after")]
    claims.append(c)
base = rows[0]["per_second"]
lbase = claims[0]["p50_ms"]
for r in rows:
    r["ratio_to_1"] = round(r["per_second"] / base, 3) if base else None
for c in claims:
    c["p50_ratio_to_1"] = round(c["p50_ms"] / lbase, 3) if lbase else None
cores = os.cpu_count()
print(json.dumps({"jobs": n, "connections": 64, "workers_per_node": workers, "cores": cores,
                  "throughput": rows, "claim": claims,
                  "loadavg": {"start": loads[0].split(), "after_throughput": loads[1].split(), "end": loads[2].split()},
                  "uptime": sys.argv[6].strip(),
                  "note": f"every node, PostgreSQL and the load generator share this machine's {cores} cores: "
                          "a node more adds workers but no CPU, so the 2- and 3-node figures are the cost of "
                          "coordination (notices to every node, claims racing on one schema), not scale-out"}))
PY
}

# skip_reason PART: why PART cannot run on this backend (nothing when it can).
skip_reason() {
	case $BACKEND:$1 in
	sqlite:pgbench) echo "pgbench measures PostgreSQL: run it with BACKEND=pg" ;;
	sqlite:cluster) echo "several jobqd share one database only on PostgreSQL: run it with BACKEND=pg" ;;
	esac
}

all=(machine ceiling submit batch e2e peers external waiters growth outbound backlog soak)
[ "$BACKEND" = pg ] && all=(machine pgbench ceiling submit batch e2e peers external waiters growth outbound backlog soak cluster)
[ "$#" -gt 0 ] && all=("$@")
for p in "${all[@]}"; do
	declare -F "part_$p" > /dev/null || { echo "bench: no part '$p' (parts: machine pgbench ceiling submit batch e2e peers external waiters growth outbound backlog soak cluster)" >&2; exit 2; }
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
