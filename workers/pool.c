/* The dispatcher and the workers.
 *
 * DESIGN. The dispatcher keeps every worker busy without polling the
 * database: it claims only when a worker slot is free *and* new work may
 * exist (a submission, a requeue, or the last claim came back full). The
 * claim goes through the store writer like any write, so it shares group
 * commits with submissions. Claimed jobs are handed over on the writer
 * thread right after the commit: they enter the run table before the writer
 * applies anything else, so a cancel that follows always finds them.
 *
 * Scheduled jobs (delays, retry backoff) need no polling either: every
 * claim reports the earliest run_at still waiting, and the dispatcher
 * sleeps until then unless a submission or a free worker wakes it first.
 *
 * Per-queue limits are applied inside the claim (queue_room), from the
 * counts of jobs of each limited queue that this pool holds.
 *
 * Asynchronous kinds (kind->start) hold a worker only while starting: the
 * attempt then counts in `async` until the kind calls run_finish from its
 * own thread, which concludes it like a worker would.
 *
 * Locking: pool->mu guards ready, assigned, async, inflight counts, next_due,
 * maybe_work, backlog and stopping. `assigned` counts jobs claimed and not
 * yet finished (ready + running). */
#include "workers/pool.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/kind.h"
#include "core/log.h"

#define ASYNC_STOP_MS 5000

struct ready {
	struct run *run;
	struct ready *next;
};

struct limited_queue {
	const char *name;
	int limit;
	int inflight;            /* claimed and not finished */
};

struct pool {
	struct store *store;
	struct run_table *runs;
	int nworkers;
	struct limited_queue *limits;
	int nlimits;
	pthread_t dispatcher;
	pthread_t *workers;
	int started_workers;

	pthread_mutex_t mu;
	pthread_cond_t dispatch_cv;   /* a slot freed or work may exist */
	pthread_cond_t work_cv;       /* ready has a job or stopping */
	struct ready *ready_head, *ready_tail;
	int assigned;
	int async;               /* attempts started by async kinds, not yet finished */
	int64_t next_due;        /* unix ms of the earliest scheduled job; 0: none */
	bool maybe_work;         /* a submission or requeue since the last claim */
	bool backlog;            /* runnable jobs were left behind: claim again when a worker frees */
	bool stopping;
};

/* Caller holds mu. NULL when the queue has no limit. */
static struct limited_queue *limit_of(struct pool *pool, const char *queue)
{
	for (int i = 0; i < pool->nlimits; i++)
		if (strcmp(pool->limits[i].name, queue) == 0)
			return &pool->limits[i];
	return NULL;
}

/* Writer thread, inside the claim: how many more of queue may start. */
static int queue_room(struct store_op *op, const char *queue)
{
	struct pool *pool = op->arg;
	pthread_mutex_lock(&pool->mu);
	struct limited_queue *q = limit_of(pool, queue);
	int room = q ? q->limit - q->inflight : INT_MAX;
	pthread_mutex_unlock(&pool->mu);
	return room > 0 ? room : 0;
}

/* Writer thread, after the claim commit: register the run and queue it. */
static void on_claimed(struct store_op *op, struct job *job)
{
	struct pool *pool = op->arg;
	char id[UUID_LEN + 1];
	memcpy(id, job->id, sizeof id);
	struct ready *item = malloc(sizeof *item);
	struct run *run = item ? run_table_add(pool->runs, job) : NULL; /* takes job */
	if (!run) {
		/* The row stays running and is requeued by the next start's
		 * recovery. */
		log_error("out of memory handing job %s to a worker", id);
		if (!item)
			job_free(job);
		free(item);
		pthread_mutex_lock(&pool->mu);
		pool->assigned--;
		pthread_mutex_unlock(&pool->mu);
		return;
	}
	item->run = run;
	item->next = NULL;
	pthread_mutex_lock(&pool->mu);
	struct limited_queue *q = limit_of(pool, job->queue);
	if (q)
		q->inflight++;
	if (pool->ready_tail)
		pool->ready_tail->next = item;
	else
		pool->ready_head = item;
	pool->ready_tail = item;
	pthread_cond_signal(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);
}

/* Caller holds mu. Whether a claim is worth a trip to the writer now. */
static bool claim_due(struct pool *pool, int free_slots)
{
	if (free_slots > 0 && pool->maybe_work)
		return true;
	return pool->next_due && pool->next_due <= clock_now_ms();
}

static void *dispatcher_main(void *arg)
{
	struct pool *pool = arg;
	pthread_mutex_lock(&pool->mu);
	while (!pool->stopping) {
		int free_slots = pool->nworkers - pool->assigned;
		if (!claim_due(pool, free_slots)) {
			if (pool->next_due) {
				int64_t wait = pool->next_due - clock_now_ms();
				clock_cond_wait_until(&pool->dispatch_cv, &pool->mu, clock_mono_ms() + (wait > 0 ? wait : 0));
			} else {
				pthread_cond_wait(&pool->dispatch_cv, &pool->mu);
			}
			continue;
		}
		bool due = pool->next_due && pool->next_due <= clock_now_ms();
		pool->maybe_work = false;
		/* Reserve the slots before the claim: on_claimed runs on the
		 * writer thread and releases what it cannot use. */
		pool->assigned += free_slots;
		pthread_mutex_unlock(&pool->mu);

		struct store_op op = {
			.kind = STORE_OP_CLAIM, .arg = pool,
			.claim = {.max = free_slots, .claimed = on_claimed, .queue_room = queue_room},
		};
		enum store_rc rc = store_run(pool->store, &op);

		pthread_mutex_lock(&pool->mu);
		pool->assigned -= free_slots - op.claim.nclaimed;
		if (rc != STORE_OK) {
			log_warn("claiming jobs failed; will retry on the next submission or completion");
			pool->backlog = true;
			continue;
		}
		pool->next_due = op.claim.next_due;
		/* Jobs may be waiting still: the claim came back full, a queue
		 * hit its limit, or due jobs were promoted with no slot free. */
		pool->backlog = (free_slots > 0 && op.claim.nclaimed == free_slots) || op.claim.limited ||
		                (due && free_slots == 0);
		pool->maybe_work |= free_slots > 0 && op.claim.nclaimed == free_slots;
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* A failed attempt: retry after the backoff while attempts are left and
 * the error allows it, else the job has failed. */
static void fail_attempt(struct run *run, bool retryable, int64_t now)
{
	struct job *job = run->job;
	if (retryable && job->attempts < job->max_attempts) {
		int64_t delay = job_backoff_ms(job, job->attempts);
		pthread_mutex_lock(&run->mu);
		if (run->retry_after_ms > delay)
			delay = run->retry_after_ms; /* the far side asked for it */
		pthread_mutex_unlock(&run->mu);
		job->state = JOB_SCHEDULED;
		job->run_at = now + delay;
	} else {
		job->state = JOB_FAILED;
	}
}

/* Fills job's outcome fields for the store from how the attempt ended.
 * Takes result and error. */
static void conclude(struct run *run, enum run_outcome outcome, cJSON *result, char *error)
{
	struct job *job = run->job;
	enum run_stop stop = outcome == RUN_STOPPED ? run_stopping(run) : RUN_STOP_NONE;
	int64_t now = clock_now_ms();
	job->finished_at = now;
	if (stop == RUN_STOP_SHUTDOWN) {
		job->state = JOB_QUEUED;
	} else if (stop == RUN_STOP_CANCEL) {
		job->state = JOB_CANCELED;
		job->outcome = ATTEMPT_CANCELED;
		free(error);
		error = strdup("canceled");
	} else if (outcome == RUN_SUCCEEDED) {
		job->state = JOB_SUCCEEDED;
		job->outcome = ATTEMPT_SUCCEEDED;
		job->result = result ? cJSON_PrintUnformatted(result) : NULL;
	} else if (stop == RUN_STOP_TIMEOUT) {
		job->outcome = ATTEMPT_TIMEOUT;
		free(error);
		char msg[128];
		snprintf(msg, sizeof msg, "timeout: the attempt ran longer than timeout_s (%gs)", job->timeout_s);
		error = strdup(msg);
		fail_attempt(run, true, now);
	} else {
		job->outcome = ATTEMPT_FAILED;
		if (!error)
			error = strdup(outcome == RUN_STOPPED ? "the job stopped without a result" : "failed");
		fail_attempt(run, outcome == RUN_FAILED, now);
	}
	cJSON_Delete(result);
	free(job->error);
	job->error = error;
	run_copy_progress(run, job);
}

static void post_outcome(struct pool *pool, struct job *job);
static void job_done(struct pool *pool, const char *queue, bool was_async);

/* Concludes an attempt, records it and frees its run. */
static void end_attempt(struct pool *pool, struct run *run, enum run_outcome outcome,
                        cJSON *result, char *error, bool was_async)
{
	conclude(run, outcome, result, error);
	log_debug("job %s attempt %d: %s", run->job->id, run->job->attempts, job_state_name(run->job->state));
	char queue[JOB_NAME_MAX + 1];
	memcpy(queue, run->job->queue, sizeof queue);
	post_outcome(pool, run_table_take(pool->runs, run));
	job_done(pool, queue, was_async);
}

/* run_finish for asynchronous kinds, on the kind's thread. */
static void async_finished(struct run *run, int outcome, cJSON *result, char *error)
{
	end_attempt(run->owner, run, (enum run_outcome)outcome, result, error, true);
}

/* Runs (or starts) one attempt on a worker thread. */
static void run_attempt(struct pool *pool, struct run *run)
{
	struct job *job = run->job;
	const struct job_kind *kind = kind_find(job->type);
	cJSON *payload = job->payload ? cJSON_Parse(job->payload) : NULL;
	cJSON *result = NULL;
	char *error = NULL;
	enum run_outcome outcome;
	run_start_clock(run);
	if (run_stopping(run) != RUN_STOP_NONE) {
		outcome = RUN_STOPPED; /* canceled or shut down before it started */
	} else if (!kind) {
		outcome = RUN_FAILED_FINAL;
		error = strdup("job type is not registered in this jobqd");
	} else if (job->payload && !payload) {
		outcome = RUN_FAILED_FINAL;
		error = strdup("stored payload is not valid JSON");
	} else if (kind->start) {
		run->finish = async_finished;
		run->owner = pool;
		/* Counted as async before it starts: the kind may finish it at
		 * once from its own thread. */
		pthread_mutex_lock(&pool->mu);
		pool->async++;
		pthread_mutex_unlock(&pool->mu);
		if (kind->start(kind, run, payload, &error) == 0) {
			cJSON_Delete(payload);
			job_done(pool, NULL, false); /* the worker is free; the run goes on */
			return;
		}
		pthread_mutex_lock(&pool->mu);
		pool->async--;
		pthread_mutex_unlock(&pool->mu);
		outcome = RUN_FAILED;
	} else {
		outcome = kind->run(kind, run, payload, &result, &error);
	}
	cJSON_Delete(payload);
	end_attempt(pool, run, outcome, result, error, false);
}

static void finish_done(struct store_op *op)
{
	if (op->rc != STORE_OK)
		log_error("could not record the outcome of job %s; it will be requeued at the next start",
		          op->finish.job->id);
	job_free(op->finish.job);
	free(op);
}

/* Hands the job, with its outcome, to the writer (takes job). */
static void post_outcome(struct pool *pool, struct job *job)
{
	struct store_op *op = calloc(1, sizeof *op);
	if (!op) {
		log_error("out of memory recording job %s; it will be requeued at the next start", job->id);
		job_free(job);
		return;
	}
	op->kind = STORE_OP_FINISH;
	op->finish.job = job;
	op->done = finish_done;
	store_post(pool->store, op);
}

/* Frees what a claimed job held. A worker's slot is freed when its
 * attempt ends or an async kind takes it over (queue NULL: the job goes
 * on); an async attempt ending frees its async count (was_async). The
 * queue's share is freed when the attempt ends. */
static void job_done(struct pool *pool, const char *queue, bool was_async)
{
	pthread_mutex_lock(&pool->mu);
	if (was_async)
		pool->async--;
	else
		pool->assigned--;
	struct limited_queue *q = queue ? limit_of(pool, queue) : NULL;
	if (q)
		q->inflight--;
	if (pool->backlog)
		pool->maybe_work = true;
	pthread_cond_broadcast(&pool->dispatch_cv);
	pthread_mutex_unlock(&pool->mu);
}

static void *worker_main(void *arg)
{
	struct pool *pool = arg;
	for (;;) {
		pthread_mutex_lock(&pool->mu);
		while (!pool->ready_head && !pool->stopping)
			pthread_cond_wait(&pool->work_cv, &pool->mu);
		struct ready *item = pool->ready_head;
		if (item) {
			pool->ready_head = item->next;
			if (!pool->ready_head)
				pool->ready_tail = NULL;
		}
		pthread_mutex_unlock(&pool->mu);
		if (!item)
			break;
		struct run *run = item->run;
		free(item);

		log_debug("job %s (%s) attempt %d started", run->job->id, run->job->type, run->job->attempts);
		run_attempt(pool, run);
	}
	return NULL;
}

void pool_notify(struct pool *pool)
{
	pthread_mutex_lock(&pool->mu);
	pool->maybe_work = true;
	pthread_cond_signal(&pool->dispatch_cv);
	pthread_mutex_unlock(&pool->mu);
}

struct pool *pool_start(struct store *st, struct run_table *runs, int nworkers,
                        const struct pool_queue_limit *limits, int nlimits)
{
	struct pool *pool = calloc(1, sizeof *pool);
	if (!pool)
		return NULL;
	pool->store = st;
	pool->runs = runs;
	pool->nworkers = nworkers;
	pool->limits = nlimits > 0 ? calloc((size_t)nlimits, sizeof *pool->limits) : NULL;
	if (nlimits > 0 && !pool->limits) {
		free(pool);
		return NULL;
	}
	for (int i = 0; i < nlimits; i++)
		pool->limits[i] = (struct limited_queue){.name = limits[i].name, .limit = limits[i].limit};
	pool->nlimits = nlimits;
	pool->maybe_work = true; /* jobs may be waiting from before the start */
	pthread_mutex_init(&pool->mu, NULL);
	clock_cond_init(&pool->dispatch_cv);
	pthread_cond_init(&pool->work_cv, NULL);
	pool->workers = calloc((size_t)nworkers, sizeof *pool->workers);
	if (!pool->workers)
		goto fail;
	for (; pool->started_workers < nworkers; pool->started_workers++)
		if (pthread_create(&pool->workers[pool->started_workers], NULL, worker_main, pool) != 0)
			goto fail;
	if (pthread_create(&pool->dispatcher, NULL, dispatcher_main, pool) != 0)
		goto fail;
	return pool;
fail:
	log_error("cannot start %d worker threads", nworkers);
	pthread_mutex_lock(&pool->mu);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);
	for (int i = 0; i < pool->started_workers; i++)
		pthread_join(pool->workers[i], NULL);
	free(pool->workers);
	free(pool->limits);
	free(pool);
	return NULL;
}

void pool_stop(struct pool *pool, int64_t grace_ms)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->dispatch_cv);
	pthread_mutex_unlock(&pool->mu);
	pthread_join(pool->dispatcher, NULL);

	/* No claim is in flight now. Jobs already claimed count as running
	 * (the API shows them so): workers take them during the grace period
	 * like the rest, and leave when the ready list is empty. */
	pthread_mutex_lock(&pool->mu);
	pthread_cond_broadcast(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);

	/* Running jobs may finish within the grace period; then they are
	 * asked to stop and requeue themselves without spending an attempt
	 * (a job still on the ready list then ends before it starts). */
	int64_t until = clock_mono_ms() + grace_ms;
	pthread_mutex_lock(&pool->mu);
	while (pool->assigned + pool->async > 0 && clock_mono_ms() < until)
		clock_cond_wait_until(&pool->dispatch_cv, &pool->mu, until);
	int left = pool->assigned + pool->async;
	pthread_mutex_unlock(&pool->mu);
	if (left > 0)
		log_info("shutdown grace over: putting %d running job(s) back in the queue", left);
	run_table_stop_all(pool->runs, RUN_STOP_SHUTDOWN);
	for (int i = 0; i < pool->started_workers; i++)
		pthread_join(pool->workers[i], NULL);
	pool->started_workers = 0;
	/* Async kinds end their attempts promptly once stopped. */
	pthread_mutex_lock(&pool->mu);
	int64_t stop_by = clock_mono_ms() + ASYNC_STOP_MS;
	while (pool->async > 0 && clock_mono_ms() < stop_by)
		clock_cond_wait_until(&pool->dispatch_cv, &pool->mu, stop_by);
	if (pool->async > 0)
		log_error("%d asynchronous job(s) did not stop; they are requeued at the next start", pool->async);
	pthread_mutex_unlock(&pool->mu);
}

void pool_free(struct pool *pool)
{
	if (!pool)
		return;
	pthread_cond_destroy(&pool->work_cv);
	pthread_cond_destroy(&pool->dispatch_cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool->workers);
	free(pool->limits);
	free(pool);
}
