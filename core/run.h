/* Runs: the jobs executing in this process, each with its stop request and
 * its latest progress report.
 *
 * A run is added by the dispatcher when its claim commits (on the store
 * writer thread, so a cancel processed by the writer afterwards always finds
 * it), read by its worker, and removed by that worker when the attempt ends.
 *
 * Locking: table->mu guards the hash chains; run->mu guards stop and the
 * progress fields. Lock order: table->mu, then run->mu. The job inside a run
 * is only touched by the worker that runs it. */
#ifndef JOBQ_RUN_H
#define JOBQ_RUN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/job.h"

enum run_stop {
	RUN_STOP_NONE,
	RUN_STOP_CANCEL,   /* a client canceled the job */
	RUN_STOP_SHUTDOWN, /* jobqd is stopping: put the job back */
	RUN_STOP_TIMEOUT,  /* the attempt ran past the job's timeout_s */
};

struct run;

/* How an asynchronous attempt reports its end (set by the pool). */
typedef void (*run_finish_fn)(struct run *run, int outcome, cJSON *result, char *error);

struct run {
	struct job *job;         /* owned */
	run_finish_fn finish;    /* set by the pool before an async start */
	void *owner;             /* the pool */
	void (*stop_hook)(void *arg); /* run->mu; see run_set_stop_hook */
	void *stop_hook_arg;
	int64_t retry_after_ms;  /* run->mu; 0: none */
	int64_t throttled_until; /* run->mu; unix ms a 429's Retry-After names, 0: none */
	struct run_table *table; /* set when added */
	int64_t progress_told;   /* run->mu: monotonic ms of the last progress hook call */
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* signalled when stop is set */
	enum run_stop stop;
	int64_t deadline;        /* monotonic ms the attempt may run until; 0: none */
	bool has_progress;
	double percent;
	char message[JOB_PROGRESS_MSG_MAX + 1];
	struct run *next;        /* hash chain, table->mu */
};

struct run_table;

struct run_table *run_table_new(void);

/* Frees the table; every run must have been removed. NULL is a no-op. */
void run_table_free(struct run_table *t);

#define RUN_PROGRESS_HOOK_MS 100

/* hook(arg, job, percent, message) is called from run_progress at most
 * every RUN_PROGRESS_HOOK_MS per run (a report within that time of the
 * previous one is not passed on), on the reporting thread, without locks
 * held. Set before any run is added. */
void run_table_on_progress(struct run_table *t,
                           void (*hook)(void *arg, const struct job *job, double percent, const char *message),
                           void *arg);

/* Creates a run for job (taking it) and adds it. NULL on OOM (job freed). */
struct run *run_table_add(struct run_table *t, struct job *job);

/* Unlinks and frees a run and its job. */
void run_table_remove(struct run_table *t, struct run *run);

/* Unlinks and frees a run, handing its job to the caller. */
struct job *run_table_take(struct run_table *t, struct run *run);

/* Asks the run of job id to stop; false when no such run is here. */
bool run_table_stop(struct run_table *t, const char *id, enum run_stop why);

/* Whether job id has a run here. */
bool run_table_has(struct run_table *t, const char *id);

/* Asks every run to stop. */
void run_table_stop_all(struct run_table *t, enum run_stop why);

/* Copies the latest progress of job id into job's progress fields; false
 * when the job is not running here or has reported none. */
bool run_table_progress(struct run_table *t, const char *id, struct job *job);

/* Copies the run's latest progress, if any, into job's progress fields. */
void run_copy_progress(struct run *run, struct job *job);

/* For job kinds: records progress (percent clamped to 0..100). */
void run_progress(struct run *run, double percent, const char *message);

/* Sets the attempt's deadline from the job's timeout_s, counting from now.
 * Called by the worker before the kind runs. */
void run_start_clock(struct run *run);

/* For job kinds: why the run must stop, or RUN_STOP_NONE. Past the
 * attempt's deadline this is RUN_STOP_TIMEOUT. */
enum run_stop run_stopping(struct run *run);

/* For asynchronous kinds: ends the attempt started by kind->start.
 * Takes result and error (either may be NULL); outcome is an enum
 * run_outcome. Any thread; exactly once per started attempt. The run may
 * be freed before this returns: do not touch it afterwards. */
void run_finish(struct run *run, int outcome, cJSON *result, char *error);

/* For kinds that wait on something other than run_sleep_until (an event
 * loop, a child process): hook(arg) is called, from whichever thread asks
 * the run to stop (cancel, shutdown), right after the reason is set, and at
 * once if a stop was already asked. It must not block (e.g. wake the
 * kind's loop); the kind then sees run_stopping() and ends the attempt.
 * Pass NULL to remove the hook before the attempt ends. */
void run_set_stop_hook(struct run *run, void (*hook)(void *arg), void *arg);

/* For job kinds: asks that a retry of this attempt wait at least ms
 * (e.g. an HTTP Retry-After). */
void run_retry_after(struct run *run, int64_t ms);

/* The far side answered 429 (too many requests) and asked to come back at
 * until (unix ms): the queue's rate limit may pause for it (store.h,
 * store_op_finish.throttled_until). run_throttled_until reads it, 0: none. */
void run_throttled(struct run *run, int64_t until);
int64_t run_throttled_until(struct run *run);

/* Milliseconds left before the attempt's deadline (timeout_s), at least 1;
 * INT64_MAX when it has none. */
int64_t run_time_left_ms(struct run *run);

/* For job kinds: sleeps until the monotonic time `until`, a stop request
 * or the attempt's deadline. Returns true when `until` passed, false when
 * the run must stop (see run_stopping for why). */
bool run_sleep_until(struct run *run, int64_t deadline_mono_ms);

#endif
