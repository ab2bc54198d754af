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
#
# The harness is run as it is, through its run-all.sh (which installs and
# starts its servers); nothing of it is changed here. jobq then gets a fresh
# jobqd with --workers 2 and the peers' producer shape (jobq_peer.py), and
# the disk's fdatasync rate is taken again right before it.
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

dir=$(mktemp -d)
cleanup() {
	stop_jobqd
	rm -rf "$dir"
}
trap cleanup EXIT

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
say "peers (${peers[*]}), N=$PEERBENCH_N, harness $harness"
# run-all.sh prints its results file on stdout: a _machine line, then one
# line per peer in the order asked; its progress goes to stderr.
"$harness/run-all.sh" "${peers[@]}" > "$dir/peers.out"
grep '^{' "$dir/peers.out" > "$dir/peers.jsonl" || true

say "jobq: fresh jobqd --workers 2"
python3 bench/fsync_probe.py "$dir" > "$dir/fsync.json"
start_jobqd "$dir/jobq.db" "$dir/jobqd.log" --workers 2
timeout 900 python3 bench/peers/jobq_peer.py "$JQ_PORT" > "$dir/jobq.json"
stop_jobqd

say "jobq: Python functions on external workers (bench/external/run.py)"
rm -f "$dir"/jobq.db*
start_jobqd "$dir/jobq.db" "$dir/jobqd.log" --workers 2 --external-queue 'py.*'
PYTHONPATH="$PWD/clients/python:$PWD" timeout 900 python3 bench/external/run.py "$JQ_PORT" > "$dir/external.json"
stop_jobqd

printf '%s\n' "${peers[@]}" > "$dir/names.txt"
python3 bench/peers_report.py --names "$dir/names.txt" --durable "$durable" --started "$started" --n "$PEERBENCH_N" \
	--command "make bench-peers${PEERS:+ PEERS=\"$PEERS\"} PEERBENCH_N=$PEERBENCH_N" \
	--external "$dir/external.json" "$dir/peers.jsonl" "$dir/fsync.json" "$dir/jobq.json" bench/results/peers.json
