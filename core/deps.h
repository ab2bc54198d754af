/* Job dependencies: the depends_on and on_dependency_failure fields of a
 * submission, the links inside a batch (an entry may be the index of
 * another job of the batch), cycles among them, and a job's initial state
 * given its parents' states. Pure: the store applies what this decides. */
#ifndef JOBQ_DEPS_H
#define JOBQ_DEPS_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "core/job.h"
#include "core/problem.h"

const char *dep_policy_name(enum dep_policy policy);

/* Reads depends_on (up to JOB_DEPS_MAX distinct entries: job ids, or
 * integers, which only a batch may give) and on_dependency_failure
 * ("cancel" by default) of a submission object into job->deps. -1 with p
 * naming the field (depends_on[i] for an entry). */
int deps_parse(const cJSON *body, struct job *job, struct problem *p);

/* A single submission names no batch index: -1 with p naming the first
 * entry that does. */
int deps_refuse_refs(const struct job *job, struct problem *p);

/* Resolves the batch indexes of b's jobs to their ids and refuses an
 * index out of range, a job that depends on itself or any cycle among the
 * batch's jobs (p names jobs[i].depends_on[k] and the cycle). */
int deps_batch_link(struct job_batch *b, struct problem *p);

/* An order of the batch's jobs in which each comes after the jobs of the
 * batch it depends on (b linked by deps_batch_link, so there is no cycle):
 * order[0..njobs-1]. -1 when out of memory. */
int deps_batch_order(struct job *const *jobs, int njobs, int *order);

/* A job's state at submission given each parent's state (parent[i] for
 * job->deps.ids[i]): sets resolved[i], job->deps.pending, and returns the
 * index of the parent whose failure cancels the job at once (policy
 * cancel), or -1. The job becomes JOB_BLOCKED when a parent is pending or
 * it is to be canceled; else its state stays (queued or scheduled). */
int deps_initial(struct job *job, const enum job_state *parent, bool *resolved);

/* Whether a parent that ended in state resolves an edge of a child with
 * policy: succeeded always, failed and canceled under "run". */
static inline bool deps_resolves(enum job_state parent, enum dep_policy policy)
{
	return parent == JOB_SUCCEEDED || (policy == DEP_RUN && (parent == JOB_FAILED || parent == JOB_CANCELED));
}

/* The error a child canceled by its parent's end carries. */
void deps_cancel_error(const char *parent, enum job_state state, char *out, size_t n);

/* The ids as a JSON array (the stored depends_on column); NULL when there
 * are none or out of memory (*oom tells which). The caller frees. */
char *deps_ids_text(const struct job_deps *d, bool *oom);

/* Reads a stored depends_on column back into d->ids, d->n; text NULL:
 * none. -1 when out of memory (a damaged text reads as none). */
int deps_ids_from_text(const char *text, struct job_deps *d);

#endif
