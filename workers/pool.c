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
 * Locking: pool->mu guards ready, assigned, maybe_work and stopping.
 * `assigned` counts jobs claimed and not yet finished (ready + running). */
#include "workers/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/kind.h"
#include "core/log.h"

struct ready {
	struct run *run;
	struct ready *next;
};

struct pool {
	struct store *store;
	struct run_table *runs;
	int nworkers;
	pthread_t dispatcher;
	pthread_t *workers;
	int started_workers;

	pthread_mutex_t mu;
	pthread_cond_t dispatch_cv;   /* a slot freed or work may exist */
	pthread_cond_t work_cv;       /* ready has a job or stopping */
	struct ready *ready_head, *ready_tail;
	int assigned;
	bool maybe_work;
	bool stopping;
};

/* Writer thread, after the claim commit: register the run and queue it. */
static void on_claimed(struct store_op *op, struct job *job)
{
	struct pool *pool = op->arg;
	struct ready *item = malloc(sizeof *item);
	struct run *run = item ? run_table_add(pool->runs, job) : NULL;
	if (!run) {
		/* Out of memory: the row stays running and is requeued by the
		 * next start-up's recovery. */
		log_error("out of memory handing job %s to a worker", item ? "(freed)" : job->id);
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
	if (pool->ready_tail)
		pool->ready_tail->next = item;
	else
		pool->ready_head = item;
	pool->ready_tail = item;
	pthread_cond_signal(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);
}

static void *dispatcher_main(void *arg)
{
	struct pool *pool = arg;
	pthread_mutex_lock(&pool->mu);
	while (!pool->stopping) {
		int free_slots = pool->nworkers - pool->assigned;
		if (free_slots <= 0 || !pool->maybe_work) {
			pthread_cond_wait(&pool->dispatch_cv, &pool->mu);
			continue;
		}
		pool->maybe_work = false;
		/* Reserve the slots before the claim: on_claimed runs on the
		 * writer thread and releases what it cannot use. */
		pool->assigned += free_slots;
		pthread_mutex_unlock(&pool->mu);

		struct store_op op = {
			.kind = STORE_OP_CLAIM, .claim_max = free_slots,
			.claimed = on_claimed, .arg = pool,
		};
		enum store_rc rc = store_run(pool->store, &op);

		pthread_mutex_lock(&pool->mu);
		pool->assigned -= free_slots - op.nclaimed;
		if (rc != STORE_OK) {
			/* Try again on the next wake-up; a full claim is the usual
			 * way to learn more may be waiting. */
			log_warn("claiming jobs failed; will retry on the next submission");
		} else if (op.nclaimed == free_slots) {
			pool->maybe_work = true;
		}
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* Runs one attempt and fills job's outcome fields. */
static void run_attempt(struct run *run)
{
	struct job *job = run->job;
	const struct job_kind *kind = kind_find(job->type);
	cJSON *payload = job->payload ? cJSON_Parse(job->payload) : NULL;
	cJSON *result = NULL;
	char *error = NULL;
	enum run_outcome outcome;
	if (!kind) {
		outcome = RUN_FAILED;
		error = strdup("job type is not registered in this jobqd");
	} else if (job->payload && !payload) {
		outcome = RUN_FAILED;
		error = strdup("stored payload is not valid JSON");
	} else {
		outcome = kind->run(run, payload, &result, &error);
	}
	cJSON_Delete(payload);

	enum run_stop stop = run_stopping(run);
	job->finished_at = clock_now_ms();
	if (outcome == RUN_STOPPED && stop == RUN_STOP_SHUTDOWN) {
		job->state = JOB_QUEUED;
	} else if (outcome == RUN_STOPPED) {
		job->state = JOB_CANCELED;
		free(error);
		error = strdup("canceled");
	} else if (outcome == RUN_SUCCEEDED) {
		job->state = JOB_SUCCEEDED;
		job->result = result ? cJSON_PrintUnformatted(result) : NULL;
	} else {
		job->state = JOB_FAILED;
		if (!error)
			error = strdup("failed");
	}
	cJSON_Delete(result);
	free(job->error);
	job->error = error;
	run_copy_progress(run, job);
}

static void finish_done(struct store_op *op)
{
	if (op->rc != STORE_OK)
		log_error("could not record the outcome of job %s; it will be requeued at the next start",
		          op->job->id);
	job_free(op->job);
	free(op);
}

/* Hands the outcome to the writer; the run's job moves into the op. */
static void post_outcome(struct pool *pool, struct run *run)
{
	struct store_op *op = calloc(1, sizeof *op);
	if (!op) {
		log_error("out of memory recording job %s; it will be requeued at the next start", run->job->id);
		return;
	}
	op->kind = STORE_OP_FINISH;
	op->job = run->job;
	op->done = finish_done;
	run->job = job_new();
	if (!run->job) {
		/* run_table_remove needs the id to unlink the run. */
		run->job = op->job;
		op->job = NULL;
		free(op);
		log_error("out of memory recording job %s", run->job->id);
		return;
	}
	memcpy(run->job->id, op->job->id, sizeof run->job->id);
	store_post(pool->store, op);
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
		run_attempt(run);
		log_debug("job %s ended %s", run->job->id, job_state_name(run->job->state));
		post_outcome(pool, run);
		run_table_remove(pool->runs, run);

		pthread_mutex_lock(&pool->mu);
		pool->assigned--;
		pthread_cond_signal(&pool->dispatch_cv);
		pthread_mutex_unlock(&pool->mu);
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

struct pool *pool_start(struct store *st, struct run_table *runs, int nworkers)
{
	struct pool *pool = calloc(1, sizeof *pool);
	if (!pool)
		return NULL;
	pool->store = st;
	pool->runs = runs;
	pool->nworkers = nworkers;
	pool->maybe_work = true; /* jobs may be waiting from before the start */
	pthread_mutex_init(&pool->mu, NULL);
	pthread_cond_init(&pool->dispatch_cv, NULL);
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
	free(pool);
	return NULL;
}

void pool_stop(struct pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	pool->stopping = true;
	pthread_cond_signal(&pool->dispatch_cv);
	pthread_mutex_unlock(&pool->mu);
	pthread_join(pool->dispatcher, NULL);

	/* No claim is in flight now. Jobs claimed but not started go back as
	 * they are; running ones are asked to stop and requeue themselves. */
	pthread_mutex_lock(&pool->mu);
	struct ready *waiting = pool->ready_head;
	pool->ready_head = pool->ready_tail = NULL;
	pthread_cond_broadcast(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);
	while (waiting) {
		struct ready *next = waiting->next;
		waiting->run->job->state = JOB_QUEUED;
		post_outcome(pool, waiting->run);
		run_table_remove(pool->runs, waiting->run);
		free(waiting);
		waiting = next;
	}
	run_table_stop_all(pool->runs, RUN_STOP_SHUTDOWN);
	for (int i = 0; i < pool->started_workers; i++)
		pthread_join(pool->workers[i], NULL);
	pool->started_workers = 0;
}

void pool_free(struct pool *pool)
{
	if (!pool)
		return;
	pthread_cond_destroy(&pool->work_cv);
	pthread_cond_destroy(&pool->dispatch_cv);
	pthread_mutex_destroy(&pool->mu);
	free(pool->workers);
	free(pool);
}
