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

struct batch_req {
	struct store_op op;
	struct job_batch batch;
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
	job_batch_clear(&br->batch);
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

static void batch_created(struct req *r)
{
	struct batch_req *br = r->ctx;
	if (br->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
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
