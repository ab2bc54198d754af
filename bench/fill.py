"""fill.py [--queued QUEUE] DB ROWS IDS_FILE: tops a stopped jobqd's database
up to ROWS jobs.

The new rows are copies of the oldest job (submitted and finished through the
API, so every column is one jobqd wrote), each with its own id and its copy of
the attempt history, inserted in the job table's own order the way a busy
jobqd appends them. Triggers keep the queue counts right. Then writes up to
2,000 ids picked at random to IDS_FILE for the GET benchmark.

With --queued QUEUE the copies are of the oldest job still queued in QUEUE
(submitted through the API to a paused queue, so it never ran): a backlog of
ROWS queued jobs that no worker takes while the queue stays paused."""
import random
import sqlite3
import sys
import time

args = sys.argv[1:]
queued = None
if args[:1] == ["--queued"]:
    queued, args = args[1], args[2:]
if len(args) != 3:
    sys.exit("usage: fill.py [--queued QUEUE] DB ROWS IDS_FILE")
db_path, target, ids_path = args[0], int(args[1]), args[2]
db = sqlite3.connect(db_path, isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("PRAGMA synchronous = OFF")
db.execute("PRAGMA cache_size = -262144")

cols = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
if queued is None:
    tseq = db.execute("SELECT min(seq) FROM jobs").fetchone()[0]
else:
    # state 0 is queued (enum job_state); the queue must stay paused.
    tseq = db.execute("SELECT min(seq) FROM jobs WHERE state = 0 AND queue = ?", (queued,)).fetchone()[0]
    if not db.execute("SELECT paused FROM queues WHERE name = ?", (queued,)).fetchone() in ((1,),):
        sys.exit(f"fill.py: queue {queued} is not paused")
if tseq is None:
    sys.exit("fill.py: the database has no job to copy" + (f" queued in {queued}" if queued else ""))
have = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
copy = [c for c in cols if c not in ("seq", "id")]
acols = [r[1] for r in db.execute("PRAGMA table_info(job_attempts)")]
acopy = [c for c in acols if c != "job_seq"]

t0 = time.time()
chunk = 250000
while have < target:
    n = min(chunk, target - have)
    base = db.execute("SELECT max(seq) FROM jobs").fetchone()[0] + 1
    db.execute("BEGIN")
    db.execute(
        f"WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ?) "
        f"INSERT INTO jobs (seq, id, {', '.join(copy)}) "
        f"SELECT ? + i, printf('00000000-0000-7000-8000-%012x', ? + i), {', '.join('t.' + c for c in copy)} "
        f"FROM k, jobs AS t WHERE t.seq = ?", (n, base, base, tseq))
    db.execute(
        f"INSERT INTO job_attempts (job_seq, {', '.join(acopy)}) "
        f"SELECT j.seq, {', '.join('a.' + c for c in acopy)} FROM jobs AS j, job_attempts AS a "
        f"WHERE j.seq >= ? AND a.job_seq = ?", (base, tseq))
    db.execute("COMMIT")
    have += n
    print(f"fill: {have} rows ({time.time() - t0:.0f} s)", file=sys.stderr)
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

lo, hi = db.execute("SELECT min(seq), max(seq) FROM jobs").fetchone()
picks = [random.randint(lo, hi) for _ in range(2000)]
ids = [r[0] for s in picks for r in db.execute("SELECT id FROM jobs WHERE seq >= ? LIMIT 1", (s,))]
with open(ids_path, "w") as f:
    f.write("\n".join(ids) + "\n")
db.close()
