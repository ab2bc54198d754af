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

#define BATCH_JOBS_DEFAULT 100

struct batch_req {
	struct store_op op;
	struct job_batch batch;
	struct hub_waiter waiter;
	struct hub *hub;
	char *idem_key;                   /* POST: Idempotency-Key or NULL */
	char idem_hash[65];
	bool include_jobs;                /* GET: ?include=jobs */
	struct store_filter page;         /* ... its limit and cursor */
};

static void batch_req_free(void *p)
{
	struct batch_req *br = p;
	if (!br)
		return;
	if (br->hub)
		hub_disarm(br->hub, &br->waiter);
	job_batch_clear(&br->batch);
	free(br->idem_key);
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

/* The same request again: the batch it made, with its jobs' ids in
 * submission order (those retention has not deleted yet). */
static void batch_replayed(struct req *r)
{
	struct batch_req *br = r->ctx;
	struct batch_info b;
	struct store_filter f = {.batch_id = br->op.batch.id, .limit = JOB_BATCH_MAX};
	struct job **jobs = NULL;
	size_t n = 0;
	int64_t next = 0;
	enum store_rc rc = store_get_batch(r->app->store, br->op.batch.id, &b);
	delivery_clear(&b.callback);
	if (rc == STORE_OK)
		rc = store_list_jobs(r->app->store, &f, &jobs, &n, &next);
	if (rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	struct json_out o = {.buf = NULL};
	json_out_lit(&o, "{\"id\":");
	json_out_str(&o, br->op.batch.id);
	json_out_lit(&o, ",\"total\":");
	json_out_num(&o, (double)b.total);
	json_out_lit(&o, ",\"job_ids\":[");
	for (size_t i = n; i-- > 0;) { /* the list is newest first */
		json_out_str(&o, jobs[i]->id);
		if (i > 0)
			json_out_lit(&o, ",");
		job_free(jobs[i]);
	}
	free(jobs);
	json_out_lit(&o, "]}");
	reply_header(r, "Location", "/v1/batches/%s", br->op.batch.id);
	handler_reply_out(r, 200, &o);
}

static void batch_created(struct req *r)
{
	struct batch_req *br = r->ctx;
	if (br->op.rc == STORE_CONFLICT) {
		reply_error(r, PROBLEM_IDEMPOTENCY_CONFLICT, "Idempotency-Key",
		            "this Idempotency-Key was used with a different request body");
		return;
	}
	for (int i = 0; br->op.rc == STORE_NOT_FOUND && i < br->batch.njobs; i++) {
		const struct job *job = br->batch.jobs[i];
		if (job->deps.missing < 0)
			continue;
		char field[64];
		snprintf(field, sizeof field, "jobs[%d].depends_on[%d]", i, job->deps.missing);
		reply_error(r, PROBLEM_INVALID_DEPENDENCY, field, "%s: no job with id %s", field,
		            job->deps.ids[job->deps.missing]);
		return;
	}
	if (br->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	if (br->op.batch.replayed) {
		batch_replayed(r);
		return;
	}
	/* Written straight out: 1,000 ids are 3,000 allocations as a tree. */
	struct json_out o = {.buf = NULL};
	json_out_lit(&o, "{\"id\":");
	json_out_str(&o, br->op.batch.id);
	json_out_lit(&o, ",\"total\":");
	json_out_num(&o, br->batch.njobs);
	json_out_lit(&o, ",\"job_ids\":[");
	for (int i = 0; i < br->batch.njobs; i++) {
		if (i > 0)
			json_out_lit(&o, ",");
		json_out_str(&o, br->batch.jobs[i]->id);
	}
	json_out_lit(&o, "]}");
	reply_header(r, "Location", "/v1/batches/%s", br->op.batch.id);
	handler_reply_out(r, 201, &o);
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
	int rc = job_batch_from_submission(body, &r->app->cfg->defaults, &br->batch, &p);
	cJSON_Delete(body);
	if (rc != 0) {
		reply_problem(r, &p);
		return;
	}
	if (jobs_take_idempotency_key(r, &br->idem_key, br->idem_hash) != 0)
		return;
	br->op.batch.idem_key = br->idem_key;
	br->op.batch.idem_hash = br->idem_hash;
	br->op.kind = STORE_OP_BATCH;
	uuid_v7(br->op.batch.id);
	br->op.batch.jobs = br->batch.jobs;
	br->op.batch.njobs = br->batch.njobs;
	br->op.batch.url = br->batch.callback_url;
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

/* The batch's answer: its counts, and with ?include=jobs a page of its
 * jobs read now. */
static void reply_batch(struct req *r, const struct batch_info *b, const struct batch_req *br)
{
	if (!br || !br->include_jobs) {
		reply_json(r, 200, batch_to_json(b));
		return;
	}
	struct store_filter f = br->page;
	f.batch_id = b->id;
	struct job **jobs = NULL;
	size_t n = 0;
	int64_t next = 0;
	if (store_list_jobs(r->app->store, &f, &jobs, &n, &next) != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	cJSON *o = batch_to_json(b);
	char *text = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	size_t len = text ? strlen(text) : 0;
	struct json_out out = {.buf = NULL};
	if (len > 1) /* all but its closing brace */
		json_out_raw(&out, text, len - 1);
	else
		out.oom = true;
	free(text);
	json_out_lit(&out, ",");
	jobs_write_page(r, &out, jobs, n, next);
	json_out_lit(&out, "}");
	handler_reply_out(r, 200, &out);
}

static void batch_resumed(struct req *r)
{
	struct batch_req *br = r->ctx;
	hub_disarm(br->hub, &br->waiter);
	struct batch_info b;
	if (load_batch(r, &b) != 0)
		return;
	reply_batch(r, &b, br);
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

/* ?include=jobs with its ?limit and ?cursor into br (made here when
 * needed); -1 after replying 400. */
static int parse_include(struct req *r, struct batch_req **br)
{
	const char *include = req_query(r, "include");
	if (!include)
		return 0;
	if (strcmp(include, "jobs") != 0) {
		reply_error(r, PROBLEM_INVALID_QUERY, "include", "include must be jobs");
		return -1;
	}
	struct store_filter f;
	struct problem p;
	const char *limit = req_query(r, "limit");
	if (jobs_parse_list_query(NULL, limit, req_query(r, "cursor"), &f, &p) != 0) {
		reply_problem(r, &p);
		return -1;
	}
	if (!limit)
		f.limit = BATCH_JOBS_DEFAULT;
	if (!(*br = batch_req_new(r)))
		return -1;
	(*br)->include_jobs = true;
	(*br)->page = f;
	return 0;
}

void batches_get(struct req *r)
{
	double wait_s;
	bool prefer;
	struct batch_req *br = NULL;
	if (handler_parse_wait(r, &wait_s, &prefer) != 0 || parse_include(r, &br) != 0)
		return;
	struct batch_info b;
	if (load_batch(r, &b) != 0)
		return;
	bool answer_now = b.finished_at || wait_s <= 0 || atomic_load(&r->app->stopping);
	if (answer_now)
		reply_batch(r, &b, br);
	delivery_clear(&b.callback);
	if (!answer_now && !br)
		br = batch_req_new(r);
	if (!answer_now && br)
		handler_wait(r, &br->waiter, r->param, wait_s, batch_resumed, batch_ended);
}
