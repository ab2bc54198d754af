/* POST /v1/jobs/cancel, /v1/jobs/retry and /v1/jobs/delete: one action on
 * the jobs a filter selects, a bounded page per call. A call reads at most
 * `limit` jobs (1000), posts one op per job it acts on, and answers once
 * every op has committed, with what matched, what was done and the cursor
 * of the rest: a client loops until next_cursor is null.
 *
 * The walk goes state by state through the states the action applies to
 * (or the one the filter names), each newest first on the list's index, so
 * a page is an index range scan; the cursor holds the state's place in that
 * list and the last job's seq. A job acted on leaves the filter's state,
 * which never moves the cursor: no job is skipped or done twice. */
#include <stdatomic.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/job.h"
#include "core/json.h"
#include "core/run.h"
#include "core/uuid.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define BULK_LIMIT_MAX 1000

enum bulk_action { BULK_CANCEL, BULK_RETRY, BULK_DELETE };

struct bulk_spec {
	const char *name;
	enum store_op_kind kind;
	const char *states_text;            /* for messages */
	bool (*applies)(enum job_state s);  /* the states the action acts on */
};

static bool applies_cancel(enum job_state s)
{
	return !job_state_terminal(s);
}

static bool applies_retry(enum job_state s)
{
	return s == JOB_FAILED || s == JOB_CANCELED;
}

static bool applies_delete(enum job_state s)
{
	return job_state_terminal(s);
}

static const struct bulk_spec specs[] = {
	[BULK_CANCEL] = {"cancel", STORE_OP_CANCEL, "jobs that have not finished", applies_cancel},
	[BULK_RETRY] = {"retry", STORE_OP_RETRY, "failed or canceled jobs", applies_retry},
	[BULK_DELETE] = {"delete", STORE_OP_DELETE, "finished jobs (succeeded, failed or canceled)", applies_delete},
};

/* One call: the request's parsed form, then its ops in flight. */
struct bulk_req {
	const struct bulk_spec *spec;
	struct store_filter filter;         /* queue, type, batch_id point into body */
	cJSON *body;
	enum job_state states[JOB_STATE_COUNT];
	int nstates;
	int state_at;                       /* cursor: index into states */
	int64_t seq_at;                     /* cursor: before this seq (0: from the newest) */
	int limit;
	bool dry_run;

	int matched;
	int next_state;                     /* after the walk: -1 when it is over */
	int64_t next_seq;
	struct store_op *ops;               /* nops of them, posted together */
	int nops;
	atomic_int pending;
	atomic_int done, skipped, unavailable;
};

static void bulk_req_free(void *p)
{
	struct bulk_req *b = p;
	if (!b)
		return;
	for (int i = 0; b->ops && i < b->nops; i++)
		if (b->ops[i].kind == STORE_OP_RETRY)
			job_free(b->ops[i].retry.job);
	free(b->ops);
	cJSON_Delete(b->body);
	free(b);
}

/* ---- the body ------------------------------------------------------- */

static bool member_known(const char *name, const char *const *known)
{
	for (; *known; known++)
		if (strcmp(name, *known) == 0)
			return true;
	return false;
}

/* Refuses a member of obj not in known, naming it (prefix + name). */
static int refuse_unknown(const cJSON *obj, const char *prefix, const char *const *known, struct problem *p)
{
	for (const cJSON *c = obj->child; c; c = c->next) {
		if (member_known(c->string, known))
			continue;
		char field[80];
		snprintf(field, sizeof field, "%s%.64s", prefix, c->string);
		return problem_set(p, PROBLEM_INVALID_FIELD, field, "unknown field %s", field);
	}
	return 0;
}

/* An optional string member of filter; -1 (p naming filter.name) when it
 * is not a string or check refuses it. */
static int filter_string(const cJSON *filter, const char *name, bool (*check)(const char *), const char *rule,
                         const char **out, struct problem *p)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(filter, name);
	char field[32];
	snprintf(field, sizeof field, "filter.%s", name);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || !check(v->valuestring))
		return problem_set(p, PROBLEM_INVALID_FIELD, field, "%s must be %s", field, rule);
	*out = v->valuestring;
	return 0;
}

static bool type_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= JOB_NAME_MAX;
}

static bool batch_id_ok(const char *s)
{
	return uuid_valid(s);
}

static int parse_state(struct bulk_req *b, const cJSON *filter, struct problem *p)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(filter, "state");
	enum job_state s;
	if (v && !cJSON_IsNull(v)) {
		if (!cJSON_IsString(v) || job_state_parse(v->valuestring, &s) != 0) {
			char names[160] = "";
			for (int i = 0; i < JOB_STATE_COUNT; i++)
				snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
				         job_state_name((enum job_state)i));
			return problem_set(p, PROBLEM_INVALID_FIELD, "filter.state", "filter.state must be one of %s",
			                   names);
		}
		if (!b->spec->applies(s))
			return problem_set(p, PROBLEM_INVALID_FIELD, "filter.state", "%s acts on %s, not on %s jobs",
			                   b->spec->name, b->spec->states_text, job_state_name(s));
		b->states[b->nstates++] = s;
		return 0;
	}
	for (int i = 0; i < JOB_STATE_COUNT; i++)
		if (b->spec->applies((enum job_state)i))
			b->states[b->nstates++] = (enum job_state)i;
	return 0;
}

/* The cursor is "<state index>.<seq>", as a previous reply gave it. */
static int parse_cursor(struct bulk_req *b, const cJSON *v, struct problem *p)
{
	if (!v)
		return 0;
	const char *bad = "cursor must be a next_cursor value from a previous reply with the same filter";
	if (!cJSON_IsString(v))
		return problem_set(p, PROBLEM_INVALID_FIELD, "cursor", "%s", bad);
	const char *s = v->valuestring;
	char *end;
	errno = 0;
	long k = strtol(s, &end, 10);
	if (end == s || *end != '.' || k < 0 || k >= b->nstates || s[0] == '-' || s[0] == '+')
		return problem_set(p, PROBLEM_INVALID_FIELD, "cursor", "%s", bad);
	const char *q = end + 1;
	long long seq = strtoll(q, &end, 10);
	if (end == q || *end || errno || seq < 0 || q[strspn(q, "0123456789")] != '\0')
		return problem_set(p, PROBLEM_INVALID_FIELD, "cursor", "%s", bad);
	b->state_at = (int)k;
	b->seq_at = seq;
	return 0;
}

static int parse_body(struct bulk_req *b, struct req *r, struct problem *p)
{
	static const char *const top[] = {"filter", "limit", "cursor", "dry_run", NULL};
	static const char *const inner[] = {"state", "queue", "type", "batch_id", NULL};
	b->body = json_parse_strict(r->body ? r->body : "", r->body_len, p);
	if (!b->body)
		return -1;
	if (!cJSON_IsObject(b->body))
		return problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "the body must be a JSON object");
	if (refuse_unknown(b->body, "", top, p) != 0)
		return -1;
	const cJSON *filter = cJSON_GetObjectItemCaseSensitive(b->body, "filter");
	if (!cJSON_IsObject(filter))
		return problem_set(p, PROBLEM_INVALID_FIELD, "filter",
		                   "filter must be an object of state, queue, type and batch_id ({} selects every job)");
	if (refuse_unknown(filter, "filter.", inner, p) != 0 || parse_state(b, filter, p) != 0 ||
	    filter_string(filter, "queue", job_queue_name_valid, "a queue name (1 to 64 of A-Z a-z 0-9 _ . : -)",
	                  &b->filter.queue, p) != 0 ||
	    filter_string(filter, "type", type_name_ok, "a job type name (1 to 64 bytes)", &b->filter.type, p) != 0 ||
	    filter_string(filter, "batch_id", batch_id_ok, "a batch id (a UUID)", &b->filter.batch_id, p) != 0)
		return -1;
	const cJSON *limit = cJSON_GetObjectItemCaseSensitive(b->body, "limit");
	b->limit = BULK_LIMIT_MAX;
	if (limit) {
		double d = cJSON_IsNumber(limit) ? limit->valuedouble : 0;
		if (!cJSON_IsNumber(limit) || !(d >= 1 && d <= BULK_LIMIT_MAX) || d != (double)(int)d)
			return problem_set(p, PROBLEM_INVALID_FIELD, "limit", "limit must be an integer from 1 to %d",
			                   BULK_LIMIT_MAX);
		b->limit = (int)d;
	}
	const cJSON *dry = cJSON_GetObjectItemCaseSensitive(b->body, "dry_run");
	if (dry && !cJSON_IsBool(dry))
		return problem_set(p, PROBLEM_INVALID_FIELD, "dry_run", "dry_run must be true or false");
	b->dry_run = cJSON_IsTrue(dry);
	return parse_cursor(b, cJSON_GetObjectItemCaseSensitive(b->body, "cursor"), p);
}

/* ---- the walk ------------------------------------------------------- */

static int add_op(struct bulk_req *b, const struct job *job)
{
	if (b->dry_run)
		return 0;
	if (!b->ops && !(b->ops = calloc((size_t)b->limit, sizeof *b->ops)))
		return -1;
	struct store_op *op = &b->ops[b->nops++];
	op->kind = b->spec->kind;
	memcpy(store_op_target(op)->id, job->id, sizeof store_op_target(op)->id);
	return 0;
}

/* Reads up to limit jobs from the cursor on, state after state, and
 * queues an op for each the action applies to. -1 when the store cannot
 * be read (503) or out of memory (500), with p filled. */
static int walk(struct bulk_req *b, struct req *r, struct problem *p)
{
	int left = b->limit;
	int k = b->state_at;
	int64_t seq = b->seq_at;
	b->next_state = -1;
	while (left > 0 && k < b->nstates) {
		struct store_filter f = b->filter;
		f.has_state = true;
		f.state = b->states[k];
		f.before_seq = seq;
		f.limit = left;
		struct job **jobs = NULL;
		size_t n = 0;
		int64_t next = 0;
		if (store_list_jobs(r->app->store, &f, &jobs, &n, &next) != STORE_OK)
			return problem_set(p, PROBLEM_STORAGE_UNAVAILABLE, NULL,
			                   "the database could not be read or written; try again");
		int rc = 0;
		for (size_t i = 0; i < n; i++) {
			if (rc == 0 && jobs[i]->state == f.state) {
				b->matched++;
				rc = add_op(b, jobs[i]);
			}
			job_free(jobs[i]);
		}
		free(jobs);
		if (rc != 0)
			return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
		left -= (int)n;
		if (next > 0) {
			seq = next;
		} else {
			k++;
			seq = 0;
		}
	}
	if (k < b->nstates) {
		b->next_state = k;
		b->next_seq = seq;
	}
	return 0;
}

/* ---- the reply ------------------------------------------------------ */

static void reply_counts(struct req *r)
{
	struct bulk_req *b = r->ctx;
	if (atomic_load(&b->unavailable) > 0) {
		/* Some ops may have committed: the same call again acts on the rest. */
		handler_reply_unavailable(r);
		return;
	}
	struct json_out o = {.buf = NULL};
	json_out_lit(&o, "{\"action\":");
	json_out_str(&o, b->spec->name);
	json_out_lit(&o, ",\"dry_run\":");
	if (b->dry_run)
		json_out_lit(&o, "true");
	else
		json_out_lit(&o, "false");
	json_out_lit(&o, ",\"matched\":");
	json_out_num(&o, b->matched);
	json_out_lit(&o, ",\"done\":");
	json_out_num(&o, atomic_load(&b->done));
	json_out_lit(&o, ",\"skipped\":");
	json_out_num(&o, atomic_load(&b->skipped));
	json_out_lit(&o, ",\"next_cursor\":");
	if (b->next_state >= 0) {
		char cursor[48];
		snprintf(cursor, sizeof cursor, "%d.%lld", b->next_state, (long long)b->next_seq);
		json_out_str(&o, cursor);
	} else {
		json_out_lit(&o, "null");
	}
	json_out_lit(&o, "}");
	handler_reply_out(r, 200, &o);
}

/* Writer thread: one op committed (or failed). Counts it, tells a running
 * job to stop as a single cancel does, and the last one wakes the request. */
static void bulk_op_done(struct store_op *op)
{
	struct req *r = op->arg;
	struct bulk_req *b = r->ctx;
	const struct store_op_target *t = store_op_target(op);
	if (op->rc == STORE_OK && b->spec->applies(t->found)) {
		atomic_fetch_add(&b->done, 1);
		if (op->kind == STORE_OP_CANCEL && t->found == JOB_RUNNING)
			run_table_stop(r->app->runs, t->id, RUN_STOP_CANCEL);
	} else if (op->rc == STORE_OK || op->rc == STORE_NOT_FOUND) {
		atomic_fetch_add(&b->skipped, 1); /* it changed, or went, since it was read */
	} else {
		atomic_fetch_add(&b->unavailable, 1);
	}
	if (atomic_fetch_sub(&b->pending, 1) == 1)
		req_resume(r);
}

static void bulk(struct req *r, enum bulk_action action)
{
	struct bulk_req *b = handler_new_ctx(r, sizeof *b, bulk_req_free);
	if (!b)
		return;
	b->spec = &specs[action];
	struct problem p;
	if (parse_body(b, r, &p) != 0 || walk(b, r, &p) != 0) {
		if (p.kind == PROBLEM_STORAGE_UNAVAILABLE)
			handler_reply_unavailable(r);
		else
			reply_problem(r, &p);
		return;
	}
	if (b->nops == 0) {
		reply_counts(r);
		return;
	}
	atomic_store(&b->pending, b->nops);
	req_suspend(r, reply_counts);
	/* Posted together, the ops share the writer's group commits. None
	 * can be the last done before the last is posted; after that post
	 * the request (and b) may be gone, so nothing here touches them. */
	struct store *st = r->app->store;
	int n = b->nops;
	struct store_op *ops = b->ops;
	for (int i = 0; i < n; i++) {
		ops[i].arg = r;
		ops[i].done = bulk_op_done;
	}
	for (int i = 0; i < n; i++)
		store_post(st, &ops[i]);
}

void jobs_bulk_cancel(struct req *r)
{
	bulk(r, BULK_CANCEL);
}

void jobs_bulk_retry(struct req *r)
{
	bulk(r, BULK_RETRY);
}

void jobs_bulk_delete(struct req *r)
{
	bulk(r, BULK_DELETE);
}
