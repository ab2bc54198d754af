/* /v1/batches: many jobs submitted atomically, then waited for together
 * (the join() of a thread pool). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hub.h"
#include "core/job.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define BATCH_MAX_JOBS 10000

struct batch_req {
	struct store_op op;
	struct job **jobs;
	int njobs;
	char *callback_url;
	struct hub_waiter waiter;
	struct hub *hub;
};

static void batch_req_free(void *p)
{
	struct batch_req *br = p;
	if (!br)
		return;
	if (br->hub)
		hub_disarm(br->hub, &br->waiter);
	for (int i = 0; i < br->njobs; i++)
		job_free(br->jobs[i]);
	free(br->jobs);
	free(br->callback_url);
	free(br);
}

static struct batch_req *batch_req_new(struct req *r)
{
	struct batch_req *br = handler_new_ctx(r, sizeof *br, batch_req_free);
	if (br)
		br->hub = r->app->hub;
	return br;
}

/* ---- POST /v1/batches -------------------------------------------------- */

/* Validates {jobs: [...], callback_url?} into br; -1 with p filled. A job's
 * problem names its place: jobs[3].priority. */
static int parse_batch(const cJSON *body, const struct job_defaults *d, struct batch_req *br,
                       struct problem *p)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, body) {
		if (strcmp(item->string, "jobs") != 0 && strcmp(item->string, "callback_url") != 0)
			return problem_set(p, PROBLEM_INVALID_FIELD, item->string,
			                   "unknown field \"%.60s\"; a batch has jobs and callback_url", item->string);
	}
	const char *url = NULL;
	if (job_parse_callback_url(body, &url, p))
		return -1;
	const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(body, "jobs");
	if (!cJSON_IsArray(jobs))
		return problem_set(p, PROBLEM_INVALID_FIELD, "jobs", "jobs must be an array of job submissions");
	int n = cJSON_GetArraySize(jobs);
	if (n < 1 || n > BATCH_MAX_JOBS)
		return problem_set(p, PROBLEM_INVALID_FIELD, "jobs", "a batch holds 1 to %d jobs", BATCH_MAX_JOBS);
	br->jobs = calloc((size_t)n, sizeof *br->jobs);
	if (!br->jobs || (url && !(br->callback_url = strdup(url))))
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	int i = 0;
	cJSON_ArrayForEach(item, jobs) {
		struct problem inner;
		if (!cJSON_IsObject(item)) {
			char field[32];
			snprintf(field, sizeof field, "jobs[%d]", i);
			return problem_set(p, PROBLEM_INVALID_FIELD, field, "jobs[%d] must be a job object", i);
		}
		if (job_from_submission(item, d, &br->jobs[i], &inner) != 0) {
			char field[128];
			snprintf(field, sizeof field, "jobs[%d]%s%.80s", i, inner.field[0] ? "." : "", inner.field);
			problem_set(p, inner.kind, field, "jobs[%d]: %.200s", i, inner.detail);
			if (inner.field[0] == '\0')
				snprintf(p->field, sizeof p->field, "jobs[%d]", i);
			return -1;
		}
		br->njobs = ++i;
	}
	return 0;
}

static void batch_created(struct req *r)
{
	struct batch_req *br = r->ctx;
	if (br->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", br->op.id);
	cJSON_AddNumberToObject(o, "total", br->njobs);
	cJSON *ids = cJSON_AddArrayToObject(o, "job_ids");
	for (int i = 0; i < br->njobs; i++)
		cJSON_AddItemToArray(ids, cJSON_CreateString(br->jobs[i]->id));
	reply_header(r, "Location", "/v1/batches/%s", br->op.id);
	reply_json(r, 201, o);
}

void batches_create(struct req *r)
{
	if (handler_refuse_if_stopping(r))
		return;
	struct problem p;
	cJSON *body = job_parse_body(r->body, r->body_len, &p);
	struct batch_req *br = body ? batch_req_new(r) : NULL;
	if (!body) {
		reply_problem(r, &p);
		return;
	}
	if (!br) {
		cJSON_Delete(body);
		return;
	}
	int rc = parse_batch(body, &r->app->cfg->defaults, br, &p);
	cJSON_Delete(body);
	if (rc != 0) {
		reply_problem(r, &p);
		return;
	}
	br->op.kind = STORE_OP_BATCH;
	uuid_v7(br->op.id);
	br->op.jobs = br->jobs;
	br->op.njobs = br->njobs;
	br->op.url = br->callback_url;
	handler_post(r, &br->op, batch_created);
}

/* ---- GET /v1/batches/{id} ----------------------------------------------- */

/* Reads the batch into b, or replies 404/503 and returns -1 (then b
 * holds nothing to free). */
static int load_batch(struct req *r, struct batch_info *b)
{
	memset(b, 0, sizeof *b);
	enum store_rc rc = r->param && uuid_valid(r->param) ? store_get_batch(r->app->store, r->param, b)
	                                                     : STORE_NOT_FOUND;
	if (rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_BATCH_NOT_FOUND, NULL, "no batch with id %.40s", r->param ? r->param : "");
	else if (rc != STORE_OK)
		handler_reply_unavailable(r);
	if (rc != STORE_OK)
		delivery_clear(&b->callback);
	return rc == STORE_OK ? 0 : -1;
}

static void batch_resumed(struct req *r)
{
	struct batch_req *br = r->ctx;
	hub_disarm(br->hub, &br->waiter);
	struct batch_info b;
	if (load_batch(r, &b) != 0)
		return;
	reply_json(r, 200, batch_to_json(&b));
	delivery_clear(&b.callback);
}

/* For handler_wait: is batch id done (or unreadable)? */
static bool batch_ended(struct req *r, const char *id)
{
	struct batch_info b;
	bool done = store_get_batch(r->app->store, id, &b) != STORE_OK || b.finished_at;
	delivery_clear(&b.callback);
	return done;
}

void batches_get(struct req *r)
{
	double wait_s;
	bool prefer;
	if (handler_parse_wait(r, &wait_s, &prefer) != 0)
		return;
	struct batch_info b;
	if (load_batch(r, &b) != 0)
		return;
	bool answer_now = b.finished_at || wait_s <= 0 || atomic_load(&r->app->stopping);
	if (answer_now)
		reply_json(r, 200, batch_to_json(&b));
	delivery_clear(&b.callback);
	struct batch_req *br = answer_now ? NULL : batch_req_new(r);
	if (br)
		handler_wait(r, &br->waiter, r->param, wait_s, batch_resumed, batch_ended);
}
