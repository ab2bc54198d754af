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
#include "core/schedule.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define QUEUE_GAUGES (METRICS_QUEUE_SERIES - 1) /* queues with gauges of their own */

static int name_order(const void *a, const void *b)
{
	return strcmp(((const struct queue_info *)a)->name, ((const struct queue_info *)b)->name);
}

/* name{queue="queue"} v, with v printed as an integer when whole. */
static void gauge_line(struct metrics_text *t, const char *name, const char *queue, double v)
{
	metrics_text_printf(t, "%s{queue=\"", name);
	metrics_text_label_value(t, queue);
	metrics_text_printf(t, v == (double)(int64_t)v ? "\"} %.0f\n" : "\"} %.3f\n", v);
}

static double oldest_s(const struct queue_info *q, int64_t now)
{
	return q->oldest_queued_run_at && now > q->oldest_queued_run_at
	       ? (double)(now - q->oldest_queued_run_at) / 1000 : 0;
}

/* The queues that get gauges of their own, sorted by name, in g[0..*n-1]:
 * the QUEUE_GAUGES deepest; while fewer than that have queued jobs, the
 * first idle ones by name fill up. Every other queue adds up in *rest,
 * and *more says whether there is any. -1 after replying. */
static int shown_queues(struct req *r, struct queue_info *g, size_t *n, struct queue_info *rest, bool *more)
{
	int deep = 0;
	if (store_deepest_queues(r->app->store, g, QUEUE_GAUGES, &deep, rest) != STORE_OK) {
		handler_reply_unavailable(r);
		return -1;
	}
	*n = (size_t)deep;
	qsort(g, *n, sizeof *g, name_order);
	/* QUEUE_GAUGES + 1 names: if fewer come back, every queue is shown. */
	queue_name *names = NULL;
	size_t nn = 0;
	if (queues_names_page(r, NULL, QUEUE_GAUGES + 1, &names, &nn) != 0)
		return -1;
	*more = nn > QUEUE_GAUGES || rest->counts[JOB_QUEUED] > 0;
	size_t ranked = *n;
	for (size_t i = 0; i < nn && *n < QUEUE_GAUGES; i++) {
		struct queue_info key = {.paused = false};
		memcpy(key.name, names[i], sizeof key.name);
		if (bsearch(&key, g, ranked, sizeof *g, name_order))
			continue;
		memset(&g[*n], 0, sizeof g[0]);
		memcpy(g[*n].name, names[i], sizeof g[0].name);
		(*n)++;
	}
	free(names);
	qsort(g, *n, sizeof *g, name_order);
	return 0;
}

/* jobq_queue_depth and jobq_queue_oldest_age_seconds; -1 after replying.
 * Like the label tables of the registry, they are bounded: past
 * QUEUE_GAUGES queues, the deepest keep their series and the rest add up
 * in "other" (or in a shown queue of that name, so no series appears
 * twice). The scrape reads the trigger-kept counts and one index probe
 * per queue with queued jobs; it never scans the jobs. */
static int render_queues(struct req *r, struct metrics_text *t)
{
	struct queue_info *g = calloc(QUEUE_GAUGES, sizeof *g);
	struct queue_info rest;
	size_t n = 0;
	bool more = false;
	if (!g) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return -1;
	}
	if (shown_queues(r, g, &n, &rest, &more) != 0) {
		free(g);
		return -1;
	}
	int64_t now = clock_now_ms();
	struct queue_info key = {.paused = false};
	snprintf(key.name, sizeof key.name, "%s", METRICS_OTHER);
	struct queue_info *other = bsearch(&key, g, n, sizeof *g, name_order);
	if (more && other) {
		other->counts[JOB_QUEUED] += rest.counts[JOB_QUEUED];
		if (rest.oldest_queued_run_at && (!other->oldest_queued_run_at ||
		                                  rest.oldest_queued_run_at < other->oldest_queued_run_at))
			other->oldest_queued_run_at = rest.oldest_queued_run_at;
	}
	bool other_extra = more && !other;
	const char *name = "jobq_queue_depth";
	metrics_text_family(t, name, "gauge", "Jobs queued (ready to run) in the queue.");
	for (size_t i = 0; i < n; i++)
		gauge_line(t, name, g[i].name, (double)g[i].counts[JOB_QUEUED]);
	if (other_extra)
		gauge_line(t, name, METRICS_OTHER, (double)rest.counts[JOB_QUEUED]);
	name = "jobq_queue_oldest_age_seconds";
	metrics_text_family(t, name, "gauge", "How long the oldest queued job of the queue has been ready; 0 when none.");
	for (size_t i = 0; i < n; i++)
		gauge_line(t, name, g[i].name, oldest_s(&g[i], now));
	if (other_extra)
		gauge_line(t, name, METRICS_OTHER, oldest_s(&rest, now));
	free(g);
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

/* ---- schedules ------------------------------------------------------ */

static void fired_line(void *arg, const char *name, int64_t n)
{
	struct metrics_text *t = arg;
	metrics_text_printf(t, "jobq_schedule_fires_total{schedule=\"");
	metrics_text_label_value(t, name);
	metrics_text_printf(t, "\"} %lld\n", (long long)n);
}

/* jobq_schedules (from the store: every node shows the same) and this
 * node's fire counters (the leader's grow); -1 after replying 503. */
static int render_schedules(struct req *r, struct metrics_text *t)
{
	int64_t active = 0, paused = 0;
	if (store_count_schedules(r->app->store, &active, &paused) != STORE_OK) {
		handler_reply_unavailable(r);
		return -1;
	}
	metrics_text_family(t, "jobq_schedules", "gauge", "Schedules by state: active (firing) or paused.");
	metrics_text_printf(t, "jobq_schedules{state=\"active\"} %lld\n", (long long)active);
	metrics_text_printf(t, "jobq_schedules{state=\"paused\"} %lld\n", (long long)paused);
	metrics_text_family(t, "jobq_schedule_fires_total", "counter",
	                    "Jobs a schedule's fires submitted on this node (run now included).");
	schedule_each_fired(fired_line, t);
	metrics_text_family(t, "jobq_schedule_skipped_total", "counter",
	                    "Due fire times this node left unfired under a catch-up policy.");
	metrics_text_printf(t, "jobq_schedule_skipped_total %lld\n", (long long)schedule_skipped_total());
	return 0;
}

void metrics_get(struct req *r)
{
	struct metrics_text t = {0};
	if (render_queues(r, &t) != 0 || rates_render_metrics(r, &t) != 0) {
		free(t.buf);
		return;
	}
	render_process(r, &t);
	if (render_schedules(r, &t) != 0) {
		free(t.buf);
		return;
	}
	metrics_render(r->app->metrics, &t);
	if (t.failed) {
		free(t.buf);
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return;
	}
	reply_text(r, 200, METRICS_CONTENT_TYPE, t.buf, t.len);
}
