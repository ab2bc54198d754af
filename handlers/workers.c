/* GET /v1/leases: the jobs external workers hold now, with each lease's
 * expiry and the node that granted it, soonest to expire first. The
 * dashboard's external workers page reads it; POST /v1/leases (a worker
 * taking jobs) is in handlers/leases.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/job.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define LEASES_LIST_DEFAULT 100
#define LEASES_LIST_MAX 1000

static void write_lease(struct json_out *o, const struct store_lease_info *l)
{
	char started[32], expires[32];
	clock_rfc3339(l->started_at, started);
	clock_rfc3339(l->expires_at, expires);
	json_out_lit(o, "{\"job_id\":");
	json_out_str(o, l->id);
	json_out_lit(o, ",\"queue\":");
	json_out_str(o, l->queue);
	json_out_lit(o, ",\"type\":");
	json_out_str(o, l->type);
	json_out_lit(o, ",\"attempt\":");
	json_out_num(o, l->attempt);
	json_out_lit(o, ",\"started_at\":");
	json_out_str(o, started);
	json_out_lit(o, ",\"lease_expires_at\":");
	json_out_str(o, expires);
	json_out_lit(o, ",\"node\":");
	if (l->node[0])
		json_out_str(o, l->node);
	else
		json_out_lit(o, "null");
	json_out_lit(o, "}");
}

void leases_list(struct req *r)
{
	const char *queue = req_query(r, "queue"), *limit = req_query(r, "limit");
	int max = LEASES_LIST_DEFAULT;
	if (queue && !job_queue_name_valid(queue)) {
		reply_error(r, PROBLEM_INVALID_QUERY, "queue", "queue must be a queue name (1 to %d of A-Z a-z 0-9 _ . : -)",
		            JOB_NAME_MAX);
		return;
	}
	if (limit) {
		char *end;
		long n = strtol(limit, &end, 10);
		if (end == limit || *end || n < 1 || n > LEASES_LIST_MAX) {
			reply_error(r, PROBLEM_INVALID_QUERY, "limit", "limit must be an integer from 1 to %d",
			            LEASES_LIST_MAX);
			return;
		}
		max = (int)n;
	}
	struct store_lease_info *leases = calloc((size_t)max, sizeof *leases);
	if (!leases) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return;
	}
	int n = 0;
	if (store_list_leases(r->app->store, queue, max, leases, &n) != STORE_OK) {
		free(leases);
		handler_reply_unavailable(r);
		return;
	}
	struct json_out o = {.buf = NULL};
	json_out_lit(&o, "{\"leases\":[");
	for (int i = 0; i < n; i++) {
		if (i > 0)
			json_out_lit(&o, ",");
		write_lease(&o, &leases[i]);
	}
	json_out_lit(&o, "]}");
	free(leases);
	handler_reply_out(r, 200, &o);
}
