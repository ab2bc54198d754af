/* Dependencies in the store: what a backend provides (struct
 * store_deps_ops, a handful of statements) and the rules built on it,
 * shared by every backend: a submission's edges, the cascade when a job
 * ends, a retry that blocks again. Each runs on the writer thread inside
 * the op's transaction; what it changes besides the op's own job goes to
 * the op's effects (struct store_cascade), which the writer reports after
 * the commit. Only store/ includes this header. */
#ifndef JOBQ_STORE_DEPS_H
#define JOBQ_STORE_DEPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/job.h"

/* A job an op changed besides its own: a child that became runnable or
 * was canceled, or (batch_done) a batch that finished by it. */
struct store_cascaded {
	char id[UUID_LEN + 1];
	char queue[JOB_NAME_MAX + 1];
	char type[JOB_NAME_MAX + 1];
	char batch_id[UUID_LEN + 1];
	enum job_state state;
	int attempts;
	bool change;                      /* report the job's new state */
	bool batch_done;                  /* batch_id just finished */
};

struct store_cascade {
	struct store_cascaded *items;     /* owned */
	int n, cap;
	int64_t expires_at;               /* earliest expiry a cancel set, 0: none */
};

/* Frees what c holds and empties it; NULL-safe. */
void store_cascade_clear(struct store_cascade *c);

/* A blocked child waiting on a parent's edge. */
struct deps_child {
	char id[UUID_LEN + 1];
	enum dep_policy policy;
};

/* A parent that has ended, with children still blocked on it. */
struct deps_parent {
	char id[UUID_LEN + 1];
	enum job_state state;
};

/* What a backend provides; each returns 0 or the backend's error code. */
struct store_deps_ops {
	int nomem;                        /* the backend's out-of-memory code */
	/* The state of job id; *found false when there is none. */
	int (*state)(void *be, const char *id, enum job_state *state, bool *found);
	/* Stores child's edges (resolved[i] for child->deps.ids[i]) and its
	 * depends_on, policy and pending count; the job row exists. */
	int (*link)(void *be, const struct job *child, const bool *resolved);
	/* Appends the blocked children whose edge to parent is unresolved. */
	int (*children)(void *be, const char *parent, struct deps_child **out, int *n, int *cap);
	/* Resolves the edge; the child counts down and, at 0, becomes queued
	 * (run_at now) or scheduled (a future run_at). *changed when the
	 * child was blocked; out gets it as it is now. */
	int (*resolve)(void *be, const char *child, const char *parent, int64_t now, struct store_cascaded *out,
	               bool *changed);
	/* Resolves the edge and cancels the blocked child with error; out,
	 * *changed and *expires_at as the cancel left it. */
	int (*cancel)(void *be, const char *child, const char *parent, const char *error, int64_t now,
	              struct store_cascaded *out, bool *changed, int64_t *expires_at);
	/* child (just retried, deps.n > 0) counts its edges again: resolved
	 * those whose parent succeeded, is gone, or (policy run) ended; with
	 * any left it is blocked again. Sets child->state, deps.pending. */
	int (*reblock)(void *be, struct job *child, int64_t now);
	/* Marks the batch finished when no job of it waits; *done if it did. */
	int (*batch_done)(void *be, const char *batch_id, bool *done);
	/* Up to max parents that ended without their end reaching a blocked
	 * child (ended outside the writer: recovery at open, a dead node's
	 * rescue), except a failure a "wait" child waits out; *n of them. */
	int (*stranded)(void *be, struct deps_parent *out, int max, int *n);
};

/* Before a job with depends_on is inserted: reads each parent's state
 * (an entry naming a batch index takes state[index] from batch, which
 * holds the batch's jobs' states so far). A parent that does not exist
 * sets job->deps.missing. Otherwise sets resolved[], *cancel (the parent
 * whose end cancels the job at once, -1) and job->state (blocked when it
 * waits or is to be canceled). */
int store_deps_prepare(const struct store_deps_ops *ops, void *be, struct job *job, const enum job_state *batch,
                       bool *resolved, int *cancel);

/* After the job row is in: its edges; a job to be canceled at once
 * (cancel >= 0) is, and job->state, job->error say so. */
int store_deps_insert(const struct store_deps_ops *ops, void *be, struct job *job, const bool *resolved, int cancel,
                      struct store_cascade *cx);

/* Job id reached a terminal state: each blocked child resolves its edge,
 * by the rules of core/deps.h, and cancels cascade to their own children.
 * Every child changed is added to cx. */
int store_deps_ended(const struct store_deps_ops *ops, void *be, const char *id, enum job_state state,
                     struct store_cascade *cx);

/* A retried job with parents: blocked again while one is unresolved. */
int store_deps_retried(const struct store_deps_ops *ops, void *be, struct job *job);

/* A batch's dependencies, worked out before its jobs are inserted. */
struct deps_plan {
	bool any;                         /* some job has depends_on */
	int *order;                       /* parents first */
	bool (*resolved)[JOB_DEPS_MAX];   /* per job */
	int *cancel;                      /* per job, as store_deps_prepare's */
};

/* store_deps_prepare for each job of a batch, parents first; a job whose
 * parent does not exist has deps.missing set (and the rest is not read).
 * Free the plan with store_deps_plan_free whatever this returns. */
int store_deps_batch_prepare(const struct store_deps_ops *ops, void *be, struct job *const *jobs, int n,
                             struct deps_plan *plan);

/* store_deps_insert for each job of the batch; when one is canceled at
 * once and that finished the batch, cx says so. */
int store_deps_batch_insert(const struct store_deps_ops *ops, void *be, struct job *const *jobs, int n,
                            const struct deps_plan *plan, const char *batch_id, struct store_cascade *cx);

void store_deps_plan_free(struct deps_plan *plan);

/* How often the writer looks for stranded parents (in a claim). */
#define DEPS_SETTLE_MS 2000

/* Applies the end of stranded parents (a batch of them) to their
 * children, as store_deps_ended does. */
int store_deps_settle(const struct store_deps_ops *ops, void *be, struct store_cascade *cx);

/* The deps ops of a backend (NULL: it has none). */
const struct store_deps_ops *store_deps_ops_of(const void *backend);

/* Adds an item to cx; -1 when out of memory. */
int store_cascade_add(struct store_cascade *cx, const struct store_cascaded *item);

extern const struct store_deps_ops store_sqlite_deps;
extern const struct store_deps_ops store_pg_deps;

#endif
