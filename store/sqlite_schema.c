/* The SQLite schema: migrations from an empty file (or any earlier
 * release's database) to the current version. */
#include "store/sqlite_schema.h"

#include <stdio.h>

#include "core/log.h"

/* Schema migrations; user_version is the number applied. Never edit one
 * that has shipped: append a new one. (The stored values are spelled
 * through S_QUEUED and its kin; they expand to the same text as ever.) */
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
	"CREATE INDEX jobs_runnable ON jobs(priority DESC, seq) WHERE state = " S_QUEUED ";"
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
	"UPDATE jobs SET expires_at = finished_at + 604800000 WHERE state IN (" S_SUCCEEDED ", " S_FAILED ", " S_CANCELED ");"
	"DROP INDEX jobs_runnable;"
	"CREATE INDEX jobs_ready ON jobs(queue, priority DESC, seq) WHERE state = " S_QUEUED ";"
	"CREATE INDEX jobs_queued_since ON jobs(queue, run_at) WHERE state = " S_QUEUED ";"
	"CREATE INDEX jobs_scheduled ON jobs(run_at) WHERE state = " S_SCHEDULED ";"
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
	"CREATE INDEX jobs_callback_due ON jobs(callback_next_at) WHERE callback_state = " S_PENDING ";"
	"CREATE TABLE batches ("
	"  id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, total INTEGER NOT NULL,"
	"  finished_at INTEGER, callback_url TEXT, callback_state INTEGER,"
	"  callback_attempts INTEGER NOT NULL DEFAULT 0, callback_next_at INTEGER,"
	"  callback_status INTEGER, callback_error TEXT) WITHOUT ROWID;"
	"CREATE INDEX batches_callback_due ON batches(callback_next_at) WHERE callback_state = " S_PENDING ";"
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

	/* 4: Idempotency-Key on batches (a namespace of their own). */
	"ALTER TABLE batches ADD COLUMN idem_key TEXT;"
	"ALTER TABLE batches ADD COLUMN idem_hash TEXT;"
	"CREATE UNIQUE INDEX batches_idem ON batches(idem_key) WHERE idem_key IS NOT NULL;",

	/* 5: leases of external workers. A running job with a lease_id is run
	 * by an external worker until lease_expires_at (a lease of lease_ms);
	 * a canceled one keeps its lease_id, without an expiry, until the
	 * worker's heartbeat learns of the cancel. */
	"ALTER TABLE jobs ADD COLUMN lease_id TEXT;"
	"ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER;"
	"ALTER TABLE jobs ADD COLUMN lease_ms INTEGER;"
	"CREATE INDEX jobs_lease_expiry ON jobs(lease_expires_at)"
	"  WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL;",

	/* 6: per-queue rate limits (core/bucket.h): the limit and the token
	 * bucket's state, read and written by each claim of the queue. Times
	 * are unix ms; paused_until 0: not paused. */
	"CREATE TABLE queue_rates ("
	"  queue TEXT PRIMARY KEY,"
	"  rate_limit REAL NOT NULL,"
	"  period_ms INTEGER NOT NULL,"
	"  burst REAL NOT NULL,"
	"  retry_after INTEGER NOT NULL DEFAULT 0,"
	"  tokens REAL NOT NULL,"
	"  refilled_at INTEGER NOT NULL,"
	"  paused_until INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;",
	/* 7: dependencies. A blocked job (state 6) waits for deps_pending
	 * parents; job_deps holds its edges (resolved 1 once the parent's end
	 * was applied), depends_on the ids as given (a JSON array), dep_policy
	 * enum dep_policy. A job's edges go with it. */
	"ALTER TABLE jobs ADD COLUMN depends_on TEXT;"
	"ALTER TABLE jobs ADD COLUMN dep_policy INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN deps_pending INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE job_deps ("
	"  child TEXT NOT NULL, parent TEXT NOT NULL, resolved INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (child, parent)) WITHOUT ROWID;"
	"CREATE INDEX job_deps_waiting ON job_deps(parent) WHERE resolved = 0;"
	"CREATE TRIGGER jobs_deps_delete AFTER DELETE ON jobs WHEN OLD.depends_on IS NOT NULL BEGIN"
	"  DELETE FROM job_deps WHERE child = OLD.id;"
	"END;",
	/* 8: schedules. spec is the definition (core/schedule.h's stored
	 * form); next_fire_at is NULL while paused or when it never fires
	 * again. A fired job names its schedule and fire time, unique
	 * together: one fire can never make two jobs. */
	"CREATE TABLE schedules ("
	"  name TEXT PRIMARY KEY,"
	"  spec TEXT NOT NULL,"
	"  next_fire_at INTEGER,"
	"  last_fire_at INTEGER,"
	"  paused INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX schedules_due ON schedules(next_fire_at) WHERE next_fire_at IS NOT NULL;"
	"ALTER TABLE jobs ADD COLUMN schedule_name TEXT;"
	"ALTER TABLE jobs ADD COLUMN schedule_fire_at INTEGER;"
	"CREATE UNIQUE INDEX jobs_schedule_fire ON jobs(schedule_name, schedule_fire_at)"
	"  WHERE schedule_name IS NOT NULL;",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == SQLITE_SCHEMA_LATEST,
               "SQLITE_SCHEMA_LATEST counts the migrations");

int sqlite_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_error("sqlite: %s: %s", msg ? msg : sqlite3_errstr(rc), sql);
		sqlite3_free(msg);
	}
	return rc;
}

int sqlite_schema_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

int sqlite_exec_quiet(sqlite3 *db, const char *sql, char *why, size_t whylen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		snprintf(why, whylen, "%s", msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	return rc;
}

int sqlite_schema_migrate(sqlite3 *db, char *why, size_t whylen)
{
	int have = sqlite_schema_version(db);
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
	if (have == 0 && (rc = sqlite_exec_quiet(db, "PRAGMA auto_vacuum = INCREMENTAL", why, whylen)) != SQLITE_OK)
		return rc;
	for (int v = have; v < want; v++) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
		if ((rc = sqlite_exec_quiet(db, "BEGIN IMMEDIATE", why, whylen)) != SQLITE_OK)
			return rc;
		if ((rc = sqlite_exec_quiet(db, migrations[v], why, whylen)) != SQLITE_OK ||
		    (rc = sqlite_exec_quiet(db, bump, why, whylen)) != SQLITE_OK ||
		    (rc = sqlite_exec_quiet(db, "COMMIT", why, whylen)) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
		log_info("database migrated to schema version %d", v + 1);
	}
	return SQLITE_OK;
}
