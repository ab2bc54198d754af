/* The PostgreSQL backend's inside, shared by store/pg.c (sessions, the
 * group transaction, reads, open) and store/pg_write.c (the write ops,
 * the claim, leases, retention, recovery). Only store/pg*.c include it.
 *
 * One writer session (the writer thread's; open's before that); readers
 * borrow sessions from a pool; the cluster's coordination session holds
 * this node's advisory lock (store/pg_cluster.c).
 * Every session runs with search_path set to the schema, so SQL text names
 * no schema. Parameters travel as text: pg_args formats them. */
#ifndef JOBQ_STORE_PG_H
#define JOBQ_STORE_PG_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"
#include "store/backend.h"
#include "store/pg_schema.h"

extern const struct store_backend store_pg_backend;

/* ---- errors ----------------------------------------------------------- */

/* What a pg function returns: 0 or one of these; pg_errstr() names them.
 * The server's own message is logged once where it is met (never the
 * conninfo). */
enum {
	PG_ERR_NOMEM = 1, /* out of memory, or the fault seam said so */
	PG_ERR_SQL,       /* a statement failed; the transaction may be aborted:
	                   * the op's scope (ROLLBACK TO) clears it */
	PG_ERR_DOWN,      /* no writer session: lost, or not back yet (backoff) */
};

/* ---- the store --------------------------------------------------------- */

#define PG_MAX_READERS 16
#define PG_STMT_CACHE 96  /* statements prepared per writer session */
#define PG_PENDING_MAX 6
#define PG_NOTICE_MAX 7900  /* a notice's payload: PostgreSQL takes 8000 bytes */

struct pg_reader;
struct pg_cluster;

struct pg_store {
	char *conninfo;                   /* as given: may carry a password, never log it */
	char *shown;                      /* conninfo with the password masked, for messages */
	char schema[64];                  /* [a-z_][a-z0-9_]{0,62} */
	/* "SELECT pg_advisory_xact_lock(<key>)": every transaction that
	 * writes jobs takes it first (see pg_begin). */
	char write_lock_sql[64];
	enum store_durability durability;

	/* Writer thread only (open's thread before the writer starts). */
	PGconn *wconn;                    /* NULL while down */
	bool in_tx;                       /* between begin and commit/rollback */
	int savepoint;                    /* the op's savepoint: none, open, ended (pg.c) */
	/* Commands without parameters queued to travel ahead of the next
	 * statement, in one pipeline (BEGIN, SAVEPOINT op, ...). */
	const char *pending[PG_PENDING_MAX];
	int npending;
	/* The op gave up its savepoint (pg_scope_none), and whether it sent a
	 * statement since. */
	bool unscoped, unscoped_sent;
	/* The ops of the group not begun yet (begin's nops, less one per
	 * op_begin): at 0 the op is the group's last, and its one statement
	 * may carry the COMMIT (pg.c). committed: that COMMIT went through,
	 * and the group's commit() has nothing left to send. */
	int ops_left;
	bool committed;
	/* Commands without parameters that travel right before the group's
	 * COMMIT, wherever it goes (pg_commit, or the last op's statement). */
	const char *at_commit[PG_PENDING_MAX];
	int nat_commit;
	int64_t retry_at;                 /* monotonic ms: no reconnect before */
	int64_t backoff_ms;               /* 0 while up; 100 doubling to 5000 */
	/* Statements prepared on wconn (pg_query), by the address of their
	 * text; emptied when the session is replaced. */
	const char *stmt_sql[PG_STMT_CACHE];
	int nstmts;

	/* The reader pool: readers_mu guards idle, all_readers, nreaders,
	 * read_retry_at, read_backoff_ms. */
	pthread_mutex_t readers_mu;
	pthread_cond_t readers_cv;        /* a reader came back, or a slot freed */
	struct pg_reader *idle;
	struct pg_reader *all_readers;
	int nreaders, max_readers;
	int64_t read_retry_at, read_backoff_ms;

	/* The cluster (store/pg_cluster.c). node_mu guards node_id, which
	 * the coordination thread may replace. */
	pthread_mutex_t node_mu;
	char node_id[UUID_LEN + 1];
	atomic_bool leader, alone;
	char channel[80];
	struct pg_cluster *cluster;
	/* The writer's notice for the group being applied ("" none), sent
	 * with its COMMIT. Writer thread only. */
	char notice[PG_NOTICE_MAX];
};

/* ---- the writer session ----------------------------------------------- */

/* Makes sure the writer session is up: reconnects (settings, search_path)
 * when it was lost and the backoff allows.
 * 0 or PG_ERR_DOWN. begin() calls it; so must anything pg_write.c runs
 * outside a group (sweep, expired) before its first statement. */
int pg_writer_up(struct pg_store *st);

/* Marks the writer session lost: it is closed (any transaction with it),
 * in_transaction() turns false, so the whole group fails with
 * STORE_UNAVAILABLE; the next pg_writer_up() reconnects after the backoff.
 * pg_query/pg_exec call it themselves when libpq says the connection is
 * bad; call it when you find the session unusable otherwise. */
void pg_writer_lost(struct pg_store *st);

/* Runs sql on the writer session with n text parameters ($1.. from
 * params[0..n-1], NULL values are SQL NULL). sql must have static storage
 * (a literal or a static const array): it is prepared once per session
 * and cached by its address. On success *out (if out is not NULL) gets the
 * result, PGRES_TUPLES_OK or PGRES_COMMAND_OK, which the caller
 * PQclear()s; with out NULL it is cleared here. On failure *out is NULL,
 * the server's message is logged, and the code is PG_ERR_SQL (or
 * PG_ERR_DOWN when the connection went: then pg_writer_lost() was
 * called). */
int pg_query(struct pg_store *st, const char *sql, int n, const char *const *params, PGresult **out);

/* pg_query for a statement that only reads: it goes without the queued
 * commands (they wait for the next statement), so a read that opens a
 * group sends no BEGIN, and a group that then writes nothing costs no
 * COMMIT. Under READ COMMITTED it sees what it would see inside the
 * transaction: the writes of the group so far, or, before BEGIN went
 * out, there are none. Retried once on a fresh session when the group
 * has sent nothing yet. */
int pg_read(struct pg_store *st, const char *sql, int n, const char *const *params, PGresult **out);

/* pg_query for SQL built at run time (a multi-row INSERT): not cached. */
int pg_exec(struct pg_store *st, const char *sql, int n, const char *const *params, PGresult **out);

/* One or more statements without parameters (simple protocol), e.g.
 * "BEGIN", "SET LOCAL ...". Same return convention; no result. */
int pg_command(struct pg_store *st, const char *sql);

/* For an op whose one write is a single statement that applies whole or
 * fails: it runs without a savepoint of its own (a subtransaction per op
 * makes a group of n ops touching one count row cost n^2 on the server).
 * Call it after the op's fault step, before its statement. Should the op
 * fail after that, nothing of it can be taken back alone: the whole group
 * is rolled back and every op in it gets STORE_UNAVAILABLE. In the group's
 * last op that statement carries the COMMIT: after it the op may only read
 * (outside the transaction), and may fail only when the statement wrote
 * nothing (a submit's id taken): then it fails alone and the group holds. */
void pg_scope_none(struct pg_store *st);

/* The group transaction (the backend's begin/commit/rollback). pg_begin()
 * brings the session up first. durable false: SET LOCAL
 * synchronous_commit = off. nops: the group's last op, when it gives up
 * its scope (pg_scope_none), sends its statement with the COMMIT in one
 * round trip; pg_commit() then returns that COMMIT's outcome. */
int pg_begin(void *be, bool durable, int nops);
int pg_commit(void *be);
void pg_rollback(void *be);

/* ---- parameters and results ------------------------------------------- */

#define PG_ARGS_MAX 32

/* Text parameters in order ($1 is the first added). Text added with
 * pg_arg_text is borrowed; numbers are formatted into buf. */
struct pg_args {
	int n;
	const char *v[PG_ARGS_MAX];
	char buf[PG_ARGS_MAX][32];
};

void pg_arg_text(struct pg_args *a, const char *s);          /* NULL: SQL NULL */
void pg_arg_null(struct pg_args *a);
void pg_arg_i64(struct pg_args *a, int64_t v);
void pg_arg_i64_or_null(struct pg_args *a, int64_t v);       /* 0: SQL NULL */
void pg_arg_f64(struct pg_args *a, double v);                /* round-trips exactly */

/* Field readers; NULL reads as 0, 0.0, "" (pg_copy) or NULL (pg_strdup,
 * which also returns NULL when memory runs out: check PQgetisnull). */
int64_t pg_i64(const PGresult *r, int row, int col);
double pg_f64(const PGresult *r, int row, int col);
bool pg_null(const PGresult *r, int row, int col);
void pg_copy(const PGresult *r, int row, int col, char *dst, size_t n);
char *pg_strdup(const PGresult *r, int row, int col);
/* Calls each() with the first column of every row of r, in order (a queue
 * name); stops at the first nonzero and returns PG_ERR_NOMEM, else 0. */
int pg_each_name(const PGresult *r, int (*each)(void *arg, const char *name), void *arg);
/* Rows an INSERT/UPDATE/DELETE changed (PQcmdTuples). */
int64_t pg_changes(const PGresult *r);

/* The columns of a job row, in the order pg_row_to_job reads them (the
 * same as SQLite's JOB_COLUMNS); a column after them is number
 * PG_JOB_NCOLUMNS (e.g. lease_id in expired). */
#define PG_JOB_COLUMNS "seq, id, type, queue, priority, state, payload, result, error, " \
	"progress_percent, progress_message, attempts, created_at, started_at, finished_at, " \
	"max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at, " \
	"batch_id, callback_url, callback_state, callback_attempts, callback_status, callback_error, " \
	"node_id, depends_on, dep_policy, deps_pending, schedule_name, schedule_fire_at"
#define PG_JOB_NCOLUMNS 33

/* Builds a job from row of a result of PG_JOB_COLUMNS; NULL on OOM. */
struct job *pg_row_to_job(const PGresult *r, int row);

/* The expiry of a job finishing at F: retention_s after it, truncated to
 * the ms as SQLite's CAST(... AS INTEGER) does. */
#define EXPIRES(F) F " + trunc(retention_s * 1000)::bigint"

/* The callback columns of a job finishing at F: pending from then on. */
#define CALLBACK_DUE(F) " callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE " S_PENDING " END," \
	" callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE " F " END"

/* ---- sessions for others ------------------------------------------------ */

/* The server's (or libpq's) message for r on conn, on one line. */
void pg_message(PGconn *conn, const PGresult *r, char *why, size_t whylen);

/* A new session with the common settings and the schema's search_path
 * (extra: more SET commands, or NULL); NULL with why on failure. */
PGconn *pg_session_open(const struct pg_store *st, const char *extra, char *why, size_t whylen);

/* One statement on a reader session: its result (the caller clears it),
 * or NULL after logging (the reader is replaced if it was lost). */
PGresult *pg_reader_query(struct pg_store *st, const char *sql, int n, const char *const *params);

/* ---- the cluster (store/pg_cluster.c) ---------------------------------- */

/* Registers this node (its id, its lock, its row) and starts the
 * coordination thread: heartbeat, leadership, notices, rescue. 0, or -1
 * with why. */
int pg_cluster_start(struct pg_store *st, const struct store_options *opts, char *why, size_t whylen);
/* Leaves the cluster (the node's row aged, its lock and leadership given
 * back) and stops the thread. No-op when it never started. */
void pg_cluster_stop(struct pg_store *st);
/* This node's id now (a node declared dead while cut off takes a new
 * one); any thread. */
void pg_node_id(struct pg_store *st, char out[UUID_LEN + 1]);
/* Whether this node holds the leader row (as of its last tick). */
bool pg_is_leader(struct pg_store *st);
/* Whether no other node was alive at the last tick: notices are skipped. */
bool pg_alone(struct pg_store *st);
enum store_rc pg_cluster_info(void *be, struct store_cluster *out);
/* The payload of a commit group's notice, into out[cap]. */
void pg_notice_build(struct pg_store *st, const struct store_notice *nt, char *out, size_t cap);

/* ---- what store/pg_write.c provides ----------------------------------- */

/* As struct store_backend says; each returns 0 or a PG_ERR_* code and
 * calls store_fault_hit() at the same steps as store/sqlite.c. */
int pg_apply_submit(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_batch(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_callback(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_finish(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_cancel(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_retry(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_delete(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_pause(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_ping(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_probe(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_heartbeat(void *be, struct store_op *op, struct store_effects *fx);

int pg_promote(void *be, int64_t now, struct store_promoted **out, int *n, int *cap);
int pg_ready_queues(void *be, const char *after, int (*each)(void *arg, const char *queue), void *arg);
int pg_claim(void *be, const char *queue, int n, int64_t now, struct job **out, int *got);
int pg_next_due(void *be, int64_t *out);
int pg_running(void *be, const char *queue, int64_t *n);
int pg_lock_queue(void *be, const char *queue);
int pg_lease_mark(void *be, const struct job *job, const char *lease_id, int64_t expires_at,
                  int64_t lease_ms);
int pg_expired(void *be, int64_t now, struct job **out, char (*ids)[STORE_LEASE_ID_LEN + 1], int max,
               int *n, int64_t *next);
int pg_sweep(void *be, int64_t now, int *deleted, int64_t *next);
/* A job of this op was scheduled at run_at: the claim must promote it. */
void pg_note_scheduled(int64_t run_at);

/* ---- schedules (store/pg_schedule.c) ----------------------------------- */

int pg_apply_schedule(void *be, struct store_op *op, struct store_effects *fx);
int pg_apply_fire(void *be, struct store_op *op, struct store_effects *fx);
enum store_rc pg_get_schedule(void *be, const char *name, struct store_schedule *out);
enum store_rc pg_list_schedules(void *be, const char *after, int max, struct store_schedule **out, size_t *n);
enum store_rc pg_due_schedules(void *be, int64_t now, struct store_schedule *out, int max, int *n);
enum store_rc pg_next_schedule(void *be, int64_t *next);
enum store_rc pg_count_schedules(void *be, int64_t *active, int64_t *paused);

/* ---- rate limits (store/pg_rate.c) ------------------------------------- */

int pg_rate_load(void *be, const char *queue, struct store_rate *out, bool *found);
int pg_rate_save(void *be, const struct store_rate *rate);
int pg_rate_delete(void *be, const char *queue, bool *found);
int pg_rate_names(void *be, int (*each)(void *arg, const char *queue), void *arg);
enum store_rc pg_get_rate(void *be, const char *queue, struct store_rate *out, bool *found);
enum store_rc pg_list_rates(void *be, struct store_rate **out, size_t *n);

#endif
