/* The SQLite backend: one database file, one write connection (driven by
 * store/writer.c on its thread), a pool of read-only connections.
 *
 * Readers borrow connections from the pool (WAL lets them read beside the
 * writer) and hold no transaction longer than one statement, so the WAL
 * can always be checkpointed. The pool is sized by store_options.readers
 * (one per thread that may read at once); a reader beyond it waits for a
 * connection to come back rather than failing.
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
 * Each op runs inside a SAVEPOINT within the group transaction, so an op
 * that fails halfway (a claim that runs out of memory reading its rows)
 * is rolled back alone. */
#include "store/sqlite.h"

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
#include "core/deps.h"
#include "core/log.h"
#include "store/backend.h"
#include "store/sqlite_schema.h"

#define PROMOTE_BATCH 1000
#define SWEEP_BATCH 500
#define BUSY_TIMEOUT_MS 5000
#define DEFAULT_READERS 64
#define FIRE_READ_MAX 64   /* due schedules read at once, at most */
#define LIST_VARIANTS 64 /* state, queue, type, cursor, batch, ids: one bit each */

#define JOB_COLUMNS "seq, id, type, queue, priority, state, payload, result, error, " \
	"progress_percent, progress_message, attempts, created_at, started_at, finished_at, " \
	"max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at, " \
	"batch_id, callback_url, callback_state, callback_attempts, callback_status, callback_error, " \
	"depends_on, dep_policy, deps_pending, schedule_name, schedule_fire_at"
#define JOB_NCOLUMNS 32 /* a column after JOB_COLUMNS has this number */

enum {
	SQL_INSERT, SQL_PROMOTE, SQL_READY_QUEUES, SQL_CLAIM, SQL_NEXT_DUE, SQL_FINISH,
	SQL_REQUEUE, SQL_ATTEMPT, SQL_STATE_OF, SQL_CANCEL_SET, SQL_RETRY_SET,
	SQL_DELETE_ATTEMPTS, SQL_DELETE_JOB, SQL_PAUSE, SQL_SWEEP_ATTEMPTS, SQL_SWEEP_JOBS,
	SQL_NEXT_EXPIRY, SQL_PING, SQL_IDEM_FIND, SQL_BATCH_IDEM_FIND, SQL_BATCH_INSERT, SQL_BATCH_DONE, SQL_BATCH_UNDONE,
	SQL_CALLBACK_JOB, SQL_CALLBACK_BATCH, SQL_QUEUE_PAUSED, SQL_OP_BEGIN, SQL_OP_END, SQL_OP_UNDO,
	SQL_RUNNING, SQL_LEASE_MARK, SQL_EXPIRED, SQL_NEXT_LEASE, SQL_HEARTBEAT, SQL_HEARTBEAT_CANCELED,
	SQL_CANCEL_LEASED, SQL_EXISTS,
	SQL_SCHED_INSERT, SQL_SCHED_REPLACE, SQL_SCHED_DELETE, SQL_SCHED_PAUSE, SQL_SCHED_RESUME,
	SQL_SCHED_CAS, SQL_SCHED_RUN, SQL_FIRE_EXISTS, SQL_FIRE_MARK, SQL_COUNT
};

/* The callback columns of a job finishing at ?F: pending from then on. */
#define CALLBACK_DUE(F) " callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE " S_PENDING " END," \
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
	[SQL_BATCH_IDEM_FIND] = "SELECT id, idem_hash FROM batches WHERE idem_key = ?1",
	[SQL_BATCH_INSERT] = "INSERT INTO batches (id, created_at, total, callback_url, idem_key, idem_hash)"
	                     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	/* The batch is done when none of its jobs is waiting or running. */
	[SQL_BATCH_DONE] = "UPDATE batches SET finished_at = ?2,"
	                   " callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE " S_PENDING " END,"
	                   " callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE ?2 END"
	                   " WHERE id = ?1 AND finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM batch_counts"
	                   "   WHERE batch_id = ?1 AND state IN (" S_WAITING ") AND n > 0)",
	/* Not done any more: a pending callback is withdrawn and starts afresh. */
	[SQL_BATCH_UNDONE] = "UPDATE batches SET finished_at = NULL, callback_state = NULL, callback_next_at = NULL,"
	                     " callback_attempts = 0 WHERE id = ?1",
	[SQL_CALLBACK_JOB] = "UPDATE jobs SET callback_state = ?2, callback_attempts = callback_attempts + 1,"
	                     " callback_next_at = ?3, callback_status = ?4, callback_error = ?5"
	                     " WHERE id = ?1 AND callback_state = " S_PENDING,
	[SQL_CALLBACK_BATCH] = "UPDATE batches SET callback_state = ?2, callback_attempts = callback_attempts + 1,"
	                       " callback_next_at = ?3, callback_status = ?4, callback_error = ?5"
	                       " WHERE id = ?1 AND callback_state = " S_PENDING,
	[SQL_PROMOTE] = "UPDATE jobs SET state = " S_QUEUED " WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_scheduled"
	                " WHERE state = " S_SCHEDULED " AND run_at <= ?1 ORDER BY run_at LIMIT " JOBQ_STR(PROMOTE_BATCH) ")"
	                " RETURNING id, queue, type, attempts",
	/* Queues after the last one served come first, then the rest from the
	 * start: every queue gets its turn however many there are. */
	[SQL_READY_QUEUES] = "SELECT c.queue FROM queue_counts c WHERE c.state = " S_QUEUED " AND c.n > 0"
	                     " AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = c.queue AND q.paused)"
	                     " ORDER BY c.queue <= ?1, c.queue",
	[SQL_CLAIM] = "UPDATE jobs SET state = " S_RUNNING ", attempts = attempts + 1, started_at = ?1"
	              " WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_ready WHERE state = " S_QUEUED " AND queue = ?3"
	              "   ORDER BY priority DESC, seq LIMIT ?2)"
	              " RETURNING " JOB_COLUMNS,
	[SQL_NEXT_DUE] = "SELECT min(run_at) FROM jobs INDEXED BY jobs_scheduled WHERE state = " S_SCHEDULED,
	[SQL_FINISH] = "UPDATE jobs SET state = ?2, result = ?3, error = ?4, progress_percent = ?5,"
	               " progress_message = ?6, finished_at = ?7, run_at = coalesce(?9, run_at),"
	               " started_at = coalesce(?10, started_at),"
	               " expires_at = " EXPIRES("?7") ","
	               /* a retry (?7 NULL) leaves the callback waiting */
	               " callback_state = CASE WHEN callback_url IS NULL OR ?7 IS NULL THEN callback_state ELSE " S_PENDING " END,"
	               " callback_next_at = CASE WHEN callback_url IS NULL OR ?7 IS NULL THEN callback_next_at ELSE ?7 END,"
	               " lease_id = NULL, lease_expires_at = NULL"
	               " WHERE id = ?1 AND state = " S_RUNNING " AND attempts = ?8"
	               " AND (?11 IS NULL OR lease_id = ?11) RETURNING expires_at",
	/* Back without spending the attempt: queued, or scheduled at ?4. */
	[SQL_REQUEUE] = "UPDATE jobs SET state = coalesce(?3, " S_QUEUED "), run_at = coalesce(?4, run_at),"
	                " attempts = attempts - 1, started_at = NULL, lease_id = NULL, lease_expires_at = NULL"
	                " WHERE id = ?1 AND state = " S_RUNNING " AND attempts = ?2"
	                " AND (?5 IS NULL OR lease_id = ?5)",
	[SQL_ATTEMPT] = "INSERT OR REPLACE INTO job_attempts (job_seq, attempt, started_at, finished_at, outcome, error)"
	                " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[SQL_STATE_OF] = "SELECT state, seq, queue, batch_id, type FROM jobs WHERE id = ?1",
	[SQL_CANCEL_SET] = "UPDATE jobs SET state = " S_CANCELED ", error = 'canceled', finished_at = ?2,"
	                   " expires_at = " EXPIRES("?2") "," CALLBACK_DUE("?2")
	                   " WHERE id = ?1 AND state IN (" S_QUEUED ", " S_SCHEDULED ", " S_BLOCKED ") RETURNING expires_at",
	[SQL_RETRY_SET] = "UPDATE jobs SET state = " S_QUEUED ", max_attempts = max(max_attempts, attempts + 1),"
	                  " result = NULL, error = NULL, progress_percent = NULL, progress_message = NULL,"
	                  " finished_at = NULL, expires_at = NULL, run_at = ?2,"
	                  " callback_state = NULL, callback_next_at = NULL, callback_attempts = 0,"
	                  " callback_status = NULL, callback_error = NULL"
	                  " WHERE id = ?1 AND state IN (" S_FAILED ", " S_CANCELED ") RETURNING " JOB_COLUMNS,
	[SQL_DELETE_ATTEMPTS] = "DELETE FROM job_attempts WHERE job_seq = ?1",
	[SQL_DELETE_JOB] = "DELETE FROM jobs WHERE seq = ?1 AND state IN (" S_FINISHED ")",
	[SQL_PAUSE] = "INSERT INTO queues (name, paused) VALUES (?1, ?2)"
	              " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
	[SQL_QUEUE_PAUSED] = "SELECT paused FROM queues WHERE name = ?1",
	[SQL_SWEEP_ATTEMPTS] = "DELETE FROM job_attempts WHERE job_seq IN (SELECT seq FROM jobs"
	                       " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT " JOBQ_STR(SWEEP_BATCH) ")",
	[SQL_SWEEP_JOBS] = "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
	                   " WHERE expires_at <= ?1 ORDER BY expires_at LIMIT " JOBQ_STR(SWEEP_BATCH) ")",
	[SQL_NEXT_EXPIRY] = "SELECT min(expires_at) FROM jobs WHERE expires_at IS NOT NULL",
	[SQL_PING] = "INSERT INTO meta (key, value) VALUES ('ready_check', ?1)"
	             " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	/* Each op's scope: the UNDO leaves the savepoint open, END closes it. */
	[SQL_OP_BEGIN] = "SAVEPOINT op",
	[SQL_OP_END] = "RELEASE op",
	[SQL_OP_UNDO] = "ROLLBACK TO op",
	[SQL_RUNNING] = "SELECT n FROM queue_counts WHERE queue = ?1 AND state = " S_RUNNING,
	[SQL_LEASE_MARK] = "UPDATE jobs SET lease_id = ?2, lease_expires_at = ?3, lease_ms = ?4 WHERE seq = ?1",
	[SQL_EXPIRED] = "SELECT " JOB_COLUMNS ", lease_id FROM jobs INDEXED BY jobs_lease_expiry"
	                " WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL AND lease_expires_at <= ?1"
	                " ORDER BY lease_expires_at LIMIT ?2",
	[SQL_NEXT_LEASE] = "SELECT min(lease_expires_at) FROM jobs INDEXED BY jobs_lease_expiry"
	                   " WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL",
	[SQL_HEARTBEAT] = "UPDATE jobs SET lease_expires_at = ?3 + coalesce(?4, lease_ms),"
	                  " lease_ms = coalesce(?4, lease_ms),"
	                  " progress_percent = coalesce(?5, progress_percent),"
	                  " progress_message = CASE WHEN ?5 IS NULL THEN progress_message ELSE ?6 END"
	                  " WHERE id = ?1 AND state = " S_RUNNING " AND lease_id = ?2 AND lease_expires_at IS NOT NULL"
	                  " RETURNING lease_expires_at",
	/* The worker has learnt of the cancel: the lease is over. */
	[SQL_HEARTBEAT_CANCELED] = "UPDATE jobs SET lease_id = NULL WHERE id = ?1 AND state = " S_CANCELED
	                           " AND lease_id = ?2",
	[SQL_CANCEL_LEASED] = "UPDATE jobs SET state = " S_CANCELED ", error = 'canceled', finished_at = ?2,"
	                      " lease_expires_at = NULL, expires_at = " EXPIRES("?2") "," CALLBACK_DUE("?2")
	                      " WHERE id = ?1 AND state = " S_RUNNING " AND lease_expires_at IS NOT NULL"
	                      " RETURNING expires_at, seq, attempts, started_at",
	[SQL_EXISTS] = "SELECT 1 FROM jobs WHERE id = ?1",
	/* Schedules: ?1 the name; the others as each op says. */
	[SQL_SCHED_INSERT] = "INSERT INTO schedules (name, spec, next_fire_at, created_at, updated_at)"
	                     " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
	[SQL_SCHED_REPLACE] = "UPDATE schedules SET spec = ?2,"
	                      " next_fire_at = CASE WHEN paused THEN NULL ELSE ?3 END, updated_at = ?4 WHERE name = ?1",
	[SQL_SCHED_DELETE] = "DELETE FROM schedules WHERE name = ?1",
	[SQL_SCHED_PAUSE] = "UPDATE schedules SET paused = 1, next_fire_at = NULL, updated_at = ?4 WHERE name = ?1",
	[SQL_SCHED_RESUME] = "UPDATE schedules SET next_fire_at = CASE WHEN paused THEN ?3 ELSE next_fire_at END,"
	                     " paused = 0, updated_at = ?4 WHERE name = ?1",
	/* The fire's compare and set: only while ?2 is still the due time. */
	[SQL_SCHED_CAS] = "UPDATE schedules SET next_fire_at = ?3, last_fire_at = coalesce(?4, last_fire_at)"
	                  " WHERE name = ?1 AND next_fire_at = ?2 AND NOT paused",
	[SQL_SCHED_RUN] = "UPDATE schedules SET last_fire_at = max(coalesce(last_fire_at, 0), ?2) WHERE name = ?1",
	[SQL_FIRE_EXISTS] = "SELECT 1 FROM jobs WHERE schedule_name = ?1 AND schedule_fire_at = ?2",
	[SQL_FIRE_MARK] = "UPDATE jobs SET schedule_name = ?2, schedule_fire_at = ?3 WHERE seq = ?1",
};

/* Dependencies' statements (the block at the end of this file). */
enum {
	D_STATE, D_EDGE, D_COLUMNS, D_CHILDREN, D_RESOLVE_EDGE, D_COUNT_DOWN, D_CANCEL, D_REBLOCK_EDGES,
	D_REBLOCK_JOB, D_STRANDED, DEPS_SQL_COUNT
};

struct reader {
	sqlite3 *db;
	sqlite3_stmt *get, *history, *queue_counts, *queue_paused, *queue_oldest, *queue_names;
	sqlite3_stmt *batch_get, *batch_counts, *due_jobs, *due_batches, *next_jobs, *next_batches;
	sqlite3_stmt *list[LIST_VARIANTS];
	struct reader *next;              /* idle list */
	struct reader *all_next;          /* every reader, for close */
};

static const char *const reader_sql[] = {
	"SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1",
	"SELECT attempt, started_at, finished_at, outcome, error FROM job_attempts"
	" WHERE job_seq = ?1 ORDER BY attempt",
	"SELECT state, n FROM queue_counts WHERE queue = ?1",
	"SELECT paused FROM queues WHERE name = ?1",
	"SELECT run_at FROM jobs INDEXED BY jobs_queued_since WHERE state = " S_QUEUED " AND queue = ?1"
	" ORDER BY run_at LIMIT 1",
	"SELECT queue FROM queue_counts WHERE queue > ?1 AND n > 0"
	" UNION SELECT name FROM queues WHERE name > ?1 AND paused ORDER BY 1 LIMIT ?2",
	"SELECT total, created_at, finished_at, callback_url, callback_state, callback_attempts,"
	" callback_status, callback_error FROM batches WHERE id = ?1",
	"SELECT state, n FROM batch_counts WHERE batch_id = ?1",
	"SELECT id FROM jobs WHERE callback_state = " S_PENDING " AND callback_next_at <= ?1 ORDER BY callback_next_at LIMIT ?2",
	"SELECT id FROM batches WHERE callback_state = " S_PENDING " AND callback_next_at <= ?1 ORDER BY callback_next_at LIMIT ?2",
	"SELECT min(callback_next_at) FROM jobs WHERE callback_state = " S_PENDING,
	"SELECT min(callback_next_at) FROM batches WHERE callback_state = " S_PENDING,
};

struct sqlite_store {
	char *path;
	int lock_fd;

	sqlite3 *wdb;                     /* writer thread only (after open) */
	sqlite3_stmt *wstmt[SQL_COUNT];
	sqlite3_stmt *dstmt[DEPS_SQL_COUNT]; /* dependencies' statements, prepared at first use */
	const char *sync_pragma;          /* the configured PRAGMA synchronous */
	bool sync_relaxed;                /* writer only: synchronous is OFF now */

	atomic_bool damaged;              /* a read or write met a corrupt page */

	pthread_mutex_t readers_mu;       /* guards idle, all_readers, nreaders */
	pthread_cond_t readers_cv;        /* a reader came back */
	struct reader *idle;
	struct reader *all_readers;       /* every reader opened, for close */
	int nreaders, max_readers;

	sqlite3_stmt *rate_stmt[4];       /* writer only: RATE_SQL, prepared on first use */
};

/* ---- damage ----------------------------------------------------------- */

/* SQLite reports every corrupt page it meets to its error log, on the
 * thread that met it, whatever the statement. The store keeps that per
 * thread and moves it to the store at the next reader_take or
 * reader_give and after each writer transaction (after_writes), so
 * readiness can tell that the file is damaged without a check after every
 * step. */
static _Thread_local bool met_damage;

static void sqlite_log(void *arg, int code, const char *msg)
{
	(void)arg;
	(void)msg;
	if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB)
		met_damage = true;
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* Must run before SQLite initialises; the first open does it. */
static void install_log(void)
{
	if (sqlite3_config(SQLITE_CONFIG_LOG, sqlite_log, NULL) != SQLITE_OK)
		log_warn("SQLite was initialised before the store: damage met at run time goes unnoticed");
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* no global allocation counts: a mutex per malloc */
}

/* Moves what this thread met to st, logging the first time. */
static void note_damage(struct sqlite_store *st)
{
	if (!met_damage)
		return;
	met_damage = false;
	if (!atomic_exchange(&st->damaged, true))
		log_error("database %s is damaged (database disk image is malformed): readiness fails from now on; "
		          "stop jobqd and restore the file from a backup", st->path);
}

static bool sqlite_damaged(void *be)
{
	return atomic_load(&((struct sqlite_store *)be)->damaged);
}

static void sqlite_after_writes(void *be)
{
	note_damage(be);
}

/* ---- connections ---------------------------------------------------- */

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

/* Takes an idle reader, opens a new one while there are fewer than
 * max_readers, or waits for one to come back; NULL on failure. */
static struct reader *reader_take(struct sqlite_store *st)
{
	note_damage(st); /* e.g. a hook that reads on the writer thread, mid-group */
	pthread_mutex_lock(&st->readers_mu);
	while (!st->idle && st->nreaders >= st->max_readers)
		pthread_cond_wait(&st->readers_cv, &st->readers_mu);
	struct reader *r = st->idle;
	if (r)
		st->idle = r->next;
	else
		st->nreaders++;           /* this thread opens one: its slot */
	pthread_mutex_unlock(&st->readers_mu);
	if (r)
		return r;

	r = calloc(1, sizeof *r);
	char why[256] = "";
	bool ok = r && open_conn(st->path, &r->db, why, sizeof why) == SQLITE_OK &&
	          sqlite_exec(r->db, "PRAGMA query_only = 1") == SQLITE_OK;
	if (why[0])
		log_error("cannot open database %s: %s", st->path, why);
	if (ok) {
		sqlite3_stmt **stmts[] = {&r->get, &r->history, &r->queue_counts, &r->queue_paused,
		                          &r->queue_oldest, &r->queue_names, &r->batch_get, &r->batch_counts,
		                          &r->due_jobs, &r->due_batches, &r->next_jobs, &r->next_batches};
		for (size_t i = 0; ok && i < sizeof stmts / sizeof stmts[0]; i++)
			ok = prepare(r->db, reader_sql[i], stmts[i]) == SQLITE_OK;
	}
	pthread_mutex_lock(&st->readers_mu);
	if (ok) {
		r->all_next = st->all_readers;
		st->all_readers = r;
	} else {
		st->nreaders--;           /* the slot is free again */
		pthread_cond_signal(&st->readers_cv);
	}
	pthread_mutex_unlock(&st->readers_mu);
	if (!ok) {
		reader_close(r);
		return NULL;
	}
	return r;
}

static void reader_give(struct sqlite_store *st, struct reader *r)
{
	note_damage(st);
	pthread_mutex_lock(&st->readers_mu);
	r->next = st->idle;
	st->idle = r;
	pthread_cond_signal(&st->readers_cv);
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
	column_copy(s, 30, job->schedule_name, sizeof job->schedule_name);
	job->schedule_fire_at = sqlite3_column_int64(s, 31);
	int policy = sqlite3_column_int(s, 28);
	job->deps.policy = policy >= 0 && policy < DEP_POLICY_COUNT ? (enum dep_policy)policy : DEP_CANCEL;
	job->deps.pending = sqlite3_column_int(s, 29);
	if ((sqlite3_column_type(s, 27) != SQLITE_NULL &&
	     deps_ids_from_text((const char *)sqlite3_column_text(s, 27), &job->deps) != 0) ||
	    (sqlite3_column_type(s, 6) != SQLITE_NULL && !job->payload) ||
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

/* ---- the group and each op's scope ---------------------------------- */

static const char *sqlite_errstr(int rc)
{
	return rc < 0 ? "out of memory" : sqlite3_errstr(rc);
}

/* Steps a statement that yields no row, and resets it. */
static int step_done(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A group of claims and pings only is committed unsynced (see writer.c);
 * a durable group is never committed while synchronous is OFF. */
static int sqlite_begin(void *be, bool durable, int nops)
{
	struct sqlite_store *st = be;
	(void)nops;
	if (durable != !st->sync_relaxed &&
	    sqlite_exec(st->wdb, durable ? st->sync_pragma : "PRAGMA synchronous = OFF") == SQLITE_OK)
		st->sync_relaxed = !durable;
	if (durable && st->sync_relaxed)
		return SQLITE_ERROR;
	return sqlite_exec(st->wdb, "BEGIN IMMEDIATE");
}

static int sqlite_commit(void *be)
{
	return sqlite_exec(((struct sqlite_store *)be)->wdb, "COMMIT");
}

static void sqlite_rollback(void *be)
{
	sqlite_exec(((struct sqlite_store *)be)->wdb, "ROLLBACK");
}

/* FULL, IOERR, NOMEM and BUSY may roll the whole transaction back. */
static bool sqlite_in_transaction(void *be)
{
	return !sqlite3_get_autocommit(((struct sqlite_store *)be)->wdb);
}

static int sqlite_op_begin(void *be)
{
	return step_done(((struct sqlite_store *)be)->wstmt[SQL_OP_BEGIN]);
}

static int sqlite_op_end(void *be)
{
	return step_done(((struct sqlite_store *)be)->wstmt[SQL_OP_END]);
}

static int sqlite_op_undo(void *be)
{
	struct sqlite_store *st = be;
	int rc = step_done(st->wstmt[SQL_OP_UNDO]);
	return rc == SQLITE_OK ? step_done(st->wstmt[SQL_OP_END]) : rc;
}

/* ---- writes ---------------------------------------------------------- */

/* Each apply_* runs inside the op's savepoint and returns the SQLite
 * result code of the failing step (SQLITE_NOMEM where the fault seam
 * says so), or SQLITE_OK. */

static int idempotent_replay(struct sqlite_store *st, struct store_op *op);

static int insert_job(struct sqlite_store *st, struct job *job)
{
	sqlite3_stmt *s = st->wstmt[SQL_INSERT];
	sqlite3_bind_text(s, 1, job->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, job->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, job->queue, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, job->priority);
	sqlite3_bind_int(s, 5, job->state == JOB_SCHEDULED || job->state == JOB_BLOCKED ? job->state : JOB_QUEUED);
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
	return step_int64(s, &job->seq);
}

/* Whether a job just inserted may be claimed: not while its queue is
 * paused (a scheduled job still is, so that the claim promotes it on time
 * and the dispatcher learns its due time). No claim is posted for a
 * submission nothing can run. */
static int inserted_runnable(struct sqlite_store *st, const struct job *job, bool *runnable)
{
	int64_t paused = 0;
	if (job->state == JOB_SCHEDULED) {
		*runnable = true;
		return SQLITE_OK;
	}
	sqlite3_stmt *s = st->wstmt[SQL_QUEUE_PAUSED];
	sqlite3_bind_text(s, 1, job->queue, -1, SQLITE_STATIC);
	int rc = step_int64(s, &paused);
	*runnable = rc == SQLITE_OK && !paused;
	return rc;
}

static int apply_submit(void *be, struct store_op *op, struct store_effects *fx)
{
	struct sqlite_store *st = be;
	struct job *job = op->submit.job;
	bool resolved[JOB_DEPS_MAX];
	int cancel = -1, rc = SQLITE_OK;
	if (job->deps.n > 0 && (rc = store_deps_prepare(&store_sqlite_deps, st, job, NULL, resolved, &cancel)) != SQLITE_OK)
		return rc;
	if (job->deps.missing >= 0) {
		op->rc = STORE_NOT_FOUND;  /* nothing written */
		return SQLITE_OK;
	}
	rc = insert_job(st, job);
	if (rc == SQLITE_OK && store_fault_hit())
		rc = SQLITE_NOMEM;
	if (rc == SQLITE_OK && job->seq != 0 && job->deps.n > 0)
		rc = store_deps_insert(&store_sqlite_deps, st, job, resolved, cancel, &fx->cascade);
	if (rc == SQLITE_OK && job->seq != 0)
		rc = inserted_runnable(st, job, &fx->runnable);
	if (rc == SQLITE_OK && job->seq != 0 && (job->state == JOB_BLOCKED || job->state == JOB_CANCELED))
		fx->runnable = false;
	if (rc != SQLITE_OK || job->seq != 0)
		return rc;
	if (!job->idem_key)
		return SQLITE_CONSTRAINT;
	return idempotent_replay(st, op);
}

/* The key was seen before: the same body gets the first job back. */
static int idempotent_replay(struct sqlite_store *st, struct store_op *op)
{
	struct job *job = op->submit.job;
	sqlite3_stmt *s = st->wstmt[SQL_IDEM_FIND];
	sqlite3_bind_text(s, 1, job->idem_key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *hash = sqlite3_column_text(s, 1);
		if (hash && strcmp((const char *)hash, job->idem_hash) == 0) {
			column_copy(s, 0, job->id, sizeof job->id);
			op->submit.replayed = true;
		} else {
			op->rc = STORE_CONFLICT;
		}
		rc = SQLITE_OK;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_CONSTRAINT : rc;
}

static int sqlite_promote(void *be, int64_t now, struct store_promoted **out, int *n, int *cap)
{
	struct sqlite_store *st = be;
	sqlite3_stmt *s = st->wstmt[SQL_PROMOTE];
	sqlite3_bind_int64(s, 1, now);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == *cap) {
			int grow = *cap ? *cap * 2 : 16;
			struct store_promoted *grown = realloc(*out, (size_t)grow * sizeof *grown);
			if (!grown || store_fault_hit()) {
				if (grown)
					*out = grown;
				rc = SQLITE_NOMEM;
				break;
			}
			*out = grown;
			*cap = grow;
		}
		struct store_promoted *p = &(*out)[(*n)++];
		column_copy(s, 0, p->id, sizeof p->id);
		column_copy(s, 1, p->queue, sizeof p->queue);
		column_copy(s, 2, p->type, sizeof p->type);
		p->attempts = sqlite3_column_int(s, 3);
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sqlite_ready_queues(void *be, const char *after, int (*each)(void *arg, const char *queue),
                               void *arg)
{
	struct sqlite_store *st = be;
	sqlite3_stmt *s = st->wstmt[SQL_READY_QUEUES];
	sqlite3_bind_text(s, 1, after, -1, SQLITE_TRANSIENT);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char name[JOB_NAME_MAX + 1];
		column_copy(s, 0, name, sizeof name);
		if (each(arg, name) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int claim_order(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The UPDATE changes every row in its first step; RETURNING then hands
 * them out. Failing to read one leaves the rows updated: the op's
 * savepoint takes them back. */
static int sqlite_claim(void *be, const char *queue, int n, int64_t now, struct job **out, int *got)
{
	struct sqlite_store *st = be;
	sqlite3_stmt *s = st->wstmt[SQL_CLAIM];
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int(s, 2, n);
	sqlite3_bind_text(s, 3, queue, -1, SQLITE_TRANSIENT);
	int first = *got, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct job *job = store_fault_hit() ? NULL : row_to_job(s);
		if (!job) {
			rc = SQLITE_NOMEM;
			break;
		}
		out[(*got)++] = job;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return rc;
	/* RETURNING yields rows in no set order. */
	qsort(out + first, (size_t)(*got - first), sizeof *out, claim_order);
	return SQLITE_OK;
}

static int sqlite_next_due(void *be, int64_t *out)
{
	return step_int64(((struct sqlite_store *)be)->wstmt[SQL_NEXT_DUE], out);
}

static int check_batch_done(struct sqlite_store *st, const char *batch_id, bool *done);

/* Records the attempt that just ended. */
static int record_attempt(struct sqlite_store *st, const struct job *job)
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

static int apply_finish(void *be, struct store_op *op, struct store_effects *fx)
{
	struct sqlite_store *st = be;
	struct job *job = op->finish.job;
	int rc;
	const char *lease_id = op->finish.lease.lease_id;
	if (job->state == JOB_QUEUED || op->finish.lease.release) {
		sqlite3_stmt *s = st->wstmt[SQL_REQUEUE];
		sqlite3_bind_text(s, 1, job->id, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 2, job->attempts);
		if (job->state == JOB_SCHEDULED) {
			sqlite3_bind_int(s, 3, (int)JOB_SCHEDULED);
			sqlite3_bind_int64(s, 4, job->run_at);
		}
		bind_text_or_null(s, 5, lease_id);
		rc = sqlite3_step(s);
		fx->changed = rc == SQLITE_DONE && sqlite3_changes(st->wdb) == 1;
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		if (rc == SQLITE_DONE && store_fault_hit())
			rc = SQLITE_NOMEM;
		if (rc == SQLITE_DONE && lease_id && !fx->changed)
			op->rc = STORE_CONFLICT;
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
	if (job->started_at)
		sqlite3_bind_int64(s, 10, job->started_at);
	bind_text_or_null(s, 11, lease_id);
	int64_t expires_at = 0;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		fx->changed = true;
		expires_at = sqlite3_column_int64(s, 0);
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE)
		return rc;
	if (!fx->changed && lease_id) {
		op->rc = STORE_CONFLICT; /* not the job's lease any more: nothing changes */
		return SQLITE_OK;
	}
	if (!fx->changed) {
		log_warn("job %s attempt %d was no longer running; its outcome is dropped", job->id, job->attempts);
		return SQLITE_OK;
	}
	fx->expires_at = expires_at;
	fx->finished = terminal;
	memcpy(op->finish.batch_id, job->batch_id, sizeof op->finish.batch_id);
	if (store_fault_hit())
		return SQLITE_NOMEM;
	rc = record_attempt(st, job);
	if (rc == SQLITE_OK && terminal && op->finish.batch_id[0] && store_fault_hit())
		return SQLITE_NOMEM;
	if (rc == SQLITE_OK && terminal)
		rc = check_batch_done(st, op->finish.batch_id, &fx->batch_done);
	return rc == SQLITE_OK && terminal ? store_deps_ended(&store_sqlite_deps, st, job->id, job->state, &fx->cascade)
	                                   : rc;
}

/* Reads the state, seq, queue, batch and type of t->id; STORE_NOT_FOUND
 * in op->rc when there is no such job. */
static int state_of(struct sqlite_store *st, struct store_op *op, int64_t *seq)
{
	struct store_op_target *t = store_op_target(op);
	sqlite3_stmt *s = st->wstmt[SQL_STATE_OF];
	sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		t->found = column_state(s, 0);
		*seq = sqlite3_column_int64(s, 1);
		column_copy(s, 2, t->queue, sizeof t->queue);
		column_copy(s, 3, t->batch_id, sizeof t->batch_id);
		column_copy(s, 4, t->type, sizeof t->type);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		op->rc = STORE_NOT_FOUND;
		rc = SQLITE_OK;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

/* A running job an external worker leased ends canceled at once, its
 * attempt recorded; the worker learns it at its next heartbeat. A job the
 * pool runs is not touched here (the caller stops its run). */
static int cancel_leased(struct sqlite_store *st, struct store_op *op, struct store_effects *fx)
{
	struct store_op_target *t = &op->cancel;
	struct job job = {.outcome = ATTEMPT_CANCELED, .error = "canceled"};
	sqlite3_stmt *s = st->wstmt[SQL_CANCEL_LEASED];
	sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
	job.finished_at = clock_now_ms();
	sqlite3_bind_int64(s, 2, job.finished_at);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		fx->expires_at = sqlite3_column_int64(s, 0);
		job.seq = sqlite3_column_int64(s, 1);
		job.attempts = sqlite3_column_int(s, 2);
		job.started_at = sqlite3_column_int64(s, 3);
		fx->finished = true;
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE || !fx->finished)
		return rc == SQLITE_DONE ? SQLITE_OK : rc;
	if ((rc = record_attempt(st, &job)) != SQLITE_OK)
		return rc;
	if (t->batch_id[0] && store_fault_hit())
		return SQLITE_NOMEM;
	if ((rc = check_batch_done(st, t->batch_id, &fx->batch_done)) != SQLITE_OK)
		return rc;
	return store_deps_ended(&store_sqlite_deps, st, t->id, JOB_CANCELED, &fx->cascade);
}

static int apply_cancel(void *be, struct store_op *op, struct store_effects *fx)
{
	struct sqlite_store *st = be;
	struct store_op_target *t = &op->cancel;
	int64_t seq = 0;
	int rc = state_of(st, op, &seq);
	if (rc != SQLITE_OK || op->rc == STORE_NOT_FOUND)
		return rc;
	if (t->found == JOB_RUNNING)
		return cancel_leased(st, op, fx);
	if (t->found != JOB_QUEUED && t->found != JOB_SCHEDULED && t->found != JOB_BLOCKED)
		return rc;
	sqlite3_stmt *s = st->wstmt[SQL_CANCEL_SET];
	sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, clock_now_ms());
	if ((rc = step_int64(s, &fx->expires_at)) != SQLITE_OK)
		return rc;
	fx->finished = true;
	if (t->batch_id[0] && store_fault_hit())
		return SQLITE_NOMEM;
	if ((rc = check_batch_done(st, t->batch_id, &fx->batch_done)) != SQLITE_OK)
		return rc;
	return store_deps_ended(&store_sqlite_deps, st, t->id, JOB_CANCELED, &fx->cascade);
}

/* The job as the retry left it goes to op->retry.job (the caller frees
 * it), so the reply does not race a worker that claims it right after. */
static int apply_retry(void *be, struct store_op *op, struct store_effects *fx)
{
	struct sqlite_store *st = be;
	struct store_op_retry *t = &op->retry;
	int64_t seq = 0;
	int rc = state_of(st, op, &seq);
	if (rc != SQLITE_OK || op->rc == STORE_NOT_FOUND || (t->found != JOB_FAILED && t->found != JOB_CANCELED))
		return rc;
	sqlite3_stmt *s = st->wstmt[SQL_RETRY_SET];
	sqlite3_bind_text(s, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, clock_now_ms());
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		job_free(t->job);
		t->job = store_fault_hit() ? NULL : row_to_job(s);
		rc = t->job ? sqlite3_step(s) : SQLITE_NOMEM;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_DONE && t->job && (rc = store_deps_retried(&store_sqlite_deps, st, t->job)) == SQLITE_OK)
		rc = SQLITE_DONE;
	fx->runnable = !t->job || t->job->state != JOB_BLOCKED;
	if (rc == SQLITE_DONE && t->batch_id[0]) {
		/* Its batch is not finished any more. */
		int64_t unused = 0;
		if (store_fault_hit())
			return SQLITE_NOMEM;
		sqlite3_bind_text(st->wstmt[SQL_BATCH_UNDONE], 1, t->batch_id, -1, SQLITE_STATIC);
		return step_int64(st->wstmt[SQL_BATCH_UNDONE], &unused);
	}
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sqlite_running(void *be, const char *queue, int64_t *n)
{
	struct sqlite_store *st = be;
	sqlite3_stmt *s = st->wstmt[SQL_RUNNING];
	sqlite3_bind_text(s, 1, queue, -1, SQLITE_TRANSIENT);
	*n = 0;
	return step_int64(s, n);
}

static int sqlite_lease_mark(void *be, const struct job *job, const char *lease_id, int64_t expires_at,
                             int64_t lease_ms)
{
	struct sqlite_store *st = be;
	sqlite3_stmt *s = st->wstmt[SQL_LEASE_MARK];
	sqlite3_bind_int64(s, 1, job->seq);
	sqlite3_bind_text(s, 2, lease_id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, expires_at);
	sqlite3_bind_int64(s, 4, lease_ms);
	int rc = step_done(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_OK && store_fault_hit())
		return SQLITE_NOMEM;
	return rc;
}

static int sqlite_expired(void *be, int64_t now, struct job **out, char (*ids)[STORE_LEASE_ID_LEN + 1], int max,
                          int *n, int64_t *next)
{
	struct sqlite_store *st = be;
	sqlite3_stmt *s = st->wstmt[SQL_EXPIRED];
	sqlite3_bind_int64(s, 1, now);
	sqlite3_bind_int(s, 2, max);
	int rc;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
		struct job *job = row_to_job(s);
		if (!job) {
			rc = SQLITE_NOMEM;
			break;
		}
		column_copy(s, JOB_NCOLUMNS, ids[*n], STORE_LEASE_ID_LEN + 1);
		out[(*n)++] = job;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc != SQLITE_DONE) {
		for (int i = 0; i < *n; i++)
			job_free(out[i]);
		*n = 0;
		return rc;
	}
	*next = 0;
	return *n > 0 ? SQLITE_OK : step_int64(st->wstmt[SQL_NEXT_LEASE], next);
}

/* Whether a job named id exists; *found. */
static int job_exists(struct sqlite_store *st, const char *id, bool *found)
{
	int64_t one = 0;
	sqlite3_stmt *s = st->wstmt[SQL_EXISTS];
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	int rc = step_int64(s, &one);
	*found = one == 1;
	return rc;
}

static int apply_heartbeat(void *be, struct store_op *op, struct store_effects *fx)
{
	struct sqlite_store *st = be;
	struct store_op_heartbeat *h = &op->heartbeat;
	sqlite3_stmt *s = st->wstmt[SQL_HEARTBEAT];
	sqlite3_bind_text(s, 1, h->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, h->lease_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, clock_now_ms());
	if (h->lease_ms > 0)
		sqlite3_bind_int64(s, 4, h->lease_ms);
	if (h->has_progress) {
		sqlite3_bind_double(s, 5, h->percent);
		sqlite3_bind_text(s, 6, h->message, -1, SQLITE_STATIC);
	}
	h->expires_at = 0;
	h->canceled = false;
	int rc = step_int64(s, &h->expires_at);
	if (rc == SQLITE_OK && h->expires_at && store_fault_hit())
		return SQLITE_NOMEM;
	if (rc != SQLITE_OK || h->expires_at) {
		fx->lease_expires_at = h->expires_at;
		return rc;
	}
	s = st->wstmt[SQL_HEARTBEAT_CANCELED];
	sqlite3_bind_text(s, 1, h->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, h->lease_id, -1, SQLITE_STATIC);
	if ((rc = step_done(s)) != SQLITE_OK)
		return rc;
	sqlite3_clear_bindings(s);
	if (sqlite3_changes(st->wdb) == 1) {
		h->canceled = true;
		return SQLITE_OK;
	}
	bool found = false;
	if ((rc = job_exists(st, h->id, &found)) != SQLITE_OK)
		return rc;
	op->rc = found ? STORE_CONFLICT : STORE_NOT_FOUND;
	return SQLITE_OK;
}

static int apply_delete(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)fx;
	struct sqlite_store *st = be;
	int64_t seq = 0, unused = 0;
	int rc = state_of(st, op, &seq);
	if (rc != SQLITE_OK || op->rc == STORE_NOT_FOUND || !job_state_terminal(op->del.found))
		return rc;
	sqlite3_bind_int64(st->wstmt[SQL_DELETE_ATTEMPTS], 1, seq);
	if ((rc = step_int64(st->wstmt[SQL_DELETE_ATTEMPTS], &unused)) != SQLITE_OK)
		return rc;
	if (store_fault_hit())
		return SQLITE_NOMEM;
	sqlite3_bind_int64(st->wstmt[SQL_DELETE_JOB], 1, seq);
	return step_int64(st->wstmt[SQL_DELETE_JOB], &unused);
}

static int apply_pause(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)fx;
	struct sqlite_store *st = be;
	int64_t unused = 0;
	sqlite3_stmt *s = st->wstmt[SQL_PAUSE];
	sqlite3_bind_text(s, 1, op->pause.queue, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, op->pause.paused);
	int rc = step_int64(s, &unused);
	return rc == SQLITE_OK && store_fault_hit() ? SQLITE_NOMEM : rc;
}

static int apply_ping(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)op;
	(void)fx;
	struct sqlite_store *st = be;
	int64_t unused = 0;
	sqlite3_bind_int64(st->wstmt[SQL_PING], 1, clock_now_ms());
	int rc = step_int64(st->wstmt[SQL_PING], &unused);
	return rc == SQLITE_OK && store_fault_hit() ? SQLITE_NOMEM : rc;
}

/* Rewrites a row of STORE_PROBE_BYTES: at COMMIT its pages go to the
 * WAL as a job's would. Random bytes, because SQLite overwrites a row of
 * the same size in place and leaves every page whose bytes are unchanged
 * clean: rewriting zeros wrote nothing at all. Prepared each time: probes
 * are seconds apart. (Whether to write at all is the writer's call.) */
static int apply_probe(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)op;
	(void)fx;
	struct sqlite_store *st = be;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->wdb, "INSERT INTO meta (key, value) VALUES ('ready_probe', randomblob(?1))"
	                            " ON CONFLICT (key) DO UPDATE SET value = excluded.value", -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int(s, 1, STORE_PROBE_BYTES);
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE && store_fault_hit())
		rc = SQLITE_NOMEM;
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A batch's Idempotency-Key seen before: the same body gets the first
 * batch back, another body a conflict; nothing is inserted either way. */
static int batch_idempotent_replay(struct sqlite_store *st, struct store_op *op)
{
	struct store_op_batch *b = &op->batch;
	sqlite3_stmt *s = st->wstmt[SQL_BATCH_IDEM_FIND];
	sqlite3_bind_text(s, 1, b->idem_key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *hash = sqlite3_column_text(s, 1);
		if (hash && b->idem_hash && strcmp((const char *)hash, b->idem_hash) == 0) {
			column_copy(s, 0, b->id, sizeof b->id);
			b->replayed = true;
		} else {
			op->rc = STORE_CONFLICT;
		}
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Inserts the batch and all its jobs; the op's savepoint makes it all or
 * nothing. */
static int apply_batch(void *be, struct store_op *op, struct store_effects *fx)
{
	struct sqlite_store *st = be;
	struct store_op_batch *b = &op->batch;
	int64_t unused = 0;
	struct deps_plan plan = {.any = false};
	int rc = b->idem_key ? batch_idempotent_replay(st, op) : SQLITE_OK;
	if (rc != SQLITE_OK || b->replayed || op->rc != STORE_OK)
		return rc;
	if ((rc = store_deps_batch_prepare(&store_sqlite_deps, st, b->jobs, b->njobs, &plan)) != SQLITE_OK)
		goto out;
	for (int i = 0; plan.any && i < b->njobs; i++) {
		if (b->jobs[i]->deps.missing >= 0) {
			op->rc = STORE_NOT_FOUND;  /* nothing written */
			goto out;
		}
	}
	sqlite3_stmt *s = st->wstmt[SQL_BATCH_INSERT];
	sqlite3_bind_text(s, 1, b->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, clock_now_ms());
	sqlite3_bind_int(s, 3, b->njobs);
	bind_text_or_null(s, 4, b->url);
	bind_text_or_null(s, 5, b->idem_key);
	bind_text_or_null(s, 6, b->idem_key ? b->idem_hash : NULL);
	rc = step_int64(s, &unused);
	for (int i = 0; rc == SQLITE_OK && i < b->njobs; i++) {
		struct job *job = b->jobs[i];
		memcpy(job->batch_id, b->id, sizeof b->id);
		free(job->idem_key); /* keys belong to single submissions */
		job->idem_key = NULL;
		rc = store_fault_hit() ? SQLITE_NOMEM : insert_job(st, job);
		if (rc == SQLITE_OK && job->seq == 0)
			rc = SQLITE_CONSTRAINT;
	}
	if (rc == SQLITE_OK)
		rc = store_deps_batch_insert(&store_sqlite_deps, st, b->jobs, b->njobs, &plan, b->id, &fx->cascade);
	/* Runnable if any job is; a queue is looked up once per run of jobs
	 * on it (a batch mostly goes to one queue). */
	fx->runnable = false;
	const char *looked = NULL;
	for (int i = 0; rc == SQLITE_OK && !fx->runnable && i < b->njobs; i++) {
		enum job_state state = b->jobs[i]->state;
		if (state == JOB_BLOCKED || state == JOB_CANCELED)
			continue;
		if (!looked || state == JOB_SCHEDULED || strcmp(b->jobs[i]->queue, looked) != 0)
			rc = inserted_runnable(st, b->jobs[i], &fx->runnable);
		looked = b->jobs[i]->queue;
	}
out:
	store_deps_plan_free(&plan);
	return rc;
}

/* After a job of batch_id ended: marks the batch finished when none of its
 * jobs waits or runs any more; *done tells whether it just did. */
static int check_batch_done(struct sqlite_store *st, const char *batch_id, bool *done)
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

static int apply_callback(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)fx;
	struct sqlite_store *st = be;
	struct store_op_callback *c = &op->callback;
	int64_t unused = 0;
	sqlite3_stmt *s = st->wstmt[c->is_batch ? SQL_CALLBACK_BATCH : SQL_CALLBACK_JOB];
	sqlite3_bind_text(s, 1, c->id, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, (int)c->delivery);
	bind_int64_or_null(s, 3, c->delivery == DELIVERY_PENDING ? c->next_at : 0);
	bind_int64_or_null(s, 4, c->status);
	bind_text_or_null(s, 5, c->error);
	int rc = step_int64(s, &unused);
	return rc == SQLITE_OK && store_fault_hit() ? SQLITE_NOMEM : rc;
}

/* Deletes up to SWEEP_BATCH expired jobs in one short transaction. */
static int sqlite_sweep(void *be, int64_t now, int *deleted, int64_t *next)
{
	struct sqlite_store *st = be;
	sqlite3_stmt *a = st->wstmt[SQL_SWEEP_ATTEMPTS], *j = st->wstmt[SQL_SWEEP_JOBS];
	sqlite3_bind_int64(a, 1, now);
	sqlite3_bind_int64(j, 1, now);
	int64_t unused = 0;
	bool ok = sqlite_exec(st->wdb, "BEGIN IMMEDIATE") == SQLITE_OK &&
	          step_int64(a, &unused) == SQLITE_OK &&
	          step_int64(j, &unused) == SQLITE_OK &&
	          (*deleted = sqlite3_changes(st->wdb), sqlite_exec(st->wdb, "COMMIT") == SQLITE_OK);
	if (!ok) {
		if (!sqlite3_get_autocommit(st->wdb))
			sqlite_exec(st->wdb, "ROLLBACK");
		return SQLITE_ERROR;
	}
	if (*deleted >= SWEEP_BATCH) {
		*next = now;
		return SQLITE_OK;
	}
	return step_int64(st->wstmt[SQL_NEXT_EXPIRY], next);
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

static int take_lock(struct sqlite_store *st, char *why, size_t whylen)
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
static int check_writable(struct sqlite_store *st, char *why, size_t whylen)
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
static int check_integrity(struct sqlite_store *st, double budget_s, char *why, size_t whylen)
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
static int open_writer(struct sqlite_store *st, const struct store_options *opts, char *why, size_t whylen)
{
	int rc = open_conn(st->path, &st->wdb, why, whylen);
	if (rc != SQLITE_OK || (rc = check_writable(st, why, whylen)) != SQLITE_OK)
		return rc;
	st->sync_pragma = opts->durability == STORE_DURABLE_CRASH ? "PRAGMA synchronous = NORMAL"
	                                                          : "PRAGMA synchronous = FULL";
	const char *setup[] = {
		"PRAGMA journal_mode = WAL", st->sync_pragma, "PRAGMA journal_size_limit = 67108864",
		/* A group (a 10,000-job batch, or a thousand submits) dirties
		 * thousands of pages; with the default 2 MiB cache SQLite spills
		 * them to the WAL mid-transaction and writes many pages several
		 * times over. 64 MiB keeps a whole group in memory. */
		"PRAGMA cache_size = -65536",
		/* Inside a group every op keeps a savepoint, and every INSERT or
		 * UPDATE that may fail alone (a UNIQUE id, the count triggers) a
		 * statement journal: the old copy of every page it touches. In a
		 * temp file that was two write() calls per page, 20,000 for a
		 * 1,000-job batch. */
		"PRAGMA temp_store = MEMORY",
	};
	for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++)
		if ((rc = sqlite_exec_quiet(st->wdb, setup[i], why, whylen)) != SQLITE_OK)
			return rc;
	if (opts->integrity_check_s > 0 && (rc = check_integrity(st, opts->integrity_check_s, why, whylen)) != SQLITE_OK)
		return rc;
	if ((rc = sqlite_schema_migrate(st->wdb, why, whylen)) != SQLITE_OK)
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

/* Runs one recovery statement; *changed gets the rows it changed itself
 * (sqlite3_changes: rows written by the count triggers are not counted). */
static int recover_step(struct sqlite_store *st, const char *sql, int64_t now, int *changed, char *why,
                        size_t whylen)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->wdb, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		for (int i = 1; i <= sqlite3_bind_parameter_count(s); i++)
			sqlite3_bind_int64(s, i, now);
		rc = sqlite3_step(s);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK)
		snprintf(why, whylen, "%s", sqlite3_errmsg(st->wdb));
	else if (changed)
		*changed = sqlite3_changes(st->wdb);
	sqlite3_finalize(s);
	return rc;
}

/* Jobs left running belong to a process that died (we hold the lock, so
 * no other jobqd runs them). Their attempt is recorded as interrupted; the
 * attempt was counted when they were claimed, so a job that crashes jobqd
 * every time ends failed after max_attempts runs instead of looping.
 * Returns the SQLite code, with the reason in why on failure. */
static int recover(struct sqlite_store *st, char *why, size_t whylen)
{
	static const char *const steps[] = {
		"INSERT OR REPLACE INTO job_attempts (job_seq, attempt, started_at, finished_at, outcome, error)"
		"  SELECT seq, attempts, started_at, ?1, 'interrupted', 'jobqd stopped while the job ran'"
		"  FROM jobs WHERE state = " S_RUNNING " AND lease_id IS NULL",
		"UPDATE jobs SET state = " S_FAILED ", finished_at = ?1, expires_at = " EXPIRES("?1") ","
		CALLBACK_DUE("?1") ","
		"  error = 'interrupted: jobqd stopped while the job ran and no attempts are left'"
		"  WHERE state = " S_RUNNING " AND attempts >= max_attempts AND lease_id IS NULL",
		"UPDATE jobs SET state = " S_QUEUED ", started_at = NULL WHERE state = " S_RUNNING " AND lease_id IS NULL",
		"UPDATE batches SET finished_at = ?1,"
		"  callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE " S_PENDING " END,"
		"  callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE ?1 END"
		"  WHERE finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM batch_counts"
		"    WHERE batch_id = batches.id AND state IN (" S_WAITING ") AND n > 0)",
	};
	int64_t now = clock_now_ms();
	int failed = 0, requeued = 0;
	int rc = sqlite_exec_quiet(st->wdb, "BEGIN IMMEDIATE", why, whylen);
	if (rc != SQLITE_OK)
		return rc;
	if ((rc = recover_step(st, steps[0], now, NULL, why, whylen)) != SQLITE_OK ||
	    (rc = recover_step(st, steps[1], now, &failed, why, whylen)) != SQLITE_OK ||
	    (rc = recover_step(st, steps[2], now, &requeued, why, whylen)) != SQLITE_OK ||
	    (rc = recover_step(st, steps[3], now, NULL, why, whylen)) != SQLITE_OK ||
	    (rc = sqlite_exec_quiet(st->wdb, "COMMIT", why, whylen)) != SQLITE_OK) {
		sqlite3_exec(st->wdb, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (failed + requeued > 0)
		log_warn("recovered %d job(s) left running by a previous process", failed + requeued);
	return SQLITE_OK;
}

/* Whether an SQLite code says the file itself is damaged. */
static bool is_damage(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

static void sqlite_close(void *be)
{
	struct sqlite_store *st = be;
	if (!st)
		return;
	for (struct reader *r = st->all_readers, *next; r; r = next) {
		next = r->all_next;
		reader_close(r);
	}
	for (int i = 0; i < SQL_COUNT; i++)
		sqlite3_finalize(st->wstmt[i]);
	for (size_t i = 0; i < sizeof st->rate_stmt / sizeof st->rate_stmt[0]; i++)
		sqlite3_finalize(st->rate_stmt[i]);
	for (int i = 0; i < DEPS_SQL_COUNT; i++)
		sqlite3_finalize(st->dstmt[i]);
	if (st->wdb && sqlite3_close(st->wdb) != SQLITE_OK)
		log_error("closing the database: %s", sqlite3_errmsg(st->wdb));
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	pthread_cond_destroy(&st->readers_cv);
	pthread_mutex_destroy(&st->readers_mu);
	free(st->path);
	free(st);
}

static int sqlite_open(const struct store_options *opts, void **out, char *err, size_t errlen)
{
	pthread_once(&log_once, install_log);
	struct sqlite_store *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return STORE_OPEN_FAILED;
	}
	int result = STORE_OPEN_FAILED;
	char why[512] = "";
	st->lock_fd = -1;
	st->max_readers = opts->readers > 0 ? opts->readers : DEFAULT_READERS;
	pthread_mutex_init(&st->readers_mu, NULL);
	pthread_cond_init(&st->readers_cv, NULL);
	if (!(st->path = strdup(opts->path))) {
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
	*out = st;
	return 0;
fail:
	met_damage = false;
	sqlite_close(st);
	return result;
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

static enum store_rc sqlite_get_job(void *be, const char *id, struct job **out)
{
	struct sqlite_store *st = be;
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

enum { LIST_STATE = 1, LIST_QUEUE = 2, LIST_TYPE = 4, LIST_BEFORE = 8, LIST_BATCH = 16, LIST_IDS = 32 };

/* A set of ids is read by id, one lookup each (?7 is a JSON array of them);
 * a batch through its own index, which no other filter beats: a batch is
 * at most JOB_BATCH_MAX jobs, already in seq order there. */
static void list_sql(int variant, char *sql, size_t n)
{
	static const struct { int bit; const char *term; } terms[] = {
		{LIST_BATCH, "batch_id = ?6"}, {LIST_STATE, "state = ?1"}, {LIST_QUEUE, "queue = ?2"},
		{LIST_TYPE, "type = ?3"}, {LIST_BEFORE, "seq < ?4"},
	};
	bool by_ids = variant & LIST_IDS;
	size_t len = (size_t)snprintf(sql, n, "SELECT " JOB_COLUMNS " FROM jobs%s WHERE 1%s",
	                              (variant & LIST_BATCH) && !by_ids ? " INDEXED BY jobs_batch" : "",
	                              by_ids ? " AND id IN (SELECT value FROM json_each(?7))" : "");
	/* With ids, a unary + keeps the other terms off their indexes. */
	for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++)
		if ((variant & terms[i].bit) && len < n)
			len += (size_t)snprintf(sql + len, n - len, " AND %s%s", by_ids ? "+" : "", terms[i].term);
	if (len < n)
		snprintf(sql + len, n - len, " ORDER BY seq DESC LIMIT ?5");
}

/* The ids as a JSON array of strings (they are UUIDs: nothing to escape);
 * the caller frees it. */
static char *ids_json(const char *const *ids, size_t n)
{
	size_t cap = 3 + n * (UUID_LEN + 3);
	char *out = malloc(cap), *p = out;
	if (!out)
		return NULL;
	*p++ = '[';
	for (size_t i = 0; i < n; i++)
		p += snprintf(p, cap - (size_t)(p - out), "%s\"%.36s\"", i ? "," : "", ids[i]);
	snprintf(p, cap - (size_t)(p - out), "]");
	return out;
}

static enum store_rc sqlite_list_jobs(void *be, const struct store_filter *f,
                              struct job ***jobs, size_t *n, int64_t *next_seq)
{
	struct sqlite_store *st = be;
	int limit = f->limit < 1 ? 1 : f->limit;
	int variant = (f->has_state ? LIST_STATE : 0) | (f->queue ? LIST_QUEUE : 0) |
	              (f->type ? LIST_TYPE : 0) | (f->before_seq > 0 ? LIST_BEFORE : 0) |
	              (f->batch_id ? LIST_BATCH : 0) | (f->nids > 0 ? LIST_IDS : 0);
	char *ids = f->nids > 0 ? ids_json(f->ids, f->nids) : NULL;
	if (f->nids > 0 && !ids)
		return STORE_UNAVAILABLE;
	struct reader *r = reader_take(st);
	if (!r) {
		free(ids);
		return STORE_UNAVAILABLE;
	}
	enum store_rc rc = STORE_OK;
	struct job **out = NULL;
	size_t count = 0;
	if (!r->list[variant]) {
		char sql[1024];
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
	if (f->batch_id)
		sqlite3_bind_text(s, 6, f->batch_id, -1, SQLITE_STATIC);
	if (ids)
		sqlite3_bind_text(s, 7, ids, -1, SQLITE_STATIC);
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
	free(ids);
	reader_give(st, r);
	return rc;
}

/* ---- queues --------------------------------------------------------- */

static enum store_rc sqlite_get_queue(void *be, const char *name, struct queue_info *out)
{
	struct sqlite_store *st = be;
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

static enum store_rc sqlite_list_queue_names(void *be, const char *after, int max,
                                             char (**names)[JOB_NAME_MAX + 1], size_t *n)
{
	struct sqlite_store *st = be;
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
	"  WHERE state = " S_QUEUED " AND queue = c.queue ORDER BY run_at LIMIT 1)"
	" FROM queue_counts c WHERE c.state = " S_QUEUED " AND c.n > 0 ORDER BY c.n DESC, c.queue";

static enum store_rc sqlite_deepest_queues(void *be, struct queue_info *out, int top, int *n,
                                           struct queue_info *rest)
{
	struct sqlite_store *st = be;
	*n = 0;
	memset(rest, 0, sizeof *rest);
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	/* Prepared per call: a scrape runs it seldom, and the reader's
	 * statements stay the ones every request needs. */
	sqlite3_stmt *s = NULL;
	int rc = prepare(r->db, deepest_sql, &s);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(s)) {
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

static enum store_rc sqlite_state_counts(void *be, int64_t out[JOB_STATE_COUNT])
{
	struct sqlite_store *st = be;
	memset(out, 0, sizeof(int64_t) * JOB_STATE_COUNT);
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	sqlite3_stmt *s = NULL;
	int rc = prepare(r->db, "SELECT state, sum(n) FROM queue_counts GROUP BY state", &s);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	for (; rc == SQLITE_ROW; rc = sqlite3_step(s)) {
		int state = sqlite3_column_int(s, 0);
		if (state >= 0 && state < JOB_STATE_COUNT)
			out[state] = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
	reader_give(st, r);
	if (rc != SQLITE_DONE) {
		log_error("reading state counts: %s", sqlite3_errstr(rc));
		return STORE_UNAVAILABLE;
	}
	return STORE_OK;
}

/* ---- batches and callbacks ------------------------------------------ */

static enum store_rc sqlite_get_batch(void *be, const char *id, struct batch_info *out)
{
	struct sqlite_store *st = be;
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

static enum store_rc sqlite_due_callbacks(void *be, int64_t now, struct due_callback *out, int max,
                                  int *n, int64_t *next)
{
	struct sqlite_store *st = be;
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

char *store_explain(struct store *store, const char *query)
{
	struct sqlite_store *st = store_backend_state(store, &store_sqlite_backend);
	if (!st)
		return NULL;
	/* Not static: an element of a const array is not a constant
	 * expression in ISO C (gcc accepts it, clang does not). */
	const struct { const char *name; const char *sql; } named[] = {
		{"claim", writer_sql[SQL_CLAIM]}, {"promote", writer_sql[SQL_PROMOTE]},
		{"next_due", writer_sql[SQL_NEXT_DUE]}, {"sweep", writer_sql[SQL_SWEEP_JOBS]},
		{"oldest_queued", reader_sql[4]}, {"get", reader_sql[0]},
	};
	char sql[1200];
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
			{"list_batch", LIST_BATCH | LIST_BEFORE}, {"list_batch_first_page", LIST_BATCH},
			{"list_batch_state", LIST_BATCH | LIST_STATE | LIST_BEFORE},
			{"list_batch_state_queue_type", LIST_BATCH | LIST_STATE | LIST_QUEUE | LIST_TYPE | LIST_BEFORE},
			{"list_ids", LIST_IDS | LIST_BEFORE}, {"list_ids_first_page", LIST_IDS},
			{"list_ids_state", LIST_IDS | LIST_STATE | LIST_BEFORE},
			{"list_ids_batch_state_queue", LIST_IDS | LIST_BATCH | LIST_STATE | LIST_QUEUE | LIST_BEFORE},
		};
		int variant = -1;
		for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
			if (strcmp(query, lists[i].name) == 0)
				variant = lists[i].variant;
		if (variant < 0)
			return NULL;
		char inner[1024];
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

static int sqlite_version(void *be)
{
	struct sqlite_store *st = be;
	struct reader *r = reader_take(st);
	if (!r)
		return -1;
	int v = sqlite_schema_version(r->db);
	reader_give(st, r);
	return v;
}

/* ---- rate limits ------------------------------------------------------ */

#define RATE_COLUMNS "queue, rate_limit, period_ms, burst, retry_after, tokens, refilled_at, paused_until"

enum { RATE_LOAD, RATE_SAVE, RATE_DELETE, RATE_NAMES };

static const char *const rate_sql[] = {
	[RATE_LOAD] = "SELECT " RATE_COLUMNS " FROM queue_rates WHERE queue = ?1",
	[RATE_SAVE] = "INSERT OR REPLACE INTO queue_rates (" RATE_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[RATE_DELETE] = "DELETE FROM queue_rates WHERE queue = ?1 RETURNING queue",
	[RATE_NAMES] = "SELECT queue FROM queue_rates ORDER BY queue",
};

_Static_assert(sizeof rate_sql / sizeof rate_sql[0] == sizeof ((struct sqlite_store *)0)->rate_stmt /
               sizeof ((struct sqlite_store *)0)->rate_stmt[0], "one statement per rate_sql");

/* The writer's statement k, prepared on first use; NULL on failure. */
static sqlite3_stmt *rate_stmt(struct sqlite_store *st, int k)
{
	if (!st->rate_stmt[k] && prepare(st->wdb, rate_sql[k], &st->rate_stmt[k]) != SQLITE_OK)
		return NULL;
	return st->rate_stmt[k];
}

static void rate_row(sqlite3_stmt *s, struct store_rate *out)
{
	memset(out, 0, sizeof *out);
	column_copy(s, 0, out->queue, sizeof out->queue);
	out->bucket.limit = sqlite3_column_double(s, 1);
	out->bucket.period_ms = sqlite3_column_int64(s, 2);
	out->bucket.burst = sqlite3_column_double(s, 3);
	out->retry_after = sqlite3_column_int(s, 4) != 0;
	out->bucket.tokens = sqlite3_column_double(s, 5);
	out->bucket.refilled_at = sqlite3_column_int64(s, 6);
	out->bucket.paused_until = sqlite3_column_int64(s, 7);
}

static int sqlite_rate_load(void *be, const char *queue, struct store_rate *out, bool *found)
{
	sqlite3_stmt *s = rate_stmt(be, RATE_LOAD);
	if (!s)
		return SQLITE_ERROR;
	*found = false;
	sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		rate_row(s, out);
		*found = true;
		rc = sqlite3_step(s);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sqlite_rate_save(void *be, const struct store_rate *rate)
{
	sqlite3_stmt *s = rate_stmt(be, RATE_SAVE);
	if (!s)
		return SQLITE_ERROR;
	if (store_fault_hit())
		return SQLITE_NOMEM;
	int64_t unused = 0;
	sqlite3_bind_text(s, 1, rate->queue, -1, SQLITE_STATIC);
	sqlite3_bind_double(s, 2, rate->bucket.limit);
	sqlite3_bind_int64(s, 3, rate->bucket.period_ms);
	sqlite3_bind_double(s, 4, rate->bucket.burst);
	sqlite3_bind_int(s, 5, rate->retry_after);
	sqlite3_bind_double(s, 6, rate->bucket.tokens);
	sqlite3_bind_int64(s, 7, rate->bucket.refilled_at);
	sqlite3_bind_int64(s, 8, rate->bucket.paused_until);
	return step_int64(s, &unused);
}

static int sqlite_rate_delete(void *be, const char *queue, bool *found)
{
	sqlite3_stmt *s = rate_stmt(be, RATE_DELETE);
	if (!s)
		return SQLITE_ERROR;
	sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sqlite_rate_names(void *be, int (*each)(void *arg, const char *queue), void *arg)
{
	sqlite3_stmt *s = rate_stmt(be, RATE_NAMES);
	if (!s)
		return SQLITE_ERROR;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (each(arg, (const char *)sqlite3_column_text(s, 0)) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Reads through a reader, preparing the statement for this call (rates
 * are read by a queue's page and a metrics scrape, not per job). */
static enum store_rc rate_read(struct sqlite_store *st, const char *queue, struct store_rate **out, size_t *n)
{
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	sqlite3_stmt *s = NULL;
	const char *sql = queue ? rate_sql[RATE_LOAD] : "SELECT " RATE_COLUMNS " FROM queue_rates ORDER BY queue";
	struct store_rate *rates = NULL;
	size_t count = 0, cap = 0;
	int rc = prepare(r->db, sql, &s);
	if (rc == SQLITE_OK && queue)
		sqlite3_bind_text(s, 1, queue, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			struct store_rate *grown = realloc(rates, cap * sizeof *grown);
			if (!grown) {
				rc = SQLITE_NOMEM;
				break;
			}
			rates = grown;
		}
		rate_row(s, &rates[count++]);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	reader_give(st, r);
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		log_error("reading rate limits: %s", sqlite3_errstr(rc));
		free(rates);
		return STORE_UNAVAILABLE;
	}
	*out = rates;
	*n = count;
	return STORE_OK;
}

static enum store_rc sqlite_get_rate(void *be, const char *queue, struct store_rate *out, bool *found)
{
	struct store_rate *rates = NULL;
	size_t n = 0;
	enum store_rc rc = rate_read(be, queue, &rates, &n);
	*found = rc == STORE_OK && n > 0;
	if (*found)
		*out = rates[0];
	free(rates);
	return rc;
}

static enum store_rc sqlite_list_rates(void *be, struct store_rate **out, size_t *n)
{
	return rate_read(be, NULL, out, n);
}

/* ---- schedules ------------------------------------------------------ */

static int apply_schedule(void *be, struct store_op *op, struct store_effects *fx)
{
	static const int sql[] = {
		[STORE_SCHEDULE_CREATE] = SQL_SCHED_INSERT, [STORE_SCHEDULE_REPLACE] = SQL_SCHED_REPLACE,
		[STORE_SCHEDULE_DELETE] = SQL_SCHED_DELETE, [STORE_SCHEDULE_PAUSE] = SQL_SCHED_PAUSE,
		[STORE_SCHEDULE_RESUME] = SQL_SCHED_RESUME,
	};
	struct sqlite_store *st = be;
	const struct store_op_schedule *o = &op->schedule;
	(void)fx;
	sqlite3_stmt *s = st->wstmt[sql[o->action]];
	int n = sqlite3_bind_parameter_count(s);
	sqlite3_bind_text(s, 1, o->name, -1, SQLITE_STATIC);
	if (n >= 2)
		bind_text_or_null(s, 2, o->spec);
	if (n >= 3)
		bind_int64_or_null(s, 3, o->next_fire_at);
	if (n >= 4)
		sqlite3_bind_int64(s, 4, o->now);
	int rc = step_done(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_OK && store_fault_hit())
		rc = SQLITE_NOMEM;
	if (rc == SQLITE_OK && sqlite3_changes(st->wdb) == 0)
		op->rc = o->action == STORE_SCHEDULE_CREATE ? STORE_CONFLICT : STORE_NOT_FOUND;
	return rc;
}

/* Inserts a fired job unless its fire already has one (seq left 0). */
static int insert_fired(struct sqlite_store *st, struct job *job, bool *runnable)
{
	int64_t found = 0;
	sqlite3_stmt *s = st->wstmt[SQL_FIRE_EXISTS];
	sqlite3_bind_text(s, 1, job->schedule_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, job->schedule_fire_at);
	int rc = step_int64(s, &found);
	job->seq = 0;
	if (rc != SQLITE_OK || found)
		return rc;
	if ((rc = insert_job(st, job)) != SQLITE_OK)
		return rc;
	if (job->seq == 0)
		return SQLITE_CONSTRAINT;         /* its id taken: never for a fresh UUIDv7 */
	s = st->wstmt[SQL_FIRE_MARK];
	sqlite3_bind_int64(s, 1, job->seq);
	sqlite3_bind_text(s, 2, job->schedule_name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, job->schedule_fire_at);
	rc = step_done(s);
	sqlite3_clear_bindings(s);
	bool ok = false;
	if (rc == SQLITE_OK && (rc = inserted_runnable(st, job, &ok)) == SQLITE_OK && ok)
		*runnable = true;
	return rc;
}

static int apply_fire(void *be, struct store_op *op, struct store_effects *fx)
{
	struct sqlite_store *st = be;
	struct store_op_fire *f = &op->fire;
	int64_t last = 0;
	for (int i = 0; i < f->njobs; i++)
		if (f->jobs[i]->schedule_fire_at > last)
			last = f->jobs[i]->schedule_fire_at;
	sqlite3_stmt *s = st->wstmt[f->due ? SQL_SCHED_CAS : SQL_SCHED_RUN];
	sqlite3_bind_text(s, 1, f->name, -1, SQLITE_STATIC);
	if (f->due) {
		sqlite3_bind_int64(s, 2, f->due);
		bind_int64_or_null(s, 3, f->next);
		bind_int64_or_null(s, 4, last);
	} else {
		sqlite3_bind_int64(s, 2, last);
	}
	int rc = step_done(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_OK && store_fault_hit())
		rc = SQLITE_NOMEM;
	if (rc != SQLITE_OK)
		return rc;
	if (sqlite3_changes(st->wdb) == 0) {
		op->rc = f->due ? STORE_CONFLICT : STORE_NOT_FOUND;
		return SQLITE_OK;
	}
	f->fired = 0;
	for (int i = 0; i < f->njobs; i++) {
		if ((rc = insert_fired(st, f->jobs[i], &fx->runnable)) != SQLITE_OK)
			return rc;
		if (store_fault_hit())
			return SQLITE_NOMEM;
		if (f->jobs[i]->seq != 0)
			f->fired++;
	}
	return SQLITE_OK;
}

#define SCHEDULE_COLUMNS "name, spec, next_fire_at, last_fire_at, paused, created_at, updated_at"

/* Runs a schedule read on a reader: each row into out[*n] (up to max).
 * binds: ?1 text (or NULL), ?2 integer. */
static enum store_rc read_schedules(struct sqlite_store *st, const char *sql, const char *text, int64_t num,
                                    struct store_schedule *out, int max, size_t *n)
{
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	sqlite3_stmt *s = NULL;
	enum store_rc result = STORE_UNAVAILABLE;
	*n = 0;
	if (prepare(r->db, sql, &s) != SQLITE_OK)
		goto out;
	if (sqlite3_bind_parameter_count(s) >= 1)
		bind_text_or_null(s, 1, text);
	if (sqlite3_bind_parameter_count(s) >= 2)
		sqlite3_bind_int64(s, 2, num);
	int rc = SQLITE_DONE;
	while ((int)*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_schedule *o = &out[*n];
		memset(o, 0, sizeof *o);
		column_copy(s, 0, o->name, sizeof o->name);
		o->next_fire_at = sqlite3_column_int64(s, 2);
		o->last_fire_at = sqlite3_column_int64(s, 3);
		o->paused = sqlite3_column_int(s, 4) != 0;
		o->created_at = sqlite3_column_int64(s, 5);
		o->updated_at = sqlite3_column_int64(s, 6);
		(*n)++;
		if (!(o->spec = column_strdup(s, 1))) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if ((int)*n == max || rc == SQLITE_DONE)
		result = STORE_OK;
	else
		log_error("reading schedules: %s", sqlite3_errmsg(r->db));
out:
	if (result != STORE_OK) {
		for (size_t i = 0; i < *n; i++)
			store_schedule_clear(&out[i]);
		*n = 0;
	}
	sqlite3_finalize(s);
	reader_give(st, r);
	return result;
}

static enum store_rc sqlite_get_schedule(void *be, const char *name, struct store_schedule *out)
{
	size_t n = 0;
	enum store_rc rc = read_schedules(be, "SELECT " SCHEDULE_COLUMNS " FROM schedules WHERE name = ?1", name, 0,
	                                  out, 1, &n);
	return rc == STORE_OK && n == 0 ? STORE_NOT_FOUND : rc;
}

static enum store_rc sqlite_list_schedules(void *be, const char *after, int max, struct store_schedule **out,
                                           size_t *n)
{
	if (!(*out = calloc((size_t)max, sizeof **out)))
		return STORE_UNAVAILABLE;
	enum store_rc rc = read_schedules(be, "SELECT " SCHEDULE_COLUMNS " FROM schedules WHERE name > ?1"
	                                  " ORDER BY name LIMIT ?2", after ? after : "", max, *out, max, n);
	if (rc != STORE_OK) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

static enum store_rc sqlite_due_schedules(void *be, int64_t now, struct store_schedule *out, int max, int *n)
{
	size_t got = 0;
	enum store_rc rc = read_schedules(be, "SELECT " SCHEDULE_COLUMNS " FROM schedules INDEXED BY schedules_due"
	                                  " WHERE next_fire_at IS NOT NULL AND next_fire_at <= ?2"
	                                  " ORDER BY next_fire_at LIMIT " JOBQ_STR(FIRE_READ_MAX),
	                                  NULL, now, out, max, &got);
	*n = (int)got;
	return rc;
}

/* One integer from a reader (0 for none). */
static enum store_rc read_int64(struct sqlite_store *st, const char *sql, int64_t *out)
{
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	sqlite3_stmt *s = NULL;
	*out = 0;
	int rc = prepare(r->db, sql, &s);
	if (rc == SQLITE_OK)
		rc = step_int64(s, out);
	sqlite3_finalize(s);
	reader_give(st, r);
	return rc == SQLITE_OK ? STORE_OK : STORE_UNAVAILABLE;
}

static enum store_rc sqlite_next_schedule(void *be, int64_t *next)
{
	return read_int64(be, "SELECT min(next_fire_at) FROM schedules WHERE next_fire_at IS NOT NULL", next);
}

static enum store_rc sqlite_count_schedules(void *be, int64_t *active, int64_t *paused)
{
	enum store_rc rc = read_int64(be, "SELECT count(*) FROM schedules WHERE NOT paused", active);
	return rc == STORE_OK ? read_int64(be, "SELECT count(*) FROM schedules WHERE paused", paused) : rc;
}

/* ---- leases now (the dashboard's external workers) --------------------- */

static enum store_rc sqlite_list_leases(void *be, const char *queue, int max, struct store_lease_info *out, int *n)
{
	static const char sql[] =
		"SELECT id, queue, type, attempts, started_at, lease_expires_at FROM jobs INDEXED BY jobs_lease_expiry"
		" WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL AND (?1 IS NULL OR queue = ?1)"
		" ORDER BY lease_expires_at, seq LIMIT ?2";
	struct sqlite_store *st = be;
	struct reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(r->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		bind_text_or_null(s, 1, queue);
		sqlite3_bind_int(s, 2, max);
		while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
			struct store_lease_info *l = &out[(*n)++];
			memset(l, 0, sizeof *l);
			column_copy(s, 0, l->id, sizeof l->id);
			column_copy(s, 1, l->queue, sizeof l->queue);
			column_copy(s, 2, l->type, sizeof l->type);
			l->attempt = sqlite3_column_int(s, 3);
			l->started_at = sqlite3_column_int64(s, 4);
			l->expires_at = sqlite3_column_int64(s, 5);
		}
	}
	sqlite3_finalize(s);
	reader_give(st, r);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("reading the leases failed");
		*n = 0;
		return STORE_UNAVAILABLE;
	}
	return STORE_OK;
}

const struct store_backend store_sqlite_backend = {
	.name = "sqlite",
	.open = sqlite_open,
	.close = sqlite_close,
	.errstr = sqlite_errstr,
	.begin = sqlite_begin,
	.commit = sqlite_commit,
	.rollback = sqlite_rollback,
	.in_transaction = sqlite_in_transaction,
	.op_begin = sqlite_op_begin,
	.op_end = sqlite_op_end,
	.op_undo = sqlite_op_undo,
	.apply = {
		[STORE_OP_SUBMIT] = apply_submit,
		[STORE_OP_BATCH] = apply_batch,
		[STORE_OP_CALLBACK] = apply_callback,
		[STORE_OP_FINISH] = apply_finish,
		[STORE_OP_CANCEL] = apply_cancel,
		[STORE_OP_RETRY] = apply_retry,
		[STORE_OP_DELETE] = apply_delete,
		[STORE_OP_PAUSE] = apply_pause,
		[STORE_OP_PING] = apply_ping,
		[STORE_OP_PROBE] = apply_probe,
		[STORE_OP_HEARTBEAT] = apply_heartbeat,
		[STORE_OP_SCHEDULE] = apply_schedule,
		[STORE_OP_FIRE] = apply_fire,
	},
	.promote = sqlite_promote,
	.ready_queues = sqlite_ready_queues,
	.claim = sqlite_claim,
	.next_due = sqlite_next_due,
	.running = sqlite_running,
	.lease_mark = sqlite_lease_mark,
	.expired = sqlite_expired,
	.sweep = sqlite_sweep,
	.get_job = sqlite_get_job,
	.list_jobs = sqlite_list_jobs,
	.get_queue = sqlite_get_queue,
	.list_queue_names = sqlite_list_queue_names,
	.deepest_queues = sqlite_deepest_queues,
	.state_counts = sqlite_state_counts,
	.get_batch = sqlite_get_batch,
	.due_callbacks = sqlite_due_callbacks,
	.schema_version = sqlite_version,
	.damaged = sqlite_damaged,
	.after_writes = sqlite_after_writes,
	.rate_load = sqlite_rate_load,
	.rate_save = sqlite_rate_save,
	.rate_delete = sqlite_rate_delete,
	.rate_names = sqlite_rate_names,
	.get_rate = sqlite_get_rate,
	.list_rates = sqlite_list_rates,
	.get_schedule = sqlite_get_schedule,
	.list_schedules = sqlite_list_schedules,
	.due_schedules = sqlite_due_schedules,
	.next_schedule = sqlite_next_schedule,
	.count_schedules = sqlite_count_schedules,
	.list_leases = sqlite_list_leases,
};

/* ---- dependencies (store/deps_store.h) ------------------------------- */

static const char *const deps_sql[DEPS_SQL_COUNT] = {
	[D_STATE] = "SELECT state FROM jobs WHERE id = ?1",
	[D_EDGE] = "INSERT INTO job_deps (child, parent, resolved) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
	[D_COLUMNS] = "UPDATE jobs SET depends_on = ?2, dep_policy = ?3, deps_pending = ?4 WHERE id = ?1",
	[D_CHILDREN] = "SELECT d.child, j.dep_policy FROM job_deps d JOIN jobs j ON j.id = d.child"
	               " WHERE d.parent = ?1 AND d.resolved = 0 AND j.state = " S_BLOCKED,
	[D_RESOLVE_EDGE] = "UPDATE job_deps SET resolved = 1 WHERE child = ?1 AND parent = ?2 AND resolved = 0",
	/* The last parent: runnable now (run_at from now on, so its wait in
	 * the queue counts from here), or at a run_at still ahead. */
	[D_COUNT_DOWN] = "UPDATE jobs SET deps_pending = deps_pending - 1,"
	                 " state = CASE WHEN deps_pending > 1 THEN " S_BLOCKED " WHEN run_at > ?2 THEN " S_SCHEDULED
	                 "   ELSE " S_QUEUED " END,"
	                 " run_at = CASE WHEN deps_pending <= 1 AND run_at < ?2 THEN ?2 ELSE run_at END"
	                 " WHERE id = ?1 AND state = " S_BLOCKED
	                 " RETURNING state, queue, type, batch_id, attempts",
	[D_CANCEL] = "UPDATE jobs SET state = " S_CANCELED ", error = ?2, finished_at = ?3,"
	             " expires_at = " EXPIRES("?3") "," CALLBACK_DUE("?3")
	             " WHERE id = ?1 AND state = " S_BLOCKED
	             " RETURNING queue, type, batch_id, attempts, expires_at",
	/* A parent gone (retention) counts as resolved: nothing could end it. */
	[D_REBLOCK_EDGES] = "UPDATE job_deps SET resolved = coalesce((SELECT state = " S_SUCCEEDED
	                    "   OR (?2 = 1 AND state IN (" S_FAILED ", " S_CANCELED ")) FROM jobs WHERE id = job_deps.parent), 1)"
	                    " WHERE child = ?1",
	[D_REBLOCK_JOB] = "UPDATE jobs SET deps_pending = (SELECT count(*) FROM job_deps WHERE child = ?1 AND resolved = 0),"
	                  " state = CASE WHEN EXISTS (SELECT 1 FROM job_deps WHERE child = ?1 AND resolved = 0)"
	                  "   THEN " S_BLOCKED " ELSE state END"
	                  " WHERE id = ?1 RETURNING state, deps_pending",
	[D_STRANDED] = "SELECT DISTINCT d.parent, p.state FROM job_deps d INDEXED BY job_deps_waiting"
	               " JOIN jobs p ON p.id = d.parent JOIN jobs c ON c.id = d.child"
	               " WHERE d.resolved = 0 AND c.state = " S_BLOCKED " AND p.state IN (" S_FINISHED ")"
	               " AND (p.state = " S_SUCCEEDED " OR c.dep_policy <> " JOBQ_STR(DEP_WAIT_V) ") LIMIT ?1",
};

/* The statement k on the writer connection, prepared at its first use;
 * NULL when it cannot be (rc says why). */
static sqlite3_stmt *dstmt(struct sqlite_store *st, int k, int *rc)
{
	if (!st->dstmt[k])
		*rc = sqlite3_prepare_v3(st->wdb, deps_sql[k], -1, SQLITE_PREPARE_PERSISTENT, &st->dstmt[k], NULL);
	return st->dstmt[k];
}

/* Steps s to its end; each row goes to row(). Resets s. */
static int deps_step(sqlite3_stmt *s, int (*row)(sqlite3_stmt *s, void *arg), void *arg)
{
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (row && (rc = row(s, arg)) != SQLITE_OK)
			break;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

struct state_row {
	enum job_state state;
	bool found;
};

static int state_row(sqlite3_stmt *s, void *arg)
{
	struct state_row *r = arg;
	r->state = column_state(s, 0);
	r->found = true;
	return SQLITE_OK;
}

static int deps_state(void *be, const char *id, enum job_state *state, bool *found)
{
	int rc = SQLITE_OK;
	sqlite3_stmt *s = dstmt(be, D_STATE, &rc);
	if (!s)
		return rc;
	struct state_row r = {.found = false};
	sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
	rc = deps_step(s, state_row, &r);
	*state = r.state;
	*found = r.found;
	return rc;
}

static int deps_link(void *be, const struct job *child, const bool *resolved)
{
	struct sqlite_store *st = be;
	int rc = SQLITE_OK;
	sqlite3_stmt *s = dstmt(st, D_EDGE, &rc);
	for (int i = 0; s && rc == SQLITE_OK && i < child->deps.n; i++) {
		sqlite3_bind_text(s, 1, child->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, child->deps.ids[i], -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 3, resolved[i]);
		rc = deps_step(s, NULL, NULL);
	}
	if (rc != SQLITE_OK || !(s = dstmt(st, D_COLUMNS, &rc)))
		return rc;
	bool oom = false;
	char *text = deps_ids_text(&child->deps, &oom);
	if (oom)
		return SQLITE_NOMEM;
	sqlite3_bind_text(s, 1, child->id, -1, SQLITE_STATIC);
	bind_text_or_null(s, 2, text);
	sqlite3_bind_int(s, 3, (int)child->deps.policy);
	sqlite3_bind_int(s, 4, child->deps.pending);
	rc = deps_step(s, NULL, NULL);
	free(text);
	return rc;
}

struct children_rows {
	struct deps_child **out;
	int *n, *cap;
};

static int child_row(sqlite3_stmt *s, void *arg)
{
	struct children_rows *c = arg;
	if (*c->n == *c->cap) {
		int cap = *c->cap ? *c->cap * 2 : 8;
		struct deps_child *grown = realloc(*c->out, (size_t)cap * sizeof *grown);
		if (!grown)
			return SQLITE_NOMEM;
		*c->out = grown;
		*c->cap = cap;
	}
	struct deps_child *k = &(*c->out)[(*c->n)++];
	column_copy(s, 0, k->id, sizeof k->id);
	int policy = sqlite3_column_int(s, 1);
	k->policy = policy >= 0 && policy < DEP_POLICY_COUNT ? (enum dep_policy)policy : DEP_CANCEL;
	return SQLITE_OK;
}

static int deps_children(void *be, const char *parent, struct deps_child **out, int *n, int *cap)
{
	int rc = SQLITE_OK;
	sqlite3_stmt *s = dstmt(be, D_CHILDREN, &rc);
	if (!s)
		return rc;
	struct children_rows c = {.out = out, .n = n, .cap = cap};
	sqlite3_bind_text(s, 1, parent, -1, SQLITE_TRANSIENT);
	return deps_step(s, child_row, &c);
}

/* Resolves the edge child -> parent; *edge when it was unresolved. */
static int resolve_edge(struct sqlite_store *st, const char *child, const char *parent, bool *edge)
{
	int rc = SQLITE_OK;
	sqlite3_stmt *s = dstmt(st, D_RESOLVE_EDGE, &rc);
	if (!s)
		return rc;
	sqlite3_bind_text(s, 1, child, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, parent, -1, SQLITE_TRANSIENT);
	rc = deps_step(s, NULL, NULL);
	*edge = rc == SQLITE_OK && sqlite3_changes(st->wdb) == 1;
	return rc;
}

struct cascaded_row {
	struct store_cascaded *out;
	bool *changed;
	int64_t *expires_at;
	int first;                        /* column of queue */
};

static int cascaded_row(sqlite3_stmt *s, void *arg)
{
	struct cascaded_row *c = arg;
	int k = c->first;
	if (k == 1)
		c->out->state = column_state(s, 0);
	column_copy(s, k, c->out->queue, sizeof c->out->queue);
	column_copy(s, k + 1, c->out->type, sizeof c->out->type);
	column_copy(s, k + 2, c->out->batch_id, sizeof c->out->batch_id);
	c->out->attempts = sqlite3_column_int(s, k + 3);
	if (c->expires_at)
		*c->expires_at = sqlite3_column_int64(s, k + 4);
	*c->changed = true;
	return SQLITE_OK;
}

static int deps_resolve(void *be, const char *child, const char *parent, int64_t now, struct store_cascaded *out,
                        bool *changed)
{
	struct sqlite_store *st = be;
	bool edge = false;
	*changed = false;
	int rc = resolve_edge(st, child, parent, &edge);
	sqlite3_stmt *s = NULL;
	if (rc != SQLITE_OK || !edge || !(s = dstmt(st, D_COUNT_DOWN, &rc)))
		return rc;
	snprintf(out->id, sizeof out->id, "%s", child);
	struct cascaded_row c = {.out = out, .changed = changed, .first = 1};
	sqlite3_bind_text(s, 1, child, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 2, now);
	return deps_step(s, cascaded_row, &c);
}

static int deps_cancel(void *be, const char *child, const char *parent, const char *error, int64_t now,
                       struct store_cascaded *out, bool *changed, int64_t *expires_at)
{
	struct sqlite_store *st = be;
	bool edge = false;
	*changed = false;
	int rc = resolve_edge(st, child, parent, &edge);
	sqlite3_stmt *s = NULL;
	if (rc != SQLITE_OK || !(s = dstmt(st, D_CANCEL, &rc)))
		return rc;
	snprintf(out->id, sizeof out->id, "%s", child);
	out->state = JOB_CANCELED;
	struct cascaded_row c = {.out = out, .changed = changed, .expires_at = expires_at, .first = 0};
	sqlite3_bind_text(s, 1, child, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(s, 2, error, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(s, 3, now);
	return deps_step(s, cascaded_row, &c);
}

static int reblock_row(sqlite3_stmt *s, void *arg)
{
	struct job *job = arg;
	job->state = column_state(s, 0);
	job->deps.pending = sqlite3_column_int(s, 1);
	return SQLITE_OK;
}

static int deps_reblock(void *be, struct job *child, int64_t now)
{
	(void)now;
	struct sqlite_store *st = be;
	int rc = SQLITE_OK;
	sqlite3_stmt *s = dstmt(st, D_REBLOCK_EDGES, &rc);
	if (!s)
		return rc;
	sqlite3_bind_text(s, 1, child->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 2, child->deps.policy == DEP_RUN);
	if ((rc = deps_step(s, NULL, NULL)) != SQLITE_OK || !(s = dstmt(st, D_REBLOCK_JOB, &rc)))
		return rc;
	sqlite3_bind_text(s, 1, child->id, -1, SQLITE_TRANSIENT);
	return deps_step(s, reblock_row, child);
}

static int deps_batch_done(void *be, const char *batch_id, bool *done)
{
	return check_batch_done(be, batch_id, done);
}

struct stranded_rows {
	struct deps_parent *out;
	int max, *n;
};

static int stranded_row(sqlite3_stmt *s, void *arg)
{
	struct stranded_rows *c = arg;
	if (*c->n < c->max) {
		column_copy(s, 0, c->out[*c->n].id, sizeof c->out[*c->n].id);
		c->out[(*c->n)++].state = column_state(s, 1);
	}
	return SQLITE_OK;
}

/* On SQLite only recovery at open ends jobs outside the writer: once the
 * writer has found no more stranded parents, it stops looking (each store
 * has its own writer thread). */
static _Thread_local bool stranded_done;

static int deps_stranded(void *be, struct deps_parent *out, int max, int *n)
{
	int rc = SQLITE_OK;
	*n = 0;
	if (stranded_done)
		return SQLITE_OK;
	sqlite3_stmt *s = dstmt(be, D_STRANDED, &rc);
	if (!s)
		return rc;
	struct stranded_rows c = {.out = out, .max = max, .n = n};
	sqlite3_bind_int(s, 1, max);
	rc = deps_step(s, stranded_row, &c);
	stranded_done = rc == SQLITE_OK && *n < max;
	return rc;
}

const struct store_deps_ops store_sqlite_deps = {
	.nomem = SQLITE_NOMEM,
	.state = deps_state,
	.link = deps_link,
	.children = deps_children,
	.resolve = deps_resolve,
	.cancel = deps_cancel,
	.reblock = deps_reblock,
	.batch_done = deps_batch_done,
	.stranded = deps_stranded,
};
