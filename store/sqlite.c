/* The SQLite store.
 *
 * DESIGN. One writer thread owns the only read-write connection. Callers
 * post ops to a mutex-guarded queue; the writer takes everything queued (up
 * to WRITER_BATCH ops), applies it inside one BEGIN IMMEDIATE transaction
 * and COMMITs: with synchronous=FULL that is one WAL fsync for the whole
 * group, which is what makes durable submits fast under concurrency. Only
 * after the COMMIT returns does it complete the ops (done(), hooks), so a
 * 201 is never sent for a job that is not on disk. Batches grow with load on
 * their own; no linger timer is needed.
 *
 * Readers borrow connections from a pool (WAL lets them read beside the
 * writer) and hold no transaction longer than one statement, so the WAL can
 * always be checkpointed.
 *
 * Runnable jobs are found through a partial index WHERE state = 0. The claim
 * query names the state as a literal: with a bound parameter SQLite cannot
 * prove the partial index applies and scans the table. It also names the
 * index: left to itself the planner prefers jobs_by_state (state = 0 is an
 * equality there too) and sorts every queued row by priority for each claim.
 * The tests assert the plans.
 *
 * Jobs waiting for a future run_at (delays, retry backoff) are kept in
 * state 5, outside the runnable index, and promoted by the claim when due,
 * as River and Oban do; the claim also reports the next due time so the
 * dispatcher can sleep until then.
 *
 * Per-queue counts live in queue_counts, kept by triggers in the same
 * transactions that change jobs, so queue statistics never scan the table.
 *
 * Retention: finishing a job sets expires_at; the writer deletes expired
 * jobs in batches of SWEEP_BATCH in their own short transactions, between
 * groups, sleeping until the next expiry when idle. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define JOBQ_STR_(x) #x
#define JOBQ_STR(x) JOBQ_STR_(x)

#define WRITER_BATCH 1024
#define PROMOTE_BATCH 1000
#define SWEEP_BATCH 500
#define BUSY_TIMEOUT_MS 5000
#define LIST_VARIANTS 16 /* state, queue, type, cursor: one bit each */
#define PROBE_REUSE_MS 1000 /* a probe that committed this recently answers for later ones */

#define JOB_COLUMNS "seq, id, type, queue, priority, state, payload, result, error, " \
	"progress_percent, progress_message, attempts, created_at, started_at, finished_at, " \
	"max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at, " \
	"batch_id, callback_url, callback_state, callback_attempts, callback_status, callback_error"

/* Schema migrations; user_version is the number applied. Never edit one
 * that has shipped: append a new one. */
static const char *const migrations[] = {
	"CREATE TABLE jobs ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  type TEXT NOT NULL,"
	"  queue TEXT NOT NULL,"
	"  priority INTEGER NOT NULL DEFAULT 0,"
	"  state INTEGER NOT NULL,"              /* enum job_state */
	"  payload TEXT,"
	"  result TEXT,"
	"  error TEXT,"
	"  progress_percent REAL,"
	"  progress_message TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"         /* unix ms */
	"  started_at INTEGER,"
	"  finished_at INTEGER);"
	"CREATE INDEX jobs_runnable ON jobs(priority DESC, seq) WHERE state = 0;"
	"CREATE INDEX jobs_by_state ON jobs(state, seq);"
	"CREATE INDEX jobs_by_queue ON jobs(queue, seq);"
	"CREATE INDEX jobs_by_type ON jobs(type, seq);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;",

	/* 2: retries, timeouts, scheduling, queues, retention. */
	"ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;"
	"ALTER TABLE jobs ADD COLUMN backoff_s REAL NOT NULL DEFAULT 1;"
	"ALTER TABLE jobs ADD COLUMN max_backoff_s REAL NOT NULL DEFAULT 300;"
	"ALTER TABLE jobs ADD COLUMN timeout_s REAL NOT NULL DEFAULT 3600;"
	"ALTER TABLE jobs ADD COLUMN retention_s REAL NOT NULL DEFAULT 604800;"
	"ALTER TABLE jobs ADD COLUMN run_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN expires_at INTEGER;"          /* unix ms; set when finished */
	"UPDATE jobs SET run_at = created_at;"
	"UPDATE jobs SET expires_at = finished_at + 604800000 WHERE state IN (2, 3, 4);"
	"DROP INDEX jobs_runnable;"
	"CREATE INDEX jobs_ready ON jobs(queue, priority DESC, seq) WHERE state = 0;"
	"CREATE INDEX jobs_queued_since ON jobs(queue, run_at) WHERE state = 0;"
	"CREATE INDEX jobs_scheduled ON jobs(run_at) WHERE state = 5;"
	"CREATE INDEX jobs_expiry ON jobs(expires_at) WHERE expires_at IS NOT NULL;"
	"CREATE TABLE job_attempts ("
	"  job_seq INTEGER NOT NULL,"
	"  attempt INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER,"
	"  outcome TEXT NOT NULL,"
	"  error TEXT,"
	"  PRIMARY KEY (job_seq, attempt)) WITHOUT ROWID;"
	"CREATE TABLE queues (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE TABLE queue_counts ("
	"  queue TEXT NOT NULL, state INTEGER NOT NULL, n INTEGER NOT NULL,"
	"  PRIMARY KEY (queue, state)) WITHOUT ROWID;"
	"INSERT INTO queue_counts SELECT queue, state, count(*) FROM jobs GROUP BY queue, state;"
	"CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN"
	"  INSERT INTO queue_counts VALUES (NEW.queue, NEW.state, 1)"
	"    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;"
	"END;"
	"CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN"
	"  UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;"
	"END;"
	"CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs WHEN OLD.state <> NEW.state BEGIN"
	"  UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;"
	"  INSERT INTO queue_counts VALUES (NEW.queue, NEW.state, 1)"
	"    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;"
	"END;",

	/* 3: idempotency keys, batches, completion callbacks. */
	"ALTER TABLE jobs ADD COLUMN idem_key TEXT;"
	"ALTER TABLE jobs ADD COLUMN idem_hash TEXT;"
	"ALTER TABLE jobs ADD COLUMN batch_id TEXT;"
	"ALTER TABLE jobs ADD COLUMN callback_url TEXT;"
	"ALTER TABLE jobs ADD COLUMN callback_state INTEGER;"       /* NULL, 0 pending, 1 delivered, 2 failed */
	"ALTER TABLE jobs ADD COLUMN callback_attempts INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN callback_next_at INTEGER;"     /* unix ms, while pending */
	"ALTER TABLE jobs ADD COLUMN callback_status INTEGER;"
	"ALTER TABLE jobs ADD COLUMN callback_error TEXT;"
	"CREATE UNIQUE INDEX jobs_idem ON jobs(idem_key) WHERE idem_key IS NOT NULL;"
	"CREATE INDEX jobs_batch ON jobs(batch_id, seq) WHERE batch_id IS NOT NULL;"
	"CREATE INDEX jobs_callback_due ON jobs(callback_next_at) WHERE callback_state = 0;"
	"CREATE TABLE batches ("
	"  id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, total INTEGER NOT NULL,"
	"  finished_at INTEGER, callback_url TEXT, callback_state INTEGER,"
	"  callback_attempts INTEGER NOT NULL DEFAULT 0, callback_next_at INTEGER,"
	"  callback_status INTEGER, callback_error TEXT) WITHOUT ROWID;"
	"CREATE INDEX batches_callback_due ON batches(callback_next_at) WHERE callback_state = 0;"
	"CREATE TABLE batch_counts ("
	"  batch_id TEXT NOT NULL, state INTEGER NOT NULL, n INTEGER NOT NULL,"
	"  PRIMARY KEY (batch_id, state)) WITHOUT ROWID;"
	"CREATE TRIGGER jobs_batch_insert AFTER INSERT ON jobs WHEN NEW.batch_id IS NOT NULL BEGIN"
	"  INSERT INTO batch_counts VALUES (NEW.batch_id, NEW.state, 1)"
	"    ON CONFLICT (batch_id, state) DO UPDATE SET n = n + 1;"
	"END;"
	"CREATE TRIGGER jobs_batch_delete AFTER DELETE ON jobs WHEN OLD.batch_id IS NOT NULL BEGIN"
	"  UPDATE batch_counts SET n = n - 1 WHERE batch_id = OLD.batch_id AND state = OLD.state;"
	"END;"
	"CREATE TRIGGER jobs_batch_update AFTER UPDATE OF state ON jobs"
	"  WHEN NEW.batch_id IS NOT NULL AND OLD.state <> NEW.state BEGIN"
	"  UPDATE batch_counts SET n = n - 1 WHERE batch_id = OLD.batch_id AND state = OLD.state;"
	"  INSERT INTO batch_counts VALUES (NEW.batch_id, NEW.state, 1)"
	"    ON CONFLICT (batch_id, state) DO UPDATE SET n = n + 1;"
	"END;",
};

enum {
	SQL_INSERT, SQL_PROMOTE, SQL_READY_QUEUES, SQL_CLAIM, SQL_NEXT_DUE, SQL_FINISH,
	SQL_REQUEUE, SQL_ATTEMPT, SQL_STATE_OF, SQL_CANCEL_SET, SQL_RETRY_SET,
	SQL_DELETE_ATTEMPTS, SQL_DELETE_JOB, SQL_PAUSE, SQL_SWEEP_ATTEMPTS, SQL_SWEEP_JOBS,
	SQL_NEXT_EXPIRY, SQL_PING, SQL_IDEM_FIND, SQL_BATCH_INSERT, SQL_BATCH_DONE, SQL_BATCH_UNDONE,
	SQL_CALLBACK_JOB, SQL_CALLBACK_BATCH, SQL_COUNT
};

/* The callback columns of a job finishing at ?F: pending from then on. */
#define CALLBACK_DUE(F) " callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 0 END," \
	" callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE " F " END"


/* The expiry of a job finishing at ?F: retention_s after it. */
#define EXPIRES(F) F " + CAST(retention_s * 1000 AS INTEGER)"

static const char *const writer_sql[SQL_COUNT] = {
	/* A repeated Idempotency-Key inserts nothing and returns no row. */
	[SQL_INSERT] = "INSERT INTO jobs (id, type, queue, priority, state, payload, attempts, created_at,"
	               " max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at,"
	               " idem_key, idem_hash, batch_id, callback_url)"
	               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
	               " ON CONFLICT DO NOTHING RETURNING seq",
	[SQL_IDEM_FIND] = "SELECT id, idem_hash FROM jobs WHERE idem_key = ?1",
	[SQL_BATCH_INSERT] = "INSERT INTO batches (id, created_at, total, callback_url) VALUES (?1, ?2, ?3, ?4)",
	/* The batch is done when none of its jobs is waiting or running. */
	[SQL_BATCH_DONE] = "UPDATE batches SET finished_at = ?2,"
	                   " callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 0 END,"
	                   " callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE ?2 END"
	                   " WHERE id = ?1 AND finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM batch_counts"
	                   "   WHERE batch_id = ?1 AND state IN (0, 1, 5) AND n > 0)",
	/* Not done any more: a pending callback is withdrawn and starts afresh. */
	[SQL_BATCH_UNDONE] = "UPDATE batches SET finished_at = NULL, callback_state = NULL, callback_next_at = NULL,"
	                     " callback_attempts = 0 WHERE id = ?1",
	[SQL_CALLBACK_JOB] = "UPDATE jobs SET callback_state = ?2, callback_attempts = callback_attempts + 1,"
	                     " callback_next_at = ?3, callback_status = ?4, callback_error = ?5"
	                     " WHERE id = ?1 AND callback_state = 0",
	[SQL_CALLBACK_BATCH] = "UPDATE batches SET callback_state = ?2, callback_attempts = callback_attempts + 1,"
	                       " callback_next_at = ?3, callback_status = ?4, callback_error = ?5"
	                       " WHERE id = ?1 AND callback_state = 0",
	[SQL_PROMOTE] = "UPDATE jobs SET state = 0 WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_scheduled"
	                " WHERE state = 5 AND run_at <= ?1 ORDER BY run_at LIMIT " JOBQ_STR(PROMOTE_BATCH) ")"
	                " RETURNING id, queue, type, attempts",
	/* Queues after the last one served come first, then the rest from the
	 * start: every queue gets its turn however many there are. */
	[SQL_READY_QUEUES] = "SELECT c.queue FROM queue_counts c WHERE c.state = 0 AND c.n > 0"
	                     " AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = c.queue AND q.paused)"
	                     " ORDER BY c.queue <= ?1, c.queue",
	[SQL_CLAIM] = "UPDATE jobs SET state = 1, attempts = attempts + 1, started_at = ?1"
	              " WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_ready WHERE state = 0 AND queue = ?3"
	              "   ORDER BY priority DESC, seq LIMIT ?2)"
	              " RETURNING " JOB_COLUMNS,
	[SQL_NEXT_DUE] = "SELECT min(run_at) FROM jobs INDEXED BY jobs_scheduled WHERE state = 5",
	[SQL_FINISH] = "UPDATE jobs SET state = ?2, result = ?3, error = ?4, progress_percent = ?5,"
	               " progress_message = ?6, finished_at = ?7, run_at = coalesce(?9, run_at),"
	               " expires_at = " EXPIRES("?7") ","
	               /* a retry (?7 NULL) leaves the callback waiting */
	               " callback_state = CASE WHEN callback_url IS NULL OR ?7 IS NULL THEN callback_state ELSE 0 END,"
	               " callback_next_at = CASE WHEN callback_url IS NULL OR ?7 IS NULL THEN callback_next_at ELSE ?7 END"
	               " WHERE id = ?1 AND state = 1 AND attempts = ?8 RETURNING expires_at",
	[SQL_REQUEUE] = "UPDATE jobs SET state = 0, attempts = attempts - 1, started_at = NULL"
	                " WHERE id = ?1 AND state = 1 AND attempts = ?2",
	[SQL_ATTEMPT] = "INSERT OR REPLACE INTO job_attempts (job_seq, attempt, started_at, finished_at, outcome, error)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[SQL_STATE_OF] = "SELECT state, seq, queue, batch_id, type FROM jobs WHERE id = ?1",
	[SQL_CANCEL_SET] = "UPDATE jobs SET state = 4, error = 'canceled', finished_at = ?2,"
	                   " expires_at = " EXPIRES("?2") "," CALLBACK_DUE("?2")
	                   " WHERE id = ?1 AND state IN (0, 5) RETURNING expires_at",
	[SQL_RETRY_SET] = "UPDATE jobs SET state = 0, max_attempts = max(max_attempts, attempts + 1),"
	                  " result = NULL, error = NULL, progress_percent = NULL, progress_message = NULL,"
	                  " finished_at = NULL, expires_at = NULL, run_at = ?2,"
	                  " callback_state = NULL, callback_next_at = NULL, callback_attempts = 0,"
	                  " callback_status = NULL, callback_error = NULL"
	                  " WHERE id = ?1 AND state IN (3, 4) RETURNING " JOB_COLUMNS,
	[SQL_DELETE_ATTEMPTS] = "DELETE FROM job_attempts WHERE job_seq = ?1",
	[SQL_DELETE_JOB] = "DELETE FROM jobs WHERE seq = ?1 AND state IN (2, 3, 4)",
	[SQL_PAUSE] = "INSERT INTO queues (name, paused) VALUES (?1, ?2)"
	              " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
	[SQL_SWEEP_ATTEMPTS] = "DELETE FROM job_attempts WHERE job_seq IN (SELECT seq FROM jobs"
	                       " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT " JOBQ_STR(SWEEP_BATCH) ")",
	[SQL_SWEEP_JOBS] = "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
	                   " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT " JOBQ_STR(SWEEP_BATCH) ")",
	[SQL_NEXT_EXPIRY] = "SELECT min(expires_at) FROM jobs WHERE expires_at IS NOT NULL",
	[SQL_PING] = "INSERT INTO meta (key, value) VALUES ('ready_check', ?1)"
	             " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
};

struct reader {
	sqlite3 *db;
	sqlite3_stmt *get, *history, *queue_counts, *queue_paused, *queue_oldest, *queue_names;
	sqlite3_stmt *batch_get, *batch_counts, *due_jobs, *due_batches, *next_jobs, *next_batches;
	sqlite3_stmt *list[LIST_VARIANTS];
	struct reader *next;
};

static const char *const reader_sql[] = {
	"SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
	"SELECT attempt, started_at, finished_at, outcome, error FROM job_attempts"
	" WHERE job_seq = ?1 ORDER BY attempt",
	"SELECT state, n FROM queue_counts WHERE queue = ?1",
	"SELECT paused FROM queues WHERE name = ?1",
	"SELECT run_at FROM jobs INDEXED BY jobs_queued_since WHERE state = 0 AND queue = ?1"
	" ORDER BY run_at LIMIT 1",
	"SELECT queue FROM queue_counts WHERE queue > ?1 AND n > 0"
	" UNION SELECT name FROM queues WHERE name > ?1 AND paused ORDER BY 1 LIMIT ?2",
	"SELECT total, created_at, finished_at, callback_url, callback_state, callback_attempts,"
	" callback_status, callback_error FROM batches WHERE id = ?1",
	"SELECT state, n FROM batch_counts WHERE batch_id = ?1",
	"SELECT id FROM jobs WHERE callback_state = 0 AND callback_next_at <= ?1 ORDER BY callback_next_at LIMIT ?2",
	"SELECT id FROM batches WHERE callback_state = 0 AND callback_next_at <= ?1 ORDER BY callback_next_at LIMIT ?2",
	"SELECT min(callback_next_at) FROM jobs WHERE callback_state = 0",
	"SELECT min(callback_next_at) FROM batches WHERE callback_state = 0",
};

struct store {
	char *path;
	int lock_fd;
	struct store_hooks hooks;

	sqlite3 *wdb;                     /* writer thread only (after open) */
	sqlite3_stmt *wstmt[SQL_COUNT];

	pthread_t writer;
	bool writer_started;
	pthread_mutex_t mu;               /* guards head, tail, stopping */
	pthread_cond_t cv;
	struct store_op *head, *tail;
	bool stopping;

	int64_t next_sweep;               /* writer only: earliest expires_at, unix ms */
	char last_served[JOB_NAME_MAX + 1]; /* writer only: the claim goes on after this queue */
	struct ready_queue *ready;        /* writer only: scratch for claims */
	size_t ready_cap;

	const char *sync_pragma;          /* the configured PRAGMA synchronous */
	bool sync_relaxed;                /* writer only: synchronous is OFF now */
	int64_t probe_ok_at;              /* writer only: monotonic ms of the last probe that
	                                   * wrote and committed; 0 after any failed write */
	bool probe_wrote;                 /* writer only: this group's probe wrote */

	atomic_uint_fast64_t commits;     /* written by the writer only */
	atomic_uint_fast64_t committed_ops;
	atomic_bool damaged;              /* a read or write met a corrupt page */

	pthread_mutex_t readers_mu;       /* guards idle, all */
	struct reader *idle;
	struct reader *all_readers[64];   /* every reader opened, for close */
	int nreaders;
};

/* ---- damage ----------------------------------------------------------- */

/* SQLite reports every corrupt page it meets to its error log, on the
 * thread that met it, whatever the statement. The store keeps that per
 * thread and moves it to the store at the next reader_take or
 * reader_give and after each writer transaction, so readiness can tell
 * that the file is damaged without a check after every step. */
static _Thread_local bool met_damage;

static void sqlite_log(void *arg, int code, const char *msg)
{
	(void)arg;
	(void)msg;
	if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB)
		met_damage = true;
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* Must run before SQLite initialises; the first store_open does it. */
static void install_log(void)
{
	if (sqlite3_config(SQLITE_CONFIG_LOG, sqlite_log, NULL) != SQLITE_OK)
		log_warn("SQLite was initialised before the store: damage met at run time goes unnoticed");
}

/* Moves what this thread met to st, logging the first time. */
static void note_damage(struct store *st)
{
	if (!met_damage)
		return;
	met_damage = false;
	if (!atomic_exchange(&st->damaged, true))
		log_error("database %s is damaged (database disk image is malformed): readiness fails from now on; "
		          "stop jobqd and restore the file from a backup", st->path);
}

bool store_damaged(struct store *st)
{
	return atomic_load(&st->damaged);
}

/* ---- connections ---------------------------------------------------- */

static int exec_sql(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_error("sqlite: %s: %s", msg ? msg : sqlite3_errstr(rc), sql);
		sqlite3_free(msg);
	}
	return rc;
}

/* exec_sql for start-up: nothing is logged; on failure why gets SQLite's
 * reason (never the SQL) for the caller's one line. */
static int open_exec(sqlite3 *db, const char *sql, char *why, size_t whylen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		snprintf(why, whylen, "%s", msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

/* Opens a connection; on failure nothing is logged and why gets SQLite's
 * reason. */
static int open_conn(const char *path, sqlite3 **out, char *why, size_t whylen)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                         SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db, 1);
	*out = db;
	return SQLITE_OK;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
	if (rc != SQLITE_OK)
		log_error("sqlite prepare: %s: %s", sqlite3_errmsg(db), sql);
	return rc;
}

static int user_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Applies the migrations this database lacks; returns the SQLite code,
 * with the reason in why on failure. */
static int migrate(sqlite3 *db, char *why, size_t whylen)
{
	int have = user_version(db);
	int want = (int)(sizeof migrations / sizeof migrations[0]);
	int rc = SQLITE_OK;
	if (have < 0) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(db));
		return sqlite3_extended_errcode(db) != SQLITE_OK ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
	}
	if (have > want) {
		snprintf(why, whylen, "its schema version %d is newer than this jobqd knows (%d)", have, want);
		return SQLITE_ERROR;
	}
	/* Freed pages go back to the OS in steps, not in one long VACUUM;
	 * this only takes effect before the first table is created. */
	if (have == 0 && (rc = open_exec(db, "PRAGMA auto_vacuum = INCREMENTAL", why, whylen)) != SQLITE_OK)
		return rc;
	for (int v = have; v < want; v++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
		if ((rc = open_exec(db, "BEGIN IMMEDIATE", why, whylen)) != SQLITE_OK)
			return rc;
		if ((rc = open_exec(db, migrations[v], why, whylen)) != SQLITE_OK ||
		    (rc = open_exec(db, bump, why, whylen)) != SQLITE_OK ||
		    (rc = open_exec(db, "COMMIT", why, whylen)) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		log_info("database migrated to schema version %d", v + 1);
	}
	return SQLITE_OK;
}

static void reader_close(struct reader *r)
{
	if (!r)
		return;
	sqlite3_finalize(r->get);
	sqlite3_finalize(r->history);
	sqlite3_finalize(r->queue_counts);
	sqlite3_finalize(r->queue_paused);
	sqlite3_finalize(r->queue_oldest);
	sqlite3_finalize(r->queue_names);
	sqlite3_stmt *more[] = {r->batch_get, r->batch_counts, r->due_jobs, r->due_batches,
	                        r->next_jobs, r->next_batches};
	for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
		sqlite3_finalize(more[i]);
	for (int i = 0; i < LIST_VARIANTS; i++)
		sqlite3_finalize(r->list[i]);
	sqlite3_close(r->db);
	free(r);
}

/* Takes an idle reader or opens a new one; NULL on failure. */
static struct reader *reader_take(struct store *st)
{
	note_damage(st); /* e.g. a hook that reads on the writer thread, mid-group */
	pthread_mutex_lock(&st->readers_mu);
	struct reader *r = st->idle;
	if (r)
		st->idle = r->next;
	pthread_mutex_unlock(&st->readers_mu);
	if (r)
		return r;

	r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	sqlite3_stmt **stmts[] = {&r->get, &r->history, &r->queue_counts, &r->queue_paused,
	                          &r->queue_oldest, &r->queue_names, &r->batch_get, &r->batch_counts,
	                          &r->due_jobs, &r->due_batches, &r->next_jobs, &r->next_batches};
	char why[256] = "";
	bool ok = open_conn(st->path, &r->db, why, sizeof why) == SQLITE_OK &&
	          exec_sql(r->db, "PRAGMA query_only = 1") == SQLITE_OK;
	if (why[0])
		log_error("cannot open database %s: %s", st->path, why);
	for (size_t i = 0; ok && i < sizeof stmts / sizeof stmts[0]; i++)
		ok = prepare(r->db, reader_sql[i], stmts[i]) == SQLITE_OK;
	if (!ok) {
		reader_close(r);
		return NULL;
	}
	pthread_mutex_lock(&st->readers_mu);
	bool room = st->nreaders < (int)(sizeof st->all_readers / sizeof st->all_readers[0]);
	if (room)
		st->all_readers[st->nreaders++] = r;
	pthread_mutex_unlock(&st->readers_mu);
	if (!room) {
		log_error("too many concurrent database readers");
		reader_close(r);
		return NULL;
	}
	return r;
}

static void reader_give(struct store *st, struct reader *r)
{
	note_damage(st);
	pthread_mutex_lock(&st->readers_mu);
	r->next = st->idle;
	st->idle = r;
	pthread_mutex_unlock(&st->readers_mu);
}

/* ---- rows ----------------------------------------------------------- */

static char *column_strdup(sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	return t ? strdup((const char *)t) : NULL;
}

static void column_copy(sqlite3_stmt *s, int col, char *dst, size_t n)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static enum job_state column_state(sqlite3_stmt *s, int col)
{
	int state = sqlite3_column_int(s, col);
	return state >= 0 && state < JOB_STATE_COUNT ? (enum job_state)state : JOB_FAILED;
}

static void bind_int64_or_null(sqlite3_stmt *s, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

/* Steps a statement that yields at most one row and resets it. With a
 * row, *v gets column 0 (0 for NULL). Returns SQLITE_OK or the error. */
static int step_int64(sqlite3_stmt *s, int64_t *v)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Reads url, state, attempts, status, error from columns col.. col+4. */
static void column_delivery(sqlite3_stmt *s, int col, struct delivery *d)
{
	d->url = column_strdup(s, col);
	d->state = sqlite3_column_type(s, col + 1) == SQLITE_NULL ? DELIVERY_NONE
	           : (enum delivery_state)sqlite3_column_int(s, col + 1);
	d->attempts = sqlite3_column_int(s, col + 2);
	d->last_status = sqlite3_column_int(s, col + 3);
	d->last_error = column_strdup(s, col + 4);
}

/* Builds a job from a row of JOB_COLUMNS; NULL on OOM. */
static struct job *row_to_job(sqlite3_stmt *s)
{
	struct job *job = job_new();
	if (!job)
		return NULL;
	job->seq = sqlite3_column_int64(s, 0);
	column_copy(s, 1, job->id, sizeof job->id);
	column_copy(s, 2, job->type, sizeof job->type);
	column_copy(s, 3, job->queue, sizeof job->queue);
	job->priority = sqlite3_column_int(s, 4);
	job->state = column_state(s, 5);
	job->payload = column_strdup(s, 6);
	job->result = column_strdup(s, 7);
	job->error = column_strdup(s, 8);
	if (sqlite3_column_type(s, 9) != SQLITE_NULL) {
		job->has_progress = true;
		job->progress_percent = sqlite3_column_double(s, 9);
		column_copy(s, 10, job->progress_message, sizeof job->progress_message);
	}
	job->attempts = sqlite3_column_int(s, 11);
	job->created_at = sqlite3_column_int64(s, 12);
	job->started_at = sqlite3_column_int64(s, 13);
	job->finished_at = sqlite3_column_int64(s, 14);
	job->max_attempts = sqlite3_column_int(s, 15);
	job->backoff_s = sqlite3_column_double(s, 16);
	job->max_backoff_s = sqlite3_column_double(s, 17);
	job->timeout_s = sqlite3_column_double(s, 18);
	job->retention_s = sqlite3_column_double(s, 19);
	job->run_at = sqlite3_column_int64(s, 20);
	column_copy(s, 21, job->batch_id, sizeof job->batch_id);
	column_delivery(s, 22, &job->callback);
	if ((sqlite3_column_type(s, 6) != SQLITE_NULL && !job->payload) ||
	    (sqlite3_column_type(s, 7) != SQLITE_NULL && !job->result) ||
	    (sqlite3_column_type(s, 8) != SQLITE_NULL && !job->error)) {
		job_free(job);
		return NULL;
	}
	return job;
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* ---- writer --------------------------------------------------------- */

/* Each apply_* runs inside the group transaction and returns the SQLite
 * result code of the failing step, or SQLITE_OK. */

static int idempotent_replay(struct store *st, struct store_op *op);

static int apply_submit(struct store *st, struct store_op *op)
{
	sqlite3_stmt *s = st->wstmt[SQL_INSERT];
	struct job *job = op->job;
	sqlite3_bind_text(s, 1, job->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, job->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, job->queue, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, job->priority);
	sqlite3_bind_int(s, 5, job->state == JOB_SCHEDULED ? JOB_SCHEDULED : JOB_QUEUED);
	bind_text_or_null(s, 6, job->payload);
	sqlite3_bind_int64(s, 7, job->created_at);
	sqlite3_bind_int(s, 8, job->max_attempts);
	sqlite3_bind_double(s, 9, job->backoff_s);
	sqlite3_bind_double(s, 10, job->max_backoff_s);
	sqlite3_bind_double(s, 11, job->timeout_s);
	sqlite3_bind_double(s, 12, job->retention_s);
	sqlite3_bind_int64(s, 13, job->run_at ? job->run_at : job->created_at);
	bind_text_or_null(s, 14, job->idem_key);
	bind_text_or_null(s, 15, job->idem_key ? job->idem_hash : NULL);
	bind_text_or_null(s, 16, job->batch_id[0] ? job->batch_id : NULL);
	bind_text_or_null(s, 17, job->callback.url);
	job->seq = 0;
	int rc = step_int64(s, &job->seq);
	if (rc != SQLITE_OK || job->seq != 0)
		return rc;
	if (!job->idem_key)
		return SQLITE_CONSTRAINT;
	return idempotent_replay(st, op);
}

/* The key was seen before: the same body gets the first job back. */
static int idempotent_replay(struct store *st, struct store_op *op)
{
	sqlite3_stmt *s = st->wstmt[SQL_IDEM_FIND];
	sqlite3_bind_text(s, 1, op->job->idem_key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *hash = sqlite3_column_text(s, 1);
		if (hash && strcmp((const char *)hash, op->job->idem_hash) == 0) {
			column_copy(s, 0, op->job->id, sizeof op->job->id);
			op->replayed = true;
		} else {
			op->rc = STORE_CONFLICT;
		}
		rc = SQLITE_OK;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_CONSTRAINT : rc;
}

/* A job promoted from scheduled to queued by a claim. */
struct promoted {
	char id[UUID_LEN + 1];
	char queue[JOB_NAME_MAX + 1];
	char type[JOB_NAME_MAX + 1];
	int attempts;
};

/* Claimed (and promoted) jobs wait here until the COMMIT decides. */
struct claim_scratch {
	struct job **jobs;
	int n;
	struct promoted *promoted;
	int npromoted;
};

static int claim_order(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Claims up to n jobs of one queue into cs; returns the SQLite code. */
static int claim_from(struct store *st, const char *queue, int n, int64_t now, struct claim_scratch *cs)
{
	sqlite3_stmt *s = st->wstmt[SQL_CLAIM];
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int(s, 2, n);
	sqlite3_bind_text(s, 3, queue, -1, SQLITE_TRANSIENT);
	int first = cs->n, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct job *job = row_to_job(s);
		if (!job) {
			rc = SQLITE_NOMEM;
			break;
		}
		cs->jobs[cs->n++] = job;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return rc;
	/* RETURNING yields rows in no set order. */
	qsort(cs->jobs + first, (size_t)(cs->n - first), sizeof *cs->jobs, claim_order);
	return SQLITE_OK;
}

struct ready_queue {
	char name[JOB_NAME_MAX + 1];
	int room;
};

/* Unpaused queues with runnable jobs, in turn order, with how many each
 * may start, into st->ready. */
static int ready_queues(struct store *st, struct store_op *op, int *nq)
{
	sqlite3_stmt *s = st->wstmt[SQL_READY_QUEUES];
	sqlite3_bind_text(s, 1, st->last_served, -1, SQLITE_STATIC);
	int rc;
	*nq = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((size_t)*nq == st->ready_cap) {
			size_t cap = st->ready_cap ? st->ready_cap * 2 : 16;
			struct ready_queue *grown = realloc(st->ready, cap * sizeof *grown);
			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			st->ready = grown;
			st->ready_cap = cap;
		}
		struct ready_queue *r = &st->ready[*nq];
		column_copy(s, 0, r->name, sizeof r->name);
		r->room = op->queue_room ? op->queue_room(op, r->name) : INT_MAX;
		if (r->room > 0)
			(*nq)++;
		else
			op->limited = true;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Promote, then share claim_max among ready queues round-robin, starting
 * after the queue the last claim served last, so no queue starves. */
static int apply_claim(struct store *st, struct store_op *op, struct claim_scratch *cs)
{
	int64_t now = clock_now_ms();
	sqlite3_stmt *promote = st->wstmt[SQL_PROMOTE];
	sqlite3_bind_int64(promote, 1, now);
	int rc, cap = 0;
	while ((rc = sqlite3_step(promote)) == SQLITE_ROW) {
		if (cs->npromoted == cap) {
			cap = cap ? cap * 2 : 16;
			struct promoted *grown = realloc(cs->promoted, (size_t)cap * sizeof *grown);
			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			cs->promoted = grown;
		}
		struct promoted *p = &cs->promoted[cs->npromoted++];
		column_copy(promote, 0, p->id, sizeof p->id);
		column_copy(promote, 1, p->queue, sizeof p->queue);
		column_copy(promote, 2, p->type, sizeof p->type);
		p->attempts = sqlite3_column_int(promote, 3);
	}
	sqlite3_reset(promote);
	if (rc != SQLITE_DONE)
		return rc;

	cs->n = 0;
	cs->jobs = op->claim_max > 0 ? calloc((size_t)op->claim_max, sizeof *cs->jobs) : NULL;
	if (op->claim_max > 0 && !cs->jobs)
		return SQLITE_NOMEM;
	int nq = 0;
	if (op->claim_max > 0 && (rc = ready_queues(st, op, &nq)) != SQLITE_OK)
		goto fail;
	bool progress = true;
	while (cs->n < op->claim_max && progress) {
		progress = false;
		int left = op->claim_max - cs->n;
		int share = left / (nq ? nq : 1) > 0 ? left / (nq ? nq : 1) : 1;
		for (int k = 0; k < nq && cs->n < op->claim_max; k++) {
			struct ready_queue *q = &st->ready[k];
			int want = share < q->room ? share : q->room;
			if (want > op->claim_max - cs->n)
				want = op->claim_max - cs->n;
			if (want <= 0)
				continue;
			int before = cs->n;
			if ((rc = claim_from(st, q->name, want, now, cs)) != SQLITE_OK)
				goto fail;
			int got = cs->n - before;
			if (got > 0)
				memcpy(st->last_served, q->name, sizeof st->last_served);
			if (q->room != INT_MAX)
				q->room -= got;
			if (got == want)
				progress = true;   /* this queue may have more */
			else
				q->room = 0;       /* drained */
			if (q->room == 0 && got == want)
				op->limited = true;
		}
	}
	return step_int64(st->wstmt[SQL_NEXT_DUE], &op->next_due);
fail:
	/* A failed UPDATE...RETURNING is undone by SQLite as a whole. */
	for (int i = 0; i < cs->n; i++)
		job_free(cs->jobs[i]);
	cs->n = 0;
	return rc;
}

static int check_batch_done(struct store *st, const char *batch_id, bool *done);

/* Records the attempt that just ended. */
static int record_attempt(struct store *st, const struct job *job)
{
	sqlite3_stmt *s = st->wstmt[SQL_ATTEMPT];
	sqlite3_bind_int64(s, 1, job->seq);
	sqlite3_bind_int(s, 2, job->attempts);
	bind_int64_or_null(s, 3, job->started_at);
	sqlite3_bind_int64(s, 4, job->finished_at ? job->finished_at : clock_now_ms());
	sqlite3_bind_text(s, 5, attempt_outcome_name(job->outcome), -1, SQLITE_STATIC);
	bind_text_or_null(s, 6, job->error);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void note_expiry(struct store *st, int64_t expires_at)
{
	if (expires_at && expires_at < st->next_sweep)
		st->next_sweep = expires_at;
}

/* Sets *finished when the job reached a terminal state, *batch_done when
 * that finished its batch. */
static int apply_finish(struct store *st, struct store_op *op, bool *changed, bool *finished,
                        bool *batch_done)
{
	struct job *job = op->job;
	int rc;
	if (job->state == JOB_QUEUED) {
		sqlite3_stmt *s = st->wstmt[SQL_REQUEUE];
		sqlite3_bind_text(s, 1, job->id, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, job->attempts);
		rc = sqlite3_step(s);
		*changed = rc == SQLITE_DONE && sqlite3_changes(st->wdb) == 1;
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	bool terminal = job_state_terminal(job->state);
	sqlite3_stmt *s = st->wstmt[SQL_FINISH];
	sqlite3_bind_text(s, 1, job->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, (int)job->state);
	bind_text_or_null(s, 3, job->result);
	bind_text_or_null(s, 4, job->error);
	if (job->has_progress) {
		sqlite3_bind_double(s, 5, job->progress_percent);
		sqlite3_bind_text(s, 6, job->progress_message, -1, SQLITE_STATIC);
	}
	if (terminal)
		sqlite3_bind_int64(s, 7, job->finished_at ? job->finished_at : clock_now_ms());
	sqlite3_bind_int(s, 8, job->attempts);
	if (job->state == JOB_SCHEDULED)
		sqlite3_bind_int64(s, 9, job->run_at);
	int64_t expires_at = 0;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*changed = true;
		expires_at = sqlite3_column_int64(s, 0);
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return rc;
	if (!*changed) {
		log_warn("job %s attempt %d was no longer running; its outcome is dropped", job->id, job->attempts);
		return SQLITE_OK;
	}
	note_expiry(st, expires_at);
	*finished = terminal;
	rc = record_attempt(st, job);
	memcpy(op->batch_id, job->batch_id, sizeof op->batch_id);
	return rc == SQLITE_OK && terminal ? check_batch_done(st, op->batch_id, batch_done) : rc;
}

/* Reads the state, seq and queue of op->id; STORE_NOT_FOUND in op->rc
 * when there is no such job. */
static int state_of(struct store *st, struct store_op *op, int64_t *seq)
{
	sqlite3_stmt *s = st->wstmt[SQL_STATE_OF];
	sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		op->found = column_state(s, 0);
		*seq = sqlite3_column_int64(s, 1);
		column_copy(s, 2, op->queue, sizeof op->queue);
		column_copy(s, 3, op->batch_id, sizeof op->batch_id);
		column_copy(s, 4, op->type, sizeof op->type);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		op->rc = STORE_NOT_FOUND;
		rc = SQLITE_OK;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

static int apply_cancel(struct store *st, struct store_op *op, bool *finished, bool *batch_done)
{
	int64_t seq = 0, expires_at = 0;
	int rc = state_of(st, op, &seq);
	if (rc != SQLITE_OK || op->rc == STORE_NOT_FOUND ||
	    (op->found != JOB_QUEUED && op->found != JOB_SCHEDULED))
		return rc;
	sqlite3_stmt *s = st->wstmt[SQL_CANCEL_SET];
	sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, clock_now_ms());
	if ((rc = step_int64(s, &expires_at)) != SQLITE_OK)
		return rc;
	note_expiry(st, expires_at);
	*finished = true;
	return check_batch_done(st, op->batch_id, batch_done);
}

/* The job as the retry left it goes to op->job (the caller frees it),
 * so the reply does not race a worker that claims it right after. */
static int apply_retry(struct store *st, struct store_op *op, bool *runnable)
{
	int64_t seq = 0;
	int rc = state_of(st, op, &seq);
	if (rc != SQLITE_OK || op->rc == STORE_NOT_FOUND ||
	    (op->found != JOB_FAILED && op->found != JOB_CANCELED))
		return rc;
	sqlite3_stmt *s = st->wstmt[SQL_RETRY_SET];
	sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, clock_now_ms());
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		job_free(op->job);
		op->job = row_to_job(s);
		rc = op->job ? sqlite3_step(s) : SQLITE_NOMEM;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	*runnable = true;
	if (rc == SQLITE_DONE && op->batch_id[0]) {
		/* Its batch is not finished any more. */
		int64_t unused = 0;
		sqlite3_bind_text(st->wstmt[SQL_BATCH_UNDONE], 1, op->batch_id, -1, SQLITE_STATIC);
		return step_int64(st->wstmt[SQL_BATCH_UNDONE], &unused);
	}
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int apply_delete(struct store *st, struct store_op *op)
{
	int64_t seq = 0, unused = 0;
	int rc = state_of(st, op, &seq);
	if (rc != SQLITE_OK || op->rc == STORE_NOT_FOUND || !job_state_terminal(op->found))
		return rc;
	sqlite3_bind_int64(st->wstmt[SQL_DELETE_ATTEMPTS], 1, seq);
	if ((rc = step_int64(st->wstmt[SQL_DELETE_ATTEMPTS], &unused)) != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st->wstmt[SQL_DELETE_JOB], 1, seq);
	return step_int64(st->wstmt[SQL_DELETE_JOB], &unused);
}

static int apply_pause(struct store *st, struct store_op *op)
{
	int64_t unused = 0;
	sqlite3_stmt *s = st->wstmt[SQL_PAUSE];
	sqlite3_bind_text(s, 1, op->queue, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, op->paused);
	return step_int64(s, &unused);
}

/* Rewrites a row of STORE_PROBE_BYTES: at COMMIT its pages go to the
 * WAL as a job's would. Random bytes, because SQLite overwrites a row of
 * the same size in place and leaves every page whose bytes are unchanged
 * clean: rewriting zeros wrote nothing at all. Prepared each time: probes
 * are seconds apart. */
static int apply_probe(struct store *st, struct store_op *op)
{
	if (atomic_load(&st->damaged)) {
		op->rc = STORE_UNAVAILABLE;
		return SQLITE_OK;
	}
	/* /readyz needs no key: a flood of probes must not become a flood of
	 * 64 KiB synced writes. Any failed write since voids the answer. */
	if (st->probe_ok_at && clock_mono_ms() - st->probe_ok_at < PROBE_REUSE_MS)
		return SQLITE_OK;
	st->probe_wrote = true;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->wdb, "INSERT INTO meta (key, value) VALUES ('ready_probe', randomblob(?1))"
	                            " ON CONFLICT (key) DO UPDATE SET value = excluded.value", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int(s, 1, STORE_PROBE_BYTES);
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int apply_ping(struct store *st)
{
	int64_t unused = 0;
	sqlite3_bind_int64(st->wstmt[SQL_PING], 1, clock_now_ms());
	return step_int64(st->wstmt[SQL_PING], &unused);
}

/* Inserts the batch and all its jobs, or nothing. */
static int apply_batch(struct store *st, struct store_op *op)
{
	int rc = exec_sql(st->wdb, "SAVEPOINT batch");
	if (rc != SQLITE_OK)
		return rc;
	int64_t unused = 0;
	sqlite3_stmt *s = st->wstmt[SQL_BATCH_INSERT];
	sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, clock_now_ms());
	sqlite3_bind_int(s, 3, op->njobs);
	bind_text_or_null(s, 4, op->url);
	rc = step_int64(s, &unused);
	for (int i = 0; rc == SQLITE_OK && i < op->njobs; i++) {
		struct store_op one = {.kind = STORE_OP_SUBMIT, .job = op->jobs[i]};
		memcpy(op->jobs[i]->batch_id, op->id, sizeof op->id);
		free(op->jobs[i]->idem_key); /* keys belong to single submissions */
		op->jobs[i]->idem_key = NULL;
		rc = apply_submit(st, &one);
	}
	if (rc != SQLITE_OK && !sqlite3_get_autocommit(st->wdb))
		exec_sql(st->wdb, "ROLLBACK TO batch");
	if (!sqlite3_get_autocommit(st->wdb))
		exec_sql(st->wdb, "RELEASE batch");
	return rc;
}

/* After a job of batch_id ended: marks the batch finished when none of its
 * jobs waits or runs any more; *done tells whether it just did. */
static int check_batch_done(struct store *st, const char *batch_id, bool *done)
{
	if (!batch_id[0])
		return SQLITE_OK;
	int64_t unused = 0;
	sqlite3_stmt *s = st->wstmt[SQL_BATCH_DONE];
	sqlite3_bind_text(s, 1, batch_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, clock_now_ms());
	int rc = step_int64(s, &unused);
	*done = rc == SQLITE_OK && sqlite3_changes(st->wdb) > 0;
	return rc;
}

static int apply_callback(struct store *st, struct store_op *op)
{
	int64_t unused = 0;
	sqlite3_stmt *s = st->wstmt[op->is_batch ? SQL_CALLBACK_BATCH : SQL_CALLBACK_JOB];
	sqlite3_bind_text(s, 1, op->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, (int)op->delivery);
	bind_int64_or_null(s, 3, op->delivery == DELIVERY_PENDING ? op->next_at : 0);
	bind_int64_or_null(s, 4, op->status);
	bind_text_or_null(s, 5, op->url);
	return step_int64(s, &unused);
}

/* Per-op outcome of the group, kept until the COMMIT decides. */
struct applied {
	bool changed;                 /* hooks.transition after commit */
	bool finished;                /* hooks.finished after commit */
	bool batch_done;              /* hooks.batch_done(op->batch_id) after commit */
	bool runnable;                /* hooks.submitted after commit */
	struct claim_scratch claim;
};

static void report(struct store *st, const char *id, const char *queue, const char *type,
                   enum job_state state, int attempts)
{
	struct job_change c = {.id = id, .queue = queue, .type = type, .state = state, .attempts = attempts};
	st->hooks.transition(st->hooks.arg, &c);
}

static void report_job(struct store *st, const struct job *job, enum job_state state, int attempts,
                       bool created)
{
	struct job_change c = {.id = job->id, .queue = job->queue, .type = job->type, .state = state,
	                       .attempts = attempts, .created = created, .job = job};
	st->hooks.transition(st->hooks.arg, &c);
}

/* Reports the state changes an op committed, in order. */
static void report_changes(struct store *st, struct store_op *op, const struct applied *ap)
{
	if (!st->hooks.transition || op->rc != STORE_OK)
		return;
	switch (op->kind) {
	case STORE_OP_SUBMIT:
		if (!op->replayed)
			report_job(st, op->job, op->job->state, 0, true);
		break;
	case STORE_OP_BATCH:
		for (int j = 0; j < op->njobs; j++)
			report_job(st, op->jobs[j], op->jobs[j]->state, 0, true);
		break;
	case STORE_OP_CLAIM:
		for (int j = 0; j < ap->claim.npromoted; j++) {
			const struct promoted *p = &ap->claim.promoted[j];
			report(st, p->id, p->queue, p->type, JOB_QUEUED, p->attempts);
		}
		for (int j = 0; j < ap->claim.n; j++)
			report_job(st, ap->claim.jobs[j], JOB_RUNNING, ap->claim.jobs[j]->attempts, false);
		break;
	case STORE_OP_FINISH:
		if (ap->changed)
			report_job(st, op->job, op->job->state,
			           op->job->state == JOB_QUEUED ? op->job->attempts - 1 : op->job->attempts, false);
		break;
	case STORE_OP_CANCEL:
		if (ap->finished)
			report(st, op->id, op->queue, op->type, JOB_CANCELED, 0);
		break;
	case STORE_OP_RETRY:
		if (op->job)
			report_job(st, op->job, JOB_QUEUED, op->job->attempts, false);
		break;
	default:
		break;
	}
}

static void complete_group(struct store *st, struct store_op **ops, struct applied *ap,
                           int n, bool committed)
{
	bool submitted = false;
	for (int i = 0; i < n; i++) {
		struct store_op *op = ops[i];
		if (!committed)
			op->rc = STORE_UNAVAILABLE;
		report_changes(st, op, &ap[i]);
		if (op->kind == STORE_OP_CLAIM) {
			op->nclaimed = op->rc == STORE_OK ? ap[i].claim.n : 0;
			for (int j = 0; j < ap[i].claim.n; j++) {
				if (op->rc == STORE_OK)
					op->claimed(op, ap[i].claim.jobs[j]);
				else
					job_free(ap[i].claim.jobs[j]);
			}
			free(ap[i].claim.jobs);
			free(ap[i].claim.promoted);
		}
		if (op->rc == STORE_OK && ap[i].runnable)
			submitted = true;
		if (op->rc == STORE_OK && ap[i].finished && st->hooks.finished) {
			if (op->kind == STORE_OP_CANCEL)
				st->hooks.finished(st->hooks.arg, op->id, op->queue);
			else
				st->hooks.finished(st->hooks.arg, op->job->id, op->job->queue);
		}
		if (op->rc == STORE_OK && ap[i].batch_done && st->hooks.batch_done)
			st->hooks.batch_done(st->hooks.arg, op->batch_id);
		op->done(op);
	}
	if (submitted && st->hooks.submitted)
		st->hooks.submitted(st->hooks.arg);
}

/* Whether a group needs its COMMIT synced: only claims (and pings) do
 * not. A claim lost in a crash leaves its jobs queued; one that survives
 * is requeued by recovery; either way nothing acknowledged is lost. And
 * the WAL is one file written in order, so the next synced COMMIT makes
 * every earlier one durable too. Sparing those fsyncs takes one off
 * every job's path from submit to finished. */
static bool set_sync_for(struct store *st, struct store_op **ops, int n)
{
	bool durable = false;
	for (int i = 0; i < n && !durable; i++)
		durable = ops[i]->kind != STORE_OP_CLAIM && ops[i]->kind != STORE_OP_PING;
	if (durable != !st->sync_relaxed &&
	    exec_sql(st->wdb, durable ? st->sync_pragma : "PRAGMA synchronous = OFF") == SQLITE_OK)
		st->sync_relaxed = !durable;
	return !durable || !st->sync_relaxed; /* never commit a durable group unsynced */
}

static void apply_group(struct store *st, struct store_op **ops, int n)
{
	struct applied ap[WRITER_BATCH];
	memset(ap, 0, sizeof(struct applied) * (size_t)n);
	bool ok = set_sync_for(st, ops, n) && exec_sql(st->wdb, "BEGIN IMMEDIATE") == SQLITE_OK;
	for (int i = 0; ok && i < n; i++) {
		struct store_op *op = ops[i];
		op->rc = STORE_OK;
		int rc = SQLITE_OK;
		switch (op->kind) {
		case STORE_OP_SUBMIT:
			rc = apply_submit(st, op);
			ap[i].runnable = true;
			break;
		case STORE_OP_CLAIM: rc = apply_claim(st, op, &ap[i].claim); break;
		case STORE_OP_BATCH:
			rc = apply_batch(st, op);
			ap[i].runnable = true;
			break;
		case STORE_OP_CALLBACK: rc = apply_callback(st, op); break;
		case STORE_OP_FINISH:
			rc = apply_finish(st, op, &ap[i].changed, &ap[i].finished, &ap[i].batch_done);
			ap[i].runnable = op->job->state == JOB_QUEUED || op->job->state == JOB_SCHEDULED;
			break;
		case STORE_OP_CANCEL: rc = apply_cancel(st, op, &ap[i].finished, &ap[i].batch_done); break;
		case STORE_OP_RETRY: rc = apply_retry(st, op, &ap[i].runnable); break;
		case STORE_OP_DELETE: rc = apply_delete(st, op); break;
		case STORE_OP_PAUSE:
			rc = apply_pause(st, op);
			ap[i].runnable = !op->paused;
			break;
		case STORE_OP_PING: rc = apply_ping(st); break;
		case STORE_OP_PROBE: rc = apply_probe(st, op); break;
		}
		if (rc != SQLITE_OK) {
			log_error("store %d failed: %s", (int)op->kind, sqlite3_errstr(rc));
			st->probe_ok_at = 0;
			st->probe_wrote = false;
			op->rc = STORE_UNAVAILABLE;
			ap[i].changed = ap[i].finished = ap[i].runnable = ap[i].batch_done = false;
			/* FULL, IOERR, NOMEM and BUSY may have rolled the whole
			 * transaction back: then nothing in the group holds. */
			if (sqlite3_get_autocommit(st->wdb))
				ok = false;
		}
	}
	if (ok && exec_sql(st->wdb, "COMMIT") != SQLITE_OK)
		ok = false;
	if (ok) {
		atomic_fetch_add(&st->commits, 1);
		atomic_fetch_add(&st->committed_ops, (uint_fast64_t)n);
	}
	if (!ok && !sqlite3_get_autocommit(st->wdb))
		exec_sql(st->wdb, "ROLLBACK");
	if (!ok)
		st->probe_ok_at = 0;
	else if (st->probe_wrote)
		st->probe_ok_at = clock_mono_ms();
	st->probe_wrote = false;
	complete_group(st, ops, ap, n, ok);
}

/* Deletes up to SWEEP_BATCH expired jobs in one short transaction and
 * sets the next sweep time: now again if the batch was full, else the
 * next expiry. */
static void sweep(struct store *st)
{
	int64_t now = clock_now_ms(), next = 0;
	sqlite3_stmt *a = st->wstmt[SQL_SWEEP_ATTEMPTS], *j = st->wstmt[SQL_SWEEP_JOBS];
	sqlite3_bind_int64(a, 1, now);
	sqlite3_bind_int64(j, 1, now);
	int64_t unused = 0;
	int deleted = 0;
	bool ok = exec_sql(st->wdb, "BEGIN IMMEDIATE") == SQLITE_OK &&
	          step_int64(a, &unused) == SQLITE_OK &&
	          step_int64(j, &unused) == SQLITE_OK &&
	          (deleted = sqlite3_changes(st->wdb), exec_sql(st->wdb, "COMMIT") == SQLITE_OK);
	if (!ok) {
		if (!sqlite3_get_autocommit(st->wdb))
			exec_sql(st->wdb, "ROLLBACK");
		st->probe_ok_at = 0;
		st->next_sweep = now + 1000; /* try again in a second */
		return;
	}
	if (deleted > 0)
		log_debug("retention: deleted %d finished job(s)", deleted);
	if (deleted >= SWEEP_BATCH)
		st->next_sweep = now;
	else if (step_int64(st->wstmt[SQL_NEXT_EXPIRY], &next) == SQLITE_OK)
		st->next_sweep = next ? next : INT64_MAX;
	else
		st->next_sweep = now + 1000;
}

/* Waits for ops or the next sweep, whichever comes first. Caller holds
 * st->mu. The sweep time is on the wall clock (expiry is a timestamp);
 * waits are at most a minute so a clock jump cannot stall it long. */
static void writer_wait(struct store *st)
{
	int64_t wait_ms = st->next_sweep == INT64_MAX ? 60000 : st->next_sweep - clock_now_ms();
	if (wait_ms > 60000)
		wait_ms = 60000;
	if (wait_ms > 0)
		clock_cond_wait_until(&st->cv, &st->mu, clock_mono_ms() + wait_ms);
}

/* Moves the probes among ops[n] to the end, keeping the order of the
 * rest; returns how many ops are not probes. */
static int probes_last(struct store_op **ops, int n)
{
	int k = n;
	/* From the end: ops[i+1..k) hold no probe, so a probe found at i moves
	 * to k-1 past them (probes are rare; most groups hold none). */
	for (int i = n - 1; i >= 0; i--) {
		if (ops[i]->kind != STORE_OP_PROBE)
			continue;
		struct store_op *probe = ops[i];
		memmove(ops + i, ops + i + 1, (size_t)(k - 1 - i) * sizeof *ops);
		ops[--k] = probe;
	}
	return k;
}

static void *writer_main(void *arg)
{
	struct store *st = arg;
	struct store_op *ops[WRITER_BATCH];
	met_damage = false;
	for (;;) {
		pthread_mutex_lock(&st->mu);
		while (!st->head && !st->stopping && clock_now_ms() < st->next_sweep)
			writer_wait(st);
		if (!st->head && !st->stopping) {
			pthread_mutex_unlock(&st->mu);
			sweep(st);
			note_damage(st);
			continue;
		}
		if (!st->head) {
			pthread_mutex_unlock(&st->mu);
			break;
		}
		int n = 0;
		while (st->head && n < WRITER_BATCH) {
			ops[n++] = st->head;
			st->head = st->head->next;
		}
		if (!st->head)
			st->tail = NULL;
		pthread_mutex_unlock(&st->mu);
		/* Probes commit on their own, after the rest: their write must
		 * never be what fails real work on a nearly full disk. */
		int k = probes_last(ops, n);
		if (k > 0)
			apply_group(st, ops, k);
		if (k < n)
			apply_group(st, ops + k, n - k);
		if (clock_now_ms() >= st->next_sweep)
			sweep(st);
		note_damage(st);
	}
	return NULL;
}

void store_post(struct store *st, struct store_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&st->mu);
	if (st->tail)
		st->tail->next = op;
	else
		st->head = op;
	st->tail = op;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

struct sync_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void sync_done(struct store_op *op)
{
	struct sync_wait *w = op->sync;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

enum store_rc store_run(struct store *st, struct store_op *op)
{
	struct sync_wait w = {.done = false};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	op->done = sync_done;
	op->sync = &w;
	store_post(st, op);
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	op->sync = NULL;
	return op->rc;
}

/* ---- open and close ------------------------------------------------- */

/* The directory must exist: said plainly, that is the commonest mistake. */
static int check_dir(const char *path, char *why, size_t whylen)
{
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return 0;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	struct stat sb;
	if (stat(dir, &sb) != 0) {
		snprintf(why, whylen, "directory %.300s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(why, whylen, "%.300s is not a directory", dir);
		return -1;
	}
	return 0;
}

static int take_lock(struct store *st, char *why, size_t whylen)
{
	char lock_path[4096];
	snprintf(lock_path, sizeof lock_path, "%s.lock", st->path);
	st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (st->lock_fd < 0) {
		snprintf(why, whylen, "cannot create its lock file %.300s: %s", lock_path, strerror(errno));
		return -1;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		snprintf(why, whylen, "it is in use by another jobqd (%.300s is locked)", lock_path);
		return -1;
	}
	return 0;
}

/* SQLite opens a file it may not write read-only, without a word; jobqd
 * must write, so that is a start-up error, with the system's reason. */
static int check_writable(struct store *st, char *why, size_t whylen)
{
	if (sqlite3_db_readonly(st->wdb, "main") != 1)
		return SQLITE_OK;
	int fd = open(st->path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "the file is read-only: %s", strerror(errno));
	} else {
		snprintf(why, whylen, "SQLite opened the file read-only");
		close(fd);
	}
	return SQLITE_READONLY;
}

/* Interrupts a quick_check that outlives its budget. */
struct check_watch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;        /* the check is over */
	bool fired;       /* the watch interrupted it */
	int64_t deadline; /* monotonic ms */
	sqlite3 *db;
};

static void *check_watch_main(void *arg)
{
	struct check_watch *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->done && clock_mono_ms() < w->deadline)
		clock_cond_wait_until(&w->cv, &w->mu, w->deadline);
	/* Again every 5 ms until it ends: an interrupt that lands before
	 * the statement starts is forgotten. */
	while (!w->done) {
		sqlite3_interrupt(w->db);
		w->fired = true;
		clock_cond_wait_until(&w->cv, &w->mu, clock_mono_ms() + 5);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* PRAGMA quick_check (every page of every table and index is read and its
 * structure checked, without comparing indexes to tables) for at most
 * budget_s: a watch thread interrupts it then, and a warning says the
 * check was cut short. Returns SQLITE_CORRUPT with the first finding in
 * why when it finds damage, another SQLite code when it cannot run. */
static int check_integrity(struct store *st, double budget_s, char *why, size_t whylen)
{
	struct check_watch w = {.db = st->wdb, .deadline = clock_mono_ms() + (int64_t)(budget_s * 1000)};
	pthread_mutex_init(&w.mu, NULL);
	clock_cond_init(&w.cv);
	pthread_t watch;
	bool watching = pthread_create(&watch, NULL, check_watch_main, &w) == 0;
	int64_t started = clock_mono_ms();
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->wdb, "PRAGMA quick_check(1)", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *found = (const char *)sqlite3_column_text(s, 0);
		if (found && strcmp(found, "ok") != 0) {
			/* Findings span lines ("*** in database main ***\n..."). */
			snprintf(why, whylen, "quick_check: %s", found);
			for (char *c = why; *c; c++)
				if (*c == '\n' || *c == '\r' || *c == '\t')
					*c = ' ';
			rc = SQLITE_CORRUPT;
		} else {
			rc = SQLITE_OK;
		}
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	} else if (rc != SQLITE_OK) {
		snprintf(why, whylen, "%s", sqlite3_errmsg(st->wdb));
	}
	sqlite3_finalize(s);
	pthread_mutex_lock(&w.mu);
	w.done = true;
	pthread_cond_signal(&w.cv);
	pthread_mutex_unlock(&w.mu);
	if (watching)
		pthread_join(watch, NULL);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	if ((rc & 0xff) == SQLITE_INTERRUPT && w.fired) {
		log_warn("database %s: the integrity check stopped after %.1f s (--integrity-check); "
		         "it found no damage in what it read", st->path, (double)(clock_mono_ms() - started) / 1000);
		return SQLITE_OK;
	}
	return rc;
}

/* Opens the writer connection, sets it up and migrates; returns the
 * SQLite code, with the reason in why on failure. */
static int open_writer(struct store *st, const struct store_options *opts, char *why, size_t whylen)
{
	int rc = open_conn(st->path, &st->wdb, why, whylen);
	if (rc != SQLITE_OK || (rc = check_writable(st, why, whylen)) != SQLITE_OK)
		return rc;
	st->sync_pragma = opts->sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
	const char *setup[] = {
		"PRAGMA journal_mode = WAL", st->sync_pragma, "PRAGMA journal_size_limit = 67108864",
		/* A group (a 10,000-job batch, or a thousand submits) dirties
		 * thousands of pages; with the default 2 MiB cache SQLite spills
		 * them to the WAL mid-transaction and writes many pages several
		 * times over. 64 MiB keeps a whole group in memory. */
		"PRAGMA cache_size = -65536",
		/* Inside a group every INSERT or UPDATE that may fail alone (a
		 * UNIQUE id, the count triggers) keeps a statement journal: the
		 * old copy of every page it touches. In a temp file that was two
		 * write() calls per page, 20,000 for a 1,000-job batch. */
		"PRAGMA temp_store = MEMORY",
	};
	for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++)
		if ((rc = open_exec(st->wdb, setup[i], why, whylen)) != SQLITE_OK)
			return rc;
	if (opts->integrity_check_s > 0 && (rc = check_integrity(st, opts->integrity_check_s, why, whylen)) != SQLITE_OK)
		return rc;
	if ((rc = migrate(st->wdb, why, whylen)) != SQLITE_OK)
		return rc;
	for (int i = 0; i < SQL_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->wdb, writer_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->wstmt[i], NULL);
		if (rc != SQLITE_OK) {
			snprintf(why, whylen, "%s", sqlite3_errmsg(st->wdb));
			return rc;
		}
	}
	return SQLITE_OK;
}

/* Jobs left running belong to a process that died (we hold the lock, so
 * no other jobqd runs them). Their attempt is recorded as interrupted; the
 * attempt was counted when they were claimed, so a job that crashes jobqd
 * every time ends failed after max_attempts runs instead of looping.
 * Returns the SQLite code, with the reason in why on failure. */
static int recover(struct store *st, char *why, size_t whylen)
{
	char sql[2048];
	int64_t now = clock_now_ms();
	snprintf(sql, sizeof sql,
	         "BEGIN IMMEDIATE;"
	         "INSERT OR REPLACE INTO job_attempts (job_seq, attempt, started_at, finished_at, outcome, error)"
	         "  SELECT seq, attempts, started_at, %lld, 'interrupted', 'jobqd stopped while the job ran'"
	         "  FROM jobs WHERE state = 1;"
	         "UPDATE jobs SET state = 3, finished_at = %lld, expires_at = " EXPIRES("%lld") ","
	         CALLBACK_DUE("%lld") ","
	         "  error = 'interrupted: jobqd stopped while the job ran and no attempts are left'"
	         "  WHERE state = 1 AND attempts >= max_attempts;"
	         "UPDATE jobs SET state = 0, started_at = NULL WHERE state = 1;"
	         "UPDATE batches SET finished_at = %lld,"
	         "  callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 0 END,"
	         "  callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE %lld END"
	         "  WHERE finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM batch_counts"
	         "    WHERE batch_id = batches.id AND state IN (0, 1, 5) AND n > 0);"
	         "COMMIT;",
	         (long long)now, (long long)now, (long long)now, (long long)now, (long long)now,
	         (long long)now);
	int before = sqlite3_total_changes(st->wdb);
	int rc = open_exec(st->wdb, sql, why, whylen);
	if (rc != SQLITE_OK) {
		sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	int n = (sqlite3_total_changes(st->wdb) - before) / 2;
	if (n > 0)
		log_warn("recovered %d job(s) left running by a previous process", n);
	return SQLITE_OK;
}

/* Whether an SQLite code says the file itself is damaged. */
static bool is_damage(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

int store_open(const struct store_options *opts, const struct store_hooks *hooks,
               struct store **out, char *err, size_t errlen)
{
	pthread_once(&log_once, install_log);
	struct store *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return STORE_OPEN_FAILED;
	}
	int result = STORE_OPEN_FAILED;
	char why[512] = "";
	st->lock_fd = -1;
	st->path = strdup(opts->path);
	if (hooks)
		st->hooks = *hooks;
	pthread_mutex_init(&st->mu, NULL);
	clock_cond_init(&st->cv);
	pthread_mutex_init(&st->readers_mu, NULL);
	st->next_sweep = 0; /* sweep once right after start */
	if (!st->path) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (check_dir(st->path, why, sizeof why) != 0 || take_lock(st, why, sizeof why) != 0) {
		snprintf(err, errlen, "cannot open database %s: %s", st->path, why);
		goto fail;
	}
	int rc = open_writer(st, opts, why, sizeof why);
	if (rc == SQLITE_OK)
		rc = recover(st, why, sizeof why);
	if (rc != SQLITE_OK && is_damage(rc)) {
		snprintf(err, errlen, "database %s is damaged (%s): restore it from a backup, or salvage "
		         "what is left with sqlite3's .recover", st->path, why);
		result = STORE_OPEN_DAMAGED;
		goto fail;
	}
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database %s: %s", st->path, why);
		goto fail;
	}
	met_damage = false; /* reported above, or nothing */
	if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
		snprintf(err, errlen, "cannot start the store writer thread");
		goto fail;
	}
	st->writer_started = true;
	*out = st;
	return 0;
fail:
	met_damage = false;
	store_close(st);
	return result;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->writer_started) {
		pthread_mutex_lock(&st->mu);
		st->stopping = true;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->writer, NULL);
	}
	for (int i = 0; i < st->nreaders; i++)
		reader_close(st->all_readers[i]);
	for (int i = 0; i < SQL_COUNT; i++)
		sqlite3_finalize(st->wstmt[i]);
	if (st->wdb && sqlite3_close(st->wdb) != SQLITE_OK)
		log_error("closing the database: %s", sqlite3_errmsg(st->wdb));
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	pthread_mutex_destroy(&st->readers_mu);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st->ready);
	free(st->path);
	free(st);
}

/* ---- reads ---------------------------------------------------------- */

/* Loads job's attempt history; -1 on failure. */
static int read_history(struct reader *r, struct job *job)
{
	sqlite3_stmt *s = r->history;
	sqlite3_bind_int64(s, 1, job->seq);
	int rc, cap = 0;
	job->has_history = true;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (job->nhistory == cap) {
			cap = cap ? cap * 2 : 4;
			struct job_attempt *h = realloc(job->history, (size_t)cap * sizeof *h);
			if (!h) {
				rc = SQLITE_NOMEM;
				break;
			}
			job->history = h;
		}
		struct job_attempt *a = &job->history[job->nhistory++];
		memset(a, 0, sizeof *a);
		a->attempt = sqlite3_column_int(s, 0);
		a->started_at = sqlite3_column_int64(s, 1);
		a->finished_at = sqlite3_column_int64(s, 2);
		const unsigned char *outcome = sqlite3_column_text(s, 3);
		if (!outcome || attempt_outcome_parse((const char *)outcome, &a->outcome) != 0)
			a->outcome = ATTEMPT_FAILED;
		a->error = column_strdup(s, 4);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

enum store_rc store_get_job(struct store *st, const char *id, struct job **out)
{
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	sqlite3_bind_text(r->get, 1, id, -1, SQLITE_STATIC);
	enum store_rc rc = STORE_OK;
	int step = sqlite3_step(r->get);
	if (step == SQLITE_ROW) {
		*out = row_to_job(r->get);
		sqlite3_reset(r->get);
		if (!*out || read_history(r, *out) != 0) {
			job_free(*out);
			*out = NULL;
			rc = STORE_UNAVAILABLE;
		}
	} else if (step == SQLITE_DONE) {
		rc = STORE_NOT_FOUND;
	} else {
		log_error("reading job %s: %s", id, sqlite3_errmsg(r->db));
		rc = STORE_UNAVAILABLE;
	}
	sqlite3_reset(r->get);
	sqlite3_clear_bindings(r->get);
	reader_give(st, r);
	return rc;
}

enum { LIST_STATE = 1, LIST_QUEUE = 2, LIST_TYPE = 4, LIST_BEFORE = 8 };

static void list_sql(int variant, char *sql, size_t n)
{
	snprintf(sql, n, "SELECT " JOB_COLUMNS " FROM jobs WHERE 1%s%s%s%s ORDER BY seq DESC LIMIT ?5",
	         variant & LIST_STATE ? " AND state = ?1" : "",
	         variant & LIST_QUEUE ? " AND queue = ?2" : "",
	         variant & LIST_TYPE ? " AND type = ?3" : "",
	         variant & LIST_BEFORE ? " AND seq < ?4" : "");
}

enum store_rc store_list_jobs(struct store *st, const struct store_filter *f,
                              struct job ***jobs, size_t *n, int64_t *next_seq)
{
	int limit = f->limit < 1 ? 1 : f->limit;
	int variant = (f->has_state ? LIST_STATE : 0) | (f->queue ? LIST_QUEUE : 0) |
	              (f->type ? LIST_TYPE : 0) | (f->before_seq > 0 ? LIST_BEFORE : 0);
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	enum store_rc rc = STORE_OK;
	struct job **out = NULL;
	size_t count = 0;
	if (!r->list[variant]) {
		char sql[512];
		list_sql(variant, sql, sizeof sql);
		if (prepare(r->db, sql, &r->list[variant]) != SQLITE_OK) {
			rc = STORE_UNAVAILABLE;
			goto out;
		}
	}
	sqlite3_stmt *s = r->list[variant];
	if (f->has_state)
		sqlite3_bind_int(s, 1, (int)f->state);
	if (f->queue)
		sqlite3_bind_text(s, 2, f->queue, -1, SQLITE_STATIC);
	if (f->type)
		sqlite3_bind_text(s, 3, f->type, -1, SQLITE_STATIC);
	if (f->before_seq > 0)
		sqlite3_bind_int64(s, 4, f->before_seq);
	/* One row more than asked tells whether another page exists. */
	sqlite3_bind_int(s, 5, limit + 1);
	out = calloc((size_t)limit + 1, sizeof *out);
	int step = SQLITE_DONE;
	while (out && (step = sqlite3_step(s)) == SQLITE_ROW) {
		struct job *job = row_to_job(s);
		if (!job) {
			step = SQLITE_NOMEM;
			break;
		}
		out[count++] = job;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (!out || step != SQLITE_DONE) {
		log_error("listing jobs: %s", out ? sqlite3_errstr(step) : "out of memory");
		rc = STORE_UNAVAILABLE;
		goto out;
	}
	*next_seq = 0;
	if (count > (size_t)limit) {
		job_free(out[--count]);
		*next_seq = out[count - 1]->seq;
	}
	*jobs = out;
	*n = count;
	out = NULL;
	count = 0;
out:
	for (size_t i = 0; i < count; i++)
		job_free(out[i]);
	free(out);
	reader_give(st, r);
	return rc;
}

/* ---- queues --------------------------------------------------------- */

enum store_rc store_get_queue(struct store *st, const char *name, struct queue_info *out)
{
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", name);
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	int rc;
	sqlite3_bind_text(r->queue_counts, 1, name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(r->queue_counts)) == SQLITE_ROW) {
		int state = sqlite3_column_int(r->queue_counts, 0);
		if (state >= 0 && state < JOB_STATE_COUNT)
			out->counts[state] = sqlite3_column_int64(r->queue_counts, 1);
	}
	sqlite3_reset(r->queue_counts);
	sqlite3_clear_bindings(r->queue_counts);
	int64_t paused = 0;
	if (rc == SQLITE_DONE) {
		sqlite3_bind_text(r->queue_paused, 1, name, -1, SQLITE_STATIC);
		rc = step_int64(r->queue_paused, &paused) == SQLITE_OK ? SQLITE_DONE : SQLITE_ERROR;
	}
	if (rc == SQLITE_DONE) {
		sqlite3_bind_text(r->queue_oldest, 1, name, -1, SQLITE_STATIC);
		rc = step_int64(r->queue_oldest, &out->oldest_queued_run_at) == SQLITE_OK ? SQLITE_DONE : SQLITE_ERROR;
	}
	out->paused = paused != 0;
	reader_give(st, r);
	if (rc != SQLITE_DONE) {
		log_error("reading queue %s failed", name);
		return STORE_UNAVAILABLE;
	}
	return STORE_OK;
}

enum store_rc store_list_queue_names(struct store *st, const char *after, int max,
                                     char (**names)[JOB_NAME_MAX + 1], size_t *n)
{
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	char (*out)[JOB_NAME_MAX + 1] = NULL;
	size_t count = 0, cap = 0;
	int rc;
	/* Both halves of the UNION walk a primary key from `after` on and are
	 * merged in order, so a page reads about max rows however many
	 * queues there are. */
	sqlite3_bind_text(r->queue_names, 1, after ? after : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(r->queue_names, 2, max < 1 ? 1 : max);
	while ((rc = sqlite3_step(r->queue_names)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 16;
			char (*grown)[JOB_NAME_MAX + 1] = realloc(out, cap * sizeof *out);
			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			out = grown;
		}
		column_copy(r->queue_names, 0, out[count++], sizeof out[0]);
	}
	sqlite3_reset(r->queue_names);
	sqlite3_clear_bindings(r->queue_names);
	reader_give(st, r);
	if (rc != SQLITE_DONE) {
		log_error("listing queues: %s", sqlite3_errstr(rc));
		free(out);
		return STORE_UNAVAILABLE;
	}
	*names = out;
	*n = count;
	return STORE_OK;
}

/* Every queue with queued jobs, deepest first, with its oldest queued
 * job: one index probe per such queue, no scan of the jobs. */
static const char deepest_sql[] =
	"SELECT c.queue, c.n, (SELECT run_at FROM jobs INDEXED BY jobs_queued_since"
	"  WHERE state = 0 AND queue = c.queue ORDER BY run_at LIMIT 1)"
	" FROM queue_counts c WHERE c.state = 0 AND c.n > 0 ORDER BY c.n DESC, c.queue";

enum store_rc store_deepest_queues(struct store *st, struct queue_info *out, int top, int *n,
                                   struct queue_info *rest)
{
	*n = 0;
	memset(rest, 0, sizeof *rest);
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	/* Prepared per call: a scrape runs it seldom, and the reader's
	 * statements stay the ones every request needs. */
	sqlite3_stmt *s = NULL;
	int rc = prepare(r->db, deepest_sql, &s);
	while (s && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct queue_info *q = rest;
		if (*n < top) {
			q = &out[(*n)++];
			memset(q, 0, sizeof *q);
			column_copy(s, 0, q->name, sizeof q->name);
		}
		q->counts[JOB_QUEUED] += sqlite3_column_int64(s, 1);
		int64_t oldest = sqlite3_column_int64(s, 2);
		if (oldest && (!q->oldest_queued_run_at || oldest < q->oldest_queued_run_at))
			q->oldest_queued_run_at = oldest;
	}
	sqlite3_finalize(s);
	reader_give(st, r);
	if (rc != SQLITE_DONE) {
		log_error("reading queue depths: %s", sqlite3_errstr(rc));
		*n = 0;
		return STORE_UNAVAILABLE;
	}
	return STORE_OK;
}

/* ---- batches and callbacks ------------------------------------------ */

enum store_rc store_get_batch(struct store *st, const char *id, struct batch_info *out)
{
	memset(out, 0, sizeof *out);
	out->callback.state = DELIVERY_NONE;
	snprintf(out->id, sizeof out->id, "%s", id);
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	enum store_rc rc = STORE_OK;
	sqlite3_stmt *s = r->batch_get;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(s);
	if (step == SQLITE_ROW) {
		out->total = sqlite3_column_int64(s, 0);
		out->created_at = sqlite3_column_int64(s, 1);
		out->finished_at = sqlite3_column_int64(s, 2);
		column_delivery(s, 3, &out->callback);
	} else {
		rc = step == SQLITE_DONE ? STORE_NOT_FOUND : STORE_UNAVAILABLE;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	s = r->batch_counts;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	while (rc == STORE_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
		int state = sqlite3_column_int(s, 0);
		if (state >= 0 && state < JOB_STATE_COUNT)
			out->counts[state] = sqlite3_column_int64(s, 1);
	}
	if (rc == STORE_OK && step != SQLITE_DONE)
		rc = STORE_UNAVAILABLE;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	reader_give(st, r);
	return rc;
}

enum store_rc store_due_callbacks(struct store *st, int64_t now, struct due_callback *out, int max,
                                  int *n, int64_t *next)
{
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	int rc = SQLITE_DONE;
	*n = 0;
	sqlite3_stmt *lists[] = {r->due_jobs, r->due_batches};
	for (int b = 0; b < 2 && rc == SQLITE_DONE; b++) {
		sqlite3_stmt *s = lists[b];
		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_int(s, 2, max - *n);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
			column_copy(s, 0, out[*n].id, sizeof out[*n].id);
			out[(*n)++].is_batch = b == 1;
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
	int64_t a = 0, b = 0;
	if (rc == SQLITE_DONE && step_int64(r->next_jobs, &a) == SQLITE_OK &&
	    step_int64(r->next_batches, &b) == SQLITE_OK)
		*next = a && b ? (a < b ? a : b) : (a ? a : b);
	else
		rc = SQLITE_ERROR;
	reader_give(st, r);
	return rc == SQLITE_DONE ? STORE_OK : STORE_UNAVAILABLE;
}

/* ---- introspection for tests ----------------------------------------- */

char *store_explain(struct store *st, const char *query)
{
	/* Not static: an element of a const array is not a constant
	 * expression in ISO C (gcc accepts it, clang does not). */
	const struct { const char *name; const char *sql; } named[] = {
		{"claim", writer_sql[SQL_CLAIM]}, {"promote", writer_sql[SQL_PROMOTE]},
		{"next_due", writer_sql[SQL_NEXT_DUE]}, {"sweep", writer_sql[SQL_SWEEP_JOBS]},
		{"oldest_queued", reader_sql[4]}, {"get", reader_sql[0]},
	};
	char sql[700];
	const char *found = NULL;
	for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
		if (strcmp(query, named[i].name) == 0)
			found = named[i].sql;
	if (found) {
		snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", found);
	} else {
		static const struct { const char *name; int variant; } lists[] = {
			{"list_all", LIST_BEFORE}, {"list_state", LIST_STATE | LIST_BEFORE},
			{"list_queue", LIST_QUEUE | LIST_BEFORE}, {"list_type", LIST_TYPE | LIST_BEFORE},
			{"list_state_queue", LIST_STATE | LIST_QUEUE | LIST_BEFORE},
			{"list_state_type", LIST_STATE | LIST_TYPE | LIST_BEFORE},
			{"list_queue_type", LIST_QUEUE | LIST_TYPE | LIST_BEFORE},
			{"list_state_queue_type", LIST_STATE | LIST_QUEUE | LIST_TYPE | LIST_BEFORE},
			{"list_first_page", 0},
			{"list_state_queue_first_page", LIST_STATE | LIST_QUEUE},
		};
		int variant = -1;
		for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
			if (strcmp(query, lists[i].name) == 0)
				variant = lists[i].variant;
		if (variant < 0)
			return NULL;
		char inner[512];
		list_sql(variant, inner, sizeof inner);
		snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", inner);
	}
	struct reader *r = reader_take(st);
	if (!r)
		return NULL;
	sqlite3_stmt *s = NULL;
	char *plan = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&plan, &len);
	if (mem && sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) == SQLITE_OK)
		while (sqlite3_step(s) == SQLITE_ROW)
			fprintf(mem, "%s\n", (const char *)sqlite3_column_text(s, 3));
	sqlite3_finalize(s);
	if (mem)
		fclose(mem);
	reader_give(st, r);
	return plan;
}

void store_get_stats(struct store *st, struct store_stats *out)
{
	out->commits = atomic_load(&st->commits);
	out->ops = atomic_load(&st->committed_ops);
}

int store_schema_version(struct store *st)
{
	struct reader *r = reader_take(st);
	if (!r)
		return -1;
	int v = user_version(r->db);
	reader_give(st, r);
	return v;
}
