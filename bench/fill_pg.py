"""fill_pg.py [--queued QUEUE] URL SCHEMA ROWS IDS_FILE: bench/fill.py for
PostgreSQL: tops a stopped jobqd's schema up to ROWS jobs.

The same rows as fill.py's: copies of the oldest job (or, with --queued, of
the oldest job still queued on the paused QUEUE), each with its own id and
its copy of the attempt history, appended in the table's own order (seq is
the identity column's next values); jobq's triggers keep the queue counts
right. Then writes up to 2,000 ids picked at random to IDS_FILE. Runs its
SQL through psql (PSQL, default Debian's PostgreSQL 15 client)."""
import os
import subprocess
import sys
import time

args = sys.argv[1:]
queued = None
if args[:1] == ["--queued"]:
    queued, args = args[1], args[2:]
if len(args) != 4:
    sys.exit("usage: fill_pg.py [--queued QUEUE] URL SCHEMA ROWS IDS_FILE")
url, schema, target, ids_path = args[0], args[1], int(args[2]), args[3]
psql = os.environ.get("PSQL", "/usr/lib/postgresql/15/bin/psql")


def q(sql):
    """Runs SQL on the schema; returns the rows, tab-separated fields."""
    out = subprocess.run([psql, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", url],
                         input=f"SET search_path TO {schema};\n{sql}", capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"fill_pg.py: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def one(sql):
    rows = q(sql)
    return rows[0][0] if rows and rows[0][0] != "" else None


def columns(table):
    return [r[0] for r in q(f"SELECT column_name FROM information_schema.columns WHERE table_schema = '{schema}' "
                            f"AND table_name = '{table}' ORDER BY ordinal_position")]


def lit(text):
    return "'" + text.replace("'", "''") + "'"


if queued is None:
    tseq = one("SELECT min(seq) FROM jobs")
else:
    # state 0 is queued (enum job_state); the queue must stay paused.
    tseq = one(f"SELECT min(seq) FROM jobs WHERE state = 0 AND queue = {lit(queued)}")
    if one(f"SELECT paused FROM queues WHERE name = {lit(queued)}") != "1":
        sys.exit(f"fill_pg.py: queue {queued} is not paused")
if tseq is None:
    sys.exit("fill_pg.py: the schema has no job to copy" + (f" queued in {queued}" if queued else ""))
tseq = int(tseq)
have = int(one("SELECT count(*) FROM jobs"))
copy = [c for c in columns("jobs") if c not in ("seq", "id")]
acopy = [c for c in columns("job_attempts") if c != "job_seq"]

t0 = time.time()
chunk = 250000
while have < target:
    n = min(chunk, target - have)
    top = int(one("SELECT max(seq) FROM jobs"))
    # One transaction per chunk: the jobs, then their attempts.
    q(f"BEGIN;"
      f"INSERT INTO jobs (id, {', '.join(copy)}) "
      f"SELECT '00000000-0000-7000-8000-' || lpad(to_hex({top + 1}::bigint + i), 12, '0'), "
      f"{', '.join('t.' + c for c in copy)} "
      f"FROM generate_series(0, {n - 1}) AS i, jobs AS t WHERE t.seq = {tseq} ORDER BY i;"
      f"INSERT INTO job_attempts (job_seq, {', '.join(acopy)}) "
      f"SELECT j.seq, {', '.join('a.' + c for c in acopy)} FROM jobs AS j, job_attempts AS a "
      f"WHERE j.seq > {top} AND a.job_seq = {tseq};"
      f"COMMIT;")
    have += n
    print(f"fill_pg: {have} rows ({time.time() - t0:.0f} s)", file=sys.stderr)
q("VACUUM ANALYZE jobs; VACUUM ANALYZE job_attempts;")
ids = [r[0] for r in q("SELECT id FROM jobs ORDER BY random() LIMIT 2000")]
with open(ids_path, "w") as f:
    f.write("\n".join(ids) + "\n")
