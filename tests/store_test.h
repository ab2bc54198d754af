/* Helpers shared by the store test suites: temp dirs, a store opened with
 * the backend under test, ops run one at a time, hook recorders. */
#ifndef JOBQ_TESTS_STORE_TEST_H
#define JOBQ_TESTS_STORE_TEST_H

#include <check.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/job.h"
#include "store/store.h"

#define TEST_TIMEOUT_S 30
#define POLL_LIMIT_MS 20000
#define CLAIM_CAP 64

/* The backend the store suites run against (JOBQ_TEST_BACKEND, default
 * "sqlite"). */
extern const char *test_backend;

/* On pg (JOBQ_TEST_BACKEND=pg, JOBQ_TEST_PG_URL=postgresql://...) db_path
 * holds that URL and each test gets a fresh schema, named from its temp dir
 * and dropped at teardown: pass test_schema as store_options.schema. NULL
 * on SQLite. */
extern const char *test_schema;

/* Records the store hooks. finished ids are kept in call order. */
struct recorder {
	pthread_mutex_t mu;
	atomic_int submitted;
	atomic_int finished;
	char finished_ids[16][UUID_LEN + 1];   /* mu */
	/* When watch_id is set, submitted() reads it back through a reader
	 * connection: it sees only what was committed. */
	struct store *st;
	char watch_id[UUID_LEN + 1];
	atomic_int watch_seen;                 /* 1 found, -1 not found */
	atomic_int batch_done;
	char batch_done_ids[4][UUID_LEN + 1];  /* mu */
};
struct claimed {
	struct job *jobs[CLAIM_CAP];
	int n;
};

/* What a CANCEL, RETRY or DELETE op reported. */
struct target_reply {
	enum store_rc rc;
	STORE_OP_TARGET_FIELDS
};

/* Claims with a queue_room() that answers from a table (queues not in it
 * have no limit); returns the op with nclaimed, next_due and limited. */
struct room_claim {
	struct claimed got;     /* first: on_claimed takes op->arg as this */
	const char *queue[4];
	int room[4];
	int nroom;
};
extern char root_dir[1024];
extern char test_dir[sizeof root_dir + 16];
extern char db_path[sizeof test_dir + 16];
void remove_tree(const char *dir);
void root_setup(void);
void root_teardown(void);
void dir_setup(void);
void dir_teardown(void);
void sleep_ms(long ms);
bool wait_for_count(atomic_int *v, int want);
void recorder_init(struct recorder *rec);
void on_submitted(void *arg);
void on_finished(void *arg, const char *id, const char *queue);
void on_batch_done(void *arg, const char *batch_id);
struct store *open_store(struct recorder *rec);
struct job *make_job(const char *type, const char *queue, int priority, const char *payload);

/* Submits a new job and returns it (caller frees), seq filled in. */
struct job *submit(struct store *st, const char *type, const char *queue, int priority, const char *payload);
struct job *get_job(struct store *st, const char *id);
enum job_state state_of(struct store *st, const char *id);
void on_claimed(struct store_op *op, struct job *job);

/* Claims up to max jobs into c (appending); returns nclaimed. */
int claim(struct store *st, int max, struct claimed *c);
void claimed_free(struct claimed *c);

/* Finishes job as it stands (state, attempts, outcome fields). */
enum store_rc finish(struct store *st, struct job *job);
struct target_reply target_reply(const struct store_op *op);
struct target_reply cancel(struct store *st, const char *id);
void list(struct store *st, const struct store_filter *f, struct job ***jobs, size_t *n, int64_t *next_seq);
void jobs_free(struct job **jobs, size_t n);
size_t count_listed(struct store *st, const struct store_filter *f);
int room_of(struct store_op *op, const char *queue);
struct store_op claim_op(struct store *st, int max, struct room_claim *rc);

/* Runs an op on one job id. A retry that took returns the job as it left
 * it: queued, with that id; it is checked and freed here. */
struct target_reply id_op(struct store *st, enum store_op_kind kind, const char *id);
void pause_queue(struct store *st, const char *queue, bool paused);
struct queue_info queue_of(struct store *st, const char *name);

/* Fails unless queue's counts are exactly the given ones, in
 * enum job_state order: queued, running, succeeded, failed, canceled,
 * scheduled. */
void assert_counts(struct store *st, const char *queue, int64_t queued, int64_t running, int64_t succeeded, int64_t failed, int64_t canceled, int64_t scheduled);

/* Runs one statement on its own connection to the test database (on pg:
 * in the test's schema). */
void db_exec(const char *sql);

/* The first column of the first row of sql, an integer. */
int64_t db_int(const char *sql);
int64_t history_rows(int64_t seq);
void count_done_store(struct store_op *op);

/* Sleeps until the wall clock has passed ms. */
void sleep_past(int64_t ms);

/* A tcase with a fresh temp dir per test and the suite timeout. */
TCase *store_tcase(Suite *s, const char *name);

#endif
