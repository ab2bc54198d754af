/* GET /metrics: the Prometheus text format. Queue gauges come from the
 * store's per-queue counts (kept by triggers, as for GET /v1/queues),
 * process gauges from /proc and the server, and every counter and
 * histogram from the registry (core/metrics.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/hub.h"
#include "core/job.h"
#include "core/metrics.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define QUEUE_GAUGES_MAX 1000   /* queues shown by name; the rest add up in "other" */

typedef char queue_name[JOB_NAME_MAX + 1];

static int name_order(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The stored queue names plus the configured ones, sorted; NULL on
 * failure (after replying). */
static queue_name *queue_names(struct req *r, size_t *n)
{
	queue_name *names = NULL;
	if (store_list_queue_names(r->app->store, &names, n) != STORE_OK) {
		handler_reply_unavailable(r);
		return NULL;
	}
	const struct config *cfg = r->app->cfg;
	queue_name *all = realloc(names, (*n + (size_t)cfg->nqueues + 1) * sizeof *names);
	if (!all) {
		free(names);
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return NULL;
	}
	for (int i = 0; i < cfg->nqueues; i++) {
		bool seen = false;
		for (size_t k = 0; k < *n && !seen; k++)
			seen = strcmp(all[k], cfg->queues[i].name) == 0;
		if (!seen)
			memcpy(all[(*n)++], cfg->queues[i].name, sizeof all[0]);
	}
	qsort(all, *n, sizeof all[0], name_order);
	return all;
}

struct queue_gauge {
	int64_t depth;
	double oldest_s;
};

/* name{queue="queue"} v, with v printed as an integer when whole. */
static void gauge_line(struct metrics_text *t, const char *name, const char *queue, double v)
{
	metrics_text_printf(t, "%s{queue=\"", name);
	metrics_text_label_value(t, queue);
	metrics_text_printf(t, v == (double)(int64_t)v ? "\"} %.0f\n" : "\"} %.3f\n", v);
}

/* jobq_queue_depth and jobq_queue_oldest_age_seconds; -1 after replying. */
static int render_queues(struct req *r, struct metrics_text *t)
{
	size_t n = 0;
	queue_name *names = queue_names(r, &n);
	if (!names)
		return -1;
	struct queue_gauge *g = calloc(n + 1, sizeof *g);
	if (!g) {
		free(names);
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return -1;
	}
	int64_t now = clock_now_ms();
	for (size_t i = 0; i < n; i++) {
		struct queue_info q;
		if (store_get_queue(r->app->store, names[i], &q) != STORE_OK) {
			free(g);
			free(names);
			handler_reply_unavailable(r);
			return -1;
		}
		g[i].depth = q.counts[JOB_QUEUED];
		if (q.oldest_queued_run_at && now > q.oldest_queued_run_at)
			g[i].oldest_s = (double)(now - q.oldest_queued_run_at) / 1000;
	}
	/* Past the cap, queues add up in the "other" series (or in a real
	 * queue of that name, so no series appears twice). */
	size_t shown = n, other = n;
	if (shown > QUEUE_GAUGES_MAX)
		shown = QUEUE_GAUGES_MAX;
	for (size_t i = 0; i < shown; i++)
		if (strcmp(names[i], METRICS_OTHER) == 0)
			other = i;
	for (size_t i = shown; i < n; i++) {
		g[other].depth += g[i].depth;
		if (g[i].oldest_s > g[other].oldest_s)
			g[other].oldest_s = g[i].oldest_s;
	}
	bool other_extra = n > shown && other == n;
	const char *name = "jobq_queue_depth";
	metrics_text_family(t, name, "gauge", "Jobs queued (ready to run) in the queue.");
	for (size_t i = 0; i < shown; i++)
		gauge_line(t, name, names[i], (double)g[i].depth);
	if (other_extra)
		gauge_line(t, name, METRICS_OTHER, (double)g[n].depth);
	name = "jobq_queue_oldest_age_seconds";
	metrics_text_family(t, name, "gauge", "How long the oldest queued job of the queue has been ready; 0 when none.");
	for (size_t i = 0; i < shown; i++)
		gauge_line(t, name, names[i], g[i].oldest_s);
	if (other_extra)
		gauge_line(t, name, METRICS_OTHER, g[n].oldest_s);
	free(g);
	free(names);
	return 0;
}

/* Resident set size from /proc/self/statm (its second field, in pages). */
static double resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, resident = 0;
	int got = f ? fscanf(f, "%llu %llu", &size, &resident) : 0;
	if (f)
		fclose(f);
	long page = sysconf(_SC_PAGESIZE);
	return got == 2 && page > 0 ? (double)resident * (double)page : 0;
}

static void render_process(struct req *r, struct metrics_text *t)
{
	metrics_text_family(t, "jobq_process_resident_memory_bytes", "gauge", "Resident memory of jobqd.");
	metrics_text_printf(t, "jobq_process_resident_memory_bytes %.0f\n", resident_bytes());
	metrics_text_family(t, "jobq_process_start_time_seconds", "gauge", "When jobqd started, in unix seconds.");
	metrics_text_printf(t, "jobq_process_start_time_seconds %.3f\n", metrics_start_time(r->app->metrics));
	metrics_text_family(t, "jobq_http_connections", "gauge", "HTTP connections open now.");
	metrics_text_printf(t, "jobq_http_connections %u\n", req_connections(r));
	metrics_text_family(t, "jobq_waiters", "gauge",
	                    "Long-polls and event streams waiting for a job, a batch or an event.");
	metrics_text_printf(t, "jobq_waiters %zu\n", hub_count(r->app->hub));
	metrics_text_family(t, "jobq_build_info", "gauge", "Always 1; the version of jobqd in a label.");
	metrics_text_printf(t, "jobq_build_info{version=\"%s\"} 1\n", JOBQ_VERSION);
}

void metrics_get(struct req *r)
{
	struct metrics_text t = {0};
	if (render_queues(r, &t) != 0) {
		free(t.buf);
		return;
	}
	render_process(r, &t);
	metrics_render(r->app->metrics, &t);
	if (t.failed) {
		free(t.buf);
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return;
	}
	reply_text(r, 200, METRICS_CONTENT_TYPE, t.buf, t.len);
}
