/* The metrics registry: counters and histograms of jobs per (queue, type)
 * and of HTTP requests per (method, route, code), rendered in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * The hot path is a lock-free lookup of a fixed-capacity, append-only key
 * table and a few relaxed atomic adds. Only adding a new key takes a mutex.
 * Rendering reads the published keys and atomics without any lock, so a
 * scrape never stalls the writer thread or a request. When a table is full
 * further keys are counted in one series whose every label is "other", and
 * jobq_metrics_overflow_total says how often that happened.
 *
 * Locking: each table's mu serialises inserts; keys are immutable once
 * published (release store of the slot index), so readers need no lock. */
#ifndef JOBQ_METRICS_H
#define JOBQ_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_JOB_SERIES 128     /* (queue, type) pairs, overflow included */
#define METRICS_HTTP_SERIES 1024   /* (method, route, code) triples */
#define METRICS_ROUTE_SERIES 128   /* (method, route) pairs for latencies */
#define METRICS_QUEUE_SERIES 256   /* queues with depth gauges, "other" included */
#define METRICS_LABEL_MAX 64       /* longest label value kept, bytes */
#define METRICS_OTHER "other"      /* every label of the overflow series */

/* Histogram upper bounds in seconds, 1 ms to 1 h; +Inf is implicit. */
#define METRICS_NBUCKETS 20
extern const double metrics_bucket_bounds[METRICS_NBUCKETS];

struct metrics;

/* A new, empty registry; NULL on OOM. Records now as the process start. */
struct metrics *metrics_new(void);

/* NULL is a no-op. No other call may run concurrently. */
void metrics_free(struct metrics *m);

enum metrics_job_event {
	METRICS_JOB_SUBMITTED,
	METRICS_JOB_STARTED,       /* seconds: time queued since ready (wait histogram) */
	METRICS_JOB_RETRIED,       /* seconds: the failed attempt's run time */
	METRICS_JOB_SUCCEEDED,     /* seconds: the attempt's run time */
	METRICS_JOB_FAILED,        /* seconds: the attempt's run time */
	METRICS_JOB_CANCELED,      /* seconds: the run time, or < 0 if it never ran */
};

/* Counts one event of a job of queue and type; seconds < 0 observes
 * nothing. Any thread. */
void metrics_job(struct metrics *m, const char *queue, const char *type,
                 enum metrics_job_event ev, double seconds);

/* Counts one answered HTTP request. route is the pattern that matched
 * (NULL: none did; counted as "unmatched"); a method outside the usual
 * few is counted as "other". Any thread. */
void metrics_http(struct metrics *m, const char *method, const char *route, int status,
                  double seconds);

/* Monotonic seconds, for timing requests. */
double metrics_clock(void);

/* Unix seconds at which the registry was made. */
double metrics_start_time(const struct metrics *m);

/* The histogram bucket that counts seconds: the first bound >= seconds,
 * METRICS_NBUCKETS for +Inf (also for NaN). Negative counts as 0. */
int metrics_bucket(double seconds);

/* A growing text buffer. On OOM failed is set and later writes are
 * dropped; the caller frees buf. */
struct metrics_text {
	char *buf;
	size_t len, cap;
	bool failed;
};

void metrics_text_printf(struct metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Appends v escaped as a label value: \ " and newline become \\ \" \n. */
void metrics_text_label_value(struct metrics_text *t, const char *v);

/* Appends the # HELP and # TYPE lines of a metric family. */
void metrics_text_family(struct metrics_text *t, const char *name, const char *type,
                         const char *help);

/* Appends every counter and histogram of the registry. */
void metrics_render(struct metrics *m, struct metrics_text *t);

#endif
