/* The dispatcher and the workers.
 *
 * DESIGN. The dispatcher keeps every worker busy without polling the
 * database: it claims only when there is room (a worker slot free, or the
 * claimed-ahead buffer below half its depth) *and* new work may exist (a
 * submission, a requeue, or the last claim came back full). The claim goes
 * through the store writer like any write, so it shares group commits with
 * submissions. Claimed jobs enter the run table on the writer thread right
 * after the commit, before the writer applies anything else, so a cancel
 * that follows always finds them; the dispatcher then hands the whole
 * claim to the workers at once (one wake-up per claim, not per job).
 *
 * Claiming ahead. A claim takes up to the free slots plus a buffer
 * (`ahead`), so a worker that ends a short job takes the next at once
 * instead of waiting for a claim to round-trip through a group commit.
 * The buffer's depth follows how long jobs hold a worker: about
 * AHEAD_BUDGET_US of work per worker, at most AHEAD_PER_WORKER jobs each
 * (AHEAD_MAX in all), none while jobs are slow. So a buffered job waits
 * behind at most a few milliseconds of work, and priorities, pauses and
 * queue turns lose at most that much. Buffered jobs are `running` in the
 * database with their attempt counted (docs/decisions.md says why);
 * their started_at is set again when a worker really starts them, and the
 * outcome carries it. A buffered job that is canceled ends at once (its
 * stop hook moves it to `stopped`, which the dispatcher and the workers
 * drain); on shutdown the buffered jobs no idle worker is about to take go
 * back to the queue without spending an attempt.
 *
 * Outcomes are posted to the writer without waiting for their commit: the
 * worker takes its next job at once.
 *
 * Scheduled jobs (delays, retry backoff) need no polling either: every
 * claim reports the earliest run_at still waiting, and the dispatcher
 * sleeps until then unless a submission or a free worker wakes it first.
 *
 * Per-queue limits are applied inside the claim (queue_room), from the
 * counts of jobs of each limited queue that this pool holds, buffered ones
 * included.
 *
 * Queues served by external workers (--external-queue) are never claimed
 * here: the store's claim skips them (external workers lease them).
 *
 * Asynchronous kinds (kind->start) hold a worker only while starting: the
 * attempt then counts in `async` until the kind calls run_finish from its
 * own thread, which concludes it like a worker would.
 *
 * Locking: pool->mu guards the ready and stopped lists, each item's
 * `where`, assigned, nbuffered, async, inflight counts, hold_us, next_due,
 * maybe_work, backlog and stopping. `assigned` counts jobs claimed and not
 * yet finished (buffered + on a worker). Lock order: the run table's and a
 * run's locks before pool->mu (a buffered run's stop hook takes pool->mu). */
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
#define AHEAD_BUDGET_US 5000   /* work buffered per worker, by the mean hold time */
#define AHEAD_PER_WORKER 32
#define AHEAD_MAX 1024

/* Where a claimed job's item is; pool->mu. */
enum ready_where {
	READY_NEW,       /* claimed, not yet on a list */
	READY_BUFFERED,  /* on the ready list */
	READY_STOPPED,   /* canceled or shut down while buffered: on the stopped list */
	READY_TAKEN,     /* a thread took it; its stop hook does nothing */
};

struct ready {
	struct run *run;
	struct pool *pool;
	enum ready_where where;
	bool stop_seen;          /* stopped while READY_NEW */
	struct ready *prev, *next;
};

struct ready_list {
	struct ready *head, *tail;
};

/* One claim's jobs, gathered on the writer thread and handed to the
 * workers in one go by the dispatcher (one wake-up per claim, not per
 * job). */
struct claim_batch {
	struct pool *pool;
	struct ready_list staged;
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
	pthread_cond_t work_cv;       /* ready or stopped has a job, or stopping */
	struct ready_list ready;      /* claimed, waiting for a worker, in start order */
	struct ready_list stopped;    /* taken off ready by a stop: to end unstarted */
	int assigned;
	int nbuffered;           /* on the ready list */
	int async;               /* attempts started by async kinds, not yet finished */
	int64_t hold_us;         /* mean time a job holds a worker (µs); 0: none seen */
	uint64_t claims, claimed; /* claims made and jobs they took, for the stop log */
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

static void list_append(struct ready_list *l, struct ready *item)
{
	item->next = NULL;
	item->prev = l->tail;
	if (l->tail)
		l->tail->next = item;
	else
		l->head = item;
	l->tail = item;
}

static void list_unlink(struct ready_list *l, struct ready *item)
{
	if (item->prev)
		item->prev->next = item->next;
	else
		l->head = item->next;
	if (item->next)
		item->next->prev = item->prev;
	else
		l->tail = item->prev;
	item->prev = item->next = NULL;
}

/* Caller holds mu. How many jobs to claim beyond the free slots. */
static int ahead_depth(struct pool *pool)
{
	if (pool->hold_us <= 0)
		return 0; /* nothing ran yet: no evidence jobs are short */
	int64_t cap = (int64_t)pool->nworkers * AHEAD_PER_WORKER;
	if (cap > AHEAD_MAX)
		cap = AHEAD_MAX;
	int64_t depth = (int64_t)pool->nworkers * AHEAD_BUDGET_US / pool->hold_us;
	return (int)(depth < cap ? depth : cap);
}

/* Caller holds mu. How many jobs a claim may take now. */
static int claim_room(struct pool *pool)
{
	int room = pool->nworkers + ahead_depth(pool) - pool->assigned;
	return room > 0 ? room : 0;
}

/* Caller holds mu. Whether a claim is worth a trip to the writer now: it
 * has room, and a worker has nothing to take or the buffer runs low. */
static bool claim_due(struct pool *pool)
{
	if (pool->maybe_work && claim_room(pool) > 0 &&
	    (pool->assigned < pool->nworkers || pool->nbuffered <= ahead_depth(pool) / 2))
		return true;
	return pool->next_due && pool->next_due <= clock_now_ms();
}

/* Caller holds mu: wakes the dispatcher when it has something to do. */
static void poke_locked(struct pool *pool)
{
	if (pool->stopping)
		pthread_cond_broadcast(&pool->dispatch_cv); /* pool_stop waits on it */
	else if (pool->stopped.head || claim_due(pool))
		pthread_cond_signal(&pool->dispatch_cv);
}

/* A buffered run's stop hook (run->mu held): a canceled or shut-down job
 * that no worker took yet ends without waiting for one. */
static void buffered_stopped(void *arg)
{
	struct ready *item = arg;
	struct pool *pool = item->pool;
	pthread_mutex_lock(&pool->mu);
	if (item->where == READY_BUFFERED) {
		list_unlink(&pool->ready, item);
		pool->nbuffered--;
		list_append(&pool->stopped, item);
		item->where = READY_STOPPED;
		pthread_cond_signal(&pool->work_cv);
		pthread_cond_signal(&pool->dispatch_cv);
	} else if (item->where == READY_NEW) {
		item->stop_seen = true; /* handed over as stopped */
	}
	pthread_mutex_unlock(&pool->mu);
}

/* Caller holds mu: takes the next job to end or run (stopped ones first),
 * or NULL. The item's stop hook is still set: release it with
 * item_release without mu. */
static struct ready *take_locked(struct pool *pool, bool stopped_only, bool *was_stopped)
{
	struct ready *item = pool->stopped.head;
	*was_stopped = item != NULL;
	if (item) {
		list_unlink(&pool->stopped, item);
	} else if (!stopped_only && (item = pool->ready.head)) {
		list_unlink(&pool->ready, item);
		pool->nbuffered--;
	}
	if (item)
		item->where = READY_TAKEN;
	return item;
}

/* Without mu: drops the item's stop hook (after which no hook call can
 * reach it) and frees it; returns its run. */
static struct run *item_release(struct ready *item)
{
	struct run *run = item->run;
	run_set_stop_hook(run, NULL, NULL);
	free(item);
	return run;
}

/* Writer thread, inside the claim: how many more of queue may start. */
static int queue_room(struct store_op *op, const char *queue)
{
	struct pool *pool = ((struct claim_batch *)op->arg)->pool;
	pthread_mutex_lock(&pool->mu);
	struct limited_queue *q = limit_of(pool, queue);
	int room = q ? q->limit - q->inflight : INT_MAX;
	pthread_mutex_unlock(&pool->mu);
	return room > 0 ? room : 0;
}

/* Writer thread, inside the claim: queue's limit, which holds for every
 * node sharing the store. */
static int queue_limit(struct store_op *op, const char *queue)
{
	struct pool *pool = ((struct claim_batch *)op->arg)->pool;
	pthread_mutex_lock(&pool->mu);
	struct limited_queue *q = limit_of(pool, queue);
	int limit = q ? q->limit : INT_MAX;
	pthread_mutex_unlock(&pool->mu);
	return limit;
}

/* Writer thread, after the claim commit: register the run and queue it. */
static void on_claimed(struct store_op *op, struct job *job)
{
	struct claim_batch *batch = op->arg;
	struct pool *pool = batch->pool;
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
	item->pool = pool;
	item->where = READY_NEW;
	item->stop_seen = false;
	run_set_stop_hook(run, buffered_stopped, item);
	list_append(&batch->staged, item); /* the dispatcher waits for the claim */
}

/* Caller holds mu: moves a claim's jobs to the ready list (those stopped
 * meanwhile to the stopped list) and wakes the workers once. */
static void hand_over_locked(struct pool *pool, struct claim_batch *batch)
{
	if (!batch->staged.head)
		return;
	while (batch->staged.head) {
		struct ready *item = batch->staged.head;
		list_unlink(&batch->staged, item);
		struct limited_queue *q = limit_of(pool, item->run->job->queue);
		if (q)
			q->inflight++;
		if (item->stop_seen) {
			list_append(&pool->stopped, item);
			item->where = READY_STOPPED;
		} else {
			list_append(&pool->ready, item);
			item->where = READY_BUFFERED;
			pool->nbuffered++;
		}
	}
	pthread_cond_broadcast(&pool->work_cv);
}

static void end_unstarted(struct pool *pool, struct run *run);

static void *dispatcher_main(void *arg)
{
	struct pool *pool = arg;
	pthread_mutex_lock(&pool->mu);
	while (!pool->stopping) {
		bool was_stopped;
		struct ready *stopped = take_locked(pool, true, &was_stopped);
		if (stopped) {
			pthread_mutex_unlock(&pool->mu);
			end_unstarted(pool, item_release(stopped));
			pthread_mutex_lock(&pool->mu);
			continue;
		}
		if (!claim_due(pool)) {
			if (pool->next_due) {
				int64_t wait = pool->next_due - clock_now_ms();
				clock_cond_wait_until(&pool->dispatch_cv, &pool->mu, clock_mono_ms() + (wait > 0 ? wait : 0));
			} else {
				pthread_cond_wait(&pool->dispatch_cv, &pool->mu);
			}
			continue;
		}
		bool due = pool->next_due && pool->next_due <= clock_now_ms();
		int room = claim_room(pool);
		pool->maybe_work = false;
		/* Reserve the room before the claim: on_claimed runs on the
		 * writer thread and releases what it cannot use. */
		pool->assigned += room;
		pthread_mutex_unlock(&pool->mu);

		struct claim_batch batch = {.pool = pool};
		struct store_op op = {
			.kind = STORE_OP_CLAIM, .arg = &batch,
			.claim = {.max = room, .claimed = on_claimed, .queue_room = queue_room,
			           .queue_limit = queue_limit},
		};
		enum store_rc rc = store_run(pool->store, &op);

		pthread_mutex_lock(&pool->mu);
		hand_over_locked(pool, &batch);
		pool->claims++;
		pool->claimed += (uint64_t)op.claim.nclaimed;
		pool->assigned -= room - op.claim.nclaimed;
		if (rc != STORE_OK) {
			log_warn("claiming jobs failed; will retry on the next submission or completion");
			pool->backlog = true;
			continue;
		}
		pool->next_due = op.claim.next_due;
		/* Jobs may be waiting still: the claim came back full, a queue
		 * hit its limit, or due jobs were promoted with no room. */
		pool->backlog = (room > 0 && op.claim.nclaimed == room) || op.claim.limited || (due && room == 0);
		pool->maybe_work |= room > 0 && op.claim.nclaimed == room;
	}
	pthread_mutex_unlock(&pool->mu);
	return NULL;
}

/* A failed attempt: retry after the backoff while attempts are left and
 * the error allows it, else the job has failed. */
static void fail_attempt(struct run *run, bool retryable, int64_t now)
{
	pthread_mutex_lock(&run->mu);
	int64_t retry_after = run->retry_after_ms;
	pthread_mutex_unlock(&run->mu);
	store_attempt_failed(run->job, retryable, now, retry_after);
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

static void post_outcome(struct pool *pool, struct job *job, int64_t throttled_until);
static void job_done(struct pool *pool, bool was_async);

/* Concludes an attempt, records it and frees its run. */
static void end_attempt(struct pool *pool, struct run *run, enum run_outcome outcome,
                        cJSON *result, char *error, bool was_async)
{
	conclude(run, outcome, result, error);
	log_debug("job %s attempt %d: %s", run->job->id, run->job->attempts, job_state_name(run->job->state));
	int64_t throttled = run_throttled_until(run);
	post_outcome(pool, run_table_take(pool->runs, run), throttled);
	job_done(pool, was_async);
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
			job_done(pool, false); /* the worker is free; the run goes on */
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

/* Ends a claimed job no worker started (canceled or shut down while
 * buffered): its started_at stays the claim's. */
static void end_unstarted(struct pool *pool, struct run *run)
{
	end_attempt(pool, run, RUN_STOPPED, NULL, NULL, false);
}

static void queue_share_done(struct pool *pool, const char *queue);

/* Writer thread, after the outcome's commit: only now is the job no
 * longer running in the store, so only now may a claim use its share of
 * the queue's limit. (Freed before, a claim posted ahead of this finish
 * could take the share in an earlier group: one job over the limit, seen
 * by any reader between the two commits.) */
static void finish_done(struct store_op *op)
{
	if (op->rc != STORE_OK)
		log_error("could not record the outcome of job %s; it will be requeued at the next start "
		          "(on PostgreSQL: within seconds, by this node)",
		          op->finish.job->id);
	queue_share_done(op->arg, op->finish.job->queue);
	job_free(op->finish.job);
	free(op);
}

/* Hands the job, with its outcome, to the writer (takes job). */
static void post_outcome(struct pool *pool, struct job *job, int64_t throttled_until)
{
	struct store_op *op = calloc(1, sizeof *op);
	if (!op) {
		log_error("out of memory recording job %s; it will be requeued at the next start", job->id);
		queue_share_done(pool, job->queue);
		job_free(job);
		return;
	}
	op->kind = STORE_OP_FINISH;
	op->finish.job = job;
	op->finish.throttled_until = throttled_until;
	op->done = finish_done;
	op->arg = pool;
	store_post(pool->store, op);
}

/* Frees what a claimed job held on the pool's side. A worker's slot is
 * freed when its attempt ends or an async kind takes it over; an async
 * attempt ending frees its async count (was_async). The queue's share is
 * freed by queue_share_done once the outcome is committed. */
static void job_done(struct pool *pool, bool was_async)
{
	pthread_mutex_lock(&pool->mu);
	if (was_async)
		pool->async--;
	else
		pool->assigned--;
	if (pool->backlog)
		pool->maybe_work = true;
	poke_locked(pool);
	pthread_mutex_unlock(&pool->mu);
}

/* A job of queue no longer runs in the store: its share of the queue's
 * limit is free. */
static void queue_share_done(struct pool *pool, const char *queue)
{
	pthread_mutex_lock(&pool->mu);
	struct limited_queue *q = limit_of(pool, queue);
	if (q) {
		q->inflight--;
		if (pool->backlog)
			pool->maybe_work = true;
		poke_locked(pool);
	}
	pthread_mutex_unlock(&pool->mu);
}

/* Caller holds mu: folds one job's hold time into the mean (1/8 weight). */
static void note_hold_locked(struct pool *pool, int64_t us)
{
	if (us < 1)
		us = 1;
	pool->hold_us = pool->hold_us ? pool->hold_us + (us - pool->hold_us) / 8 : us;
	if (pool->hold_us < 1)
		pool->hold_us = 1;
}

static void *worker_main(void *arg)
{
	struct pool *pool = arg;
	int64_t held_us = -1; /* the last job's hold time, to fold in under mu */
	for (;;) {
		pthread_mutex_lock(&pool->mu);
		if (held_us >= 0)
			note_hold_locked(pool, held_us);
		/* Once stopping, only the jobs pool_stop left for idle workers
		 * are on the ready list. */
		while (!pool->ready.head && !pool->stopped.head && !pool->stopping)
			pthread_cond_wait(&pool->work_cv, &pool->mu);
		bool was_stopped;
		struct ready *item = take_locked(pool, false, &was_stopped);
		if (item && !pool->stopping && pool->maybe_work && claim_due(pool))
			pthread_cond_signal(&pool->dispatch_cv); /* the buffer runs low */
		pthread_mutex_unlock(&pool->mu);
		held_us = -1;
		if (!item)
			break;
		struct run *run = item_release(item);
		if (was_stopped) {
			end_unstarted(pool, run);
			continue;
		}
		int64_t t0 = clock_mono_us();
		run->job->started_at = clock_now_ms(); /* the real start; the outcome carries it */
		log_debug("job %s (%s) attempt %d started", run->job->id, run->job->type, run->job->attempts);
		run_attempt(pool, run);
		held_us = clock_mono_us() - t0;
	}
	return NULL;
}

void pool_notify(struct pool *pool)
{
	pthread_mutex_lock(&pool->mu);
	pool->maybe_work = true;
	if (claim_due(pool))
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
	log_debug("dispatcher: %llu claims took %llu jobs", (unsigned long long)pool->claims,
	         (unsigned long long)pool->claimed);

	/* No claim is in flight now. The jobs idle workers are about to take
	 * count as started and get the grace period; the rest of the buffer
	 * goes back to the queue at once, without spending an attempt. */
	pthread_mutex_lock(&pool->mu);
	int keep = pool->nworkers - (pool->assigned - pool->nbuffered);
	struct ready *back = pool->ready.head;
	for (int i = 0; back && i < keep; i++)
		back = back->next;
	struct ready_list put_back = {NULL, NULL};
	while (back) {
		struct ready *next = back->next;
		list_unlink(&pool->ready, back);
		pool->nbuffered--;
		back->where = READY_TAKEN;
		list_append(&put_back, back);
		back = next;
	}
	pthread_cond_broadcast(&pool->work_cv);
	pthread_mutex_unlock(&pool->mu);
	int nback = 0;
	while (put_back.head) {
		struct ready *item = put_back.head;
		list_unlink(&put_back, item);
		struct run *run = item_release(item);
		char id[UUID_LEN + 1];
		memcpy(id, run->job->id, sizeof id);
		run_table_stop(pool->runs, id, RUN_STOP_SHUTDOWN);
		end_unstarted(pool, run);
		nback++;
	}
	if (nback > 0)
		log_info("shutdown: putting %d claimed job(s) no worker started back in the queue", nback);

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
