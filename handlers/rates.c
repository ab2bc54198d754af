/* PUT and DELETE /v1/queues/{name}/rate: a queue's start rate limit (a
 * token bucket, core/bucket.h), stored in the database so that every node
 * shares it; and the "rate" member of the queue resource. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bucket.h"
#include "core/clock.h"
#include "core/job.h"
#include "core/json.h"
#include "core/metrics.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "server/config.h"
#include "store/store.h"

#define RATE_PERIOD_MIN_S 0.001 /* the bucket counts in milliseconds */

static const char *const rate_keys[] = {"limit", "period_s", "burst", "retry_after"};

void rates_add_json(cJSON *o, const struct store_rate *rate, int64_t now)
{
	if (!rate) {
		cJSON_AddNullToObject(o, "rate");
		return;
	}
	struct bucket b = rate->bucket;
	bucket_refill(&b, now);
	cJSON *r = cJSON_AddObjectToObject(o, "rate");
	cJSON_AddNumberToObject(r, "limit", b.limit);
	cJSON_AddNumberToObject(r, "period_s", (double)b.period_ms / 1000);
	cJSON_AddNumberToObject(r, "burst", b.burst);
	cJSON_AddBoolToObject(r, "retry_after", rate->retry_after);
	/* thousandths: enough to watch a slow bucket fill */
	cJSON_AddNumberToObject(r, "tokens", floor(b.tokens * 1000) / 1000);
	if (b.paused_until > now) {
		char at[32];
		clock_rfc3339(b.paused_until, at);
		cJSON_AddStringToObject(r, "paused_until", at);
	} else {
		cJSON_AddNullToObject(r, "paused_until");
	}
}

int rates_queue_json(struct req *r, cJSON *o, const char *name)
{
	struct store_rate rate;
	bool found = false;
	if (store_get_rate(r->app->store, name, &rate, &found) != STORE_OK)
		return -1;
	rates_add_json(o, found ? &rate : NULL, clock_now_ms());
	return 0;
}

int rates_merge_names(struct req *r, const char *after, char (**names)[JOB_NAME_MAX + 1], size_t *n)
{
	struct store_rate *rates = NULL;
	size_t nrates = 0;
	if (store_list_rates(r->app->store, &rates, &nrates) != STORE_OK) {
		handler_reply_unavailable(r);
		return -1;
	}
	size_t listed = *n;
	char (*all)[JOB_NAME_MAX + 1] = nrates ? realloc(*names, (listed + nrates + 1) * sizeof *all) : *names;
	if (!all) {
		free(rates);
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return -1;
	}
	*names = all;
	for (size_t i = 0; i < nrates; i++) {
		const char *name = rates[i].queue;
		bool seen = after && strcmp(name, after) <= 0;
		for (size_t k = 0; k < listed && !seen; k++)
			seen = strcmp(all[k], name) == 0;
		if (!seen)
			memcpy(all[(*n)++], name, sizeof all[0]);
	}
	free(rates);
	return 0;
}

/* A number field in [min, max] (an integer when asked) into *out; absent
 * leaves *out. -1 after replying 400 naming it. */
static int number_field(struct req *r, const cJSON *body, const char *name, bool required, double min,
                        double max, bool integer, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
	if (!v && !required)
		return 0;
	if (!v || !cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min ||
	    v->valuedouble > max || (integer && v->valuedouble != floor(v->valuedouble))) {
		reply_error(r, PROBLEM_INVALID_FIELD, name, "%s %s %s from %.10g to %.10g", name,
		            v ? "must be" : "is required:", integer ? "an integer" : "a number", min, max);
		return -1;
	}
	*out = v->valuedouble;
	return 0;
}

/* The body into rate; -1 after replying 400 naming the field. */
static int parse_rate(struct req *r, struct store_rate *rate)
{
	struct problem p;
	cJSON *body = json_parse_strict(r->body ? r->body : "", r->body_len, &p);
	if (!body) {
		reply_problem(r, &p);
		return -1;
	}
	int rc = -1;
	if (!cJSON_IsObject(body)) {
		reply_error(r, PROBLEM_MALFORMED_JSON, NULL,
		            "the body must be a JSON object: {\"limit\": R, \"period_s\": P, \"burst\": B, \"retry_after\": bool}");
		goto out;
	}
	const cJSON *item;
	cJSON_ArrayForEach(item, body) {
		bool known = false;
		for (size_t i = 0; i < sizeof rate_keys / sizeof rate_keys[0] && !known; i++)
			known = strcmp(item->string, rate_keys[i]) == 0;
		if (!known) {
			reply_error(r, PROBLEM_INVALID_FIELD, item->string,
			            "unknown field \"%.60s\"; a rate has limit, period_s, burst and retry_after", item->string);
			goto out;
		}
	}
	double limit = 0, period_s = 0, burst = 0;
	if (number_field(r, body, "limit", true, 1, BUCKET_LIMIT_MAX, true, &limit) != 0)
		goto out;
	const cJSON *pv = cJSON_GetObjectItemCaseSensitive(body, "period_s");
	if (!cJSON_IsNumber(pv) || !isfinite(pv->valuedouble) || pv->valuedouble < RATE_PERIOD_MIN_S ||
	    pv->valuedouble > (double)BUCKET_PERIOD_MAX_MS / 1000) {
		reply_error(r, PROBLEM_INVALID_FIELD, "period_s",
		            "period_s %s a number of seconds from %g to %g", pv ? "must be" : "is required:",
		            RATE_PERIOD_MIN_S, (double)BUCKET_PERIOD_MAX_MS / 1000);
		goto out;
	}
	period_s = pv->valuedouble;
	burst = limit;
	if (number_field(r, body, "burst", false, 1, BUCKET_BURST_MAX, true, &burst) != 0)
		goto out;
	const cJSON *ra = cJSON_GetObjectItemCaseSensitive(body, "retry_after");
	if (ra && !cJSON_IsBool(ra)) {
		reply_error(r, PROBLEM_INVALID_FIELD, "retry_after", "retry_after must be true or false");
		goto out;
	}
	rate->retry_after = cJSON_IsTrue(ra);
	rate->bucket.limit = limit;
	rate->bucket.period_ms = llround(period_s * 1000);
	rate->bucket.burst = burst;
	rc = 0;
out:
	cJSON_Delete(body);
	return rc;
}

/* Replies 404 and returns false for a name no queue can have. */
static bool rate_queue_ok(struct req *r)
{
	if (r->param && job_queue_name_valid(r->param))
		return true;
	reply_error(r, PROBLEM_QUEUE_NOT_FOUND, NULL,
	            "no queue can be named %.80s: names are 1 to %d characters of A-Z a-z 0-9 _ . : -",
	            r->param ? r->param : "", JOB_NAME_MAX);
	return false;
}

static void rate_committed(struct req *r)
{
	struct store_op *op = r->ctx;
	if (op->rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	/* Leases held back by the old limit may take jobs now. */
	if (config_queue_external(r->app->cfg, op->rate.rate.queue))
		leases_notify(r->app->hub);
	queues_get(r);
}

static void post_rate(struct req *r, bool remove)
{
	struct store_rate rate = {.retry_after = false};
	if (!rate_queue_ok(r) || (!remove && parse_rate(r, &rate) != 0))
		return;
	struct store_op *op = handler_new_op(r, STORE_OP_RATE);
	if (!op)
		return;
	op->rate.rate = rate;
	snprintf(op->rate.rate.queue, sizeof op->rate.rate.queue, "%s", r->param);
	op->rate.remove = remove;
	handler_post(r, op, rate_committed);
}

void queues_rate_put(struct req *r)
{
	post_rate(r, false);
}

void queues_rate_delete(struct req *r)
{
	post_rate(r, true);
}

/* One line of a per-queue series: v with up to 6 significant digits. */
static void queue_line(struct metrics_text *t, const char *name, const char *queue, double v)
{
	metrics_text_printf(t, "%s{queue=\"", name);
	metrics_text_label_value(t, queue);
	metrics_text_printf(t, "\"} %.6g\n", v);
}

int rates_render_metrics(struct req *r, struct metrics_text *t)
{
	struct store_rate *rates = NULL;
	size_t n = 0;
	if (store_list_rates(r->app->store, &rates, &n) != STORE_OK) {
		handler_reply_unavailable(r);
		return -1;
	}
	int64_t now = clock_now_ms();
	const char *name = "jobq_queue_rate_limit";
	metrics_text_family(t, name, "gauge", "The queue's rate limit, in job starts per second.");
	for (size_t i = 0; i < n; i++)
		queue_line(t, name, rates[i].queue, rates[i].bucket.limit * 1000 / (double)rates[i].bucket.period_ms);
	name = "jobq_queue_rate_tokens";
	metrics_text_family(t, name, "gauge", "Starts the queue's rate limit allows now (its token bucket).");
	for (size_t i = 0; i < n; i++) {
		bucket_refill(&rates[i].bucket, now);
		double tokens = rates[i].bucket.paused_until > now ? 0 : rates[i].bucket.tokens;
		queue_line(t, name, rates[i].queue, floor(tokens * 1000) / 1000);
	}
	name = "jobq_rate_limited_total";
	metrics_text_family(t, name, "counter",
	                    "Claims and leases of this node that found the queue out of tokens with jobs to start.");
	for (size_t i = 0; i < n; i++)
		queue_line(t, name, rates[i].queue, (double)store_rate_limited(r->app->store, rates[i].queue));
	free(rates);
	return 0;
}
