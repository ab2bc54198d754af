/* Metrics: fixed-capacity key tables (open addressing over an append-only
 * slot array), per-slot atomic counters and histograms, and the text
 * format renderer. */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/hash.h"

#define KEY_PARTS 3
#define JOB_EVENTS (METRICS_JOB_CANCELED + 1)
#define SUM_MAX_S 1e9     /* larger observations add this to _sum */

const double metrics_bucket_bounds[METRICS_NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
};

struct key {
	char part[KEY_PARTS][METRICS_LABEL_MAX + 1];
};

/* Slots 0..used-1 hold published keys; slot cap-1 is the overflow series. */
struct table {
	pthread_mutex_t mu;            /* serialises inserts */
	const char *name;              /* the table label of jobq_metrics_overflow_total */
	int cap;
	atomic_int used;
	atomic_bool overflow_used;
	atomic_uint_fast64_t overflows; /* events counted in the overflow slot for want of room */
	struct key *keys;
	atomic_int *index;             /* nindex entries: 0 empty, else slot + 1 */
	size_t nindex;                 /* a power of two, at least 2 * cap */
};

/* Counts per bucket (not cumulative); _count is their sum, so it always
 * equals the +Inf bucket however the reads interleave with writes. */
struct histogram {
	atomic_uint_fast64_t bucket[METRICS_NBUCKETS + 1];
	atomic_uint_fast64_t sum_us;
};

struct job_series {
	atomic_uint_fast64_t count[JOB_EVENTS];
	struct histogram duration, wait;
};

struct metrics {
	double start_time;
	struct table jobs, http, routes;
	struct job_series *job;              /* jobs.cap */
	atomic_uint_fast64_t *requests;      /* http.cap */
	struct histogram *latency;           /* routes.cap */
};

/* ---- key tables ----------------------------------------------------- */

/* A table of keys with nparts label values (the rest stay ""). */
static int table_init(struct table *t, const char *name, int cap, int nparts)
{
	t->name = name;
	t->cap = cap;
	t->nindex = 1;
	while (t->nindex < 2 * (size_t)cap)
		t->nindex *= 2;
	t->keys = calloc((size_t)cap, sizeof *t->keys);
	t->index = calloc(t->nindex, sizeof *t->index);
	if (!t->keys || !t->index) {
		free(t->keys);
		free(t->index);
		return -1;
	}
	pthread_mutex_init(&t->mu, NULL);
	for (int k = 0; k < nparts; k++)
		snprintf(t->keys[cap - 1].part[k], sizeof t->keys[0].part[k], "%s", METRICS_OTHER);
	return 0;
}

static void table_destroy(struct table *t)
{
	if (!t->keys)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->keys);
	free(t->index);
}

/* Label values are compared and hashed as stored: cut at METRICS_LABEL_MAX. */
static bool key_equal(const struct key *k, const char *const part[KEY_PARTS])
{
	for (int i = 0; i < KEY_PARTS; i++)
		if (strncmp(k->part[i], part[i], METRICS_LABEL_MAX) != 0 ||
		    strlen(k->part[i]) != strnlen(part[i], METRICS_LABEL_MAX))
			return false;
	return true;
}

static uint64_t key_hash(const char *const part[KEY_PARTS])
{
	uint64_t h = HASH_INIT;
	for (int i = 0; i < KEY_PARTS; i++) {
		h = hash_add(h, part[i], strnlen(part[i], METRICS_LABEL_MAX));
		h = hash_add(h, "\xff", 1); /* ends the part: ("ab","c") != ("a","bc") */
	}
	return h;
}

/* The probe position of part: its slot + 1 in *found, or 0 where it
 * would go. order: acquire for lock-free readers. */
static size_t table_probe(struct table *t, const char *const part[KEY_PARTS], uint64_t h,
                          memory_order order, int *found)
{
	size_t mask = t->nindex - 1, i = (size_t)h & mask;
	for (;; i = (i + 1) & mask) {
		int e = atomic_load_explicit(&t->index[i], order);
		if (e == 0 || key_equal(&t->keys[e - 1], part)) {
			*found = e;
			return i;
		}
	}
}

/* The slot of part, adding it when new; the overflow slot when the table
 * is full. The index is at most half full, so a probe always ends. */
static int table_slot(struct table *t, const char *const part[KEY_PARTS])
{
	int found = 0;
	uint64_t h = key_hash(part);
	table_probe(t, part, h, memory_order_acquire, &found);
	if (found)
		return found - 1;
	int overflow = t->cap - 1;
	if (key_equal(&t->keys[overflow], part)) {
		atomic_store_explicit(&t->overflow_used, true, memory_order_relaxed);
		return overflow;
	}
	pthread_mutex_lock(&t->mu);
	size_t i = table_probe(t, part, h, memory_order_relaxed, &found);
	int slot = found - 1;
	int used = atomic_load_explicit(&t->used, memory_order_relaxed);
	if (!found && used < overflow) {
		slot = used;
		for (int k = 0; k < KEY_PARTS; k++)
			snprintf(t->keys[slot].part[k], sizeof t->keys[slot].part[k], "%.*s",
			         METRICS_LABEL_MAX, part[k]);
		atomic_store_explicit(&t->used, used + 1, memory_order_release);
		atomic_store_explicit(&t->index[i], slot + 1, memory_order_release);
	}
	pthread_mutex_unlock(&t->mu);
	if (slot < 0) {
		atomic_store_explicit(&t->overflow_used, true, memory_order_relaxed);
		atomic_fetch_add_explicit(&t->overflows, 1, memory_order_relaxed);
		slot = overflow;
	}
	return slot;
}

/* Whether slot i is shown by a render that read used and overflow_used. */
static bool slot_shown(const struct table *t, int i, int used, bool overflow_used)
{
	return i < used || (i == t->cap - 1 && overflow_used);
}

/* ---- histograms ----------------------------------------------------- */

int metrics_bucket(double seconds)
{
	if (isnan(seconds))
		return METRICS_NBUCKETS;
	for (int i = 0; i < METRICS_NBUCKETS; i++)
		if (seconds <= metrics_bucket_bounds[i])
			return i;
	return METRICS_NBUCKETS;
}

static void histogram_observe(struct histogram *h, double seconds)
{
	atomic_fetch_add_explicit(&h->bucket[metrics_bucket(seconds)], 1, memory_order_relaxed);
	if (isnan(seconds))
		return;
	double s = seconds < 0 ? 0 : seconds > SUM_MAX_S ? SUM_MAX_S : seconds;
	atomic_fetch_add_explicit(&h->sum_us, (uint_fast64_t)llround(s * 1e6), memory_order_relaxed);
}

/* ---- the registry --------------------------------------------------- */

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->start_time = (double)clock_now_ms() / 1000;
	if (table_init(&m->jobs, "jobs", METRICS_JOB_SERIES, 2) != 0 ||
	    table_init(&m->http, "http", METRICS_HTTP_SERIES, 3) != 0 ||
	    table_init(&m->routes, "routes", METRICS_ROUTE_SERIES, 2) != 0 ||
	    !(m->job = calloc(METRICS_JOB_SERIES, sizeof *m->job)) ||
	    !(m->requests = calloc(METRICS_HTTP_SERIES, sizeof *m->requests)) ||
	    !(m->latency = calloc(METRICS_ROUTE_SERIES, sizeof *m->latency))) {
		metrics_free(m);
		return NULL;
	}
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	table_destroy(&m->jobs);
	table_destroy(&m->http);
	table_destroy(&m->routes);
	free(m->job);
	free(m->requests);
	free(m->latency);
	free(m);
}

double metrics_start_time(const struct metrics *m)
{
	return m->start_time;
}

double metrics_clock(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void metrics_job(struct metrics *m, const char *queue, const char *type,
                 enum metrics_job_event ev, double seconds)
{
	const char *part[KEY_PARTS] = {queue, type, ""};
	struct job_series *s = &m->job[table_slot(&m->jobs, part)];
	atomic_fetch_add_explicit(&s->count[ev], 1, memory_order_relaxed);
	if (seconds < 0)
		return;
	histogram_observe(ev == METRICS_JOB_STARTED ? &s->wait : &s->duration, seconds);
}

/* The method as a label: one of a bounded few. */
static const char *method_label(const char *method)
{
	static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
	for (size_t i = 0; method && i < sizeof known / sizeof known[0]; i++)
		if (strcmp(method, known[i]) == 0)
			return known[i];
	return METRICS_OTHER;
}

void metrics_http(struct metrics *m, const char *method, const char *route, int status,
                  double seconds)
{
	char code[16];
	snprintf(code, sizeof code, "%d", status);
	const char *part[KEY_PARTS] = {method_label(method), route ? route : "unmatched", code};
	atomic_fetch_add_explicit(&m->requests[table_slot(&m->http, part)], 1, memory_order_relaxed);
	part[2] = "";
	histogram_observe(&m->latency[table_slot(&m->routes, part)], seconds);
}

/* ---- text ----------------------------------------------------------- */

static bool text_reserve(struct metrics_text *t, size_t more)
{
	if (t->failed)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	size_t cap = t->cap ? t->cap : 4096;
	while (cap < t->len + more + 1)
		cap *= 2;
	char *buf = realloc(t->buf, cap);
	if (!buf) {
		t->failed = true;
		return false;
	}
	t->buf = buf;
	t->cap = cap;
	return true;
}

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !text_reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

void metrics_text_label_value(struct metrics_text *t, const char *v)
{
	if (!text_reserve(t, 2 * strlen(v)))
		return;
	for (; *v; v++) {
		if (*v == '\\' || *v == '"') {
			t->buf[t->len++] = '\\';
			t->buf[t->len++] = *v;
		} else if (*v == '\n') {
			t->buf[t->len++] = '\\';
			t->buf[t->len++] = 'n';
		} else {
			t->buf[t->len++] = *v;
		}
	}
	t->buf[t->len] = '\0';
}

void metrics_text_family(struct metrics_text *t, const char *name, const char *type,
                         const char *help)
{
	metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{l0="v0",l1="v1" with nlabels of k; the caller closes the brace. */
static void series_open(struct metrics_text *t, const char *name, const char *const *labels,
                        int nlabels, const struct key *k)
{
	metrics_text_printf(t, "%s{", name);
	for (int i = 0; i < nlabels; i++) {
		metrics_text_printf(t, "%s%s=\"", i ? "," : "", labels[i]);
		metrics_text_label_value(t, k->part[i]);
		metrics_text_printf(t, "\"");
	}
}

static void histogram_render(struct metrics_text *t, const char *name, const char *const *labels,
                             int nlabels, const struct key *k, const struct histogram *h)
{
	char series[128];
	uint64_t cumulative = 0;
	snprintf(series, sizeof series, "%s_bucket", name);
	for (int b = 0; b <= METRICS_NBUCKETS; b++) {
		cumulative += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
		series_open(t, series, labels, nlabels, k);
		if (b < METRICS_NBUCKETS)
			metrics_text_printf(t, ",le=\"%g\"} %llu\n", metrics_bucket_bounds[b],
			                    (unsigned long long)cumulative);
		else
			metrics_text_printf(t, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
	}
	snprintf(series, sizeof series, "%s_sum", name);
	series_open(t, series, labels, nlabels, k);
	metrics_text_printf(t, "} %.6f\n", (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
	snprintf(series, sizeof series, "%s_count", name);
	series_open(t, series, labels, nlabels, k);
	metrics_text_printf(t, "} %llu\n", (unsigned long long)cumulative);
}

static const char *const job_labels[] = {"queue", "type", "state"};

/* One counter family of the job table for event ev. */
static void job_counter(struct metrics *m, struct metrics_text *t, int used, bool over,
                        const char *name, const char *help, enum metrics_job_event ev)
{
	metrics_text_family(t, name, "counter", help);
	for (int i = 0; i < m->jobs.cap; i++) {
		if (!slot_shown(&m->jobs, i, used, over))
			continue;
		series_open(t, name, job_labels, 2, &m->jobs.keys[i]);
		metrics_text_printf(t, "} %llu\n",
		                    (unsigned long long)atomic_load_explicit(&m->job[i].count[ev], memory_order_relaxed));
	}
}

static void render_jobs(struct metrics *m, struct metrics_text *t)
{
	int used = atomic_load_explicit(&m->jobs.used, memory_order_acquire);
	bool over = atomic_load_explicit(&m->jobs.overflow_used, memory_order_relaxed);
	job_counter(m, t, used, over, "jobq_jobs_submitted_total", "Jobs submitted.", METRICS_JOB_SUBMITTED);
	job_counter(m, t, used, over, "jobq_jobs_started_total", "Attempts started (jobs claimed by a worker).",
	            METRICS_JOB_STARTED);
	job_counter(m, t, used, over, "jobq_jobs_retried_total",
	            "Attempts that failed and were scheduled to run again.", METRICS_JOB_RETRIED);

	static const struct {
		enum metrics_job_event ev;
		const char *state;
	} finished[] = {
		{METRICS_JOB_SUCCEEDED, "succeeded"}, {METRICS_JOB_FAILED, "failed"}, {METRICS_JOB_CANCELED, "canceled"},
	};
	const char *name = "jobq_jobs_finished_total";
	metrics_text_family(t, name, "counter", "Jobs that reached a final state.");
	for (int i = 0; i < m->jobs.cap; i++) {
		if (!slot_shown(&m->jobs, i, used, over))
			continue;
		for (size_t f = 0; f < sizeof finished / sizeof finished[0]; f++) {
			series_open(t, name, job_labels, 2, &m->jobs.keys[i]);
			metrics_text_printf(t, ",state=\"%s\"} %llu\n", finished[f].state,
			                    (unsigned long long)atomic_load_explicit(&m->job[i].count[finished[f].ev],
			                                                             memory_order_relaxed));
		}
	}

	name = "jobq_job_duration_seconds";
	metrics_text_family(t, name, "histogram",
	                    "Run time of each attempt that ended: succeeded, failed, retried or canceled while running.");
	for (int i = 0; i < m->jobs.cap; i++)
		if (slot_shown(&m->jobs, i, used, over))
			histogram_render(t, name, job_labels, 2, &m->jobs.keys[i], &m->job[i].duration);
	name = "jobq_job_queue_wait_seconds";
	metrics_text_family(t, name, "histogram",
	                    "Time from when a job was ready to run (created or due) until a worker claimed it.");
	for (int i = 0; i < m->jobs.cap; i++)
		if (slot_shown(&m->jobs, i, used, over))
			histogram_render(t, name, job_labels, 2, &m->jobs.keys[i], &m->job[i].wait);
}

static void render_http(struct metrics *m, struct metrics_text *t)
{
	static const char *const labels[] = {"method", "route", "code"};
	int used = atomic_load_explicit(&m->http.used, memory_order_acquire);
	bool over = atomic_load_explicit(&m->http.overflow_used, memory_order_relaxed);
	const char *name = "jobq_http_requests_total";
	metrics_text_family(t, name, "counter", "HTTP requests answered, by route pattern and status code.");
	for (int i = 0; i < m->http.cap; i++) {
		if (!slot_shown(&m->http, i, used, over))
			continue;
		series_open(t, name, labels, 3, &m->http.keys[i]);
		metrics_text_printf(t, "} %llu\n",
		                    (unsigned long long)atomic_load_explicit(&m->requests[i], memory_order_relaxed));
	}
	used = atomic_load_explicit(&m->routes.used, memory_order_acquire);
	over = atomic_load_explicit(&m->routes.overflow_used, memory_order_relaxed);
	name = "jobq_http_request_duration_seconds";
	metrics_text_family(t, name, "histogram",
	                    "Time from a request's arrival until its answer was sent (long-polls and streams included).");
	for (int i = 0; i < m->routes.cap; i++)
		if (slot_shown(&m->routes, i, used, over))
			histogram_render(t, name, labels, 2, &m->routes.keys[i], &m->latency[i]);
}

void metrics_render(struct metrics *m, struct metrics_text *t)
{
	render_jobs(m, t);
	render_http(m, t);
	const char *name = "jobq_metrics_overflow_total";
	metrics_text_family(t, name, "counter",
	                    "Events counted in an \"other\" series because their table of label sets was full.");
	const struct table *tables[] = {&m->jobs, &m->http, &m->routes};
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		metrics_text_printf(t, "%s{table=\"%s\"} %llu\n", name, tables[i]->name,
		                    (unsigned long long)atomic_load_explicit(&tables[i]->overflows, memory_order_relaxed));
}
