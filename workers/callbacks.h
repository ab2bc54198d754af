/* Completion callbacks: POSTs a finished job's (or batch's) JSON to its
 * callback_url, signed when a secret is set, retrying with backoff. The
 * delivery state lives in the store, so pending callbacks survive a
 * restart. Requests go through the http engine (workers/http.h), with the
 * same address rules as http jobs. */
#ifndef JOBQ_CALLBACKS_H
#define JOBQ_CALLBACKS_H

#include "store/store.h"

struct callbacks;

/* Starts the delivery thread; secret may be NULL or empty (unsigned).
 * NULL on failure. The store must outlive it. */
struct callbacks *callbacks_start(struct store *st, const char *secret);

/* A callback may have become due. Any thread; never blocks for long. */
void callbacks_notify(struct callbacks *cb);

/* Stops sending and joins the thread. Deliveries in flight end when the
 * http engine stops; those not recorded are sent again at the next start.
 * NULL is a no-op. */
void callbacks_stop(struct callbacks *cb);

/* Frees a stopped deliverer once the http engine has stopped (no done
 * callback can come any more). NULL is a no-op. */
void callbacks_free(struct callbacks *cb);

#define CALLBACK_MAX_TRIES 10
#define CALLBACK_BACKOFF_CAP_MS 300000

/* The wait after `tries` failed tries: 1 s, 2 s, 4 s, ... capped. */
int64_t callbacks_backoff_ms(int tries);

#endif
