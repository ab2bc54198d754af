/* The callback deliverer: one thread finds due callbacks in the store
 * (an index on callback_next_at), renders and signs each body, and hands
 * the POST to the http engine; the engine's completion records the outcome
 * through the store writer and wakes the thread. It sleeps until the next
 * due time or a notice that something finished.
 *
 * Locking: cb->mu guards stopping, poked and the in-flight list. */
#include "workers/callbacks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/digest.h"
#include "core/log.h"
#include "workers/http.h"

#define DUE_BATCH 64
#define POST_TIMEOUT_S 10.0
#define IDLE_WAIT_MS 60000

struct delivery_try {
	struct callbacks *cb;
	char id[UUID_LEN + 1];
	bool is_batch;
	int tries;                 /* before this one */
	struct delivery_try *next; /* in flight, cb->mu */
};

struct callbacks {
	struct store *store;
	char secret[256];
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping, poked;
	struct delivery_try *in_flight;
	int nin_flight;
	unsigned long landed;      /* deliveries whose outcome committed, ever */
};

int64_t callbacks_backoff_ms(int tries)
{
	int64_t ms = 1000;
	for (int i = 1; i < tries && ms < CALLBACK_BACKOFF_CAP_MS; i++)
		ms *= 2;
	return ms < CALLBACK_BACKOFF_CAP_MS ? ms : CALLBACK_BACKOFF_CAP_MS;
}

/* Takes t off the in-flight list, frees it and wakes the thread. */
static void land(struct delivery_try *t)
{
	struct callbacks *cb = t->cb;
	pthread_mutex_lock(&cb->mu);
	struct delivery_try **pp = &cb->in_flight;
	while (*pp && *pp != t)
		pp = &(*pp)->next;
	if (*pp)
		*pp = t->next;
	cb->nin_flight--;
	cb->landed++;
	cb->poked = true;
	pthread_cond_signal(&cb->cv);
	pthread_mutex_unlock(&cb->mu);
	free(t);
}

/* Writer thread: the outcome is committed. Only now does the delivery
 * leave the in-flight list: before, the store still shows it due and the
 * thread would send it again. */
static void record_done(struct store_op *op)
{
	if (op->rc != STORE_OK)
		log_warn("could not record a callback delivery for %s; it will be sent again", op->callback.id);
	free((char *)op->callback.error);
	land(op->arg);
	free(op);
}

/* Engine thread: one POST ended. */
static void post_done(void *arg, long status, const char *error)
{
	struct delivery_try *t = arg;
	struct callbacks *cb = t->cb;
	bool ok = status >= 200 && status < 300 && !error;
	int tries = t->tries + 1;
	pthread_mutex_lock(&cb->mu);
	bool stopping = cb->stopping;
	pthread_mutex_unlock(&cb->mu);
	struct store_op *op = stopping ? NULL : calloc(1, sizeof *op);
	if (!op) {
		/* Stopping (the store may be closing) or out of memory: it stays
		 * pending and is sent again later. */
		land(t);
		return;
	}
	char why[300];
	if (error)
		snprintf(why, sizeof why, "%s", error);
	else
		snprintf(why, sizeof why, "HTTP %ld", status);
	op->kind = STORE_OP_CALLBACK;
	memcpy(op->callback.id, t->id, sizeof op->callback.id);
	op->callback.is_batch = t->is_batch;
	op->callback.status = (int)status;
	op->callback.error = ok ? NULL : strdup(why);
	op->callback.delivery = ok ? DELIVERY_DELIVERED : tries >= CALLBACK_MAX_TRIES ? DELIVERY_FAILED : DELIVERY_PENDING;
	op->callback.next_at = clock_now_ms() + callbacks_backoff_ms(tries);
	op->done = record_done;
	op->arg = t;
	store_post(cb->store, op);
}

static bool in_flight(struct callbacks *cb, const char *id)
{
	for (struct delivery_try *t = cb->in_flight; t; t = t->next)
		if (strcmp(t->id, id) == 0)
			return true;
	return false;
}

/* The body and URL of one due callback; false when it is gone. */
static bool render(struct callbacks *cb, const struct due_callback *due, char **body, char **url, int *tries)
{
	cJSON *o = NULL;
	*url = NULL;
	if (due->is_batch) {
		struct batch_info b;
		if (store_get_batch(cb->store, due->id, &b) != STORE_OK)
			return false;
		o = batch_to_json(&b);
		*url = b.callback.url ? strdup(b.callback.url) : NULL;
		*tries = b.callback.attempts;
		delivery_clear(&b.callback);
	} else {
		struct job *job = NULL;
		if (store_get_job(cb->store, due->id, &job) != STORE_OK)
			return false;
		job->has_history = false; /* the callback carries the job, not its history */
		o = job_to_json(job);
		*url = job->callback.url ? strdup(job->callback.url) : NULL;
		*tries = job->callback.attempts;
		job_free(job);
	}
	*body = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!*body || !*url) {
		free(*body);
		free(*url);
		return false;
	}
	return true;
}

static void send_one(struct callbacks *cb, const struct due_callback *due)
{
	char *body = NULL, *url = NULL;
	int tries = 0;
	if (!render(cb, due, &body, &url, &tries))
		return;
	struct delivery_try *t = calloc(1, sizeof *t);
	if (!t) {
		free(body);
		free(url);
		return;
	}
	t->cb = cb;
	memcpy(t->id, due->id, sizeof t->id);
	t->is_batch = due->is_batch;
	t->tries = tries;

	char event[64], which[80], sig[100];
	snprintf(event, sizeof event, "X-Jobq-Event: %s", due->is_batch ? "batch.finished" : "job.finished");
	snprintf(which, sizeof which, "%s: %.36s", due->is_batch ? "X-Jobq-Batch" : "X-Jobq-Job", due->id);
	const char *headers[5] = {"Content-Type: application/json", "User-Agent: jobq/0.1.0", event, which};
	int nheaders = 4;
	if (cb->secret[0]) {
		char hex[DIGEST_HEX_LEN + 1];
		digest_hmac_sha256_hex(cb->secret, body, strlen(body), hex);
		snprintf(sig, sizeof sig, "X-Jobq-Signature: sha256=%s", hex);
		headers[nheaders++] = sig;
	}
	pthread_mutex_lock(&cb->mu);
	t->next = cb->in_flight;
	cb->in_flight = t;
	cb->nin_flight++;
	pthread_mutex_unlock(&cb->mu);
	if (http_post_async(url, headers, nheaders, body, strlen(body), POST_TIMEOUT_S, post_done, t) != 0)
		post_done(t, 0, "the http engine did not take the request");
	free(body);
	free(url);
}

static void *deliver_main(void *arg)
{
	struct callbacks *cb = arg;
	struct due_callback due[DUE_BATCH];
	pthread_mutex_lock(&cb->mu);
	while (!cb->stopping) {
		cb->poked = false;
		unsigned long landed = cb->landed;
		pthread_mutex_unlock(&cb->mu);
		int n = 0;
		int64_t next = 0;
		if (store_due_callbacks(cb->store, clock_now_ms(), due, DUE_BATCH, &n, &next) != STORE_OK)
			next = clock_now_ms() + 1000;
		for (int i = 0; i < n; i++) {
			/* A delivery that landed since the read may be in the list
			 * as still due (its outcome is newer than the read): the
			 * rest of the list is stale, read it again (the landing
			 * poked us). */
			pthread_mutex_lock(&cb->mu);
			bool stale = cb->landed != landed;
			bool skip = cb->stopping || in_flight(cb, due[i].id);
			pthread_mutex_unlock(&cb->mu);
			if (stale)
				break;
			if (!skip)
				send_one(cb, &due[i]);
		}
		pthread_mutex_lock(&cb->mu);
		if (cb->poked || cb->stopping)
			continue;
		/* Items in flight stay due until their outcome is recorded; the
		 * completion pokes us, so wait for it rather than ask again. */
		int64_t wait = next ? next - clock_now_ms() : IDLE_WAIT_MS;
		if (wait <= 0 && cb->nin_flight > 0)
			wait = IDLE_WAIT_MS;
		if (wait > IDLE_WAIT_MS)
			wait = IDLE_WAIT_MS;
		if (wait > 0)
			clock_cond_wait_until(&cb->cv, &cb->mu, clock_mono_ms() + wait);
	}
	pthread_mutex_unlock(&cb->mu);
	return NULL;
}

struct callbacks *callbacks_start(struct store *st, const char *secret)
{
	struct callbacks *cb = calloc(1, sizeof *cb);
	if (!cb)
		return NULL;
	cb->store = st;
	snprintf(cb->secret, sizeof cb->secret, "%s", secret ? secret : "");
	pthread_mutex_init(&cb->mu, NULL);
	clock_cond_init(&cb->cv);
	if (pthread_create(&cb->thread, NULL, deliver_main, cb) != 0) {
		pthread_cond_destroy(&cb->cv);
		pthread_mutex_destroy(&cb->mu);
		free(cb);
		return NULL;
	}
	return cb;
}

void callbacks_notify(struct callbacks *cb)
{
	pthread_mutex_lock(&cb->mu);
	cb->poked = true;
	pthread_cond_signal(&cb->cv);
	pthread_mutex_unlock(&cb->mu);
}

void callbacks_stop(struct callbacks *cb)
{
	if (!cb)
		return;
	pthread_mutex_lock(&cb->mu);
	cb->stopping = true;
	pthread_cond_signal(&cb->cv);
	pthread_mutex_unlock(&cb->mu);
	pthread_join(cb->thread, NULL);
}

void callbacks_free(struct callbacks *cb)
{
	if (!cb)
		return;
	pthread_cond_destroy(&cb->cv);
	pthread_mutex_destroy(&cb->mu);
	free(cb);
}
