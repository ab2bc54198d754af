/* The store: durable jobs behind one interface. Only store/ contains SQL.
 *
 * Writes go through one writer thread as operations (struct store_op):
 * the caller fills an op and passes it to store_post(); the writer applies
 * many ops in one transaction (group commit), and only after the COMMIT
 * calls each op's done() on the writer thread. done() must not block: it
 * resumes a suspended request or signals a waiting thread. If the commit
 * fails, every op in the group gets rc = STORE_UNAVAILABLE and nothing of
 * the group is visible.
 *
 * Reads (store_get_job, store_list_jobs) may be called from any thread; each
 * call borrows a read-only connection from a pool. */
#ifndef JOBQ_STORE_H
#define JOBQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/job.h"

enum store_rc {
	STORE_OK = 0,
	STORE_NOT_FOUND,
	STORE_UNAVAILABLE, /* could not read or commit: try again later */
};

struct store;

/* Called on the writer thread after a commit; must not block. */
struct store_hooks {
	void *arg;
	void (*submitted)(void *arg);               /* new jobs may be runnable */
	void (*finished)(void *arg, const char *id); /* job reached a terminal state */
};

struct store_options {
	const char *path;
	bool sync_full;       /* synchronous=FULL (default) or NORMAL */
};

enum store_op_kind {
	STORE_OP_SUBMIT,   /* in: job (borrowed) */
	STORE_OP_CLAIM,    /* in: claim_max, claimed(); out: nclaimed */
	STORE_OP_FINISH,   /* in: job (borrowed) with id, attempts, state and outcome fields */
	STORE_OP_CANCEL,   /* in: id; out: found (state before the cancel) */
	STORE_OP_PING,     /* a small real write: is the database writable? */
};

struct store_op {
	enum store_op_kind kind;
	enum store_rc rc;                 /* out */
	void (*done)(struct store_op *op);
	void *arg;                        /* for the caller */

	struct job *job;                  /* SUBMIT, FINISH */
	char id[UUID_LEN + 1];            /* CANCEL */
	enum job_state found;             /* CANCEL: state found; queued ones are now canceled */
	int claim_max;                    /* CLAIM */
	/* CLAIM: called on the writer thread after the commit, for each
	 * claimed job in run order (priority, then submission); takes job. */
	void (*claimed)(struct store_op *op, struct job *job);
	int nclaimed;                     /* CLAIM */

	struct store_op *next;            /* writer queue, internal */
	void *sync;                       /* store_run's wait, internal */
};

/* Opens (creating and migrating) the database, takes its lock file,
 * requeues jobs left running by a dead process, and starts the writer.
 * On failure returns -1 with a message in err. */
int store_open(const struct store_options *opts, const struct store_hooks *hooks,
               struct store **out, char *err, size_t errlen);

/* Applies every posted op, stops the writer, closes all connections and
 * releases the lock. NULL is a no-op. */
void store_close(struct store *st);

/* Queues op for the writer. done() will be called exactly once. */
void store_post(struct store *st, struct store_op *op);

/* Posts op and blocks until it is done; op->done is not used. For threads
 * that may block (never an HTTP or the writer thread). */
enum store_rc store_run(struct store *st, struct store_op *op);

/* Reads one job. STORE_NOT_FOUND when there is none. */
enum store_rc store_get_job(struct store *st, const char *id, struct job **out);

struct store_filter {
	bool has_state;
	enum job_state state;
	const char *queue;     /* NULL: any */
	const char *type;      /* NULL: any */
	int64_t before_seq;    /* 0: from the newest */
	int limit;             /* page size; below 1 counts as 1 */
};

/* Lists jobs newest first. *next_seq is the cursor for the next page, or 0
 * at the end. The caller frees each job and the array. */
enum store_rc store_list_jobs(struct store *st, const struct store_filter *f,
                              struct job ***jobs, size_t *n, int64_t *next_seq);

/* The plan SQLite chose for a query the store runs, one detail per line
 * ("claim", "list_state", "list_queue", "list_type", "list_all"); for tests
 * that guard the indexes. The caller frees the string. */
char *store_explain(struct store *st, const char *query);

/* Writer counters since open: transactions committed and ops applied in
 * them. ops / commits is the mean group size. */
struct store_stats {
	uint64_t commits;
	uint64_t ops;
};

void store_get_stats(struct store *st, struct store_stats *out);

/* The schema version after migrations. */
int store_schema_version(struct store *st);

#endif
