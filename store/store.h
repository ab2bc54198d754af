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
 * call borrows a read-only connection from a pool.
 *
 * The writer (store/writer.c) is shared by every backend; a backend
 * (store/sqlite.c) implements struct store_backend (store/backend.h). */
#ifndef JOBQ_STORE_H
#define JOBQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/bucket.h"
#include "core/job.h"

enum store_rc {
	STORE_OK = 0,
	STORE_NOT_FOUND,
	STORE_UNAVAILABLE, /* could not read or commit: try again later */
	STORE_CONFLICT,    /* SUBMIT: the Idempotency-Key belongs to a different body;
	                    * FINISH, HEARTBEAT with a lease id: it is not the job's
	                    * current lease */
};

struct store;

/* A job's new state, as committed. */
struct job_change {
	const char *id, *queue, *type;
	enum job_state state;
	int attempts;
	bool created;          /* the change is the job's submission */
	/* The job row when the op had one (submit, batch, claim, finish,
	 * retry): a claim's has started_at and run_at, a finish's also
	 * finished_at. NULL for promotions and cancels of waiting jobs. */
	const struct job *job;
};

/* What a commit group changed, for the other nodes (backend's notice):
 * up to STORE_NOTICE_ITEMS items, overflow when more did not fit. Tags:
 * 'j' a job changed, 'b' a batch finished, 'k' stop this job's run (a
 * cancel). */
#define STORE_NOTICE_ITEMS 200
struct store_notice {
	bool runnable, overflow;
	int n;
	struct {
		char tag;
		char id[UUID_LEN + 1];
	} items[STORE_NOTICE_ITEMS];
};

/* Called on the writer thread after a commit; must not block. The
 * cluster's members (remote, stop, wake, watched) are called on the
 * backend's coordination thread; they, and batch_done and submitted
 * called from there too, must not block either. */
struct store_hooks {
	/* every committed state change of a job, in commit order */
	void (*transition)(void *arg, const struct job_change *c);
	void *arg;
	/* jobs may have become runnable (submitted, requeued, retried, resumed) */
	void (*submitted)(void *arg);
	/* a job reached a terminal state */
	void (*finished)(void *arg, const char *id, const char *queue);
	/* every job of a batch is finished; also: a callback became due */
	void (*batch_done)(void *arg, const char *batch_id);
	/* another node committed a change to a job (c as the job is now;
	 * c->job NULL) */
	void (*remote)(void *arg, const struct job_change *c);
	/* a cancel committed elsewhere: stop this node's run of job id */
	void (*stop)(void *arg, const char *id);
	/* the fallback poll, once per heartbeat: look for work as if woken */
	void (*wake)(void *arg);
	/* the job (and batch) ids local requests wait on, up to max, into
	 * out; returns how many */
	int (*watched)(void *arg, char (*out)[UUID_LEN + 1], int max);
	/* whether this node's pool runs job id now */
	bool (*runs_here)(void *arg, const char *id);
};

/* How durable a commit is before an op's done() runs. */
enum store_durability {
	STORE_DURABLE_POWER_LOSS = 0, /* survives power loss (the default) */
	STORE_DURABLE_CRASH,          /* survives a crash of jobqd, maybe not of the machine */
};

struct store_options {
	const char *backend;          /* "sqlite" or "pg" (NULL: "sqlite") */
	const char *path;             /* where the backend keeps its data */
	const char *schema;          /* pg: the schema of jobq's tables (NULL: "jobq") */
	enum store_durability durability;
	int readers;                  /* read connections at most, one per thread that
	                               * may read at once (below 1: 64); more readers
	                               * wait for one to come back */
	/* At open, the backend checks the database's integrity for at most
	 * this long (seconds); 0 skips it. */
	double integrity_check_s;
	/* Whether a queue is served by external workers (the lease op): a
	 * claim never takes its jobs. NULL: none is. */
	bool (*external)(void *arg, const char *queue);
	void *external_arg;
	/* pg: a node whose heartbeat is older than this (seconds) is dead
	 * (0: 30). */
	double node_timeout_s;
	/* The defaults a schedule's fired jobs are made with (NULL: no
	 * schedule fires). */
	const struct job_defaults *job_defaults;
	/* Set by store_open for the backend: the store's hooks. */
	const struct store_hooks *hooks;
};

enum store_op_kind {
	STORE_OP_SUBMIT,
	STORE_OP_BATCH,
	STORE_OP_CALLBACK,
	STORE_OP_CLAIM,
	STORE_OP_FINISH,
	STORE_OP_CANCEL,
	STORE_OP_RETRY,
	STORE_OP_DELETE,
	STORE_OP_PAUSE,
	STORE_OP_PING,     /* a small real write: is the database writable? no fields */
	/* What readiness asks: would a submission commit now? A synced commit
	 * of STORE_PROBE_BYTES, more than a job with its index entries takes,
	 * in a transaction of its own (it never fails other ops). rc is
	 * STORE_UNAVAILABLE when it fails or the database is damaged
	 * (store_damaged). No fields. */
	STORE_OP_PROBE,
	STORE_OP_LEASE,
	STORE_OP_HEARTBEAT,
	STORE_OP_RATE,     /* set or remove a queue's rate limit (store_op_rate) */
	STORE_OP_SCHEDULE, /* create, replace, delete, pause, resume a schedule */
	STORE_OP_FIRE,     /* a schedule's fire: its next time moved, its jobs in */
	STORE_OP_KINDS
};

/* The size of STORE_OP_PROBE's write: 16 pages. A job with a small
 * payload takes about 7 (its row and index entries). */
#define STORE_PROBE_BYTES 65536

struct store_op;

/* in: job (borrowed). A job with an idem_key already stored with the same
 * idem_hash is not inserted: replayed is set and job->id becomes the
 * stored job's id; with another hash rc is STORE_CONFLICT. */
struct store_op_submit {
	struct job *job;
	bool replayed;                    /* out */
};

/* in: jobs[njobs] (borrowed; their batch_id is set here), id (the
 * batch's), url (its callback or NULL): all or nothing. With an idem_key
 * already stored on a batch with the same idem_hash nothing is inserted:
 * replayed is set and id becomes the stored batch's id; with another hash
 * rc is STORE_CONFLICT. */
struct store_op_batch {
	char id[UUID_LEN + 1];
	struct job **jobs;
	int njobs;
	const char *url;
	const char *idem_key;             /* Idempotency-Key or NULL (borrowed) */
	const char *idem_hash;            /* SHA-256 of the body, hex, with idem_key */
	bool replayed;                    /* out */
};

/* The outcome of delivering a callback. in: id, is_batch, delivery
 * (DELIVERED, FAILED, or PENDING to try again at next_at), status, error
 * (its text or NULL). */
struct store_op_callback {
	char id[UUID_LEN + 1];
	bool is_batch;
	enum delivery_state delivery;
	int status;
	const char *error;
	int64_t next_at;
};

/* Promotes due scheduled jobs, then claims up to max runnable jobs from
 * unpaused queues, sharing them round-robin among queues and asking
 * queue_room() how many each may start. */
struct store_op_claim {
	int max;
	/* called on the writer thread after the commit, for each claimed
	 * job, the queues taking turns (the first job of each ready queue,
	 * then the second, ...) and each queue's in run order (priority,
	 * then submission); takes job */
	void (*claimed)(struct store_op *op, struct job *job);
	/* how many more jobs of queue may start now (INT_MAX: no limit);
	 * called on the writer thread inside the transaction; NULL: no limit */
	int (*queue_room)(struct store_op *op, const char *queue);
	/* queue's limit for the whole cluster (INT_MAX: none); NULL: none */
	int (*queue_limit)(struct store_op *op, const char *queue);
	int nclaimed;                     /* out */
	int64_t next_due;                 /* out: earliest scheduled run_at (unix ms), 0: none */
	bool limited;                     /* out: a queue had runnable jobs but no room */
};

/* A lease id: 32 lower-case hex digits. */
#define STORE_LEASE_ID_LEN 32

/* FINISH with lease_id set is an external worker's answer: it applies only
 * while the job is running under that lease (else rc STORE_CONFLICT and
 * nothing changes), and ends the lease. release: the job goes back
 * (state QUEUED, or SCHEDULED at run_at) without spending the attempt. */
struct store_op_finish_lease {
	const char *lease_id;             /* in: NULL for the internal pool */
	bool release;                     /* in */
};

/* The outcome of an attempt. in: job (borrowed) with id, seq, queue,
 * attempts, state, started_at (when the attempt really started, which may
 * be later than its claim; 0 keeps the claim's) and the outcome fields:
 *   SUCCEEDED/FAILED/CANCELED: finished; the attempt is recorded
 *   SCHEDULED: retry at run_at; the attempt is recorded
 *   QUEUED: put back (shutdown); the attempt is neither recorded nor counted */
struct store_op_finish {
	struct job *job;
	char batch_id[UUID_LEN + 1];      /* out: the job's batch, "" if none */
	struct store_op_finish_lease lease;
	/* in: the far side answered 429 with Retry-After until then (unix
	 * ms), 0: no. When the job's queue has a rate limit with
	 * retry_after, its bucket pauses until then and the attempt is
	 * released (job->state becomes SCHEDULED at then, lease.release set)
	 * instead of spent; otherwise the outcome stands as given. */
	int64_t throttled_until;
};

/* The outcome a failed attempt leads to: SCHEDULED at now plus the
 * backoff (at least min_delay_ms) while attempts are left and retryable,
 * else FAILED. Shared by the pool and the lease API. */
void store_attempt_failed(struct job *job, bool retryable, int64_t now, int64_t min_delay_ms);

/* A job an external worker leased. */
struct store_leased {
	struct job *job;                  /* state running, attempts the attempt it runs */
	char lease_id[STORE_LEASE_ID_LEN + 1];
	int64_t expires_at;               /* unix ms */
};

/* Promotes due scheduled jobs, then leases up to max runnable jobs of the
 * named external queues (unpaused ones, sharing them like a claim, within
 * each queue's limit counted from its running jobs), for lease_ms. */
struct store_op_lease {
	const char (*queues)[JOB_NAME_MAX + 1]; /* in, borrowed */
	int nqueues;
	int max;
	int64_t lease_ms;
	/* the queue's concurrency limit (INT_MAX: none); writer thread */
	int (*queue_limit)(struct store_op *op, const char *queue);
	struct store_leased *leased;      /* out: the caller frees each job and the array */
	int nleased;
	int64_t next_token;               /* out: when a named rate-limited queue with queued
	                                   * jobs gets its next token (unix ms), 0: none */
};

/* Extends the lease of job id by lease_ms (0: the lease's own length)
 * from now and records progress. rc STORE_CONFLICT when lease_id is not
 * the job's current lease. A job canceled while leased answers canceled
 * (expires_at 0), and its lease is over. */
struct store_op_heartbeat {
	char id[UUID_LEN + 1];
	char lease_id[STORE_LEASE_ID_LEN + 1];
	int64_t lease_ms;
	bool has_progress;
	double percent;
	char message[JOB_PROGRESS_MSG_MAX + 1];
	int64_t expires_at;               /* out */
	bool canceled;                    /* out */
};

/* CANCEL, RETRY and DELETE name one job by id and say what it was. */
#define STORE_OP_TARGET_FIELDS \
	char id[UUID_LEN + 1];            /* in */ \
	enum job_state found;             /* out: the state before */ \
	char queue[JOB_NAME_MAX + 1];     /* out */ \
	char batch_id[UUID_LEN + 1];      /* out: "" if none */ \
	char type[JOB_NAME_MAX + 1];      /* out */

/* CANCEL: queued and scheduled ones, and running ones an external worker
 * leased, are now canceled. DELETE: finished
 * ones are now deleted. */
struct store_op_target {
	STORE_OP_TARGET_FIELDS
};

/* Failed and canceled ones are now queued; job is the job as the retry
 * left it (the caller frees it). */
struct store_op_retry {
	STORE_OP_TARGET_FIELDS
	struct job *job;                  /* out */
};

struct store_op_pause {
	char queue[JOB_NAME_MAX + 1];
	bool paused;
};

/* A queue's rate limit: at most bucket.limit starts per bucket.period_ms,
 * bursts of bucket.burst (core/bucket.h), stored with the bucket's state
 * so that every node shares one. retry_after: an http job's 429 with
 * Retry-After pauses the bucket (store_op_finish.throttled_until). */
struct store_rate {
	char queue[JOB_NAME_MAX + 1];
	bool retry_after;
	struct bucket bucket;
};

/* RATE: in: rate.queue and remove; without remove, rate's limit,
 * period_ms, burst and retry_after replace the queue's (a new limit starts
 * with a full bucket; a changed one keeps its tokens, up to the new
 * burst, and its pause). out: found, whether the queue had a limit. */
struct store_op_rate {
	struct store_rate rate;
	bool remove;
	bool found;                       /* out */
};

/* ---- schedules (core/schedule.h) ---------------------------------------- */

/* A schedule as stored: its definition is spec, core/schedule.h's stored
 * form. Times unix ms, 0: none (next_fire_at is 0 while paused). */
struct store_schedule {
	char name[JOB_NAME_MAX + 1];
	char *spec;                       /* owned */
	int64_t next_fire_at, last_fire_at, created_at, updated_at;
	bool paused;
};

void store_schedule_clear(struct store_schedule *s);

enum store_schedule_action {
	STORE_SCHEDULE_CREATE,  /* rc STORE_CONFLICT when the name is taken */
	STORE_SCHEDULE_REPLACE, /* the definition; next_fire_at unless paused */
	STORE_SCHEDULE_DELETE,
	STORE_SCHEDULE_PAUSE,   /* next_fire_at becomes none */
	STORE_SCHEDULE_RESUME,  /* a paused one gets next_fire_at; else unchanged */
};

/* in: name, spec (borrowed; CREATE, REPLACE), next_fire_at (CREATE,
 * REPLACE, RESUME), now. rc STORE_NOT_FOUND when there is no such
 * schedule (all but CREATE). */
struct store_op_schedule {
	enum store_schedule_action action;
	char name[JOB_NAME_MAX + 1];
	const char *spec;
	int64_t next_fire_at;
	int64_t now;
};

/* One fire of schedule name, all or nothing. due != 0: only while its
 * next_fire_at is still due (compare and set), it becomes next (0: none)
 * and last_fire_at the newest fire time; else rc STORE_CONFLICT and
 * nothing changes (another node or tick fired it). due == 0 (run now):
 * next_fire_at stays, rc STORE_NOT_FOUND without the schedule. Then each
 * of jobs (borrowed, with schedule_name and schedule_fire_at set) is
 * inserted unless a job of that fire exists (its seq is left 0); fired
 * counts those inserted. skipped: due times the plan left out (for the
 * counters only). */
struct store_op_fire {
	char name[JOB_NAME_MAX + 1];
	int64_t due, next;
	struct job **jobs;
	int njobs;
	int64_t skipped;
	int fired;                        /* out */
};

struct store_op {
	enum store_op_kind kind;
	enum store_rc rc;                 /* out */
	void (*done)(struct store_op *op);
	void *arg;                        /* for the caller */
	union {                           /* the one named by kind */
		struct store_op_submit submit;
		struct store_op_batch batch;
		struct store_op_callback callback;
		struct store_op_claim claim;
		struct store_op_finish finish;
		struct store_op_target cancel;
		struct store_op_retry retry;
		struct store_op_target del;
		struct store_op_pause pause;
		struct store_op_lease lease;
		struct store_op_heartbeat heartbeat;
		struct store_op_rate rate;
		struct store_op_schedule schedule;
		struct store_op_fire fire;
	};

	struct store_op *next;            /* writer queue, internal */
	void *sync;                       /* store_run's wait, internal */
};

/* The target of a CANCEL, RETRY or DELETE op (their fields begin alike). */
static inline struct store_op_target *store_op_target(struct store_op *op)
{
	return &op->cancel;
}

/* store_open's failures. */
enum {
	STORE_OPEN_FAILED = -1,  /* cannot open or write it: missing directory, read-only, in use,
	                          * unknown backend */
	STORE_OPEN_DAMAGED = -2, /* the database is corrupt (the integrity check, or the backend says so) */
};

/* Opens the backend named in opts (creating and migrating its database,
 * taking its lock, checking it (integrity_check_s), requeueing jobs left
 * running by a dead process) and starts the writer. On failure returns
 * STORE_OPEN_FAILED or STORE_OPEN_DAMAGED with one line in err (what
 * failed, the path, the reason); nothing is logged. */
int store_open(const struct store_options *opts, const struct store_hooks *hooks,
               struct store **out, char *err, size_t errlen);

/* uri as it may be shown in a message or log: a password in its user
 * part or in a password= parameter replaced by *** (pg conninfo URIs;
 * anything else comes out as it went in). Truncated to outlen. */
void store_mask_uri(const char *uri, char *out, size_t outlen);

/* Applies every posted op, stops the writer, closes all connections and
 * releases the lock. NULL is a no-op. */
void store_close(struct store *st);

/* Queues op for the writer. done() will be called exactly once. */
void store_post(struct store *st, struct store_op *op);

/* Posts op and blocks until it is done; op->done is not used. For threads
 * that may block (never an HTTP or the writer thread). */
enum store_rc store_run(struct store *st, struct store_op *op);

/* Reads one job with its attempt history. STORE_NOT_FOUND when there is
 * none. */
enum store_rc store_get_job(struct store *st, const char *id, struct job **out);

struct store_filter {
	bool has_state;
	enum job_state state;
	const char *queue;     /* NULL: any */
	const char *type;      /* NULL: any */
	const char *batch_id;  /* NULL: any; read through the batch's index */
	/* nids > 0: only these jobs (distinct ids, read by id); 0: any */
	const char *const *ids;
	size_t nids;
	int64_t before_seq;    /* 0: from the newest */
	int limit;             /* page size; below 1 counts as 1 */
};

/* Lists jobs newest first. *next_seq is the cursor for the next page, or 0
 * at the end. The caller frees each job and the array. */
enum store_rc store_list_jobs(struct store *st, const struct store_filter *f,
                              struct job ***jobs, size_t *n, int64_t *next_seq);

struct queue_info {
	char name[JOB_NAME_MAX + 1];
	bool paused;
	int64_t counts[JOB_STATE_COUNT];
	int64_t oldest_queued_run_at;      /* unix ms; 0: nothing queued */
};

/* Reads one queue's counts (kept as jobs change, so no table scan), paused
 * flag and oldest queued job. A queue without jobs reads as zeros. */
enum store_rc store_get_queue(struct store *st, const char *name, struct queue_info *out);

/* A page of the names of the queues that have jobs or a paused flag, in
 * byte order: at most max (below 1 counts as 1) of those after `after`
 * (NULL or "": from the first). The caller frees the array. */
enum store_rc store_list_queue_names(struct store *st, const char *after, int max,
                                     char (**names)[JOB_NAME_MAX + 1], size_t *n);

/* The queues with queued jobs, deepest first (ties by name): the first
 * top of them in out[0..*n-1], and every other one summed into *rest.
 * Each has its name (rest's is ""), counts[JOB_QUEUED] and
 * oldest_queued_run_at (rest's: the earliest of them); the other fields
 * are zero. On failure *n is 0. */
enum store_rc store_deepest_queues(struct store *st, struct queue_info *out, int top, int *n,
                                   struct queue_info *rest);

/* Reads queue's rate limit with its bucket as stored (bucket_refill()
 * brings it to now); *found false when the queue has none. */
enum store_rc store_get_rate(struct store *st, const char *queue, struct store_rate *out, bool *found);

/* Every queue's rate limit, by name; the caller frees the array. */
enum store_rc store_list_rates(struct store *st, struct store_rate **out, size_t *n);

/* How many times since open a claim or lease of this node found queue
 * out of tokens while it had jobs to start (any thread). */
uint64_t store_rate_limited(struct store *st, const char *queue);

/* Jobs in each state over every queue (out[state]), summed from the
 * kept per-queue counts: no scan of the jobs. */
enum store_rc store_state_counts(struct store *st, int64_t out[JOB_STATE_COUNT]);

/* Reads a batch; its counts are kept as jobs change, not scanned. */
enum store_rc store_get_batch(struct store *st, const char *id, struct batch_info *out);

/* ---- the cluster ---------------------------------------------------------- */

#define STORE_NODES_MAX 64

struct store_node {
	char id[UUID_LEN + 1];
	char host[64];
	int64_t pid;
	int64_t started_at, heartbeat_at; /* unix ms (the database server's clock) */
	bool alive, leader;
	int64_t running;                  /* its running attempts */
};

/* The nodes sharing the store: on SQLite this process alone. */
struct store_cluster {
	char node[UUID_LEN + 1];          /* this node */
	char leader[UUID_LEN + 1];        /* "" when none holds the row now */
	const char *backend;              /* "sqlite" or "pg" */
	struct store_node nodes[STORE_NODES_MAX];
	int nnodes;
};

/* This node's id (random per boot; a PostgreSQL node declared dead while
 * cut off takes a new one). */
void store_node_id(struct store *st, char out[UUID_LEN + 1]);

/* Whether this node runs the cluster's maintenance (always on SQLite). */
bool store_is_leader(struct store *st);

enum store_rc store_cluster(struct store *st, struct store_cluster *out);

/* Callbacks due at `now`: up to max ids of jobs (is_batch false) or
 * batches, and in *next the earliest due time of any pending callback
 * (0: none; it may be `now` or earlier while one is due). */
struct due_callback {
	char id[UUID_LEN + 1];
	bool is_batch;
};
enum store_rc store_due_callbacks(struct store *st, int64_t now, struct due_callback *out, int max,
                                  int *n, int64_t *next);

/* Writer counters since open: transactions committed, those of them
 * committed durably (synced to disk when the durability asks for it), and
 * ops applied in them. ops / commits is the mean group size. */
struct store_stats {
	uint64_t commits;
	uint64_t synced;
	uint64_t ops;
};

void store_get_stats(struct store *st, struct store_stats *out);

/* Whether a read or a write has met a damaged page since open: the
 * database is corrupt, and stays so until it is restored or repaired. */
bool store_damaged(struct store *st);

/* Reads schedule name (STORE_NOT_FOUND without it); out is cleared with
 * store_schedule_clear. */
enum store_rc store_get_schedule(struct store *st, const char *name, struct store_schedule *out);

/* A page of schedules in name order: at most max (below 1 counts as 1)
 * after `after` (NULL or "": from the first). The caller clears each and
 * frees the array. */
enum store_rc store_list_schedules(struct store *st, const char *after, int max, struct store_schedule **out,
                                   size_t *n);

/* How many schedules are active (unpaused) and paused. */
enum store_rc store_count_schedules(struct store *st, int64_t *active, int64_t *paused);

/* The schema version after migrations. */
int store_schema_version(struct store *st);

/* ---- leases of external workers, for the dashboard ------------------------ */

/* A job an external worker holds now. node is "" where the store keeps
 * none (SQLite). */
struct store_lease_info {
	char id[UUID_LEN + 1];
	char queue[JOB_NAME_MAX + 1];
	char type[JOB_NAME_MAX + 1];
	int attempt;
	int64_t started_at, expires_at;   /* unix ms */
	char node[UUID_LEN + 1];
};

/* Up to max (1..1000) of the jobs leased now, of queue (NULL: any), the
 * soonest to expire first, into out[0..*n). */
enum store_rc store_list_leases(struct store *st, const char *queue, int max, struct store_lease_info *out,
                                int *n);

#endif
