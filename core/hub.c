/* The waiter hub: a hash of job id -> waiters, a min-heap of deadlines and
 * one thread that sleeps until the earliest deadline. */
#include "core/hub.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"

#define HUB_BUCKETS 4096

struct hub {
	pthread_mutex_t mu;
	pthread_cond_t cv;             /* deadline thread: earlier deadline or stop */
	pthread_t thread;
	bool stop;                     /* guarded by mu */
	struct hub_waiter *buckets[HUB_BUCKETS];
	struct hub_waiter **heap;      /* min-heap on deadline */
	size_t heap_len, heap_cap;
};

static size_t bucket_of(const char *id)
{
	return (size_t)(hash_str(id) % HUB_BUCKETS);
}

static void heap_swap(struct hub *hub, size_t a, size_t b)
{
	struct hub_waiter *t = hub->heap[a];
	hub->heap[a] = hub->heap[b];
	hub->heap[b] = t;
	hub->heap[a]->heap_index = a;
	hub->heap[b]->heap_index = b;
}

static void heap_up(struct hub *hub, size_t i)
{
	while (i > 0 && hub->heap[(i - 1) / 2]->deadline > hub->heap[i]->deadline) {
		heap_swap(hub, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct hub *hub, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < hub->heap_len && hub->heap[l]->deadline < hub->heap[m]->deadline)
			m = l;
		if (r < hub->heap_len && hub->heap[r]->deadline < hub->heap[m]->deadline)
			m = r;
		if (m == i)
			return;
		heap_swap(hub, i, m);
		i = m;
	}
}

static void heap_remove(struct hub *hub, size_t i)
{
	hub->heap_len--;
	if (i == hub->heap_len)
		return;
	heap_swap(hub, i, hub->heap_len);
	heap_down(hub, i);
	heap_up(hub, i);
}

/* Takes w out of its bucket and the heap. Caller holds mu. */
static void detach(struct hub *hub, struct hub_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		hub->buckets[bucket_of(w->id)] = w->next;
	if (w->next)
		w->next->prev = w->prev;
	heap_remove(hub, w->heap_index);
	w->armed = false;
	w->prev = w->next = NULL;
}

/* Detaches every waiter whose deadline is at or before until and returns
 * them linked through next. Caller holds mu. */
static struct hub_waiter *detach_due(struct hub *hub, int64_t until)
{
	struct hub_waiter *fired = NULL;
	while (hub->heap_len > 0 && hub->heap[0]->deadline <= until) {
		struct hub_waiter *w = hub->heap[0];
		detach(hub, w);
		w->next = fired;
		fired = w;
	}
	return fired;
}

/* Wakes a list of detached waiters linked through next. Caller does not
 * hold mu; each waiter may be freed by its owner once woken. */
static void wake_list(struct hub_waiter *list)
{
	int64_t now = clock_mono_us();
	while (list) {
		struct hub_waiter *next = list->next;
		list->next = NULL;
		list->woke_us = now;
		list->wake(list->arg);
		list = next;
	}
}

static void *deadline_thread(void *arg)
{
	struct hub *hub = arg;
	pthread_mutex_lock(&hub->mu);
	while (!hub->stop) {
		if (hub->heap_len == 0) {
			pthread_cond_wait(&hub->cv, &hub->mu);
			continue;
		}
		int64_t now = clock_mono_ms();
		if (hub->heap[0]->deadline > now) {
			clock_cond_wait_until(&hub->cv, &hub->mu, hub->heap[0]->deadline);
			continue;
		}
		struct hub_waiter *fired = detach_due(hub, now);
		pthread_mutex_unlock(&hub->mu);
		wake_list(fired);
		pthread_mutex_lock(&hub->mu);
	}
	pthread_mutex_unlock(&hub->mu);
	return NULL;
}

struct hub *hub_new(void)
{
	struct hub *hub = calloc(1, sizeof *hub);
	if (!hub)
		return NULL;
	pthread_mutex_init(&hub->mu, NULL);
	clock_cond_init(&hub->cv);
	if (pthread_create(&hub->thread, NULL, deadline_thread, hub) != 0) {
		log_error("cannot start the hub thread");
		pthread_cond_destroy(&hub->cv);
		pthread_mutex_destroy(&hub->mu);
		free(hub);
		return NULL;
	}
	return hub;
}

void hub_free(struct hub *hub)
{
	if (!hub)
		return;
	hub_fire_all(hub);
	pthread_mutex_lock(&hub->mu);
	hub->stop = true;
	pthread_cond_signal(&hub->cv);
	pthread_mutex_unlock(&hub->mu);
	pthread_join(hub->thread, NULL);
	pthread_cond_destroy(&hub->cv);
	pthread_mutex_destroy(&hub->mu);
	free(hub->heap);
	free(hub);
}

void hub_wait(struct hub *hub, struct hub_waiter *w, const char *id,
              int64_t deadline, void (*wake)(void *arg), void *arg)
{
	size_t n = strnlen(id, HUB_KEY_MAX);
	memcpy(w->id, id, n);
	w->id[n] = '\0';
	w->deadline = deadline;
	w->wake = wake;
	w->arg = arg;
	pthread_mutex_lock(&hub->mu);
	if (hub->heap_len == hub->heap_cap) {
		size_t cap = hub->heap_cap ? hub->heap_cap * 2 : 256;
		struct hub_waiter **heap = realloc(hub->heap, cap * sizeof *heap);
		if (!heap) {
			/* Cannot track the deadline: wake at once, so the request
			 * answers with the current state instead of hanging. */
			pthread_mutex_unlock(&hub->mu);
			log_error("out of memory arming a waiter");
			w->woke_us = clock_mono_us();
			wake(arg);
			return;
		}
		hub->heap = heap;
		hub->heap_cap = cap;
	}
	size_t b = bucket_of(w->id);
	w->prev = NULL;
	w->next = hub->buckets[b];
	if (w->next)
		w->next->prev = w;
	hub->buckets[b] = w;
	w->heap_index = hub->heap_len;
	hub->heap[hub->heap_len++] = w;
	heap_up(hub, w->heap_index);
	w->armed = true;
	if (w->heap_index == 0)
		pthread_cond_signal(&hub->cv);
	pthread_mutex_unlock(&hub->mu);
}

void hub_notify(struct hub *hub, const char *id)
{
	struct hub_waiter *fired = NULL;
	pthread_mutex_lock(&hub->mu);
	struct hub_waiter *w = hub->buckets[bucket_of(id)];
	while (w) {
		struct hub_waiter *next = w->next;
		if (strcmp(w->id, id) == 0) {
			detach(hub, w);
			w->next = fired;
			fired = w;
		}
		w = next;
	}
	pthread_mutex_unlock(&hub->mu);
	wake_list(fired);
}

bool hub_fire(struct hub *hub, struct hub_waiter *w)
{
	pthread_mutex_lock(&hub->mu);
	bool armed = w->armed;
	if (armed)
		detach(hub, w);
	pthread_mutex_unlock(&hub->mu);
	if (armed) {
		w->woke_us = clock_mono_us();
		w->wake(w->arg);
	}
	return armed;
}

bool hub_disarm(struct hub *hub, struct hub_waiter *w)
{
	pthread_mutex_lock(&hub->mu);
	bool armed = w->armed;
	if (armed)
		detach(hub, w);
	pthread_mutex_unlock(&hub->mu);
	return armed;
}

void hub_fire_all(struct hub *hub)
{
	pthread_mutex_lock(&hub->mu);
	struct hub_waiter *fired = detach_due(hub, INT64_MAX);
	pthread_mutex_unlock(&hub->mu);
	wake_list(fired);
}

size_t hub_count(struct hub *hub)
{
	pthread_mutex_lock(&hub->mu);
	size_t n = hub->heap_len;
	pthread_mutex_unlock(&hub->mu);
	return n;
}

size_t hub_keys(struct hub *hub, char (*out)[HUB_KEY_MAX + 1], size_t max)
{
	pthread_mutex_lock(&hub->mu);
	size_t n = 0;
	for (size_t i = 0; i < hub->heap_len && n < max; i++)
		memcpy(out[n++], hub->heap[i]->id, HUB_KEY_MAX + 1);
	pthread_mutex_unlock(&hub->mu);
	return n;
}
