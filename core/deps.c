/* Dependencies: validation of depends_on, batch links and cycles, the
 * initial state of a job with parents. */
#include "core/deps.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/uuid.h"

static const char *const policy_names[DEP_POLICY_COUNT] = {"cancel", "run", "wait"};

const char *dep_policy_name(enum dep_policy policy)
{
	return policy >= 0 && policy < DEP_POLICY_COUNT ? policy_names[policy] : "cancel";
}

static int parse_policy(const cJSON *body, struct job *job, struct problem *p)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "on_dependency_failure");
	job->deps.policy = DEP_CANCEL;
	if (!v)
		return 0;
	for (int i = 0; cJSON_IsString(v) && i < DEP_POLICY_COUNT; i++) {
		if (strcmp(v->valuestring, policy_names[i]) == 0) {
			job->deps.policy = (enum dep_policy)i;
			return 0;
		}
	}
	return problem_set(p, PROBLEM_INVALID_FIELD, "on_dependency_failure",
	                   "on_dependency_failure must be \"cancel\", \"run\" or \"wait\"");
}

/* Entry i: an id (refs[i] -1) or a batch index (refs[i] >= 0). */
static int parse_entry(const cJSON *v, int i, struct job_deps *d, struct problem *p)
{
	char field[32];
	snprintf(field, sizeof field, "depends_on[%d]", i);
	if (cJSON_IsString(v)) {
		if (!uuid_valid(v->valuestring))
			return problem_set(p, PROBLEM_INVALID_FIELD, field, "%s: \"%.40s\" is not a job id (a UUID)",
			                   field, v->valuestring);
		snprintf(d->ids[i], sizeof d->ids[i], "%s", v->valuestring);
		d->refs[i] = -1;
		for (int k = 0; k < i; k++)
			if (d->refs[k] < 0 && strcmp(d->ids[k], d->ids[i]) == 0)
				return problem_set(p, PROBLEM_INVALID_FIELD, field, "%s names the same job as depends_on[%d]",
				                   field, k);
		return 0;
	}
	double x = cJSON_IsNumber(v) ? v->valuedouble : NAN;
	if (!isfinite(x) || x != floor(x) || x < 0 || x >= JOB_BATCH_MAX)
		return problem_set(p, PROBLEM_INVALID_FIELD, field,
		                   "%s must be a job id, or in a batch the index of another of its jobs", field);
	d->refs[i] = (int)x;
	d->ids[i][0] = '\0';
	for (int k = 0; k < i; k++)
		if (d->refs[k] == d->refs[i])
			return problem_set(p, PROBLEM_INVALID_FIELD, field, "%s names the same job as depends_on[%d]", field, k);
	return 0;
}

int deps_parse(const cJSON *body, struct job *job, struct problem *p)
{
	struct job_deps *d = &job->deps;
	if (parse_policy(body, job, p))
		return -1;
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "depends_on");
	if (!list || cJSON_IsNull(list))
		return 0;
	if (!cJSON_IsArray(list))
		return problem_set(p, PROBLEM_INVALID_FIELD, "depends_on", "depends_on must be an array of job ids");
	int n = cJSON_GetArraySize(list);
	if (n > JOB_DEPS_MAX)
		return problem_set(p, PROBLEM_INVALID_FIELD, "depends_on",
		                   "depends_on holds %d entries; at most %d are allowed", n, JOB_DEPS_MAX);
	if (n == 0)
		return 0;
	if (!(d->ids = calloc((size_t)n, sizeof *d->ids)) || !(d->refs = calloc((size_t)n, sizeof *d->refs)))
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	d->n = n;
	int i = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, list) {
		if (parse_entry(v, i++, d, p))
			return -1;
	}
	bool any_ref = false;
	for (i = 0; i < n; i++)
		any_ref = any_ref || d->refs[i] >= 0;
	if (!any_ref) {
		free(d->refs);
		d->refs = NULL;
	}
	return 0;
}

int deps_refuse_refs(const struct job *job, struct problem *p)
{
	for (int i = 0; job->deps.refs && i < job->deps.n; i++) {
		if (job->deps.refs[i] >= 0) {
			char field[32];
			snprintf(field, sizeof field, "depends_on[%d]", i);
			return problem_set(p, PROBLEM_INVALID_FIELD, field,
			                   "%s must be a job id: an index names a job of the same batch", field);
		}
	}
	return 0;
}

/* Depth-first walk along batch links (child to parent) from every job:
 * post-order puts parents first. A link back to a job on the walk's path
 * is a cycle: *cyc_job and *cyc_entry name the link, path[0..*plen-1]
 * the jobs on it. Returns 0, 1 on a cycle, -1 when out of memory. */
static int walk(struct job *const *jobs, int n, int *order, int *cyc_job, int *cyc_entry, int *path, int *plen)
{
	char *color = calloc((size_t)n, 1);          /* 0 new, 1 on the path, 2 done */
	int *stack = malloc((size_t)n * sizeof *stack), *next = calloc((size_t)n, sizeof *next);
	int rc = 0, emitted = 0;
	if (!color || !stack || !next) {
		rc = -1;
		goto out;
	}
	for (int root = 0; root < n && rc == 0; root++) {
		if (color[root])
			continue;
		int top = 0;
		stack[top++] = root;
		color[root] = 1;
		while (top > 0 && rc == 0) {
			int j = stack[top - 1];
			const struct job_deps *d = &jobs[j]->deps;
			int k = next[j];
			while (k < d->n && (!d->refs || d->refs[k] < 0))
				k++;
			if (k == d->n || !d->refs) {
				color[j] = 2;
				order[emitted++] = j;
				top--;
				continue;
			}
			next[j] = k + 1;
			int to = d->refs[k];
			if (color[to] == 1) {
				*cyc_job = j;
				*cyc_entry = k;
				int from = 0;
				while (from < top - 1 && stack[from] != to)
					from++;
				*plen = 0;
				for (int s = from; s < top; s++)
					path[(*plen)++] = stack[s];
				rc = 1;
			} else if (color[to] == 0) {
				color[to] = 1;
				stack[top++] = to;
			}
		}
	}
out:
	free(color);
	free(stack);
	free(next);
	return rc;
}

int deps_batch_order(struct job *const *jobs, int njobs, int *order)
{
	int cj = 0, ce = 0, plen = 0;
	int *path = malloc((size_t)njobs * sizeof *path);
	int rc = path ? walk(jobs, njobs, order, &cj, &ce, path, &plen) : -1;
	free(path);
	return rc == 0 ? 0 : -1;
}

/* "jobs[0] -> jobs[2] -> jobs[0]" into out. */
static void cycle_text(const int *path, int plen, char *out, size_t n)
{
	size_t len = 0;
	out[0] = '\0';
	for (int i = 0; i <= plen && len < n; i++) {
		int w = snprintf(out + len, n - len, "%sjobs[%d]", i ? " -> " : "", path[i % plen]);
		if (w < 0)
			break;
		len += (size_t)w;
	}
}

int deps_batch_link(struct job_batch *b, struct problem *p)
{
	for (int i = 0; i < b->njobs; i++) {
		struct job_deps *d = &b->jobs[i]->deps;
		for (int k = 0; d->refs && k < d->n; k++) {
			if (d->refs[k] < 0)
				continue;
			char field[64];
			snprintf(field, sizeof field, "jobs[%d].depends_on[%d]", i, k);
			if (d->refs[k] >= b->njobs)
				return problem_set(p, PROBLEM_INVALID_DEPENDENCY, field,
				                   "%s: the batch has no jobs[%d] (it holds %d jobs)", field, d->refs[k], b->njobs);
			if (d->refs[k] == i)
				return problem_set(p, PROBLEM_INVALID_DEPENDENCY, field,
				                   "%s: a job cannot depend on itself (cycle jobs[%d] -> jobs[%d])", field, i, i);
			const char *id = b->jobs[d->refs[k]]->id;
			for (int m = 0; m < d->n; m++)
				if (d->refs[m] < 0 && strcmp(d->ids[m], id) == 0)
					return problem_set(p, PROBLEM_INVALID_FIELD, field,
					                   "%s names the same job as depends_on[%d]", field, m);
			memcpy(d->ids[k], id, sizeof d->ids[k]);
		}
	}
	int *order = malloc((size_t)b->njobs * sizeof *order), *path = malloc((size_t)b->njobs * sizeof *path);
	int cj = 0, ce = 0, plen = 0;
	int rc = order && path ? walk(b->jobs, b->njobs, order, &cj, &ce, path, &plen) : -1;
	if (rc == 1) {
		char field[64], cycle[160];
		snprintf(field, sizeof field, "jobs[%d].depends_on[%d]", cj, ce);
		/* The walk follows links from child to parent: show the cycle
		 * the same way, as "depends on". */
		cycle_text(path, plen, cycle, sizeof cycle);
		problem_set(p, PROBLEM_INVALID_DEPENDENCY, field, "%s closes a cycle of dependencies: %s", field, cycle);
	} else if (rc < 0) {
		problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	}
	free(order);
	free(path);
	return rc == 0 ? 0 : -1;
}

int deps_initial(struct job *job, const enum job_state *parent, bool *resolved)
{
	struct job_deps *d = &job->deps;
	int cancel = -1;
	d->pending = 0;
	for (int i = 0; i < d->n; i++) {
		bool ended_badly = parent[i] == JOB_FAILED || parent[i] == JOB_CANCELED;
		resolved[i] = deps_resolves(parent[i], d->policy);
		if (ended_badly && d->policy == DEP_CANCEL) {
			resolved[i] = true;
			if (cancel < 0)
				cancel = i;
		}
		if (!resolved[i])
			d->pending++;
	}
	if (cancel >= 0 || d->pending > 0)
		job->state = JOB_BLOCKED;
	return cancel;
}

void deps_cancel_error(const char *parent, enum job_state state, char *out, size_t n)
{
	snprintf(out, n, "dependency %s %s", parent, state == JOB_FAILED ? "failed" : "canceled");
}

char *deps_ids_text(const struct job_deps *d, bool *oom)
{
	*oom = false;
	if (d->n == 0)
		return NULL;
	size_t len = (size_t)d->n * (UUID_LEN + 3) + 3;
	char *s = malloc(len), *w = s;
	if (!s) {
		*oom = true;
		return NULL;
	}
	*w++ = '[';
	for (int i = 0; i < d->n; i++)
		w += sprintf(w, "%s\"%s\"", i ? "," : "", d->ids[i]);
	*w++ = ']';
	*w = '\0';
	return s;
}

int deps_ids_from_text(const char *text, struct job_deps *d)
{
	free(d->ids);
	d->ids = NULL;
	d->n = 0;
	if (!text)
		return 0;
	cJSON *a = cJSON_Parse(text);
	if (!a)
		return strlen(text) > 0 && text[0] == '[' ? -1 : 0;
	int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
	if (n > 0 && !(d->ids = calloc((size_t)n, sizeof *d->ids))) {
		cJSON_Delete(a);
		return -1;
	}
	const cJSON *v;
	cJSON_ArrayForEach(v, a) {
		if (cJSON_IsString(v) && d->n < n)
			snprintf(d->ids[d->n++], sizeof d->ids[0], "%s", v->valuestring);
	}
	cJSON_Delete(a);
	return 0;
}
