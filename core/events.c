/* The event ring. */
#include "core/events.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

struct events {
	pthread_mutex_t mu;
	struct hub *hub;
	struct event *ring;     /* EVENTS_CAPACITY slots; seq s lives at s % capacity */
	uint64_t newest;        /* 0: nothing published yet */
};

struct events *events_new(struct hub *hub)
{
	struct events *ev = calloc(1, sizeof *ev);
	if (!ev)
		return NULL;
	ev->ring = calloc(EVENTS_CAPACITY, sizeof *ev->ring);
	if (!ev->ring) {
		free(ev);
		return NULL;
	}
	ev->hub = hub;
	pthread_mutex_init(&ev->mu, NULL);
	return ev;
}

void events_free(struct events *ev)
{
	if (!ev)
		return;
	pthread_mutex_destroy(&ev->mu);
	free(ev->ring);
	free(ev);
}

void events_key_job(const char *id, char key[HUB_KEY_MAX + 1])
{
	snprintf(key, HUB_KEY_MAX + 1, "events:%.36s", id);
}

void events_publish(struct events *ev, struct event *e)
{
	e->at = clock_now_ms();
	pthread_mutex_lock(&ev->mu);
	e->seq = ++ev->newest;
	ev->ring[e->seq % EVENTS_CAPACITY] = *e;
	pthread_mutex_unlock(&ev->mu);
	char key[HUB_KEY_MAX + 1];
	events_key_job(e->id, key);
	hub_notify(ev->hub, key);
	if (e->kind == EVENT_JOB)
		hub_notify(ev->hub, EVENTS_KEY_ALL);
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool passes(const struct event *e, const struct event_filter *f)
{
	return (!f->job_id || strcmp(e->id, f->job_id) == 0) &&
	       (!f->ids || bsearch(e->id, f->ids, f->nids, sizeof f->ids[0], cmp_id)) &&
	       (!f->queue || strcmp(e->queue, f->queue) == 0) &&
	       (!f->type || strcmp(e->type, f->type) == 0) &&
	       (!f->jobs_only || e->kind == EVENT_JOB);
}

int events_read(struct events *ev, uint64_t after, const struct event_filter *f,
                struct event *out, int max, uint64_t *oldest, uint64_t *newest)
{
	int n = 0;
	pthread_mutex_lock(&ev->mu);
	*newest = ev->newest;
	*oldest = ev->newest == 0 ? 0 : ev->newest > EVENTS_CAPACITY ? ev->newest - EVENTS_CAPACITY + 1 : 1;
	uint64_t from = after + 1 > *oldest ? after + 1 : *oldest;
	for (uint64_t s = from; *oldest && s <= ev->newest && n < max; s++) {
		const struct event *e = &ev->ring[s % EVENTS_CAPACITY];
		if (passes(e, f))
			out[n++] = *e;
	}
	pthread_mutex_unlock(&ev->mu);
	return n;
}

char *event_frame(const struct event *e)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	char at[32];
	clock_rfc3339(e->at, at);
	cJSON_AddStringToObject(o, "id", e->id);
	if (e->kind == EVENT_JOB) {
		cJSON_AddStringToObject(o, "queue", e->queue);
		cJSON_AddStringToObject(o, "type", e->type);
		cJSON_AddStringToObject(o, "state", job_state_name(e->state));
		cJSON_AddNumberToObject(o, "attempts", e->attempts);
	} else {
		cJSON_AddNumberToObject(o, "percent", e->percent);
		cJSON_AddStringToObject(o, "message", e->message);
	}
	cJSON_AddStringToObject(o, "at", at);
	char *data = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!data)
		return NULL;
	size_t n = strlen(data) + 96;
	char *frame = malloc(n);
	if (frame)
		snprintf(frame, n, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)e->seq,
		         e->kind == EVENT_JOB ? "job" : "progress", data);
	free(data);
	return frame;
}
