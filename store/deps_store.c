/* The rules of dependencies over a backend's statements (store/deps_store.h).
 *
 * DESIGN. Edges live in job_deps (child, parent, resolved) with an index
 * by parent; the child row keeps its policy and the count of unresolved
 * edges. Every path that ends a job (finish, cancel, a lease's end) calls
 * store_deps_ended in the same transaction: the cascade walks children
 * breadth first with a worklist, so a chain of cancels is no recursion,
 * and each change lands in the op's effects for the hooks after COMMIT. */
#include "store/deps_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/deps.h"
#include "store/backend.h"

void store_cascade_clear(struct store_cascade *c)
{
	if (!c)
		return;
	free(c->items);
	memset(c, 0, sizeof *c);
}

int store_cascade_add(struct store_cascade *cx, const struct store_cascaded *item)
{
	if (cx->n == cx->cap) {
		int cap = cx->cap ? cx->cap * 2 : 8;
		struct store_cascaded *grown = realloc(cx->items, (size_t)cap * sizeof *grown);
		if (!grown)
			return -1;
		cx->items = grown;
		cx->cap = cap;
	}
	cx->items[cx->n++] = *item;
	return 0;
}

int store_deps_prepare(const struct store_deps_ops *ops, void *be, struct job *job, const enum job_state *batch,
                       bool *resolved, int *cancel)
{
	enum job_state parent[JOB_DEPS_MAX];
	struct job_deps *d = &job->deps;
	d->missing = -1;
	*cancel = -1;
	for (int i = 0; i < d->n; i++) {
		if (d->refs && d->refs[i] >= 0) {
			parent[i] = batch[d->refs[i]];
			continue;
		}
		bool found = false;
		int rc = ops->state(be, d->ids[i], &parent[i], &found);
		if (rc != 0)
			return rc;
		if (!found) {
			d->missing = i;
			return 0;
		}
	}
	*cancel = deps_initial(job, parent, resolved);
	return 0;
}

int store_deps_insert(const struct store_deps_ops *ops, void *be, struct job *job, const bool *resolved, int cancel,
                      struct store_cascade *cx)
{
	int rc = ops->link(be, job, resolved);
	if (rc != 0 || cancel < 0)
		return rc;
	/* The parent's state was read in prepare; say which end it was. */
	enum job_state pstate = JOB_CANCELED;
	bool found = false;
	if (!(job->deps.refs && job->deps.refs[cancel] >= 0) &&
	    (rc = ops->state(be, job->deps.ids[cancel], &pstate, &found)) != 0)
		return rc;
	char error[96];
	deps_cancel_error(job->deps.ids[cancel], pstate, error, sizeof error);
	struct store_cascaded item = {.change = false};
	bool changed = false;
	int64_t expires_at = 0;
	int64_t now = clock_now_ms();
	if ((rc = ops->cancel(be, job->id, job->deps.ids[cancel], error, now, &item, &changed, &expires_at)) != 0)
		return rc;
	if (!changed)
		return 0;
	free(job->error);
	if (!(job->error = strdup(error)))
		return ops->nomem;
	job->state = JOB_CANCELED;
	job->finished_at = now;
	if (expires_at && (!cx->expires_at || expires_at < cx->expires_at))
		cx->expires_at = expires_at;
	return 0;
}

/* One parent's end applied to its children; canceled children join the
 * worklist. */
static int settle_children(const struct store_deps_ops *ops, void *be, const char *parent, enum job_state state,
                           int64_t now, struct store_cascade *cx, char (**work)[UUID_LEN + 1], int *nwork, int *capwork)
{
	struct deps_child *kids = NULL;
	int n = 0, cap = 0;
	int rc = ops->children(be, parent, &kids, &n, &cap);
	for (int i = 0; rc == 0 && i < n; i++) {
		struct store_cascaded item = {.change = true};
		bool changed = false;
		if (deps_resolves(state, kids[i].policy)) {
			if ((rc = ops->resolve(be, kids[i].id, parent, now, &item, &changed)) != 0)
				break;
			if (changed && item.state != JOB_BLOCKED && store_cascade_add(cx, &item) != 0)
				rc = ops->nomem;
			continue;
		}
		if (kids[i].policy != DEP_CANCEL)
			continue;  /* wait: blocked until the parent is retried and succeeds */
		char error[96];
		int64_t expires_at = 0;
		deps_cancel_error(parent, state, error, sizeof error);
		if ((rc = ops->cancel(be, kids[i].id, parent, error, now, &item, &changed, &expires_at)) != 0 || !changed)
			continue;
		if (expires_at && (!cx->expires_at || expires_at < cx->expires_at))
			cx->expires_at = expires_at;
		if (item.batch_id[0] && (rc = ops->batch_done(be, item.batch_id, &item.batch_done)) != 0)
			break;
		if (store_cascade_add(cx, &item) != 0) {
			rc = ops->nomem;
			break;
		}
		if (*nwork == *capwork) {
			int grow = *capwork ? *capwork * 2 : 8;
			char (*g)[UUID_LEN + 1] = realloc(*work, (size_t)grow * sizeof *g);
			if (!g) {
				rc = ops->nomem;
				break;
			}
			*work = g;
			*capwork = grow;
		}
		memcpy((*work)[(*nwork)++], kids[i].id, UUID_LEN + 1);
	}
	free(kids);
	return rc;
}

int store_deps_ended(const struct store_deps_ops *ops, void *be, const char *id, enum job_state state,
                     struct store_cascade *cx)
{
	if (!job_state_terminal(state))
		return 0;
	int64_t now = clock_now_ms();
	char (*work)[UUID_LEN + 1] = NULL;
	int nwork = 0, capwork = 0;
	int rc = settle_children(ops, be, id, state, now, cx, &work, &nwork, &capwork);
	/* Each canceled child cancels its own children in turn. */
	for (int k = 0; rc == 0 && k < nwork; k++) {
		char parent[UUID_LEN + 1];
		memcpy(parent, work[k], sizeof parent);
		rc = settle_children(ops, be, parent, JOB_CANCELED, now, cx, &work, &nwork, &capwork);
	}
	free(work);
	return rc;
}

int store_deps_retried(const struct store_deps_ops *ops, void *be, struct job *job)
{
	if (job->deps.n == 0)
		return 0;
	return ops->reblock(be, job, clock_now_ms());
}

void store_deps_plan_free(struct deps_plan *plan)
{
	free(plan->order);
	free(plan->resolved);
	free(plan->cancel);
	memset(plan, 0, sizeof *plan);
}

int store_deps_batch_prepare(const struct store_deps_ops *ops, void *be, struct job *const *jobs, int n,
                             struct deps_plan *plan)
{
	memset(plan, 0, sizeof *plan);
	for (int i = 0; i < n && !plan->any; i++)
		plan->any = jobs[i]->deps.n > 0;
	if (!plan->any)
		return 0;
	enum job_state *states = malloc((size_t)n * sizeof *states);
	plan->order = malloc((size_t)n * sizeof *plan->order);
	plan->resolved = calloc((size_t)n, sizeof *plan->resolved);
	plan->cancel = malloc((size_t)n * sizeof *plan->cancel);
	int rc = 0;
	if (!states || !plan->order || !plan->resolved || !plan->cancel ||
	    deps_batch_order(jobs, n, plan->order) != 0) {
		rc = ops->nomem;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		states[i] = jobs[i]->state;
		plan->cancel[i] = -1;
	}
	for (int k = 0; k < n; k++) {
		int j = plan->order[k];
		if (jobs[j]->deps.n == 0)
			continue;
		if ((rc = store_deps_prepare(ops, be, jobs[j], states, plan->resolved[j], &plan->cancel[j])) != 0 ||
		    jobs[j]->deps.missing >= 0)
			goto out;
		states[j] = plan->cancel[j] >= 0 ? JOB_CANCELED : jobs[j]->state;
	}
out:
	free(states);
	return rc;
}

int store_deps_batch_insert(const struct store_deps_ops *ops, void *be, struct job *const *jobs, int n,
                            const struct deps_plan *plan, const char *batch_id, struct store_cascade *cx)
{
	if (!plan->any)
		return 0;
	bool canceled = false;
	for (int k = 0; k < n; k++) {
		int j = plan->order[k];
		if (jobs[j]->deps.n == 0)
			continue;
		int rc = store_deps_insert(ops, be, jobs[j], plan->resolved[j], plan->cancel[j], cx);
		if (rc != 0)
			return rc;
		canceled = canceled || jobs[j]->state == JOB_CANCELED;
	}
	if (!canceled)
		return 0;
	struct store_cascaded item = {.change = false};
	snprintf(item.batch_id, sizeof item.batch_id, "%s", batch_id);
	int rc = ops->batch_done(be, batch_id, &item.batch_done);
	if (rc == 0 && item.batch_done && store_cascade_add(cx, &item) != 0)
		rc = ops->nomem;
	return rc;
}

#define SETTLE_BATCH 64

int store_deps_settle(const struct store_deps_ops *ops, void *be, struct store_cascade *cx)
{
	struct deps_parent parents[SETTLE_BATCH];
	int n = 0;
	int rc = ops->stranded(be, parents, SETTLE_BATCH, &n);
	for (int i = 0; rc == 0 && i < n; i++)
		rc = store_deps_ended(ops, be, parents[i].id, parents[i].state, cx);
	return rc;
}

const struct store_deps_ops *store_deps_ops_of(const void *backend)
{
	if (backend == &store_sqlite_backend)
		return &store_sqlite_deps;
	if (backend == &store_pg_backend)
		return &store_pg_deps;
	return NULL;
}
