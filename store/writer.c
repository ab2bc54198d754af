/* The store writer, shared by every backend: the op queue, group commit,
 * each op all or nothing, the fair claim, hooks in commit order, stats.
 *
 * DESIGN. One writer thread owns the backend's only write connection.
 * Callers post ops to a mutex-guarded queue; the writer takes everything
 * queued (up to WRITER_BATCH ops), applies it inside one transaction and
 * commits: with a durable commit that is one fsync for the whole group,
 * which is what makes durable submits fast under concurrency. Only after
 * the commit returns does it complete the ops (done(), hooks), so a 201 is
 * never sent for a job that is not on disk. Batches grow with load on
 * their own; no linger timer is needed. Ops are never applied on their
 * poster's thread, even when the writer is idle: an HTTP thread serves
 * many connections, and an fsync there would stall them all.
 *
 * Each op runs in its own scope (a savepoint): an op that fails halfway is
 * undone alone and the rest of the group commits. If the transaction
 * itself fails (disk full, I/O error), every op of the group fails.
 * Readiness probes commit in a group of their own after the rest: their
 * write must never be what fails real work on a nearly full disk.
 *
 * The claim is built here from two backend primitives, "which queues have
 * runnable jobs" and "claim n from queue q": claim_max is shared among the
 * ready queues round-robin, starting after the queue the last claim served
 * last, so no queue starves however many there are.
 *
 * Retention: the writer asks the backend to delete expired jobs in short
 * transactions of their own, between groups, sleeping until the next
 * expiry when idle.
 *
 * Leases (external workers): a lease op is a claim from the named external
 * queues (a claim skips every external queue), each job then marked with a
 * lease id and expiry. The writer also sleeps until the earliest lease
 * expiry; a lease that ran out ends its attempt as `interrupted` through
 * an ordinary FINISH op fenced by that lease id, so retries, attempts,
 * batches, callbacks and hooks are the finish's own. */
#include "store/backend.h"

#include <assert.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/schedule.h"
#include "core/uuid.h"

#define WRITER_BATCH 1024
#define PROBE_REUSE_MS 1000 /* a probe that committed this recently answers for later ones */
#define SWEEP_GRACE_MS 1000  /* a job outlives its expiry by this much */
#define EXPIRE_BATCH 64     /* expired leases ended in one group */
#define EXPIRE_ROUNDS 16    /* groups of them before the writer looks at its queue again */
#define FIRE_BATCH 16       /* schedules fired in one group */

struct ready_queue {
	char name[JOB_NAME_MAX + 1];
	int room;
	bool rated;                       /* rate limited: rate holds its bucket as of the claim */
	bool capped;                      /* room is what its tokens allow, less than else */
	struct store_rate rate;
};

/* A node's count of claims that found a rate-limited queue out of tokens. */
struct rate_count {
	char queue[JOB_NAME_MAX + 1];
	uint64_t n;
};

struct store {
	const struct store_backend *be;
	void *impl;                       /* the backend's state */
	struct store_hooks hooks;

	pthread_t writer;
	bool writer_started;
	pthread_mutex_t mu;               /* guards head, tail, stopping */
	pthread_cond_t cv;
	struct store_op *head, *tail;
	bool stopping;

	int64_t next_sweep;               /* writer only: earliest expires_at, unix ms */
	int64_t next_lease;               /* writer only: earliest lease expiry, unix ms */
	int64_t next_fire;                /* writer only: earliest schedule fire, unix ms */
	const struct job_defaults *job_defaults; /* fired jobs are made with these */
	bool (*external)(void *arg, const char *queue);
	void *external_arg;
	char last_served[JOB_NAME_MAX + 1]; /* writer only: the claim goes on after this queue */
	struct ready_queue *ready;        /* writer only: scratch for claims */
	size_t nready, ready_cap;
	struct store_op *claiming;        /* writer only: the claim asking queue_room */
	int64_t probe_ok_at;              /* writer only: monotonic ms of the last probe that
	                                   * wrote and committed; 0 after any failed write */
	bool probe_wrote;                 /* writer only: this group's probe wrote */

	char node_id[UUID_LEN + 1];       /* this node, when the backend keeps none */
	int64_t started_at;               /* unix ms */
	struct store_notice notice;       /* writer only: the group's, for the backend */

	/* Rate limits: the queues that have one, as last read (refreshed
	 * after a local change, and each RATE_RECHECK_MS when other nodes
	 * may change them); the rate of the queue add_ready is looking at;
	 * the earliest next token of a queue a claim left waiting. */
	char (*rated)[JOB_NAME_MAX + 1];  /* writer only */
	int nrated, rated_cap;            /* writer only */
	int64_t rated_at;                 /* writer only: monotonic ms of the read, 0: stale */
	struct ready_queue rate_seen;     /* writer only */
	int64_t rate_next;                /* writer only: unix ms, 0: none */
	bool rate_checked;                /* writer only: this claim looked at the names */
	pthread_mutex_t rate_mu;          /* guards limited, nlimited */
	struct rate_count *limited;
	int nlimited;
	const struct store_deps_ops *deps; /* the backend's dependency statements */
	int64_t next_settle;              /* writer only: unix ms of the next look for stranded parents */

	atomic_uint_fast64_t commits;     /* written by the writer only */
	atomic_uint_fast64_t synced;      /* of them, durable commits */
	atomic_uint_fast64_t committed_ops;
};

static const struct store_backend *const backends[] = {&store_sqlite_backend, &store_pg_backend};

static const char *const op_names[STORE_OP_KINDS] = {
	[STORE_OP_SUBMIT] = "submit", [STORE_OP_BATCH] = "batch", [STORE_OP_CALLBACK] = "callback",
	[STORE_OP_CLAIM] = "claim", [STORE_OP_FINISH] = "finish", [STORE_OP_CANCEL] = "cancel",
	[STORE_OP_RETRY] = "retry", [STORE_OP_DELETE] = "delete", [STORE_OP_PAUSE] = "pause",
	[STORE_OP_PING] = "ping", [STORE_OP_PROBE] = "probe", [STORE_OP_LEASE] = "lease",
	[STORE_OP_HEARTBEAT] = "heartbeat", [STORE_OP_RATE] = "rate", [STORE_OP_SCHEDULE] = "schedule", [STORE_OP_FIRE] = "fire",
};

/* ---- the fault seam ---------------------------------------------------- */

static atomic_int fault_kind = -1;    /* armed kind, -1: none */
static atomic_int fault_step;
static atomic_bool fault_fired;
static _Thread_local int fault_current = -1; /* this writer: the kind being applied */
static _Thread_local int fault_count;       /* this writer: steps of the current op */

void store_fault_arm(enum store_op_kind kind, int step)
{
	atomic_store(&fault_fired, false);
	atomic_store(&fault_step, step);
	atomic_store(&fault_kind, (int)kind);
}

bool store_fault_disarm(void)
{
	atomic_store(&fault_kind, -1);
	return atomic_load(&fault_fired);
}

bool store_fault_hit(void)
{
	if (fault_current < 0 || atomic_load(&fault_kind) != fault_current)
		return false;
	if (++fault_count != atomic_load(&fault_step))
		return false;
	atomic_store(&fault_kind, -1);
	atomic_store(&fault_fired, true);
	return true;
}

/* ---- the claim --------------------------------------------------------- */

/* Claimed (and promoted) jobs wait here until the COMMIT decides. */
struct claim_scratch {
	struct job **jobs;
	struct store_leased *leased;      /* a lease's: jobs[i]'s lease */
	int *turn;                        /* jobs[i] came from ready queue turn[i] */
	int n;
	struct store_promoted *promoted;
	int npromoted, promoted_cap;
};

static void claim_scratch_free(struct claim_scratch *cs)
{
	for (int i = 0; i < cs->n; i++)
		job_free(cs->jobs[i]);
	free(cs->jobs);
	free(cs->leased);
	free(cs->turn);
	free(cs->promoted);
	memset(cs, 0, sizeof *cs);
}

/* ---- rate limits --------------------------------------------------------

 * A rate-limited queue's bucket (core/bucket.h) lives in the database.
 * A claim or lease that finds the queue ready takes the queue's lock
 * (lock_queue: the buckets are global across nodes), reads the bucket,
 * lets the queue start at most its whole tokens, and writes back what it
 * took, all in the claim's transaction. A queue out of tokens is skipped
 * without spending anything; the time its next token is due goes back in
 * claim.next_due (lease.next_token), so the pool (or a waiting lease)
 * wakes then and not before. */

/* A node that believes itself alone reads the limits again this often. */
#define RATE_RECHECK_MS 1000

static int rated_add(void *arg, const char *queue)
{
	struct store *st = arg;
	if (st->nrated == st->rated_cap) {
		int cap = st->rated_cap ? st->rated_cap * 2 : 8;
		char (*grown)[JOB_NAME_MAX + 1] = realloc(st->rated, (size_t)cap * sizeof *grown);
		if (!grown)
			return -1;
		st->rated = grown;
		st->rated_cap = cap;
	}
	snprintf(st->rated[st->nrated++], sizeof st->rated[0], "%s", queue);
	return 0;
}

/* Reads which queues have a limit when the last read may be out of date:
 * after a local change; with other nodes alive, at every claim that
 * found ready queues (one small read: a limit set on any node holds on
 * every node from its commit on); alone, each RATE_RECHECK_MS (a node
 * that joined since the last tick). */
static int rated_refresh(struct store *st)
{
	if (!st->be->rate_names)
		return 0;
	int64_t mono = clock_mono_ms();
	bool shared = st->be->node_id && st->be->alone && !st->be->alone(st->impl);
	if (st->rated_at && !shared && (!st->be->node_id || mono - st->rated_at < RATE_RECHECK_MS))
		return 0;
	st->nrated = 0;
	int rc = st->be->rate_names(st->impl, rated_add, st);
	st->rated_at = rc == 0 ? (mono ? mono : 1) : 0;
	return rc;
}

static bool rated(const struct store *st, const char *queue)
{
	for (int i = 0; i < st->nrated; i++)
		if (strcmp(st->rated[i], queue) == 0)
			return true;
	return false;
}

static void rate_next_at(struct store *st, int64_t at)
{
	if (at && (!st->rate_next || at < st->rate_next))
		st->rate_next = at;
}

static void rate_count_limited(struct store *st, const char *queue)
{
	pthread_mutex_lock(&st->rate_mu);
	int i = 0;
	while (i < st->nlimited && strcmp(st->limited[i].queue, queue) != 0)
		i++;
	if (i == st->nlimited) {
		struct rate_count *grown = realloc(st->limited, (size_t)(i + 1) * sizeof *grown);
		if (grown) {
			st->limited = grown;
			snprintf(grown[i].queue, sizeof grown[i].queue, "%s", queue);
			grown[i].n = 0;
			st->nlimited++;
		}
	}
	if (i < st->nlimited)
		st->limited[i].n++;
	pthread_mutex_unlock(&st->rate_mu);
}

uint64_t store_rate_limited(struct store *st, const char *queue)
{
	uint64_t n = 0;
	pthread_mutex_lock(&st->rate_mu);
	for (int i = 0; i < st->nlimited; i++)
		if (strcmp(st->limited[i].queue, queue) == 0)
			n = st->limited[i].n;
	pthread_mutex_unlock(&st->rate_mu);
	return n;
}

/* Locks queue and reads its rate into *out (*found false: none). */
static int rate_locked_load(struct store *st, const char *queue, struct store_rate *out, bool *found)
{
	*found = false;
	if (st->be->lock_queue && st->be->lock_queue(st->impl, queue) != 0)
		return -1;
	return st->be->rate_load(st->impl, queue, out, found);
}

/* add_ready's last word on a queue with room: at most its whole tokens
 * when it is rate limited (kept in st->rate_seen for rate_keep); 0 when
 * it has none (counted, its next token noted); -1 on a read failure. */
static int rate_room(struct store *st, const char *queue, int room)
{
	struct ready_queue *q = &st->rate_seen;
	q->rated = q->capped = false;
	if (!st->rate_checked) { /* the first ready queue of the claim */
		st->rate_checked = true;
		if (rated_refresh(st) != 0)
			return -1;
	}
	if (!rated(st, queue))
		return room;
	bool found = false;
	if (rate_locked_load(st, queue, &q->rate, &found) != 0)
		return -1;
	if (!found)
		return room;
	int64_t now = clock_now_ms();
	bucket_refill(&q->rate.bucket, now);
	int whole = bucket_whole(&q->rate.bucket, now);
	if (whole == 0) {
		rate_count_limited(st, queue);
		rate_next_at(st, bucket_next_at(&q->rate.bucket, now));
		return 0;
	}
	q->rated = true;
	q->capped = whole < room;
	return q->capped ? whole : room;
}

/* The ready queue add_ready just kept takes what rate_room found. */
static void rate_keep(struct store *st, struct ready_queue *r)
{
	r->rated = st->rate_seen.rated;
	r->capped = st->rate_seen.capped;
	if (r->rated)
		r->rate = st->rate_seen.rate;
}

/* After the claim: each rate-limited queue's bucket gives the tokens its
 * started jobs took, written back; one left empty notes its next token. */
static int rate_settle(struct store *st, const struct claim_scratch *cs, int nq)
{
	int64_t now = clock_now_ms();
	for (int k = 0; k < nq; k++) {
		struct ready_queue *q = &st->ready[k];
		if (!q->rated)
			continue;
		int got = 0;
		for (int i = 0; i < cs->n; i++)
			got += cs->turn[i] == k;
		if (got == 0)
			continue;
		bucket_take(&q->rate.bucket, now, got);
		int rc = st->be->rate_save(st->impl, &q->rate);
		if (rc != 0)
			return rc;
		if (bucket_whole(&q->rate.bucket, now) == 0)
			rate_next_at(st, bucket_next_at(&q->rate.bucket, now));
	}
	return 0;
}

/* STORE_OP_RATE: set (keeping the bucket's tokens and pause) or remove. */
static int apply_rate(struct store *st, struct store_op *op, struct store_effects *fx)
{
	struct store_op_rate *r = &op->rate;
	struct store_rate old;
	int rc = rate_locked_load(st, r->rate.queue, &old, &r->found);
	if (rc != 0)
		return rc;
	st->rated_at = 0; /* read the names again at the next claim */
	fx->runnable = true; /* jobs held back may start now */
	if (r->remove) {
		bool unused = false;
		return r->found ? st->be->rate_delete(st->impl, r->rate.queue, &unused) : 0;
	}
	int64_t now = clock_now_ms();
	struct bucket *b = &r->rate.bucket;
	double limit = b->limit, burst = b->burst;
	int64_t period_ms = b->period_ms;
	bucket_init(b, limit, period_ms, burst, now);
	if (r->found) {
		bucket_refill(&old.bucket, now);
		b->tokens = old.bucket.tokens < burst ? old.bucket.tokens : burst;
		b->refilled_at = old.bucket.refilled_at;
		b->paused_until = old.bucket.paused_until;
	}
	return st->be->rate_save(st->impl, &r->rate);
}

/* A FINISH whose attempt met a 429 with Retry-After: when the queue's
 * rate opts in, its bucket pauses until then and the attempt is given
 * back (the job scheduled at that time), before the finish applies. */
static int rate_throttle(struct store *st, struct store_op *op)
{
	struct job *job = op->finish.job;
	int64_t until = op->finish.throttled_until, now = clock_now_ms();
	if (!st->be->rate_load || until <= now || op->finish.lease.release ||
	    (job->state != JOB_SCHEDULED && job->state != JOB_FAILED))
		return 0;
	struct store_rate rate;
	bool found = false;
	int rc = rate_locked_load(st, job->queue, &rate, &found);
	if (rc != 0 || !found || !rate.retry_after)
		return rc;
	bucket_refill(&rate.bucket, now);
	bucket_pause(&rate.bucket, now, until);
	if ((rc = st->be->rate_save(st->impl, &rate)) != 0)
		return rc;
	job->state = JOB_SCHEDULED;
	job->run_at = until;
	op->finish.lease.release = true;
	return 0;
}

enum store_rc store_get_rate(struct store *st, const char *queue, struct store_rate *out, bool *found)
{
	*found = false;
	return st->be->get_rate ? st->be->get_rate(st->impl, queue, out, found) : STORE_OK;
}

enum store_rc store_list_rates(struct store *st, struct store_rate **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return st->be->list_rates ? st->be->list_rates(st->impl, out, n) : STORE_OK;
}

/* ---- the claim, continued ---------------------------------------------- */

/* queue's limit less its jobs running on any node, counted under the
 * queue's lock (held to the group's commit, so the next node's claim
 * counts what this one starts); -1 on a read failure. */
static int limit_left(struct store *st, const char *queue, int limit)
{
	int64_t running = 0;
	if ((st->be->lock_queue && st->be->lock_queue(st->impl, queue) != 0) ||
	    st->be->running(st->impl, queue, &running) != 0)
		return -1;
	return running < limit ? limit - (int)running : 0;
}

/* How many jobs of queue a lease may take: none unless the lease names
 * it, else its limit less the jobs of it running; -1 on a read failure. */
static int lease_room(struct store *st, struct store_op *op, const char *queue)
{
	const struct store_op_lease *l = &op->lease;
	int k = 0;
	while (k < l->nqueues && strcmp(l->queues[k], queue) != 0)
		k++;
	if (k == l->nqueues)
		return 0;
	int limit = l->queue_limit ? l->queue_limit(op, queue) : INT_MAX;
	return limit == INT_MAX ? INT_MAX : limit_left(st, queue, limit);
}

/* A claim's room in a limited queue when several nodes share the store:
 * at most room (the pool's own) and what limit_left() leaves. */
static int cluster_room(struct store *st, struct store_op *op, const char *queue, int room)
{
	int limit = op->claim.queue_limit ? op->claim.queue_limit(op, queue) : INT_MAX;
	if (room == 0 || limit == INT_MAX || !st->be->lock_queue)
		return room;
	int left = limit_left(st, queue, limit);
	return left < room ? left : room;
}

/* ready_queues' each(): keeps queues with room, in turn order. A claim
 * skips external queues; a lease takes only those it names. */
static int add_ready(void *arg, const char *queue)
{
	struct store *st = arg;
	struct store_op *op = st->claiming;
	int room;
	if (op->kind == STORE_OP_LEASE) {
		if ((room = lease_room(st, op, queue)) < 0)
			return -1;
		if (room == 0)
			return 0;
	} else if (st->external && st->external(st->external_arg, queue)) {
		return 0;
	} else if ((room = op->claim.queue_room ? op->claim.queue_room(op, queue) : INT_MAX) == 0 ||
	           (room = cluster_room(st, op, queue, room)) <= 0) {
		if (room < 0)
			return -1;
		op->claim.limited = true;
		return 0;
	}
	if ((room = rate_room(st, queue, room)) <= 0)
		return room < 0 ? -1 : 0;
	if (st->nready == st->ready_cap) {
		size_t cap = st->ready_cap ? st->ready_cap * 2 : 16;
		struct ready_queue *grown = realloc(st->ready, cap * sizeof *grown);
		if (!grown)
			return -1;
		st->ready = grown;
		st->ready_cap = cap;
	}
	struct ready_queue *r = &st->ready[st->nready++];
	snprintf(r->name, sizeof r->name, "%s", queue);
	r->room = room;
	rate_keep(st, r);
	return 0;
}

struct turn_key {
	int64_t key;
	struct job *job;
};

static int turn_key_order(const void *a, const void *b)
{
	int64_t x = ((const struct turn_key *)a)->key, y = ((const struct turn_key *)b)->key;
	return (x > y) - (x < y);
}

/* Orders the claimed jobs one queue at a time, in the queues' turn order
 * (the first of each queue, then the second of each, ...), each queue's
 * jobs keeping their run order: a worker that takes them in this order
 * serves the queues round-robin however many one claim carries. */
static int interleave(struct claim_scratch *cs, int nq)
{
	if (nq < 2 || cs->n < 2)
		return 0;
	int *rank = calloc((size_t)nq, sizeof *rank);
	struct turn_key *keys = calloc((size_t)cs->n, sizeof *keys);
	if (!rank || !keys) {
		free(rank);
		free(keys);
		return -1;
	}
	for (int i = 0; i < cs->n; i++) {
		keys[i].key = (int64_t)rank[cs->turn[i]]++ * nq + cs->turn[i];
		keys[i].job = cs->jobs[i];
	}
	qsort(keys, (size_t)cs->n, sizeof *keys, turn_key_order);
	for (int i = 0; i < cs->n; i++)
		cs->jobs[i] = keys[i].job;
	free(rank);
	free(keys);
	return 0;
}

/* A fresh lease id: 32 hex digits of a UUIDv7 (time and random bits). */
static void new_lease_id(char out[STORE_LEASE_ID_LEN + 1])
{
	char uuid[UUID_LEN + 1];
	uuid_v7(uuid);
	int k = 0;
	for (int i = 0; uuid[i] && k < STORE_LEASE_ID_LEN; i++)
		if (uuid[i] != '-')
			out[k++] = uuid[i];
	out[k] = '\0';
}

/* A lease's claimed jobs get their lease ids and expiry. */
static int mark_leases(struct store *st, struct store_op *op, struct claim_scratch *cs, int64_t now,
                       struct store_effects *fx)
{
	if (cs->n == 0)
		return 0;
	if (!(cs->leased = calloc((size_t)cs->n, sizeof *cs->leased)))
		return -1;
	int64_t expires_at = now + op->lease.lease_ms;
	for (int i = 0; i < cs->n; i++) {
		new_lease_id(cs->leased[i].lease_id);
		cs->leased[i].expires_at = expires_at;
		int rc = st->be->lease_mark(st->impl, cs->jobs[i], cs->leased[i].lease_id, expires_at,
		                            op->lease.lease_ms);
		if (rc != 0)
			return rc;
	}
	fx->lease_expires_at = expires_at;
	return 0;
}

/* Promote, then share claim.max (or lease.max) among ready queues
 * round-robin. */
static int apply_claim(struct store *st, struct store_op *op, struct claim_scratch *cs, struct store_effects *fx)
{
	const struct store_backend *be = st->be;
	bool lease = op->kind == STORE_OP_LEASE;
	struct store_op_claim unused = {.max = 0};
	struct store_op_claim *c = lease ? &unused : &op->claim;
	int max = lease ? op->lease.max : c->max;
	int64_t now = clock_now_ms();
	int rc = be->promote(st->impl, now, &cs->promoted, &cs->npromoted, &cs->promoted_cap);
	if (rc != 0)
		return rc;
	st->rate_next = 0;
	st->rate_checked = false;
	if (now >= st->next_settle && st->deps) {
		/* Jobs ended outside the writer (recovery, a dead node's
		 * rescue) have not told their children yet. */
		st->next_settle = now + DEPS_SETTLE_MS;
		if ((rc = store_deps_settle(st->deps, st->impl, &fx->cascade)) != 0)
			return rc;
	}
	if (max > 0) {
		if (!(cs->jobs = calloc((size_t)max, sizeof *cs->jobs)) ||
		    !(cs->turn = calloc((size_t)max, sizeof *cs->turn)))
			return -1;
		st->nready = 0;
		st->claiming = op;
		rc = be->ready_queues(st->impl, st->last_served, add_ready, st);
		st->claiming = NULL;
		if (rc != 0)
			return rc;
	}
	int nq = max > 0 ? (int)st->nready : 0;
	bool progress = true;
	while (cs->n < max && progress) {
		progress = false;
		int left = max - cs->n;
		int share = left / (nq ? nq : 1) > 0 ? left / (nq ? nq : 1) : 1;
		for (int k = 0; k < nq && cs->n < max; k++) {
			struct ready_queue *q = &st->ready[k];
			int want = share < q->room ? share : q->room;
			if (want > max - cs->n)
				want = max - cs->n;
			if (want <= 0)
				continue;
			int before = cs->n;
			if ((rc = be->claim(st->impl, q->name, want, now, cs->jobs, &cs->n)) != 0)
				return rc;
			int got = cs->n - before;
			for (int j = before; j < cs->n; j++)
				cs->turn[j] = k;
			if (got > 0)
				memcpy(st->last_served, q->name, sizeof st->last_served);
			if (q->room != INT_MAX)
				q->room -= got;
			if (got == want)
				progress = true;   /* this queue may have more */
			else
				q->room = 0;       /* drained */
			if (q->room == 0 && got == want && !q->capped)
				c->limited = true;
		}
	}
	/* Tokens are counted from the turns, before interleave reorders. */
	if ((rc = rate_settle(st, cs, nq)) != 0)
		return rc;
	if (interleave(cs, nq) != 0)
		return -1;
	if (lease) {
		op->lease.next_token = st->rate_next;
		return mark_leases(st, op, cs, now, fx);
	}
	if ((rc = be->next_due(st->impl, &c->next_due)) != 0)
		return rc;
	if (st->rate_next && (!c->next_due || st->rate_next < c->next_due))
		c->next_due = st->rate_next;
	return 0;
}

/* ---- the group --------------------------------------------------------- */

/* Per-op outcome of the group, kept until the COMMIT decides. */
struct applied {
	struct store_effects fx;
	struct claim_scratch claim;
};

/* Where an op's changes go: the transition hook after the commit, or the
 * group's notice before it. */
struct reporter {
	void (*emit)(void *ctx, const struct job_change *c);
	void *ctx;
};

static void report(const struct reporter *to, const char *id, const char *queue, const char *type,
                   enum job_state state, int attempts)
{
	struct job_change c = {.id = id, .queue = queue, .type = type, .state = state, .attempts = attempts};
	to->emit(to->ctx, &c);
}

static void report_job(const struct reporter *to, const struct job *job, enum job_state state, int attempts,
                       bool created)
{
	struct job_change c = {.id = job->id, .queue = job->queue, .type = job->type, .state = state,
	                       .attempts = attempts, .created = created, .job = job};
	to->emit(to->ctx, &c);
}

/* The children an op changed through dependencies, after its own change. */
static void report_cascade(const struct reporter *to, const struct store_cascade *cx)
{
	for (int i = 0; i < cx->n; i++)
		if (cx->items[i].change)
			report(to, cx->items[i].id, cx->items[i].queue, cx->items[i].type, cx->items[i].state,
			       cx->items[i].attempts);
}

/* Reports the state changes an op made, in order. */
static void report_changes(const struct reporter *st, struct store_op *op, const struct applied *ap)
{
	if (op->rc != STORE_OK)
		return;
	switch (op->kind) {
	case STORE_OP_SUBMIT:
		if (!op->submit.replayed)
			report_job(st, op->submit.job, op->submit.job->state, 0, true);
		break;
	case STORE_OP_BATCH:
		for (int j = 0; !op->batch.replayed && j < op->batch.njobs; j++)
			report_job(st, op->batch.jobs[j], op->batch.jobs[j]->state, 0, true);
		break;
	case STORE_OP_CLAIM:
	case STORE_OP_LEASE:
		for (int j = 0; j < ap->claim.npromoted; j++) {
			const struct store_promoted *p = &ap->claim.promoted[j];
			report(st, p->id, p->queue, p->type, JOB_QUEUED, p->attempts);
		}
		for (int j = 0; j < ap->claim.n; j++)
			report_job(st, ap->claim.jobs[j], JOB_RUNNING, ap->claim.jobs[j]->attempts, false);
		break;
	case STORE_OP_FINISH: {
		const struct job *job = op->finish.job;
		bool back = job->state == JOB_QUEUED || op->finish.lease.release;
		if (ap->fx.changed)
			report_job(st, job, job->state, back ? job->attempts - 1 : job->attempts, false);
		break;
	}
	case STORE_OP_CANCEL:
		if (ap->fx.finished)
			report(st, op->cancel.id, op->cancel.queue, op->cancel.type, JOB_CANCELED, 0);
		break;
	case STORE_OP_RETRY:
		if (op->retry.job)
			report_job(st, op->retry.job, op->retry.job->state, op->retry.job->attempts, false);
		break;
	case STORE_OP_FIRE:
		for (int j = 0; j < op->fire.njobs; j++)
			if (op->fire.jobs[j]->seq != 0)
				report_job(st, op->fire.jobs[j], op->fire.jobs[j]->state, 0, true);
		break;
	default:
		break;
	}
	report_cascade(st, &ap->fx.cascade);
}

/* The batch an op's job belongs to, for hooks.batch_done. */
static const char *batch_of(struct store_op *op)
{
	return op->kind == STORE_OP_FINISH ? op->finish.batch_id : store_op_target(op)->batch_id;
}

static void emit_transition(void *ctx, const struct job_change *c)
{
	const struct store *st = ctx;
	st->hooks.transition(st->hooks.arg, c);
}

static void notice_add(struct store_notice *nt, char tag, const char *id)
{
	if (nt->n == STORE_NOTICE_ITEMS) {
		nt->overflow = true;
		return;
	}
	nt->items[nt->n].tag = tag;
	snprintf(nt->items[nt->n].id, sizeof nt->items[nt->n].id, "%s", id);
	nt->n++;
}

static void emit_notice(void *ctx, const struct job_change *c)
{
	notice_add(ctx, 'j', c->id);
}

/* What the group changed, for the other nodes: given to the backend
 * before the COMMIT, which sends it only if the group commits. */
static void notice_group(struct store *st, struct store_op **ops, struct applied *ap, int n)
{
	struct store_notice *nt = &st->notice;
	memset(nt, 0, offsetof(struct store_notice, items));
	struct reporter to = {.emit = emit_notice, .ctx = nt};
	for (int i = 0; i < n; i++) {
		struct store_op *op = ops[i];
		if (op->rc != STORE_OK)
			continue;
		report_changes(&to, op, &ap[i]);
		if (ap[i].fx.runnable || (op->kind == STORE_OP_PAUSE && !op->pause.paused))
			nt->runnable = true;
		if (ap[i].fx.batch_done)
			notice_add(nt, 'b', batch_of(op));
		for (int k = 0; k < ap[i].fx.cascade.n; k++) {
			const struct store_cascaded *c = &ap[i].fx.cascade.items[k];
			if (c->batch_done)
				notice_add(nt, 'b', c->batch_id);
			if (c->change && c->state == JOB_QUEUED)
				nt->runnable = true;
		}
		/* A cancel of a job some node's pool runs: that node stops it. */
		if (op->kind == STORE_OP_CANCEL && op->cancel.found == JOB_RUNNING && !ap[i].fx.finished)
			notice_add(nt, 'k', op->cancel.id);
	}
	if (nt->n > 0 || nt->runnable || nt->overflow)
		st->be->notice(st->impl, nt);
}

/* The hooks of the children an op changed: finished, batch_done.
 * Returns whether one became runnable. */
static bool cascade_hooks(struct store *st, const struct store_cascade *cx)
{
	bool runnable = false;
	for (int i = 0; i < cx->n; i++) {
		const struct store_cascaded *c = &cx->items[i];
		if (c->change && job_state_terminal(c->state) && st->hooks.finished)
			st->hooks.finished(st->hooks.arg, c->id, c->queue);
		if (c->batch_done && st->hooks.batch_done)
			st->hooks.batch_done(st->hooks.arg, c->batch_id);
		runnable = runnable || (c->change && (c->state == JOB_QUEUED || c->state == JOB_SCHEDULED));
	}
	return runnable;
}

/* A committed schedule change may move the next fire; a fire counts. */
static void schedule_committed(struct store *st, struct store_op *op)
{
	if (op->rc != STORE_OK)
		return;
	if (op->kind == STORE_OP_SCHEDULE) {
		st->next_fire = 0;
		return;
	}
	if (op->fire.fired > 0)
		schedule_count_fired(op->fire.name, op->fire.fired);
	if (op->fire.skipped > 0)
		schedule_count_skipped(op->fire.skipped);
}

static void complete_group(struct store *st, struct store_op **ops, struct applied *ap,
                           int n, bool committed)
{
	bool submitted = false;
	struct reporter to = {.emit = emit_transition, .ctx = st};
	for (int i = 0; i < n; i++) {
		struct store_op *op = ops[i];
		if (!committed)
			op->rc = STORE_UNAVAILABLE;
		if (st->hooks.transition)
			report_changes(&to, op, &ap[i]);
		if (op->kind == STORE_OP_CLAIM) {
			op->claim.nclaimed = op->rc == STORE_OK ? ap[i].claim.n : 0;
			if (op->rc == STORE_OK) {
				for (int j = 0; j < ap[i].claim.n; j++)
					op->claim.claimed(op, ap[i].claim.jobs[j]);
				ap[i].claim.n = 0;
			}
			claim_scratch_free(&ap[i].claim);
		} else if (op->kind == STORE_OP_LEASE) {
			op->lease.nleased = 0;
			op->lease.leased = NULL;
			if (op->rc == STORE_OK && ap[i].claim.n > 0) {
				op->lease.leased = ap[i].claim.leased;
				op->lease.nleased = ap[i].claim.n;
				for (int j = 0; j < ap[i].claim.n; j++)
					op->lease.leased[j].job = ap[i].claim.jobs[j];
				ap[i].claim.leased = NULL;
				ap[i].claim.n = 0;
			}
			claim_scratch_free(&ap[i].claim);
		}
		if (op->rc == STORE_OK && ap[i].fx.runnable)
			submitted = true;
		if (op->rc == STORE_OK && ap[i].fx.finished && st->hooks.finished) {
			if (op->kind == STORE_OP_CANCEL)
				st->hooks.finished(st->hooks.arg, op->cancel.id, op->cancel.queue);
			else
				st->hooks.finished(st->hooks.arg, op->finish.job->id, op->finish.job->queue);
		}
		if (op->rc == STORE_OK && ap[i].fx.batch_done && st->hooks.batch_done)
			st->hooks.batch_done(st->hooks.arg, batch_of(op));
		if (op->rc == STORE_OK && cascade_hooks(st, &ap[i].fx.cascade))
			submitted = true;
		store_cascade_clear(&ap[i].fx.cascade);
		if (op->kind == STORE_OP_SCHEDULE || op->kind == STORE_OP_FIRE)
			schedule_committed(st, op);
		op->done(op);
	}
	if (submitted && st->hooks.submitted)
		st->hooks.submitted(st->hooks.arg);
}

/* Whether a group needs a durable commit: claims, leases (and pings) do
 * not. A claim lost in a crash leaves its jobs queued; one that survives
 * is requeued by recovery; either way nothing acknowledged is lost. A
 * lost lease likewise leaves its jobs queued with the attempt unspent,
 * and its worker's answer meets 409 lease_lost, so the job runs again
 * (at least once, as after any crash). The next durable commit makes
 * every earlier one durable too (the log is written in order), so a
 * worker's acknowledged complete always carries its lease with it.
 * Sparing those fsyncs takes one off every job's path from submit to
 * finished, and from ready to leased. */
static bool group_durable(struct store_op **ops, int n)
{
	for (int i = 0; i < n; i++)
		if (ops[i]->kind != STORE_OP_CLAIM && ops[i]->kind != STORE_OP_LEASE &&
		    ops[i]->kind != STORE_OP_PING)
			return true;
	return false;
}

/* Applies one op in its own scope; returns 0 or the backend's error. */
static int apply_op(struct store *st, struct store_op *op, struct applied *ap)
{
	const struct store_backend *be = st->be;
	if (op->kind == STORE_OP_PROBE) {
		if (be->damaged(st->impl)) {
			op->rc = STORE_UNAVAILABLE;
			return 0;
		}
		/* /readyz needs no key: a flood of probes must not become a
		 * flood of synced writes. Any failed write since voids it. */
		if (st->probe_ok_at && clock_mono_ms() - st->probe_ok_at < PROBE_REUSE_MS)
			return 0;
		st->probe_wrote = true;
	}
	fault_current = (int)op->kind;
	fault_count = 0;
	int rc = be->op_begin(st->impl);
	if (rc == 0 && op->kind == STORE_OP_FINISH && op->finish.throttled_until)
		rc = rate_throttle(st, op);
	if (rc == 0) {
		if (op->kind == STORE_OP_CLAIM || op->kind == STORE_OP_LEASE)
			rc = apply_claim(st, op, &ap->claim, &ap->fx);
		else if (op->kind == STORE_OP_RATE)
			rc = be->rate_load ? apply_rate(st, op, &ap->fx) : -1;
		else
			rc = be->apply[op->kind](st->impl, op, &ap->fx);
	}
	fault_current = -1;
	if (rc == 0)
		return be->op_end(st->impl);
	if (be->in_transaction(st->impl) && be->op_undo(st->impl) != 0)
		log_error("store: could not undo a failed op");
	return rc;
}

/* Whether op made ready only a job that no claim may take: one queued on
 * an external queue, which wakes lease requests (through the transition
 * hook), not the dispatcher. A scheduled job still wakes it: its claim
 * promotes due jobs on every queue. */
static bool only_leases_run(const struct store *st, const struct store_op *op)
{
	const struct job *job = op->kind == STORE_OP_SUBMIT ? op->submit.job
	                        : op->kind == STORE_OP_FINISH ? op->finish.job : NULL;
	return job && job->state == JOB_QUEUED && st->external && st->external(st->external_arg, job->queue);
}

static void apply_group(struct store *st, struct store_op **ops, int n)
{
	const struct store_backend *be = st->be;
	struct applied ap[WRITER_BATCH];
	memset(ap, 0, sizeof(struct applied) * (size_t)n);
	bool durable = group_durable(ops, n);
	bool ok = be->begin(st->impl, durable, n) == 0;
	for (int i = 0; ok && i < n; i++) {
		struct store_op *op = ops[i];
		op->rc = STORE_OK;
		if (op->kind == STORE_OP_SUBMIT || op->kind == STORE_OP_BATCH)
			ap[i].fx.runnable = true;
		else if (op->kind == STORE_OP_FINISH)
			ap[i].fx.runnable = op->finish.job->state == JOB_QUEUED ||
			                    op->finish.job->state == JOB_SCHEDULED;
		else if (op->kind == STORE_OP_PAUSE)
			ap[i].fx.runnable = !op->pause.paused;
		int rc = apply_op(st, op, &ap[i]);
		if (rc == 0 && ap[i].fx.runnable && only_leases_run(st, op))
			ap[i].fx.runnable = false;
		if (rc != 0) {
			log_error("store %s failed: %s", op_names[op->kind], be->errstr(rc));
			st->probe_ok_at = 0;
			st->probe_wrote = false;
			op->rc = STORE_UNAVAILABLE;
			claim_scratch_free(&ap[i].claim);
			store_cascade_clear(&ap[i].fx.cascade);
			memset(&ap[i].fx, 0, sizeof ap[i].fx);
			if (op->kind == STORE_OP_RETRY) {
				job_free(op->retry.job);
				op->retry.job = NULL;
			}
			/* A failure that ended the transaction (disk full, I/O)
			 * took the whole group with it. */
			if (!be->in_transaction(st->impl))
				ok = false;
		} else {
			if (ap[i].fx.expires_at && ap[i].fx.expires_at + SWEEP_GRACE_MS < st->next_sweep)
				st->next_sweep = ap[i].fx.expires_at + SWEEP_GRACE_MS;
			if (ap[i].fx.cascade.expires_at && ap[i].fx.cascade.expires_at + SWEEP_GRACE_MS < st->next_sweep)
				st->next_sweep = ap[i].fx.cascade.expires_at + SWEEP_GRACE_MS;
			if (ap[i].fx.lease_expires_at && ap[i].fx.lease_expires_at < st->next_lease)
				st->next_lease = ap[i].fx.lease_expires_at;
		}
	}
	if (ok && be->notice && !be->alone(st->impl))
		notice_group(st, ops, ap, n);
	if (ok && be->commit(st->impl) != 0)
		ok = false;
	if (ok) {
		atomic_fetch_add(&st->commits, 1);
		if (durable)
			atomic_fetch_add(&st->synced, 1);
		atomic_fetch_add(&st->committed_ops, (uint_fast64_t)n);
	}
	if (!ok && be->in_transaction(st->impl))
		be->rollback(st->impl);
	if (!ok)
		st->probe_ok_at = 0;
	else if (st->probe_wrote)
		st->probe_ok_at = clock_mono_ms();
	st->probe_wrote = false;
	complete_group(st, ops, ap, n, ok);
}

/* With other nodes writing too, the next expiry (of a lease, of a
 * finished job) may come from their commits, which this writer's timers
 * never saw: look again within a second. */
#define SHARED_RECHECK_MS 1000

static int64_t shared_cap(const struct store *st, int64_t at)
{
	if (!st->be->node_id)
		return at;
	int64_t soon = clock_now_ms() + SHARED_RECHECK_MS;
	return at < soon ? at : soon;
}

/* Deletes a batch of expired jobs and sets the next sweep time: now again
 * if there may be more, else the next expiry. A job is deleted
 * SWEEP_GRACE_MS after it expired, not at once: the request that ended
 * it (a cancel of a job kept 0 s) reads it back for its reply after the
 * commit, and must not find it already gone. */
static void sweep(struct store *st)
{
	int64_t now = clock_now_ms() - SWEEP_GRACE_MS, next = 0;
	int deleted = 0;
	if (!store_is_leader(st)) {
		st->next_sweep = clock_now_ms() + 1000; /* the leader's job; look again */
		return;
	}
	if (st->be->sweep(st->impl, now, &deleted, &next) != 0) {
		st->probe_ok_at = 0;
		st->next_sweep = now + 1000; /* try again in a second */
		return;
	}
	if (deleted > 0)
		log_debug("retention: deleted %d finished job(s)", deleted);
	st->next_sweep = shared_cap(st, next ? next + SWEEP_GRACE_MS : INT64_MAX);
}

/* The next time the writer has work of its own: a sweep or a lease
 * expiry. */
static int64_t next_timer(const struct store *st)
{
	int64_t t = st->next_lease < st->next_sweep ? st->next_lease : st->next_sweep;
	return st->next_fire < t ? st->next_fire : t;
}

static void expire_done(struct store_op *op)
{
	(void)op;
}

/* Ends the attempts whose lease ran out as interrupted, retried per the
 * job's policy, each a FINISH op fenced by the lease id; then sets the
 * next lease expiry. */
static void expire_leases(struct store *st)
{
	int64_t now = clock_now_ms();
	for (int round = 0; round < EXPIRE_ROUNDS; round++) {
		struct job *jobs[EXPIRE_BATCH];
		char ids[EXPIRE_BATCH][STORE_LEASE_ID_LEN + 1];
		int n = 0;
		int64_t next = 0;
		if (st->be->expired(st->impl, now, jobs, ids, EXPIRE_BATCH, &n, &next) != 0) {
			st->next_lease = now + 1000; /* try again in a second */
			return;
		}
		if (n == 0) {
			st->next_lease = shared_cap(st, next ? next : INT64_MAX);
			return;
		}
		struct store_op ops[EXPIRE_BATCH], *ptrs[EXPIRE_BATCH];
		for (int i = 0; i < n; i++) {
			struct job *job = jobs[i];
			job->outcome = ATTEMPT_INTERRUPTED;
			free(job->error);
			job->error = strdup("interrupted: the worker's lease expired");
			job->finished_at = now;
			store_attempt_failed(job, true, now, 0);
			ops[i] = (struct store_op){.kind = STORE_OP_FINISH, .done = expire_done,
			                           .finish = {.job = job, .lease = {.lease_id = ids[i]}}};
			ptrs[i] = &ops[i];
		}
		apply_group(st, ptrs, n);
		for (int i = 0; i < n; i++)
			job_free(jobs[i]);
		log_debug("leases: %d expired", n);
	}
	st->next_lease = now; /* more: after the queued ops */
}

/* ---- schedules ---------------------------------------------------------- */

/* One schedule's fire op: the plan for its due time, its jobs made from
 * the template. A definition that no longer reads (a zone file gone) or
 * whose template no longer validates fires nothing and moves on, logged,
 * so it cannot stall the others. */
static void fire_prepare(struct store *st, const struct store_schedule *row, int64_t now, struct store_op *op,
                         struct schedule_plan *plan)
{
	struct schedule s;
	char err[300];
	*op = (struct store_op){.kind = STORE_OP_FIRE, .done = expire_done};
	memcpy(op->fire.name, row->name, sizeof op->fire.name);
	op->fire.due = row->next_fire_at;
	if (schedule_from_stored(row->name, row->spec, &s, err, sizeof err) != 0) {
		log_error("%s: retrying in a minute", err);
		op->fire.next = now + 60000;
		return;
	}
	schedule_plan(&s, row->next_fire_at, now, plan);
	op->fire.next = plan->next;
	op->fire.skipped = plan->skipped;
	if (plan->n > 0 && !(op->fire.jobs = calloc((size_t)plan->n, sizeof *op->fire.jobs))) {
		op->fire.next = now + 1000;    /* out of memory: this fire again soon */
		op->fire.due = -1;             /* matches nothing: the op changes nothing */
		schedule_clear(&s);
		return;
	}
	for (int k = 0; k < plan->n; k++) {
		struct problem p;
		if (schedule_make_job(&s, st->job_defaults, plan->fire_at[k], now, &op->fire.jobs[op->fire.njobs], &p) != 0) {
			log_error("schedule %s: its job no longer validates (%s: %s); fire skipped", s.name, p.field,
			          p.detail);
			op->fire.skipped++;
			continue;
		}
		op->fire.njobs++;
	}
	schedule_clear(&s);
}

/* Fires the schedules that are due (the leader's task; with two leaders
 * at once the fire op's compare and set lets one win), then sets the
 * next fire time. */
static void fire_schedules(struct store *st)
{
	int64_t now = clock_now_ms();
	if (!st->be->due_schedules || !st->job_defaults) {
		st->next_fire = INT64_MAX;
		return;
	}
	if (!store_is_leader(st)) {
		st->next_fire = now + 1000;     /* the leader's job; look again */
		return;
	}
	struct store_schedule due[FIRE_BATCH];
	int n = 0;
	if (st->be->due_schedules(st->impl, now, due, FIRE_BATCH, &n) != STORE_OK) {
		st->next_fire = now + 1000;
		return;
	}
	struct store_op ops[FIRE_BATCH], *ptrs[FIRE_BATCH];
	/* Each op's jobs, kept here for the frees below (the op's own copy
	 * is the store's while the group applies). */
	struct job **jobs[FIRE_BATCH];
	int njobs[FIRE_BATCH];
	struct schedule_plan *plan = malloc(sizeof *plan);
	for (int i = 0; i < n; i++) {
		if (plan)
			fire_prepare(st, &due[i], now, &ops[i], plan);
		else
			ops[i] = (struct store_op){.kind = STORE_OP_FIRE, .done = expire_done,
			                           .fire = {.due = -1, .next = now + 1000}};
		jobs[i] = ops[i].fire.jobs;
		njobs[i] = ops[i].fire.njobs;
		ptrs[i] = &ops[i];
	}
	free(plan);
	if (n > 0)
		apply_group(st, ptrs, n);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < njobs[i]; j++)
			job_free(jobs[i][j]);
		free(jobs[i]);
		store_schedule_clear(&due[i]);
	}
	int64_t next = 0;
	if (n == FIRE_BATCH)
		st->next_fire = now;           /* maybe more: after the queued ops */
	else if (st->be->next_schedule(st->impl, &next) != STORE_OK)
		st->next_fire = now + 1000;
	else
		st->next_fire = shared_cap(st, next ? next : INT64_MAX);
}

/* Runs whichever of the writer's own tasks is due. */
static void timers(struct store *st)
{
	if (clock_now_ms() >= st->next_fire)
		fire_schedules(st);
	if (clock_now_ms() >= st->next_lease)
		expire_leases(st);
	if (clock_now_ms() >= st->next_sweep)
		sweep(st);
}

/* Waits for ops or the next timer, whichever comes first. Caller holds
 * st->mu. The timers are on the wall clock (expiry is a timestamp);
 * waits are at most a minute so a clock jump cannot stall it long. */
static void writer_wait(struct store *st)
{
	int64_t wait_ms = next_timer(st) == INT64_MAX ? 60000 : next_timer(st) - clock_now_ms();
	if (wait_ms > 60000)
		wait_ms = 60000;
	if (wait_ms > 0)
		clock_cond_wait_until(&st->cv, &st->mu, clock_mono_ms() + wait_ms);
}

/* Moves the probes among ops[n] to the end, keeping the order of the
 * rest; returns how many ops are not probes. */
static int probes_last(struct store_op **ops, int n)
{
	int k = n;
	/* From the end: ops[i+1..k) hold no probe, so a probe found at i moves
	 * to k-1 past them (probes are rare; most groups hold none). */
	for (int i = n - 1; i >= 0; i--) {
		if (ops[i]->kind != STORE_OP_PROBE)
			continue;
		struct store_op *probe = ops[i];
		memmove(ops + i, ops + i + 1, (size_t)(k - 1 - i) * sizeof *ops);
		ops[--k] = probe;
	}
	return k;
}

static void *writer_main(void *arg)
{
	struct store *st = arg;
	struct store_op *ops[WRITER_BATCH];
	for (;;) {
		pthread_mutex_lock(&st->mu);
		while (!st->head && !st->stopping && clock_now_ms() < next_timer(st))
			writer_wait(st);
		if (!st->head && !st->stopping) {
			pthread_mutex_unlock(&st->mu);
			timers(st);
			st->be->after_writes(st->impl);
			continue;
		}
		if (!st->head) {
			pthread_mutex_unlock(&st->mu);
			break;
		}
		int n = 0;
		while (st->head && n < WRITER_BATCH) {
			ops[n++] = st->head;
			st->head = st->head->next;
		}
		if (!st->head)
			st->tail = NULL;
		pthread_mutex_unlock(&st->mu);
		int k = probes_last(ops, n);
		if (k > 0)
			apply_group(st, ops, k);
		if (k < n)
			apply_group(st, ops + k, n - k);
		timers(st);
		st->be->after_writes(st->impl);
	}
	return NULL;
}

void store_post(struct store *st, struct store_op *op)
{
	op->next = NULL;
	pthread_mutex_lock(&st->mu);
	if (st->tail)
		st->tail->next = op;
	else
		st->head = op;
	st->tail = op;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

struct sync_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void sync_done(struct store_op *op)
{
	struct sync_wait *w = op->sync;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

enum store_rc store_run(struct store *st, struct store_op *op)
{
	struct sync_wait w = {.done = false};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	op->done = sync_done;
	op->sync = &w;
	store_post(st, op);
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	op->sync = NULL;
	return op->rc;
}

void store_attempt_failed(struct job *job, bool retryable, int64_t now, int64_t min_delay_ms)
{
	if (retryable && job->attempts < job->max_attempts) {
		int64_t delay = job_backoff_ms(job, job->attempts);
		if (min_delay_ms > delay)
			delay = min_delay_ms; /* the far side asked for it */
		job->state = JOB_SCHEDULED;
		job->run_at = now + delay;
	} else {
		job->state = JOB_FAILED;
	}
}

/* ---- open and close ---------------------------------------------------- */

int store_open(const struct store_options *opts, const struct store_hooks *hooks,
               struct store **out, char *err, size_t errlen)
{
	const char *name = opts->backend ? opts->backend : "sqlite";
	const struct store_backend *be = NULL;
	for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
		if (strcmp(backends[i]->name, name) == 0)
			be = backends[i];
	if (!be) {
		snprintf(err, errlen, "unknown store backend %s", name);
		return STORE_OPEN_FAILED;
	}
	for (int k = 0; k < STORE_OP_KINDS; k++)
		assert(k == STORE_OP_CLAIM || k == STORE_OP_LEASE || k == STORE_OP_RATE || be->apply[k]);
	struct store *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return STORE_OPEN_FAILED;
	}
	int result = STORE_OPEN_FAILED;
	st->be = be;
	st->deps = store_deps_ops_of(be);
	if (hooks)
		st->hooks = *hooks;
	pthread_mutex_init(&st->mu, NULL);
	clock_cond_init(&st->cv);
	pthread_mutex_init(&st->rate_mu, NULL);
	st->next_sweep = 0; /* sweep once right after start */
	st->next_lease = 0; /* and look for leases that ran out meanwhile */
	st->next_fire = 0;  /* and for schedules due */
	st->job_defaults = opts->job_defaults;
	st->external = opts->external;
	st->external_arg = opts->external_arg;
	uuid_v7(st->node_id);
	st->started_at = clock_now_ms();
	struct store_options bopts = *opts;
	bopts.hooks = &st->hooks;
	if ((result = be->open(&bopts, &st->impl, err, errlen)) != 0)
		goto fail;
	result = STORE_OPEN_FAILED;
	if (pthread_create(&st->writer, NULL, writer_main, st) != 0) {
		snprintf(err, errlen, "cannot start the store writer thread");
		goto fail;
	}
	st->writer_started = true;
	*out = st;
	return 0;
fail:
	store_close(st);
	return result;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->writer_started) {
		pthread_mutex_lock(&st->mu);
		st->stopping = true;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
		pthread_join(st->writer, NULL);
	}
	st->be->close(st->impl);
	pthread_cond_destroy(&st->cv);
	pthread_mutex_destroy(&st->mu);
	free(st->ready);
	pthread_mutex_destroy(&st->rate_mu);
	free(st->rated);
	free(st->limited);
	free(st);
}

void *store_backend_state(struct store *st, const struct store_backend *backend)
{
	return st->be == backend ? st->impl : NULL;
}

/* ---- reads ------------------------------------------------------------- */

/* A backend without nodes (one process): its running jobs run here. */
static void own_running(const struct store *st, struct job *job)
{
	if (!st->be->node_id && job && job->state == JOB_RUNNING)
		memcpy(job->node, st->node_id, sizeof job->node);
}

enum store_rc store_get_job(struct store *st, const char *id, struct job **out)
{
	enum store_rc rc = st->be->get_job(st->impl, id, out);
	if (rc == STORE_OK)
		own_running(st, *out);
	return rc;
}

enum store_rc store_list_jobs(struct store *st, const struct store_filter *f,
                              struct job ***jobs, size_t *n, int64_t *next_seq)
{
	enum store_rc rc = st->be->list_jobs(st->impl, f, jobs, n, next_seq);
	for (size_t i = 0; rc == STORE_OK && i < *n; i++)
		own_running(st, (*jobs)[i]);
	return rc;
}

enum store_rc store_get_queue(struct store *st, const char *name, struct queue_info *out)
{
	return st->be->get_queue(st->impl, name, out);
}

enum store_rc store_list_queue_names(struct store *st, const char *after, int max,
                                     char (**names)[JOB_NAME_MAX + 1], size_t *n)
{
	return st->be->list_queue_names(st->impl, after, max, names, n);
}

enum store_rc store_state_counts(struct store *st, int64_t out[JOB_STATE_COUNT])
{
	return st->be->state_counts(st->impl, out);
}

enum store_rc store_deepest_queues(struct store *st, struct queue_info *out, int top, int *n,
                                   struct queue_info *rest)
{
	return st->be->deepest_queues(st->impl, out, top, n, rest);
}

enum store_rc store_get_batch(struct store *st, const char *id, struct batch_info *out)
{
	return st->be->get_batch(st->impl, id, out);
}

enum store_rc store_due_callbacks(struct store *st, int64_t now, struct due_callback *out, int max,
                                  int *n, int64_t *next)
{
	return st->be->due_callbacks(st->impl, now, out, max, n, next);
}

void store_get_stats(struct store *st, struct store_stats *out)
{
	out->commits = atomic_load(&st->commits);
	out->synced = atomic_load(&st->synced);
	out->ops = atomic_load(&st->committed_ops);
}

bool store_damaged(struct store *st)
{
	return st->be->damaged(st->impl);
}

void store_schedule_clear(struct store_schedule *s)
{
	if (!s)
		return;
	free(s->spec);
	memset(s, 0, sizeof *s);
}

enum store_rc store_get_schedule(struct store *st, const char *name, struct store_schedule *out)
{
	memset(out, 0, sizeof *out);
	return st->be->get_schedule ? st->be->get_schedule(st->impl, name, out) : STORE_NOT_FOUND;
}

enum store_rc store_list_schedules(struct store *st, const char *after, int max, struct store_schedule **out,
                                   size_t *n)
{
	*out = NULL;
	*n = 0;
	return st->be->list_schedules ? st->be->list_schedules(st->impl, after, max < 1 ? 1 : max, out, n)
	                              : STORE_OK;
}

enum store_rc store_count_schedules(struct store *st, int64_t *active, int64_t *paused)
{
	*active = *paused = 0;
	return st->be->count_schedules ? st->be->count_schedules(st->impl, active, paused) : STORE_OK;
}

int store_schema_version(struct store *st)
{
	return st->be->schema_version(st->impl);
}

/* ---- the cluster ---------------------------------------------------------- */

void store_node_id(struct store *st, char out[UUID_LEN + 1])
{
	if (st->be->node_id)
		st->be->node_id(st->impl, out);
	else
		memcpy(out, st->node_id, UUID_LEN + 1);
}

bool store_is_leader(struct store *st)
{
	return !st->be->leader || st->be->leader(st->impl);
}

enum store_rc store_cluster(struct store *st, struct store_cluster *out)
{
	memset(out, 0, sizeof *out);
	if (st->be->cluster)
		return st->be->cluster(st->impl, out);
	/* One process: itself, alive and leading. */
	out->backend = st->be->name;
	memcpy(out->node, st->node_id, sizeof out->node);
	memcpy(out->leader, st->node_id, sizeof out->leader);
	struct store_node *n = &out->nodes[out->nnodes++];
	memcpy(n->id, st->node_id, sizeof n->id);
	n->alive = n->leader = true;
	n->pid = (int64_t)getpid();
	n->started_at = st->started_at;
	n->heartbeat_at = clock_now_ms();
	gethostname(n->host, sizeof n->host - 1);
	n->running = -1;
	return STORE_OK;
}

enum store_rc store_list_leases(struct store *st, const char *queue, int max, struct store_lease_info *out,
                                int *n)
{
	*n = 0;
	return st->be->list_leases(st->impl, queue, max, out, n);
}
