/* The waiter hub: wakes suspended requests when a job finishes or their
 * deadline passes.
 *
 * A waiter is armed at most once at a time and fires exactly once per arm:
 * the job-finished notice, the deadline timer and an explicit hub_fire all
 * decide under the hub mutex, so whichever comes first wins and the others
 * see a disarmed waiter. wake() is called without the mutex held, after the
 * waiter has left every list, so it may free nothing the hub still uses.
 * The caller must keep the waiter alive until wake() has run or
 * hub_disarm() has returned; for a suspended HTTP request this holds because
 * the connection cannot complete while it is suspended.
 *
 * Locking: hub->mu guards the buckets, the deadline heap and every armed
 * waiter's list fields. */
#ifndef JOBQ_HUB_H
#define JOBQ_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/uuid.h"

struct hub;

#define HUB_KEY_MAX 48

struct hub_waiter {
	char id[HUB_KEY_MAX + 1];    /* what is waited on: a job or batch id, or an event key */
	int64_t deadline;            /* monotonic ms */
	void (*wake)(void *arg);
	void *arg;
	int64_t woke_us;             /* clock_mono_us() when it was fired */
	/* owned by the hub while armed */
	bool armed;
	struct hub_waiter *prev, *next;
	size_t heap_index;
};

/* Starts the hub and its deadline thread; NULL on failure. */
struct hub *hub_new(void);

/* Fires every armed waiter, stops the thread and frees the hub. */
void hub_free(struct hub *hub);

/* Arms w for job id until deadline (monotonic ms). w must not be armed. */
void hub_wait(struct hub *hub, struct hub_waiter *w, const char *id,
              int64_t deadline, void (*wake)(void *arg), void *arg);

/* Fires every waiter armed on job id. Called after the commit that
 * finished the job. */
void hub_notify(struct hub *hub, const char *id);

/* Fires w now if it is still armed; returns whether it was. */
bool hub_fire(struct hub *hub, struct hub_waiter *w);

/* Disarms w without waking it. Returns true when it was armed: then no
 * wake for it will come. False means its wake has been, or is being,
 * delivered by whoever fired it. */
bool hub_disarm(struct hub *hub, struct hub_waiter *w);

/* Fires every armed waiter (shutdown). */
void hub_fire_all(struct hub *hub);

/* Number of armed waiters. */
size_t hub_count(struct hub *hub);

/* Copies the keys of up to max armed waiters into out (a key may come
 * more than once); returns how many. */
size_t hub_keys(struct hub *hub, char (*out)[HUB_KEY_MAX + 1], size_t max);

#endif
