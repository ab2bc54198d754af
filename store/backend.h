/* What a store backend implements, for store/writer.c: a group transaction
 * with an all-or-nothing scope per op, the write ops but the claim, the two
 * primitives the writer builds its fair claim from, retention, and the
 * reads. Only store/ includes this header.
 *
 * Every write function runs on the writer thread inside the group
 * transaction and returns 0 or a backend error code (errstr() names it);
 * the writer undoes the op's scope on an error. An op that finds its job
 * missing sets op->rc = STORE_NOT_FOUND (or STORE_CONFLICT) and returns 0. */
#ifndef JOBQ_STORE_BACKEND_H
#define JOBQ_STORE_BACKEND_H

#include "store/deps_store.h"
#include "store/store.h"

/* What an applied op changed; the writer turns it into hooks after the
 * COMMIT, or drops it with the op's scope. */
struct store_effects {
	bool changed;                 /* FINISH: the job was running that attempt */
	bool finished;                /* the job reached a terminal state */
	bool batch_done;              /* ... and that finished its batch */
	bool runnable;                /* jobs may have become runnable */
	int64_t expires_at;           /* an expiry the op set (unix ms), 0: none */
	int64_t lease_expires_at;     /* a lease expiry the op set (unix ms), 0: none */
	/* Other jobs the op changed through dependencies (store/deps_store.h):
	 * reported after the op's own change; the writer frees it. */
	struct store_cascade cascade;
};

/* A job a claim moved from scheduled to queued. */
struct store_promoted {
	char id[UUID_LEN + 1];
	char queue[JOB_NAME_MAX + 1];
	char type[JOB_NAME_MAX + 1];
	int attempts;
};

typedef int (*store_apply_fn)(void *be, struct store_op *op, struct store_effects *fx);

struct store_backend {
	const char *name;

	/* Connects, creates or migrates the schema, takes whatever makes this
	 * process the only writer, checks integrity (opts->integrity_check_s)
	 * and recovers jobs left running; STORE_OPEN_FAILED or
	 * STORE_OPEN_DAMAGED with one line in err, nothing logged. close
	 * accepts NULL. */
	int (*open)(const struct store_options *opts, void **be, char *err, size_t errlen);
	void (*close)(void *be);
	const char *(*errstr)(int rc);

	/* The group transaction. durable false: the group holds only claims
	 * and pings, which may be lost in a power cut (see writer.c). nops:
	 * how many ops the group holds (a backend may send the COMMIT with
	 * the last op's last statement; commit() then reports its outcome).
	 * in_transaction() is false once a failure ended the transaction on
	 * its own: then nothing of the group holds. */
	int (*begin)(void *be, bool durable, int nops);
	int (*commit)(void *be);
	void (*rollback)(void *be);
	bool (*in_transaction)(void *be);

	/* One op's scope inside the group: op_undo() takes back everything
	 * since op_begin(); op_end() keeps it. */
	int (*op_begin)(void *be);
	int (*op_end)(void *be);
	int (*op_undo)(void *be);

	/* Every kind but STORE_OP_CLAIM, STORE_OP_LEASE and STORE_OP_RATE (the
	 * writer builds those from the parts below), indexed by kind. */
	store_apply_fn apply[STORE_OP_KINDS];

	/* The claim's parts. promote: due scheduled jobs become queued
	 * (appended to *out, *n, *cap; the writer frees). ready_queues: the
	 * names of unpaused queues with runnable jobs, those after `after` in
	 * name order first, then the rest; each() may stop the walk by
	 * returning nonzero (that is returned). claim: up to n runnable jobs of
	 * queue, in run order, become running with started_at now and their
	 * attempt counted; appended to out[*got]. next_due: the earliest
	 * run_at of a scheduled job, 0: none. */
	int (*promote)(void *be, int64_t now, struct store_promoted **out, int *n, int *cap);
	int (*ready_queues)(void *be, const char *after, int (*each)(void *arg, const char *queue), void *arg);
	int (*claim)(void *be, const char *queue, int n, int64_t now, struct job **out, int *got);
	int (*next_due)(void *be, int64_t *out);

	/* The lease's parts, beside the claim's. running: how many jobs of
	 * queue run now. lease_mark: the claimed job now runs under lease_id
	 * until expires_at (a lease of lease_ms). expired: up to max jobs whose
	 * lease ended by now (out[], their lease ids in ids[]), inside no
	 * group; when there are none, *next is the earliest lease expiry (0:
	 * none). */
	int (*running)(void *be, const char *queue, int64_t *n);
	int (*lease_mark)(void *be, const struct job *job, const char *lease_id, int64_t expires_at,
	                  int64_t lease_ms);
	int (*expired)(void *be, int64_t now, struct job **out, char (*ids)[STORE_LEASE_ID_LEN + 1], int max,
	               int *n, int64_t *next);

	/* Retention, in its own transaction, outside any group: deletes up to
	 * a batch of jobs expired at now; *deleted how many, *next the next
	 * expiry (0: none). */
	int (*sweep)(void *be, int64_t now, int *deleted, int64_t *next);

	/* Reads, from any thread (see store.h). */
	enum store_rc (*get_job)(void *be, const char *id, struct job **out);
	enum store_rc (*list_jobs)(void *be, const struct store_filter *f, struct job ***jobs, size_t *n,
	                           int64_t *next_seq);
	enum store_rc (*get_queue)(void *be, const char *name, struct queue_info *out);
	enum store_rc (*list_queue_names)(void *be, const char *after, int max,
	                                  char (**names)[JOB_NAME_MAX + 1], size_t *n);
	enum store_rc (*deepest_queues)(void *be, struct queue_info *out, int top, int *n,
	                                struct queue_info *rest);
	enum store_rc (*get_batch)(void *be, const char *id, struct batch_info *out);
	enum store_rc (*state_counts)(void *be, int64_t out[JOB_STATE_COUNT]);
	enum store_rc (*due_callbacks)(void *be, int64_t now, struct due_callback *out, int max, int *n,
	                               int64_t *next);
	int (*schema_version)(void *be);

	/* Whether a read or write met a damaged page since open (any thread). */
	bool (*damaged)(void *be);
	/* Called by the writer after each group and each sweep. */
	void (*after_writes)(void *be);

	/* Many nodes on one database (NULL members: a single node, as on
	 * SQLite). notice: what the group being applied changed, for the
	 * other nodes, given before its commit; alone: whether no other node is
 * alive (the notice is not built then). node_id: this node's id now.
	 * leader: whether this node runs the cluster's maintenance (retention,
	 * callbacks). cluster: the nodes as the database sees them (reads).
	 * lock_queue: inside the group, serializes the claims of a limited
	 * queue across nodes until the commit. */
	void (*notice)(void *be, const struct store_notice *nt);
	bool (*alone)(void *be);          /* no other node to tell: no notice */
	void (*node_id)(void *be, char out[UUID_LEN + 1]);
	bool (*leader)(void *be);
	enum store_rc (*cluster)(void *be, struct store_cluster *out);
	int (*lock_queue)(void *be, const char *queue);

	/* Rate limits (store_rate), on the writer thread inside the group,
	 * the caller holding the queue's lock (lock_queue): rate_load reads
	 * queue's (*found false: none), rate_save inserts or replaces it,
	 * rate_delete removes it (*found: there was one); rate_names calls
	 * each() with every queue that has one. Reads from any thread:
	 * get_rate, list_rates (store.h). */
	int (*rate_load)(void *be, const char *queue, struct store_rate *out, bool *found);
	int (*rate_save)(void *be, const struct store_rate *rate);
	int (*rate_delete)(void *be, const char *queue, bool *found);
	int (*rate_names)(void *be, int (*each)(void *arg, const char *queue), void *arg);
	enum store_rc (*get_rate)(void *be, const char *queue, struct store_rate *out, bool *found);
	enum store_rc (*list_rates)(void *be, struct store_rate **out, size_t *n);
	/* Schedules (their writes are apply[STORE_OP_SCHEDULE] and
	 * apply[STORE_OP_FIRE]). Reads from any thread. due_schedules: up to
	 * max unpaused schedules with next_fire_at <= now, earliest first;
	 * next_schedule: the earliest next_fire_at of any (0: none). */
	enum store_rc (*get_schedule)(void *be, const char *name, struct store_schedule *out);
	enum store_rc (*list_schedules)(void *be, const char *after, int max, struct store_schedule **out,
	                                size_t *n);
	enum store_rc (*due_schedules)(void *be, int64_t now, struct store_schedule *out, int max, int *n);
	enum store_rc (*next_schedule)(void *be, int64_t *next);
	enum store_rc (*count_schedules)(void *be, int64_t *active, int64_t *paused);
	/* store_list_leases */
	enum store_rc (*list_leases)(void *be, const char *queue, int max, struct store_lease_info *out, int *n);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_pg_backend;

/* The backend state of st when its backend is `backend`, else NULL; for
 * backend-only extras (store/sqlite.h). */
void *store_backend_state(struct store *st, const struct store_backend *backend);

/* The fault seam (store/fault.h): backends call it at each step of an op
 * that may fail halfway; true means fail this step as out of memory.
 * Writer thread only. */
bool store_fault_hit(void);

#endif
