/* Helpers shared by the store test suites (store_test.h). The inspection
 * helpers (db_exec, db_int) speak SQL to the backend's own database: the
 * SQLite file, or on pg the test's schema through libpq. */
#include "tests/store_test.h"

#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/uuid.h"

const char *test_backend = "sqlite";
const char *test_schema;

static bool on_pg(void)
{
	return strcmp(test_backend, "pg") == 0;
}


/* ---- temp dirs --------------------------------------------------------- */

/* Each buffer has room for the one before it plus a suffix. */
char root_dir[1024];
char test_dir[sizeof root_dir + 16];
char db_path[sizeof test_dir + 16];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void remove_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void root_setup(void)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(root_dir, sizeof root_dir, "%s/jobq-unit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (n < 0 || (size_t)n >= sizeof root_dir || !mkdtemp(root_dir)) {
		perror("unit_store: mkdtemp");
		abort();
	}
}

/* ---- pg: a schema per test ---------------------------------------------- */

/* "ut_" + the hex of the root dir's and the test dir's mkdtemp suffixes:
 * unique while the dirs are, and within [a-z_][a-z0-9_]{0,62}. */
static char schema_name[64];

static const char *pg_url(void)
{
	const char *url = getenv("JOBQ_TEST_PG_URL");
	ck_assert_msg(url && *url, "JOBQ_TEST_BACKEND=pg needs JOBQ_TEST_PG_URL=postgresql://...");
	return url;
}

static void hex_suffix(char *out, size_t n, const char *dir)
{
	const char *x = strrchr(dir, '-');
	x = x ? x + 1 : dir;
	size_t len = 0;
	out[0] = '\0';
	for (; *x && len + 3 <= n; x++, len += 2)
		snprintf(out + len, n - len, "%02x", (unsigned char)*x);
}

/* A session on the test database, in schema (if not NULL), with bounded
 * waits: a test's leftovers never hang the suite. */
static PGconn *pg_connect(const char *schema)
{
	PGconn *c = PQconnectdb(pg_url());
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect to JOBQ_TEST_PG_URL: %s", PQerrorMessage(c));
	char sql[160];
	snprintf(sql, sizeof sql, "SET lock_timeout = '10s'; SET statement_timeout = '30s'; "
	         "SET client_min_messages = warning%s%s",
	         schema ? "; SET search_path TO " : "", schema ? schema : "");
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	return c;
}

/* Drops every schema whose name starts with prefix. */
static void pg_drop_schemas(const char *prefix)
{
	PGconn *c = pg_connect(NULL);
	const char *params[1] = {prefix};
	PGresult *r = PQexecParams(c,
	        "SELECT quote_ident(nspname) FROM pg_namespace WHERE left(nspname, length($1)) = $1",
	        1, NULL, params, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "list schemas: %s", PQerrorMessage(c));
	for (int i = 0; i < PQntuples(r); i++) {
		char sql[160];
		snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", PQgetvalue(r, i, 0));
		PGresult *d = PQexec(c, sql);
		ck_assert_msg(PQresultStatus(d) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
		PQclear(d);
	}
	PQclear(r);
	PQfinish(c);
}

static void root_schema_prefix(char *out, size_t n)
{
	char hex[16];
	hex_suffix(hex, sizeof hex, root_dir);
	snprintf(out, n, "ut_%s_", hex);
}

void root_teardown(void)
{
	/* What failed tests left (Check ends a failing child before its
	 * teardown). */
	if (on_pg() && root_dir[0]) {
		char prefix[32];
		root_schema_prefix(prefix, sizeof prefix);
		pg_drop_schemas(prefix);
	}
	remove_tree(root_dir);
	root_dir[0] = '\0';
}

void dir_setup(void)
{
	snprintf(test_dir, sizeof test_dir, "%s/t-XXXXXX", root_dir);
	ck_assert_msg(mkdtemp(test_dir) != NULL, "mkdtemp %s failed", test_dir);
	snprintf(db_path, sizeof db_path, "%s/jobq.db", test_dir);
	test_schema = NULL;
	if (on_pg()) {
		char prefix[32], hex[16];
		root_schema_prefix(prefix, sizeof prefix);
		hex_suffix(hex, sizeof hex, test_dir);
		snprintf(schema_name, sizeof schema_name, "%s%s", prefix, hex);
		test_schema = schema_name;
		int n = snprintf(db_path, sizeof db_path, "%s", pg_url());
		ck_assert_msg(n > 0 && (size_t)n < sizeof db_path, "JOBQ_TEST_PG_URL too long");
	}
}

void dir_teardown(void)
{
	if (test_schema) {
		pg_drop_schemas(test_schema);
		test_schema = NULL;
	}
	remove_tree(test_dir);
	test_dir[0] = '\0';
}

/* ---- helpers ----------------------------------------------------------- */

void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

bool wait_for_count(atomic_int *v, int want)
{
	int64_t end = clock_mono_ms() + POLL_LIMIT_MS;
	while (atomic_load(v) < want) {
		if (clock_mono_ms() > end)
			return false;
		sleep_ms(1);
	}
	return atomic_load(v) == want;
}


void recorder_init(struct recorder *rec)
{
	memset(rec, 0, sizeof *rec);
	pthread_mutex_init(&rec->mu, NULL);
	atomic_init(&rec->submitted, 0);
	atomic_init(&rec->finished, 0);
	atomic_init(&rec->watch_seen, 0);
	atomic_init(&rec->batch_done, 0);
}

void on_submitted(void *arg)
{
	struct recorder *rec = arg;
	if (rec->watch_id[0] && atomic_load(&rec->watch_seen) == 0) {
		struct job *job = NULL;
		enum store_rc rc = store_get_job(rec->st, rec->watch_id, &job);
		atomic_store(&rec->watch_seen, rc == STORE_OK ? 1 : -1);
		job_free(job);
	}
	atomic_fetch_add(&rec->submitted, 1);
}

void on_finished(void *arg, const char *id, const char *queue)
{
	(void)queue;
	struct recorder *rec = arg;
	pthread_mutex_lock(&rec->mu);
	int n = atomic_load(&rec->finished);
	if (n < 16)
		snprintf(rec->finished_ids[n], sizeof rec->finished_ids[n], "%s", id);
	atomic_fetch_add(&rec->finished, 1);
	pthread_mutex_unlock(&rec->mu);
}

void on_batch_done(void *arg, const char *batch_id)
{
	struct recorder *rec = arg;
	pthread_mutex_lock(&rec->mu);
	int n = atomic_load(&rec->batch_done);
	if (n < 4)
		snprintf(rec->batch_done_ids[n], sizeof rec->batch_done_ids[n], "%s", batch_id);
	atomic_fetch_add(&rec->batch_done, 1);
	pthread_mutex_unlock(&rec->mu);
}

struct store *open_store(struct recorder *rec)
{
	struct store_options opts = {.backend = test_backend, .path = db_path, .schema = test_schema,
	                             .durability = STORE_DURABLE_POWER_LOSS};
	struct store_hooks hooks = {.arg = rec, .submitted = on_submitted, .finished = on_finished,
	                            .batch_done = on_batch_done};
	char err[512] = "";
	struct store *st = NULL;
	ck_assert_msg(store_open(&opts, rec ? &hooks : NULL, &st, err, sizeof err) == 0,
	              "store_open %s: %s", db_path, err);
	ck_assert_ptr_nonnull(st);
	if (rec)
		rec->st = st;
	return st;
}

struct job *make_job(const char *type, const char *queue, int priority, const char *payload)
{
	struct job *job = job_new();
	ck_assert_ptr_nonnull(job);
	uuid_v7(job->id);
	snprintf(job->type, sizeof job->type, "%s", type);
	snprintf(job->queue, sizeof job->queue, "%s", queue);
	job->priority = priority;
	job->state = JOB_QUEUED;
	if (payload) {
		job->payload = strdup(payload);
		ck_assert_ptr_nonnull(job->payload);
	}
	job->created_at = clock_now_ms();
	job->run_at = job->created_at;
	/* What a submission gets from the server defaults. */
	job->max_attempts = 3;
	job->backoff_s = 1;
	job->max_backoff_s = 300;
	job->timeout_s = 3600;
	job->retention_s = 604800;
	return job;
}

/* Submits a new job and returns it (caller frees), seq filled in. */
struct job *submit(struct store *st, const char *type, const char *queue, int priority,
                          const char *payload)
{
	struct job *job = make_job(type, queue, priority, payload);
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = job};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_gt(job->seq, 0);
	return job;
}

struct job *get_job(struct store *st, const char *id)
{
	struct job *job = NULL;
	ck_assert_int_eq(store_get_job(st, id, &job), STORE_OK);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(job->id, id);
	return job;
}

enum job_state state_of(struct store *st, const char *id)
{
	struct job *job = get_job(st, id);
	enum job_state s = job->state;
	job_free(job);
	return s;
}



void on_claimed(struct store_op *op, struct job *job)
{
	struct claimed *c = op->arg;
	if (c->n < CLAIM_CAP)
		c->jobs[c->n++] = job;
	else
		job_free(job);
}

/* Claims up to max jobs into c (appending); returns nclaimed. */
int claim(struct store *st, int max, struct claimed *c)
{
	int before = c->n;
	struct store_op op = {.kind = STORE_OP_CLAIM, .claim.max = max, .claim.claimed = on_claimed, .arg = c};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_eq(op.claim.nclaimed, c->n - before);
	return op.claim.nclaimed;
}

void claimed_free(struct claimed *c)
{
	for (int i = 0; i < c->n; i++)
		job_free(c->jobs[i]);
	c->n = 0;
}

/* Finishes job as it stands (state, attempts, outcome fields). */
enum store_rc finish(struct store *st, struct job *job)
{
	struct store_op op = {.kind = STORE_OP_FINISH, .finish.job = job};
	return store_run(st, &op);
}


struct target_reply target_reply(const struct store_op *op)
{
	const struct store_op_target *t = &op->cancel;
	struct target_reply r = {.rc = op->rc, .found = t->found};
	memcpy(r.id, t->id, sizeof r.id);
	memcpy(r.queue, t->queue, sizeof r.queue);
	memcpy(r.batch_id, t->batch_id, sizeof r.batch_id);
	memcpy(r.type, t->type, sizeof r.type);
	return r;
}

struct target_reply cancel(struct store *st, const char *id)
{
	struct store_op op = {.kind = STORE_OP_CANCEL, .cancel.found = JOB_STATE_COUNT};
	snprintf(op.cancel.id, sizeof op.cancel.id, "%s", id);
	store_run(st, &op);
	return target_reply(&op);
}

void list(struct store *st, const struct store_filter *f, struct job ***jobs, size_t *n,
                 int64_t *next_seq)
{
	*jobs = NULL;
	*n = 0;
	*next_seq = -1;
	ck_assert_int_eq(store_list_jobs(st, f, jobs, n, next_seq), STORE_OK);
	ck_assert(*n == 0 || *jobs != NULL);
}

void jobs_free(struct job **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		job_free(jobs[i]);
	free(jobs);
}

size_t count_listed(struct store *st, const struct store_filter *f)
{
	struct job **jobs;
	size_t n;
	int64_t next;
	list(st, f, &jobs, &n, &next);
	ck_assert_int_eq(next, 0);
	jobs_free(jobs, n);
	return n;
}


int room_of(struct store_op *op, const char *queue)
{
	struct room_claim *rc = op->arg;
	for (int i = 0; i < rc->nroom; i++)
		if (strcmp(rc->queue[i], queue) == 0)
			return rc->room[i];
	return INT_MAX;
}

struct store_op claim_op(struct store *st, int max, struct room_claim *rc)
{
	int before = rc->got.n;
	struct store_op op = {.kind = STORE_OP_CLAIM, .claim.max = max, .claim.claimed = on_claimed,
	                      .claim.queue_room = rc->nroom ? room_of : NULL, .arg = rc, .claim.next_due = -1};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_eq(op.claim.nclaimed, rc->got.n - before);
	return op;
}

/* Runs an op on one job id. A retry that took returns the job as it left
 * it: queued, with that id; it is checked and freed here. */
struct target_reply id_op(struct store *st, enum store_op_kind kind, const char *id)
{
	struct store_op op = {.kind = kind};
	struct store_op_target *t = store_op_target(&op);
	t->found = JOB_STATE_COUNT;
	snprintf(t->id, sizeof t->id, "%s", id);
	store_run(st, &op);
	struct job *job = kind == STORE_OP_RETRY ? op.retry.job : NULL;
	bool retried = kind == STORE_OP_RETRY && op.rc == STORE_OK &&
	               (t->found == JOB_FAILED || t->found == JOB_CANCELED);
	ck_assert_msg(retried == (job != NULL), "retry returned %s job", job ? "a" : "no");
	if (job) {
		ck_assert_str_eq(job->id, id);
		ck_assert_int_eq(job->state, JOB_QUEUED);
		job_free(job);
	}
	return target_reply(&op);
}

void pause_queue(struct store *st, const char *queue, bool paused)
{
	struct store_op op = {.kind = STORE_OP_PAUSE, .pause.paused = paused};
	snprintf(op.pause.queue, sizeof op.pause.queue, "%s", queue);
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
}

struct queue_info queue_of(struct store *st, const char *name)
{
	struct queue_info q;
	memset(&q, 0x5a, sizeof q);
	ck_assert_int_eq(store_get_queue(st, name, &q), STORE_OK);
	ck_assert_str_eq(q.name, name);
	return q;
}

/* Fails unless queue's counts are exactly the given ones, in
 * enum job_state order: queued, running, succeeded, failed, canceled,
 * scheduled. */
void assert_counts(struct store *st, const char *queue, int64_t queued, int64_t running,
                          int64_t succeeded, int64_t failed, int64_t canceled, int64_t scheduled)
{
	struct queue_info q = queue_of(st, queue);
	const int64_t want[JOB_STATE_COUNT] = {queued, running, succeeded, failed, canceled, scheduled};
	for (int s = 0; s < JOB_STATE_COUNT; s++)
		ck_assert_msg(q.counts[s] == want[s], "queue %s: %s count %lld, want %lld", queue,
		              job_state_name((enum job_state)s), (long long)q.counts[s], (long long)want[s]);
}

/* The inspection helpers speak SQL to a SQLite file or, on pg, to the
 * test's schema; another backend brings its own. */
static void assert_sql_inspector(void)
{
	ck_assert_msg(strcmp(test_backend, "sqlite") == 0 || on_pg(), "no SQL inspector for backend %s",
	              test_backend);
}

static PGresult *pg_run(const char *sql, ExecStatusType want)
{
	PGconn *c = pg_connect(test_schema);
	PGresult *r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == want, "%s: %s", sql, PQerrorMessage(c));
	PQfinish(c);
	return r;
}

/* Runs one statement on its own connection to the test database. */
void db_exec(const char *sql)
{
	assert_sql_inspector();
	if (on_pg()) {
		PQclear(pg_run(sql, PGRES_COMMAND_OK));
		return;
	}
	sqlite3 *db = NULL;
	ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	sqlite3_close(db);
}

/* The first column of the first row of sql, an integer. */
int64_t db_int(const char *sql)
{
	assert_sql_inspector();
	if (on_pg()) {
		PGresult *r = pg_run(sql, PGRES_TUPLES_OK);
		ck_assert_msg(PQntuples(r) > 0 && PQnfields(r) > 0, "%s: no row", sql);
		ck_assert_msg(!PQgetisnull(r, 0, 0), "%s: NULL", sql);
		int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		return v;
	}
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

int64_t history_rows(int64_t seq)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM job_attempts WHERE job_seq = %lld", (long long)seq);
	return db_int(sql);
}

void count_done_store(struct store_op *op)
{
	atomic_fetch_add((atomic_int *)op->arg, 1);
}

/* Sleeps until the wall clock has passed ms. */
void sleep_past(int64_t ms)
{
	while (clock_now_ms() <= ms)
		sleep_ms(1);
}


TCase *store_tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_unchecked_fixture(tc, root_setup, root_teardown);
	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	suite_add_tcase(s, tc);
	return tc;
}
