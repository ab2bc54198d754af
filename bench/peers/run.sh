#!/usr/bin/env bash
# make bench-peers: the durable peers and jobq in one sitting, one after
# another, then one table of same-run figures and ratios (bench/peers_report.py)
# and bench/results/peers.json.
#
#   PEERS_HARNESS  the peers' harness (its README says how it works); default
#                  ../shared/bench/peers from the repository root
#   PEERS          a comma-separated subset of the harness's peer names, e.g.
#                  PEERS="rq aof,beanstalkd wal" (default: the durable ones)
#   PEERBENCH_N    jobs per workload, for the peers and for jobq (20000)
#   BACKENDS       the stores jobq runs on, in this order (default "sqlite pg")
#   PGBENCH_SECONDS  pgbench's run on jobq's cluster (10)
#
# The harness is run as it is, through its run-all.sh (which installs and
# starts its servers); nothing of it is changed here. jobq then gets a fresh
# jobqd with --workers 2 and the peers' producer shape (jobq_peer.py), and
# the disk's fdatasync rate is taken again right before it. On pg: a private
# cluster (scripts/pg-cluster.sh: PostgreSQL's defaults, fsync and
# synchronous_commit on, as the harness's for pg-boss), pgbench's
# single-client single-row INSERT rate on it, then the same workloads
# against a jobqd on it; the cluster is stopped on any exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib.sh
harness=${PEERS_HARNESS:-../shared/bench/peers}
durable="celery aof,rq aof,bullmq aof,pgboss,beanstalkd wal"
say() { echo "bench-peers: $*" >&2; }

if [ ! -x "$harness/run-all.sh" ]; then
	say "no peers harness at $harness (set PEERS_HARNESS to its directory)"
	exit 2
fi
IFS=, read -r -a peers <<< "${PEERS:-$durable}"
for i in "${!peers[@]}"; do # trim the blanks around each name
	peers[i]=$(echo "${peers[i]}" | xargs)
done
export PEERBENCH_N=${PEERBENCH_N:-20000}
read -r -a backends <<< "${BACKENDS:-sqlite pg}"
for b in "${backends[@]}"; do
	case $b in
	sqlite | pg) ;;
	*)
		say "BACKENDS takes sqlite and pg, not '$b'"
		exit 2
		;;
	esac
done
wants() { [[ " ${backends[*]} " == *" $1 "* ]]; }

dir=$(mktemp -d)
pgdir=
cleanup() {
	stop_jobqd
	[ -z "$pgdir" ] || pg_cluster_stop "$pgdir"
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say "peers (${peers[*]}), N=$PEERBENCH_N, harness $harness"
# run-all.sh prints its results file on stdout: a _machine line, then one
# line per peer in the order asked; its progress goes to stderr.
"$harness/run-all.sh" "${peers[@]}" > "$dir/peers.out"
grep '^{' "$dir/peers.out" > "$dir/peers.jsonl" || true

python3 bench/fsync_probe.py "$dir" > "$dir/fsync.json"
jobq_json=- external_json=-
if wants sqlite; then
	say "jobq: fresh jobqd --workers 2"
	start_jobqd "$dir/jobq.db" "$dir/jobqd.log" --workers 2
	timeout 900 python3 bench/peers/jobq_peer.py "$JQ_PORT" > "$dir/jobq.json"
	stop_jobqd
	jobq_json=$dir/jobq.json

	say "jobq: Python functions on external workers (bench/external/run.py)"
	rm -f "$dir"/jobq.db*
	start_jobqd "$dir/jobq.db" "$dir/jobqd.log" --workers 2 --external-queue 'py.*'
	PYTHONPATH="$PWD/clients/python:$PWD" timeout 900 python3 bench/external/run.py "$JQ_PORT" > "$dir/external.json"
	stop_jobqd
	external_json=$dir/external.json
fi

pg_args=()
if wants pg; then
	pgdir=$(mktemp -d)
	pg_url=$(pg_cluster_start "$pgdir")
	say "jobq on PostgreSQL: a private cluster ($pg_url); pgbench, 1 client, ${PGBENCH_SECONDS:-10} s"
	pg_settings "$pg_url" > "$dir/pg-settings.json"
	pgbench_insert "$pg_url" 1 "${PGBENCH_SECONDS:-10}" > "$dir/pgbench.json"
	say "jobq on PostgreSQL: fresh jobqd --workers 2, a fresh schema"
	BENCH_PG_URL=$pg_url start_jobqd - "$dir/jobqd-pg.log" --workers 2
	timeout 900 python3 bench/peers/jobq_peer.py "$JQ_PORT" > "$dir/jobq-pg.json"
	stop_jobqd
	pg_cluster_stop "$pgdir"
	pgdir=
	pg_args=(--jobq-pg "$dir/jobq-pg.json" --pgbench "$dir/pgbench.json" --pg-settings "$dir/pg-settings.json")
fi

knobs=
[ -n "${PEERS:-}" ] && knobs+=" PEERS=\"$PEERS\""
[ -n "${BACKENDS:-}" ] && [ "$BACKENDS" != "sqlite pg" ] && knobs+=" BACKENDS=\"$BACKENDS\""
printf '%s\n' "${peers[@]}" > "$dir/names.txt"
python3 bench/peers_report.py --names "$dir/names.txt" --durable "$durable" --started "$started" --n "$PEERBENCH_N" \
	--command "make bench-peers$knobs PEERBENCH_N=$PEERBENCH_N" "${pg_args[@]}" \
	--external "$external_json" "$dir/peers.jsonl" "$dir/fsync.json" "$jobq_json" bench/results/peers.json
