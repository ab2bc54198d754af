/* The event log: the most recent job transitions and progress reports,
 * numbered in publication order, kept in a fixed ring in memory for
 * Server-Sent Event streams. Publishing wakes the streams through the hub:
 * those of one job wait on events_key_job(id), dashboards on
 * EVENTS_KEY_ALL. Nothing is persisted; numbers start at 1 with each
 * process.
 *
 * Locking: events->mu guards the ring; each call holds it briefly and
 * never across a hub call. */
#ifndef JOBQ_EVENTS_H
#define JOBQ_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/hub.h"
#include "core/job.h"

#define EVENTS_CAPACITY 16384
#define EVENTS_KEY_ALL "events:*"
#define EVENT_MESSAGE_MAX 120

enum event_kind { EVENT_JOB, EVENT_PROGRESS };

struct event {
	uint64_t seq;
	int64_t at;                       /* unix ms */
	enum event_kind kind;
	char id[UUID_LEN + 1];
	char queue[JOB_NAME_MAX + 1];
	char type[JOB_NAME_MAX + 1];
	enum job_state state;             /* EVENT_JOB */
	int attempts;                     /* EVENT_JOB */
	double percent;                   /* EVENT_PROGRESS */
	char message[EVENT_MESSAGE_MAX + 1];
};

struct event_filter {
	const char *job_id;               /* NULL: any job */
	const char *queue, *type;         /* NULL: any */
	/* ids not NULL: only the jobs in ids[0..nids), sorted (strcmp), each
	 * once; none when nids is 0 */
	const char (*ids)[UUID_LEN + 1];
	size_t nids;
	bool jobs_only;                   /* only EVENT_JOB */
};

struct events;

struct events *events_new(struct hub *hub);

/* NULL is a no-op. */
void events_free(struct events *ev);

/* Numbers, stamps and stores e (copied), then wakes its waiters. */
void events_publish(struct events *ev, struct event *e);

/* Copies up to max events numbered after `after` that pass f, oldest
 * first. *oldest and *newest get the numbers held (0 when none). */
int events_read(struct events *ev, uint64_t after, const struct event_filter *f,
                struct event *out, int max, uint64_t *oldest, uint64_t *newest);

/* The hub key the streams of one job wait on. */
void events_key_job(const char *id, char key[HUB_KEY_MAX + 1]);

/* The event's SSE frame ("id: ..\nevent: ..\ndata: {..}\n\n"); the
 * caller frees it. NULL on OOM. */
char *event_frame(const struct event *e);

#endif
