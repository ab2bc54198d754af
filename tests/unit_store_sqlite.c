/* SQLite-only store tests: the schema version and migrations from every
 * earlier release (down to a database the first release wrote), the lock
 * file, damaged files and the readiness probe's write, and the query plans
 * the indexes exist for. The backend-agnostic
 * contract is in unit_store.c. */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/digest.h"
#include "core/job.h"
#include "core/uuid.h"
#include "store/sqlite.h"
#include "store/sqlite_schema.h"
#include "store/store.h"
#include "tests/store_test.h"

Suite *store_sqlite_suite(void);

START_TEST(store_open_creates_the_latest_schema)
{
	struct store *st = open_store(NULL);
	ck_assert_int_eq(store_schema_version(st), SQLITE_SCHEMA_LATEST);
	store_close(st);
	ck_assert_int_eq(access(db_path, F_OK), 0);

	st = open_store(NULL);
	ck_assert_int_eq(store_schema_version(st), SQLITE_SCHEMA_LATEST);
	store_close(st);
	store_close(NULL);
}
END_TEST


START_TEST(store_open_second_time_fails_while_in_use)
{
	struct store *st = open_store(NULL);
	struct store_options opts = {.path = db_path, .durability = STORE_DURABLE_POWER_LOSS};
	struct store *second = NULL;
	char err[512] = "";
	ck_assert_int_eq(store_open(&opts, NULL, &second, err, sizeof err), -1);
	ck_assert_ptr_null(second);
	ck_assert_msg(strstr(err, "in use") != NULL, "err: %s", err);
	store_close(st);

	/* Closing releases the lock. */
	err[0] = '\0';
	ck_assert_msg(store_open(&opts, NULL, &second, err, sizeof err) == 0, "reopen: %s", err);
	store_close(second);
}
END_TEST


/* Schema version 1 exactly as jobqd 0.1 shipped it (migrations[0] in
 * store/sqlite.c). */
static const char v1_schema[] =
	"CREATE TABLE jobs ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  type TEXT NOT NULL,"
	"  queue TEXT NOT NULL,"
	"  priority INTEGER NOT NULL DEFAULT 0,"
	"  state INTEGER NOT NULL,"
	"  payload TEXT,"
	"  result TEXT,"
	"  error TEXT,"
	"  progress_percent REAL,"
	"  progress_message TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  created_at INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER);"
	"CREATE INDEX jobs_runnable ON jobs(priority DESC, seq) WHERE state = 0;"
	"CREATE INDEX jobs_by_state ON jobs(state, seq);"
	"CREATE INDEX jobs_by_queue ON jobs(queue, seq);"
	"CREATE INDEX jobs_by_type ON jobs(type, seq);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"PRAGMA user_version = 1;";

#define V1_QUEUED "0190a1b2-c3d4-7e5f-8a6b-000000000001"
#define V1_RUNNING "0190a1b2-c3d4-7e5f-8a6b-000000000002"
#define V1_DONE "0190a1b2-c3d4-7e5f-8a6b-000000000003"

START_TEST(store_open_migrates_a_version_1_database)
{
	int64_t now = clock_now_ms();
	int64_t c1 = now - 60000, c2 = now - 50000, c3 = now - 40000;
	db_exec("PRAGMA journal_mode = WAL");
	db_exec(v1_schema);
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "INSERT INTO jobs (seq, id, type, queue, priority, state, payload, attempts, created_at)"
	         " VALUES (1, '" V1_QUEUED "', 'echo', 'default', 2, 0, '{\"n\":1}', 0, %lld);"
	         "INSERT INTO jobs (seq, id, type, queue, priority, state, payload, attempts, created_at, started_at)"
	         " VALUES (2, '" V1_RUNNING "', 'sleep', 'default', 0, 1, '{\"seconds\":5}', 1, %lld, %lld);"
	         "INSERT INTO jobs (seq, id, type, queue, priority, state, payload, result, progress_percent,"
	         " progress_message, attempts, created_at, started_at, finished_at)"
	         " VALUES (3, '" V1_DONE "', 'echo', 'old', 0, 2, '[1]', '[1]', 100, 'done', 1, %lld, %lld, %lld);",
	         (long long)c1, (long long)c2, (long long)(c2 + 10), (long long)c3, (long long)(c3 + 10),
	         (long long)(c3 + 20));
	db_exec(sql);
	ck_assert_int_eq(db_int("PRAGMA user_version"), 1);

	int64_t before = clock_now_ms();
	struct store *st = open_store(NULL);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(store_schema_version(st), SQLITE_SCHEMA_LATEST);

	struct job *q = get_job(st, V1_QUEUED);
	ck_assert_int_eq(q->seq, 1);
	ck_assert_str_eq(q->type, "echo");
	ck_assert_str_eq(q->queue, "default");
	ck_assert_int_eq(q->priority, 2);
	ck_assert_int_eq(q->state, JOB_QUEUED);
	ck_assert_str_eq(q->payload, "{\"n\":1}");
	ck_assert_int_eq(q->attempts, 0);
	ck_assert_int_eq(q->created_at, c1);
	ck_assert_int_eq(q->run_at, c1);
	ck_assert_int_eq(q->max_attempts, 3);
	ck_assert_double_eq(q->backoff_s, 1);
	ck_assert_double_eq(q->max_backoff_s, 300);
	ck_assert_double_eq(q->timeout_s, 3600);
	ck_assert_double_eq(q->retention_s, 604800);
	ck_assert(q->has_history);
	ck_assert_int_eq(q->nhistory, 0);

	/* Left running by the old process: recovered, its attempt recorded. */
	struct job *r = get_job(st, V1_RUNNING);
	ck_assert_int_eq(r->state, JOB_QUEUED);
	ck_assert_int_eq(r->attempts, 1);
	ck_assert_int_eq(r->started_at, 0);
	ck_assert_int_eq(r->created_at, c2);
	ck_assert_int_eq(r->run_at, c2);
	ck_assert_int_eq(r->max_attempts, 3);
	ck_assert_str_eq(r->payload, "{\"seconds\":5}");
	ck_assert_int_eq(r->nhistory, 1);
	ck_assert_int_eq(r->history[0].attempt, 1);
	ck_assert_int_eq(r->history[0].outcome, ATTEMPT_INTERRUPTED);
	ck_assert_int_eq(r->history[0].started_at, c2 + 10);
	ck_assert_int_ge(r->history[0].finished_at, before);
	ck_assert_int_le(r->history[0].finished_at, after);

	struct job *d = get_job(st, V1_DONE);
	ck_assert_int_eq(d->state, JOB_SUCCEEDED);
	ck_assert_str_eq(d->queue, "old");
	ck_assert_str_eq(d->result, "[1]");
	ck_assert(d->has_progress);
	ck_assert_double_eq(d->progress_percent, 100);
	ck_assert_str_eq(d->progress_message, "done");
	ck_assert_int_eq(d->attempts, 1);
	ck_assert_int_eq(d->created_at, c3);
	ck_assert_int_eq(d->run_at, c3);
	ck_assert_int_eq(d->started_at, c3 + 10);
	ck_assert_int_eq(d->finished_at, c3 + 20);
	ck_assert_int_eq(d->nhistory, 0);

	assert_counts(st, "default", 2, 0, 0, 0, 0, 0);
	assert_counts(st, "old", 0, 0, 1, 0, 0, 0);
	struct queue_info qi = queue_of(st, "default");
	ck_assert(!qi.paused);
	ck_assert_int_eq(qi.oldest_queued_run_at, c1);

	/* The migrated rows run: priority first, the recovered job second. */
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 5, &got), 2);
	ck_assert_str_eq(got.jobs[0]->id, V1_QUEUED);
	ck_assert_str_eq(got.jobs[1]->id, V1_RUNNING);
	ck_assert_int_eq(got.jobs[1]->attempts, 2);
	assert_counts(st, "default", 0, 2, 0, 0, 0, 0);
	/* New jobs continue the sequence. */
	struct job *n = submit(st, "echo", "default", 0, NULL);
	ck_assert_int_eq(n->seq, 4);

	claimed_free(&got);
	job_free(n);
	job_free(q);
	job_free(r);
	job_free(d);
	store_close(st);
	ck_assert_int_eq(db_int("PRAGMA user_version"), SQLITE_SCHEMA_LATEST);
}
END_TEST


/* ---- query plans ------------------------------------------------------- */

/* Fails when plan has a line that scans jobs without an index. */
static void assert_no_bare_scan(const char *query, const char *plan)
{
	const char *line = plan;
	while (*line) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		char buf[512];
		snprintf(buf, sizeof buf, "%.*s", (int)len, line);
		ck_assert_msg(!(strstr(buf, "SCAN jobs") && !strstr(buf, "USING")),
		              "%s scans jobs without an index:\n%s", query, plan);
		line += len + (eol ? 1 : 0);
	}
}

static void assert_plan(struct store *st, const char *query, const char *index, bool sorted_by_index)
{
	char *plan = store_explain(st, query);
	ck_assert_msg(plan != NULL, "no plan for %s", query);
	ck_assert_msg(strstr(plan, index) != NULL, "%s does not use %s:\n%s", query, index, plan);
	if (sorted_by_index)
		ck_assert_msg(strstr(plan, "USE TEMP B-TREE") == NULL, "%s sorts in a temp b-tree:\n%s", query, plan);
	assert_no_bare_scan(query, plan);
	free(plan);
}

START_TEST(store_claim_plan_uses_runnable_index)
{
	struct store *st = open_store(NULL);
	assert_plan(st, "claim", "jobs_ready", true);
	store_close(st);
}
END_TEST

START_TEST(store_list_plans_use_their_indexes)
{
	struct store *st = open_store(NULL);
	/* Plans are the same on an empty and a filled table (no ANALYZE). */
	for (int i = 0; i < 3; i++)
		job_free(submit(st, "echo", "default", 0, NULL));
	assert_plan(st, "list_state", "jobs_by_state", true);
	assert_plan(st, "list_queue", "jobs_by_queue", true);
	assert_plan(st, "list_type", "jobs_by_type", true);
	assert_plan(st, "list_all", "PRIMARY KEY", true);
	ck_assert_ptr_null(store_explain(st, "no_such_query"));
	store_close(st);
}
END_TEST

/* The dashboard combines the filters and pages with the cursor: each
 * combination walks one of the list indexes in seq order (no sort, no scan
 * of the table), so a page costs the same with millions of jobs. */
START_TEST(store_combined_list_filters_use_an_index)
{
	static const char *const queries[] = {
		"list_state_queue", "list_state_type", "list_queue_type", "list_state_queue_type",
		"list_first_page", "list_state_queue_first_page",
	};
	struct store *st = open_store(NULL);
	for (int i = 0; i < 3; i++)
		job_free(submit(st, "echo", "default", 0, NULL));
	for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
		char *plan = store_explain(st, queries[i]);
		ck_assert_msg(plan != NULL, "no plan for %s", queries[i]);
		/* Unfiltered, the first page reads the newest rows off the end of
		 * the table's own b-tree (seq is its key) and stops at the limit. */
		if (strcmp(queries[i], "list_first_page") == 0)
			ck_assert_msg(strcmp(plan, "SCAN jobs\n") == 0, "%s:\n%s", queries[i], plan);
		else
			ck_assert_msg(strstr(plan, "jobs_by_") || strstr(plan, "PRIMARY KEY"),
			              "%s uses no list index:\n%s", queries[i], plan);
		ck_assert_msg(strstr(plan, "USE TEMP B-TREE") == NULL, "%s sorts in a temp b-tree:\n%s",
		              queries[i], plan);
		if (strcmp(queries[i], "list_first_page") != 0)
			assert_no_bare_scan(queries[i], plan);
		free(plan);
	}
	store_close(st);
}
END_TEST

/* A batch's jobs are read off the batch's own index in seq order, whatever
 * other filter comes with it; a set of ids by one lookup of each id (then
 * sorted: at most 1,000 rows), whatever comes with it. */
START_TEST(store_batch_and_ids_lists_use_their_indexes)
{
	static const char *const by_batch[] = {
		"list_batch", "list_batch_first_page", "list_batch_state", "list_batch_state_queue_type",
	};
	static const char *const by_ids[] = {
		"list_ids", "list_ids_first_page", "list_ids_state", "list_ids_batch_state_queue",
	};
	struct store *st = open_store(NULL);
	for (int i = 0; i < 3; i++)
		job_free(submit(st, "echo", "default", 0, NULL));
	for (size_t i = 0; i < sizeof by_batch / sizeof by_batch[0]; i++)
		assert_plan(st, by_batch[i], "USING INDEX jobs_batch (batch_id=?", true);
	for (size_t i = 0; i < sizeof by_ids / sizeof by_ids[0]; i++) {
		char *plan = store_explain(st, by_ids[i]);
		ck_assert_msg(plan != NULL, "no plan for %s", by_ids[i]);
		ck_assert_msg(strstr(plan, "SEARCH jobs USING INDEX sqlite_autoindex_jobs_1 (id=?") != NULL,
		              "%s does not look each id up:\n%s", by_ids[i], plan);
		assert_no_bare_scan(by_ids[i], plan);
		free(plan);
	}
	store_close(st);
}
END_TEST

static const struct { const char *query, *index; bool sorted_by_index; } new_plans[] = {
	{"promote", "jobs_scheduled", false},
	{"next_due", "jobs_scheduled", false},
	{"sweep", "jobs_expiry", false},
	{"oldest_queued", "jobs_queued_since", true},
};

START_TEST(store_new_query_plans_use_their_indexes)
{
	struct store *st = open_store(NULL);
	for (int i = 0; i < 3; i++)
		job_free(submit(st, "echo", "default", 0, NULL));
	assert_plan(st, new_plans[_i].query, new_plans[_i].index, new_plans[_i].sorted_by_index);
	store_close(st);
}
END_TEST


/* ---- migration from version 2 ----------------------------------------- */

/* Migration 2 exactly as jobqd shipped it (migrations[1] in
 * store/sqlite.c), applied on top of v1_schema. */
static const char v2_upgrade[] =
	"ALTER TABLE jobs ADD COLUMN max_attempts INTEGER NOT NULL DEFAULT 3;"
	"ALTER TABLE jobs ADD COLUMN backoff_s REAL NOT NULL DEFAULT 1;"
	"ALTER TABLE jobs ADD COLUMN max_backoff_s REAL NOT NULL DEFAULT 300;"
	"ALTER TABLE jobs ADD COLUMN timeout_s REAL NOT NULL DEFAULT 3600;"
	"ALTER TABLE jobs ADD COLUMN retention_s REAL NOT NULL DEFAULT 604800;"
	"ALTER TABLE jobs ADD COLUMN run_at INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE jobs ADD COLUMN expires_at INTEGER;"
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
	"END;"
	"PRAGMA user_version = 2;";

#define V2_QUEUED "0190a1b2-c3d4-7e5f-8a6b-000000000011"
#define V2_FAILED "0190a1b2-c3d4-7e5f-8a6b-000000000012"
#define V2_SCHEDULED "0190a1b2-c3d4-7e5f-8a6b-000000000013"

START_TEST(store_open_migrates_a_version_2_database)
{
	int64_t now = clock_now_ms();
	db_exec("PRAGMA journal_mode = WAL");
	db_exec(v1_schema);
	db_exec(v2_upgrade);
	char sql[1024];
	snprintf(sql, sizeof sql,
	         "INSERT INTO jobs (id, type, queue, priority, state, payload, attempts, created_at, run_at,"
	         " max_attempts) VALUES ('" V2_QUEUED "', 'echo', 'default', 1, 0, '{\"n\":1}', 0, %lld, %lld, 5);"
	         "INSERT INTO jobs (id, type, queue, state, error, attempts, created_at, run_at, started_at,"
	         " finished_at, expires_at) VALUES ('" V2_FAILED "', 'fail', 'default', 3, 'boom', 3, %lld, %lld,"
	         " %lld, %lld, %lld);"
	         "INSERT INTO jobs (id, type, queue, state, attempts, created_at, run_at)"
	         " VALUES ('" V2_SCHEDULED "', 'echo', 'later', 5, 0, %lld, %lld);",
	         (long long)(now - 3000), (long long)(now - 3000), (long long)(now - 2000),
	         (long long)(now - 2000), (long long)(now - 1900), (long long)(now - 1800),
	         (long long)(now + 604800000), (long long)(now - 1000), (long long)(now + 3600000));
	db_exec(sql);
	ck_assert_int_eq(db_int("PRAGMA user_version"), 2);

	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	ck_assert_int_eq(store_schema_version(st), SQLITE_SCHEMA_LATEST);
	ck_assert_int_eq(db_int("PRAGMA user_version"), SQLITE_SCHEMA_LATEST);

	/* Old rows: no batch, no callback; everything else kept. */
	static const char *const ids[] = {V2_QUEUED, V2_FAILED, V2_SCHEDULED};
	for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		struct job *job = get_job(st, ids[i]);
		ck_assert_str_eq(job->batch_id, "");
		ck_assert_ptr_null(job->callback.url);
		ck_assert_int_eq(job->callback.state, DELIVERY_NONE);
		ck_assert_int_eq(job->callback.attempts, 0);
		job_free(job);
	}
	struct job *q = get_job(st, V2_QUEUED);
	ck_assert_int_eq(q->state, JOB_QUEUED);
	ck_assert_int_eq(q->priority, 1);
	ck_assert_int_eq(q->max_attempts, 5);
	ck_assert_str_eq(q->payload, "{\"n\":1}");
	job_free(q);
	struct job *f = get_job(st, V2_FAILED);
	ck_assert_int_eq(f->state, JOB_FAILED);
	ck_assert_str_eq(f->error, "boom");
	ck_assert_int_eq(f->finished_at, now - 1800);
	job_free(f);
	assert_counts(st, "default", 1, 0, 0, 1, 0, 0);
	assert_counts(st, "later", 0, 0, 0, 0, 0, 1);

	/* Nothing is due; no batch exists. */
	struct due_callback due[4];
	int n = -1;
	int64_t next = -1;
	ck_assert_int_eq(store_due_callbacks(st, clock_now_ms(), due, 4, &n, &next), STORE_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(next, 0);
	char id[UUID_LEN + 1];
	uuid_v7(id);
	struct batch_info b;
	ck_assert_int_eq(store_get_batch(st, id, &b), STORE_NOT_FOUND);

	/* The new columns and tables work on the migrated database. */
	struct job *k = make_job("echo", "default", 0, "{}");
	k->idem_key = strdup("k");
	snprintf(k->idem_hash, sizeof k->idem_hash, "%064d", 1);
	k->callback.url = strdup("http://example.com/cb");
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = k};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_gt(k->seq, 3);
	struct job *stored = get_job(st, k->id);
	ck_assert_str_eq(stored->callback.url, "http://example.com/cb");
	job_free(stored);
	/* The migrated queued job still runs first (priority 1). */
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, V2_QUEUED);
	claimed_free(&got);
	job_free(k);
	store_close(st);
}
END_TEST

/* ---- a database the first release wrote ------------------------------- */

/* Made by tests/fixtures/make-release-1.sh with that release's jobqd. */
#define RELEASE_1_DB "tests/fixtures/release-1.db"
#define R1_QUEUED "01a2358a-bca5-7007-bf59-4fd7b07d0991"
#define R1_CANCELED "01a2358a-bd58-7006-ba50-d85e24031348"
#define R1_SCHEDULED "01a2358a-bddc-7002-8e33-a8f86e71b828"
#define R1_SUCCEEDED "01a2358a-bebc-7001-bca6-6c762c53ae4c"
#define R1_FAILED "01a2358a-bf25-7000-ad6d-05daf69d0478"
#define R1_RUNNING "01a2358a-bff0-7005-912a-42c15b57ac4d"
#define R1_BATCH "01a2358a-c075-7008-9fe8-f355c28e26f8"

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb");
	ck_assert_msg(in != NULL, "cannot open %s (run from the source root)", from);
	FILE *out = fopen(to, "wb");
	ck_assert_ptr_nonnull(out);
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
}

/* The fixture's scheduled job was submitted with a one-day delay, so it
 * fell due a day after the fixture was made: push it out of reach, as it
 * stood when written, so the claim below sees only the recovered job. */
static void keep_release_1_scheduled_job_waiting(void)
{
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "UPDATE jobs SET run_at = 4102444800000 WHERE id = '" R1_SCHEDULED "'",
	                              NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_changes(db), 1);
	ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

START_TEST(store_opens_a_database_written_by_release_1)
{
	copy_file(RELEASE_1_DB, db_path);
	keep_release_1_scheduled_job_waiting();
	struct store *st = open_store(NULL);
	ck_assert_int_eq(store_schema_version(st), SQLITE_SCHEMA_LATEST);

	/* Every state reads back as written; the job left running by the
	 * kill -9 is recovered, its attempt recorded as interrupted. */
	ck_assert_int_eq(state_of(st, R1_QUEUED), JOB_QUEUED);
	ck_assert_int_eq(state_of(st, R1_CANCELED), JOB_CANCELED);
	ck_assert_int_eq(state_of(st, R1_SCHEDULED), JOB_SCHEDULED);
	ck_assert_int_eq(state_of(st, R1_SUCCEEDED), JOB_SUCCEEDED);
	struct job *failed = get_job(st, R1_FAILED);
	ck_assert_int_eq(failed->state, JOB_FAILED);
	ck_assert_int_eq(failed->nhistory, 2);
	ck_assert_int_eq(failed->history[1].outcome, ATTEMPT_FAILED);
	job_free(failed);
	struct job *ran = get_job(st, R1_RUNNING);
	ck_assert_int_eq(ran->state, JOB_QUEUED);
	ck_assert_int_eq(ran->attempts, 1);
	ck_assert_int_eq(ran->nhistory, 1);
	ck_assert_int_eq(ran->history[0].outcome, ATTEMPT_INTERRUPTED);
	job_free(ran);

	/* The counts the triggers kept agree with the rows. */
	assert_counts(st, "default", 1, 0, 1, 1, 0, 1);
	assert_counts(st, "held", 3, 0, 0, 0, 1, 0);
	ck_assert(queue_of(st, "held").paused);
	struct batch_info b;
	ck_assert_int_eq(store_get_batch(st, R1_BATCH, &b), STORE_OK);
	ck_assert_int_eq(b.total, 2);
	ck_assert_int_eq(b.counts[JOB_QUEUED], 2);
	ck_assert_int_eq(b.finished_at, 0);
	ck_assert_str_eq(b.callback.url, "http://127.0.0.1:9/done");
	delivery_clear(&b.callback);

	/* It keeps working: the idempotency key is still taken, the paused
	 * queue stays paused, the recovered job is claimed again. */
	struct job *again = make_job("echo", "default", 0, NULL);
	again->idem_key = strdup("release-1");
	ck_assert_ptr_nonnull(again->idem_key);
	snprintf(again->idem_hash, sizeof again->idem_hash, "%s", "another body");
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = again};
	ck_assert_int_eq(store_run(st, &op), STORE_CONFLICT);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 10, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, R1_RUNNING);
	ck_assert_int_eq(got.jobs[0]->attempts, 2);
	claimed_free(&got);
	job_free(again);
	store_close(st);
}
END_TEST


/* ---- damage and readiness ---------------------------------------------- */

#define FILL_JOBS 2000

/* FILL_JOBS jobs in one batch, then the store is closed: a clean close
 * checkpoints, so everything is in the main file. */
static void fill_and_close(struct store *st)
{
	static struct job *jobs[FILL_JOBS];
	for (int i = 0; i < FILL_JOBS; i++)
		jobs[i] = make_job("echo", "q", 0, "{\"pad\":\"................................................\"}");
	struct store_op op = {.kind = STORE_OP_BATCH, .batch = {.jobs = jobs, .njobs = FILL_JOBS}};
	uuid_v7(op.batch.id);
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	for (int i = 0; i < FILL_JOBS; i++)
		job_free(jobs[i]);
	store_close(st);
}

/* Overwrites the jobs table's leaf page nearest the middle of the file;
 * the header is left alone. */
static void damage_middle(void)
{
	int64_t page = db_int("SELECT pageno FROM dbstat WHERE name = 'jobs' AND pagetype = 'leaf'"
	                      " ORDER BY abs(pageno - (SELECT page_count FROM pragma_page_count()) / 2) LIMIT 1");
	ck_assert_int_gt(page, 2);
	char junk[4096];
	memset(junk, 0xA5, sizeof junk);
	FILE *f = fopen(db_path, "r+b");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, (long)(page - 1) * 4096, SEEK_SET), 0);
	ck_assert_int_eq(fwrite(junk, 1, sizeof junk, f), sizeof junk);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(store_open_refuses_a_damaged_file)
{
	fill_and_close(open_store(NULL));
	damage_middle();
	struct store_options opts = {.path = db_path, .integrity_check_s = 30};
	struct store *st = NULL;
	char err[512] = "";
	ck_assert_int_eq(store_open(&opts, NULL, &st, err, sizeof err), STORE_OPEN_DAMAGED);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, db_path) && strstr(err, "is damaged (quick_check: ") && !strchr(err, '\n'),
	              "err: %s", err);
}
END_TEST

START_TEST(store_open_checks_an_intact_file)
{
	fill_and_close(open_store(NULL));
	struct store_options opts = {.path = db_path, .integrity_check_s = 30};
	struct store *st = NULL;
	char err[512] = "";
	ck_assert_msg(store_open(&opts, NULL, &st, err, sizeof err) == 0, "err: %s", err);
	store_close(st);
}
END_TEST

/* Damage the start did not look for is met by a read; from then on the
 * store says so and the probe fails. */
START_TEST(store_damage_met_by_a_read_fails_the_probe)
{
	fill_and_close(open_store(NULL));
	damage_middle();
	struct store *st = open_store(NULL);
	struct store_op probe = {.kind = STORE_OP_PROBE};
	ck_assert_int_eq(store_run(st, &probe), STORE_OK);
	ck_assert(!store_damaged(st));
	struct store_filter f = {.limit = FILL_JOBS + 1};
	struct job **jobs = NULL;
	size_t n = 0;
	int64_t next = 0;
	ck_assert_int_eq(store_list_jobs(st, &f, &jobs, &n, &next), STORE_UNAVAILABLE);
	ck_assert(store_damaged(st));
	ck_assert_int_eq(store_run(st, &probe), STORE_UNAVAILABLE);
	store_close(st);
}
END_TEST

/* The probe commits more than a job's pages; one right after it answers
 * from it instead of writing again (the endpoint needs no key). */
START_TEST(store_probe_writes_its_size_then_answers_from_it)
{
	struct store *st = open_store(NULL);
	job_free(submit(st, "echo", "q", 0, NULL));
	char wal[sizeof db_path + 8];
	snprintf(wal, sizeof wal, "%s-wal", db_path);
	struct stat before, after, again;
	ck_assert_int_eq(stat(wal, &before), 0);
	struct store_op probe = {.kind = STORE_OP_PROBE};
	ck_assert_int_eq(store_run(st, &probe), STORE_OK);
	ck_assert_int_eq(stat(wal, &after), 0);
	ck_assert_msg(after.st_size - before.st_size >= STORE_PROBE_BYTES, "the WAL grew by %lld bytes",
	              (long long)(after.st_size - before.st_size));
	ck_assert_int_eq(store_run(st, &probe), STORE_OK);
	ck_assert_int_eq(stat(wal, &again), 0);
	ck_assert_int_eq(again.st_size, after.st_size);
	store_close(st);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

Suite *store_sqlite_suite(void)
{
	Suite *s = suite_create("store sqlite");

	TCase *tc = store_tcase(s, "open");
	tcase_add_test(tc, store_open_creates_the_latest_schema);
	tcase_add_test(tc, store_open_second_time_fails_while_in_use);

	tc = store_tcase(s, "damage");
	tcase_add_test(tc, store_open_refuses_a_damaged_file);
	tcase_add_test(tc, store_open_checks_an_intact_file);
	tcase_add_test(tc, store_damage_met_by_a_read_fails_the_probe);
	tcase_add_test(tc, store_probe_writes_its_size_then_answers_from_it);

	tc = store_tcase(s, "migrations");
	tcase_add_test(tc, store_open_migrates_a_version_1_database);
	tcase_add_test(tc, store_open_migrates_a_version_2_database);
	tcase_add_test(tc, store_opens_a_database_written_by_release_1);

	tc = store_tcase(s, "plans");
	tcase_add_test(tc, store_claim_plan_uses_runnable_index);
	tcase_add_test(tc, store_list_plans_use_their_indexes);
	tcase_add_test(tc, store_combined_list_filters_use_an_index);
	tcase_add_test(tc, store_batch_and_ids_lists_use_their_indexes);
	tcase_add_loop_test(tc, store_new_query_plans_use_their_indexes, 0,
	                    (int)(sizeof new_plans / sizeof new_plans[0]));
	return s;
}
