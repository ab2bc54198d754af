/* /v1/queues: per-queue counts, limits and the pause switch. Queues exist
 * implicitly: any valid name has a queue, empty until jobs arrive. The
 * list is paged by name, so its cost follows the page, not the queues. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/job.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000

static const struct queue_limit *configured(const struct config *cfg, const char *name)
{
	for (int i = 0; i < cfg->nqueues; i++)
		if (strcmp(cfg->queues[i].name, name) == 0)
			return &cfg->queues[i];
	return NULL;
}

/* "throughput": jobs finished in each of the last METER_MINUTES minutes,
 * oldest first, the current (partial) minute last. */
static void add_throughput(cJSON *o, struct meter *finished, const char *name, int64_t now)
{
	int64_t minute[METER_MINUTES], n[METER_MINUTES];
	meter_minutes(finished, name, now, minute, n);
	cJSON *arr = cJSON_AddArrayToObject(o, "throughput");
	for (int i = 0; i < METER_MINUTES; i++) {
		char at[32];
		clock_rfc3339(minute[i], at);
		cJSON *m = cJSON_CreateObject();
		cJSON_AddStringToObject(m, "minute", at);
		cJSON_AddNumberToObject(m, "finished", (double)n[i]);
		cJSON_AddItemToArray(arr, m);
	}
}

/* The queue's JSON; NULL after replying 503. */
static cJSON *queue_json(struct req *r, const char *name)
{
	struct queue_info q;
	if (store_get_queue(r->app->store, name, &q) != STORE_OK) {
		handler_reply_unavailable(r);
		return NULL;
	}
	int64_t now = clock_now_ms();
	const struct queue_limit *limit = configured(r->app->cfg, name);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddBoolToObject(o, "paused", q.paused);
	if (limit)
		cJSON_AddNumberToObject(o, "concurrency", limit->limit);
	else
		cJSON_AddNullToObject(o, "concurrency");
	cJSON *counts = cJSON_AddObjectToObject(o, "counts");
	static const enum job_state order[] = {JOB_BLOCKED, JOB_SCHEDULED, JOB_QUEUED, JOB_RUNNING,
	                                       JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		cJSON_AddNumberToObject(counts, job_state_name(order[i]), (double)q.counts[order[i]]);
	if (q.oldest_queued_run_at) {
		int64_t age = now - q.oldest_queued_run_at;
		cJSON_AddNumberToObject(o, "oldest_queued_age_s", (double)(age > 0 ? age : 0) / 1000);
	} else {
		cJSON_AddNullToObject(o, "oldest_queued_age_s");
	}
	cJSON_AddNumberToObject(o, "finished_last_minute", (double)meter_last_minute(r->app->finished, name, now));
	add_throughput(o, r->app->finished, name, now);
	if (rates_queue_json(r, o, name) != 0) {
		cJSON_Delete(o);
		handler_reply_unavailable(r);
		return NULL;
	}
	/* served by external workers (the lease API), not by jobqd's pool */
	cJSON_AddBoolToObject(o, "external", config_queue_external(r->app->cfg, name));
	return o;
}

/* Replies 404 and returns false for a name no queue can have. */
static bool queue_name_ok(struct req *r)
{
	if (r->param && job_queue_name_valid(r->param))
		return true;
	reply_error(r, PROBLEM_QUEUE_NOT_FOUND, NULL,
	            "no queue can be named %.80s: names are 1 to %d characters of A-Z a-z 0-9 _ . : -",
	            r->param ? r->param : "", JOB_NAME_MAX);
	return false;
}

static int name_order(const void *a, const void *b)
{
	return strcmp(a, b);
}

int queues_names_page(struct req *r, const char *after, int max, queue_name **names, size_t *n)
{
	queue_name *page = NULL;
	if (store_list_queue_names(r->app->store, after, max, &page, n) != STORE_OK) {
		handler_reply_unavailable(r);
		return -1;
	}
	/* Configured queues are listed even before their first job. They
	 * are few, so they are merged into each page: any of them that
	 * sorts before the page's end belongs in it. */
	const struct config *cfg = r->app->cfg;
	queue_name *all = realloc(page, (*n + (size_t)cfg->nqueues + 1) * sizeof *page);
	if (!all) {
		free(page);
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return -1;
	}
	size_t stored = *n;
	for (int i = 0; i < cfg->nqueues; i++) {
		const char *name = cfg->queues[i].name;
		bool seen = after && strcmp(name, after) <= 0;
		for (size_t k = 0; k < stored && !seen; k++)
			seen = strcmp(all[k], name) == 0;
		if (!seen)
			memcpy(all[(*n)++], name, sizeof all[0]);
	}
	if (rates_merge_names(r, after, &all, n) != 0) {
		free(all);
		return -1;
	}
	qsort(all, *n, sizeof all[0], name_order);
	if (*n > (size_t)max)
		*n = (size_t)max;
	*names = all;
	return 0;
}

/* ?limit and ?cursor, as for GET /v1/jobs; -1 after replying 400. The
 * cursor is opaque to clients; it is the page's last queue name, so the
 * next page starts after it even if queues came or went meanwhile. */
static int parse_list_query(struct req *r, int *limit, const char **after)
{
	*limit = LIST_DEFAULT;
	*after = NULL;
	const char *v;
	if ((v = req_query(r, "limit"))) {
		char *end;
		long n = strtol(v, &end, 10);
		if (end == v || *end || n < 1 || n > LIST_MAX) {
			reply_error(r, PROBLEM_INVALID_QUERY, "limit", "limit must be an integer from 1 to %d", LIST_MAX);
			return -1;
		}
		*limit = (int)n;
	}
	if ((v = req_query(r, "cursor"))) {
		if (!job_queue_name_valid(v)) {
			reply_error(r, PROBLEM_INVALID_QUERY, "cursor", "cursor must be a next_cursor value from a previous page");
			return -1;
		}
		*after = v;
	}
	return 0;
}

void queues_list(struct req *r)
{
	int limit;
	const char *after;
	if (parse_list_query(r, &limit, &after) != 0)
		return;
	/* One name more than asked tells whether another page exists. */
	queue_name *names = NULL;
	size_t n = 0;
	if (queues_names_page(r, after, limit + 1, &names, &n) != 0)
		return;
	bool more = n > (size_t)limit;
	if (more)
		n = (size_t)limit;
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "queues");
	for (size_t i = 0; i < n; i++) {
		cJSON *q = queue_json(r, names[i]);
		if (!q) {
			cJSON_Delete(o);
			free(names);
			return;
		}
		cJSON_AddItemToArray(arr, q);
	}
	if (more)
		cJSON_AddStringToObject(o, "next_cursor", names[n - 1]);
	else
		cJSON_AddNullToObject(o, "next_cursor");
	free(names);
	reply_json(r, 200, o);
}

void queues_get(struct req *r)
{
	if (!queue_name_ok(r))
		return;
	cJSON *q = queue_json(r, r->param);
	if (q)
		reply_json(r, 200, q);
}

static void pause_committed(struct req *r)
{
	struct store_op *op = r->ctx;
	if (op->rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	/* A resumed external queue's jobs are ready for waiting leases. */
	if (!op->pause.paused && config_queue_external(r->app->cfg, op->pause.queue))
		leases_notify(r->app->hub);
	queues_get(r);
}

static void set_paused(struct req *r, bool paused)
{
	if (!queue_name_ok(r))
		return;
	struct store_op *op = handler_new_op(r, STORE_OP_PAUSE);
	if (!op)
		return;
	snprintf(op->pause.queue, sizeof op->pause.queue, "%s", r->param);
	op->pause.paused = paused;
	handler_post(r, op, pause_committed);
}

void queues_pause(struct req *r)
{
	set_paused(r, true);
}

void queues_resume(struct req *r)
{
	set_paused(r, false);
}
