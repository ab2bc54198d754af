/* The table of runs: a small hash of job id -> run. */
#include "core/run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hash.h"

#define RUN_BUCKETS 256

struct run_table {
	pthread_mutex_t mu;
	struct run *buckets[RUN_BUCKETS];
	void (*progress_hook)(void *arg, const struct job *job, double percent, const char *message);
	void *progress_arg;
};

void run_table_on_progress(struct run_table *t,
                           void (*hook)(void *arg, const struct job *job, double percent, const char *message),
                           void *arg)
{
	t->progress_hook = hook;
	t->progress_arg = arg;
}

static size_t bucket_of(const char *id)
{
	return (size_t)(hash_str(id) % RUN_BUCKETS);
}

struct run_table *run_table_new(void)
{
	struct run_table *t = calloc(1, sizeof *t);
	if (t)
		pthread_mutex_init(&t->mu, NULL);
	return t;
}

void run_table_free(struct run_table *t)
{
	if (!t)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t);
}

struct run *run_table_add(struct run_table *t, struct job *job)
{
	struct run *run = calloc(1, sizeof *run);
	if (!run) {
		job_free(job);
		return NULL;
	}
	run->job = job;
	run->table = t;
	pthread_mutex_init(&run->mu, NULL);
	clock_cond_init(&run->cv);
	size_t b = bucket_of(job->id);
	pthread_mutex_lock(&t->mu);
	run->next = t->buckets[b];
	t->buckets[b] = run;
	pthread_mutex_unlock(&t->mu);
	return run;
}

void run_table_remove(struct run_table *t, struct run *run)
{
	job_free(run_table_take(t, run));
}

struct job *run_table_take(struct run_table *t, struct run *run)
{
	pthread_mutex_lock(&t->mu);
	struct run **pp = &t->buckets[bucket_of(run->job->id)];
	while (*pp && *pp != run)
		pp = &(*pp)->next;
	if (*pp)
		*pp = run->next;
	pthread_mutex_unlock(&t->mu);
	pthread_cond_destroy(&run->cv);
	pthread_mutex_destroy(&run->mu);
	struct job *job = run->job;
	free(run);
	return job;
}

static void stop_locked(struct run *run, enum run_stop why)
{
	pthread_mutex_lock(&run->mu);
	if (run->stop == RUN_STOP_NONE)
		run->stop = why;
	pthread_cond_broadcast(&run->cv);
	if (run->stop_hook)
		run->stop_hook(run->stop_hook_arg);
	pthread_mutex_unlock(&run->mu);
}

static struct run *find_locked(struct run_table *t, const char *id)
{
	struct run *run = t->buckets[bucket_of(id)];
	while (run && strcmp(run->job->id, id) != 0)
		run = run->next;
	return run;
}

bool run_table_stop(struct run_table *t, const char *id, enum run_stop why)
{
	pthread_mutex_lock(&t->mu);
	struct run *run = find_locked(t, id);
	if (run)
		stop_locked(run, why);
	pthread_mutex_unlock(&t->mu);
	return run != NULL;
}

bool run_table_has(struct run_table *t, const char *id)
{
	pthread_mutex_lock(&t->mu);
	bool found = find_locked(t, id) != NULL;
	pthread_mutex_unlock(&t->mu);
	return found;
}

void run_table_stop_all(struct run_table *t, enum run_stop why)
{
	pthread_mutex_lock(&t->mu);
	for (size_t b = 0; b < RUN_BUCKETS; b++)
		for (struct run *run = t->buckets[b]; run; run = run->next)
			stop_locked(run, why);
	pthread_mutex_unlock(&t->mu);
}

bool run_table_progress(struct run_table *t, const char *id, struct job *job)
{
	bool found = false;
	pthread_mutex_lock(&t->mu);
	struct run *run = find_locked(t, id);
	if (run) {
		run_copy_progress(run, job);
		found = job->has_progress;
	}
	pthread_mutex_unlock(&t->mu);
	return found;
}

void run_copy_progress(struct run *run, struct job *job)
{
	pthread_mutex_lock(&run->mu);
	if (run->has_progress) {
		job->has_progress = true;
		job->progress_percent = run->percent;
		memcpy(job->progress_message, run->message, sizeof job->progress_message);
	}
	pthread_mutex_unlock(&run->mu);
}

void run_progress(struct run *run, double percent, const char *message)
{
	if (!(percent >= 0))
		percent = 0;
	if (percent > 100)
		percent = 100;
	int64_t now = clock_mono_ms();
	pthread_mutex_lock(&run->mu);
	run->has_progress = true;
	run->percent = percent;
	snprintf(run->message, sizeof run->message, "%s", message ? message : "");
	bool tell = run->table->progress_hook && now - run->progress_told >= RUN_PROGRESS_HOOK_MS;
	if (tell)
		run->progress_told = now;
	pthread_mutex_unlock(&run->mu);
	if (tell)
		run->table->progress_hook(run->table->progress_arg, run->job, percent, message ? message : "");
}

void run_start_clock(struct run *run)
{
	double ms = run->job->timeout_s * 1000;
	pthread_mutex_lock(&run->mu);
	run->deadline = ms > 0 ? clock_mono_ms() + (int64_t)llround(ms) : 0;
	pthread_mutex_unlock(&run->mu);
}

/* Turns a passed deadline into a timeout stop. Caller holds run->mu. */
static void check_deadline_locked(struct run *run, int64_t now)
{
	if (run->stop == RUN_STOP_NONE && run->deadline && now >= run->deadline)
		run->stop = RUN_STOP_TIMEOUT;
}

void run_finish(struct run *run, int outcome, cJSON *result, char *error)
{
	run->finish(run, outcome, result, error);
}

void run_set_stop_hook(struct run *run, void (*hook)(void *arg), void *arg)
{
	pthread_mutex_lock(&run->mu);
	run->stop_hook = hook;
	run->stop_hook_arg = arg;
	if (hook && run->stop != RUN_STOP_NONE)
		hook(arg);
	pthread_mutex_unlock(&run->mu);
}

void run_retry_after(struct run *run, int64_t ms)
{
	pthread_mutex_lock(&run->mu);
	run->retry_after_ms = ms;
	pthread_mutex_unlock(&run->mu);
}

void run_throttled(struct run *run, int64_t until)
{
	pthread_mutex_lock(&run->mu);
	run->throttled_until = until;
	pthread_mutex_unlock(&run->mu);
}

int64_t run_throttled_until(struct run *run)
{
	pthread_mutex_lock(&run->mu);
	int64_t until = run->throttled_until;
	pthread_mutex_unlock(&run->mu);
	return until;
}

int64_t run_time_left_ms(struct run *run)
{
	pthread_mutex_lock(&run->mu);
	int64_t left = run->deadline ? run->deadline - clock_mono_ms() : INT64_MAX;
	pthread_mutex_unlock(&run->mu);
	return left > 0 ? left : 1;
}

enum run_stop run_stopping(struct run *run)
{
	pthread_mutex_lock(&run->mu);
	check_deadline_locked(run, clock_mono_ms());
	enum run_stop why = run->stop;
	pthread_mutex_unlock(&run->mu);
	return why;
}

bool run_sleep_until(struct run *run, int64_t until)
{
	pthread_mutex_lock(&run->mu);
	for (;;) {
		int64_t now = clock_mono_ms();
		check_deadline_locked(run, now);
		if (run->stop != RUN_STOP_NONE || now >= until)
			break;
		int64_t wake = run->deadline && run->deadline < until ? run->deadline : until;
		clock_cond_wait_until(&run->cv, &run->mu, wake);
	}
	bool slept = run->stop == RUN_STOP_NONE;
	pthread_mutex_unlock(&run->mu);
	return slept;
}
