# Helpers shared by the benchmark scripts; source it. Everything listens on
# 127.0.0.1, and every wait is bounded.
jobqd=${JOBQD:-build/jobqd}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
JQ_PID=
JQ_PORT=
JQ_SCHEMA=
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_jobqd DB LOG [FLAG...]: starts jobqd on a free port and waits until
# /healthz answers; sets JQ_PID and JQ_PORT. With BENCH_PG_URL set (a
# postgresql:// URL) DB is ignored and every start gets a fresh schema on
# that server instead of the file (JQ_SCHEMA names it), or the schema
# BENCH_PG_SCHEMA when that is set.
start_jobqd() {
	local db=$1 log=$2
	shift 2
	local dbargs=(--db "$db")
	if [ -n "${BENCH_PG_URL:-}" ]; then
		JQ_SCHEMA=${BENCH_PG_SCHEMA:-bench_$(date +%s%N)}
		dbargs=(--db "$BENCH_PG_URL" --db-schema "$JQ_SCHEMA")
	fi
	JQ_PORT=$(free_port)
	"$jobqd" --listen "127.0.0.1:$JQ_PORT" "${dbargs[@]}" --log-level warn "$@" 2> "$log" &
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

# pg_cluster_start DIR: a private PostgreSQL cluster in DIR, a new directory
# of its own (scripts/pg-cluster.sh hands it to the unprivileged user that
# runs the server); prints its URL. Its settings are PostgreSQL's defaults
# but for loopback, the port and max_connections: fsync on,
# synchronous_commit on.
pg_cluster_start() {
	scripts/pg-cluster.sh start "$1"
}

# pg_cluster_stop DIR: stops it (nothing when it is not running) and
# removes DIR.
pg_cluster_stop() {
	[ -n "$1" ] && [ -d "$1" ] || return 0
	scripts/pg-cluster.sh stop "$1" || true
	rm -rf "$1"
}

# pg_settings URL: the server's durability settings and version as JSON.
pg_settings() {
	"$PG_BINDIR/psql" -X -At -F ' ' "$1" -c "SELECT name, setting FROM pg_settings
		WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes',
		               'shared_buffers', 'max_connections', 'server_version')" |
		python3 -c 'import json, sys
print(json.dumps(dict(l.split(" ", 1) for l in sys.stdin.read().splitlines() if l)))'
}

# pgbench_insert URL CLIENTS SECONDS: PostgreSQL's own commit rate on that
# server: pgbench with a custom script, one single-row INSERT per
# transaction (autocommit), into a fresh table in a fresh schema, CLIENTS
# connections for SECONDS. Prints {"clients","tps","latency_ms",...}.
pgbench_insert() {
	local url=$1 c=$2 s=$3 schema d out
	schema=pgbench_$(date +%s%N)
	d=$(mktemp -d)
	"$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$url" -c "CREATE SCHEMA $schema;
		CREATE TABLE $schema.ins (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL)" >&2
	printf "INSERT INTO %s.ins (payload) VALUES ('{}');\n" "$schema" > "$d/insert.sql"
	local threads=1
	[ "$c" -gt 1 ] && threads=2
	if ! out=$("$PG_BINDIR/pgbench" -n -c "$c" -j "$threads" -T "$s" -f "$d/insert.sql" "$url" 2>&1); then
		echo "$out" >&2
		rm -rf "$d"
		return 1
	fi
	rm -rf "$d"
	python3 -c 'import json, re, sys
out, c, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def num(pat):
    m = re.search(pat, out)
    return float(m.group(1)) if m else None
print(json.dumps({"clients": c, "seconds": s, "tps": round(num(r"tps = ([0-9.]+)"), 1),
                  "latency_ms": num(r"latency average = ([0-9.]+) ms"),
                  "transactions": int(num(r"actually processed: ([0-9]+)")),
                  "script": "INSERT INTO ins (payload) VALUES (\x27{}\x27), one per transaction"}))' "$out" "$c" "$s"
}
