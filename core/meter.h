/* Meters: events per key over the last minute, in one-second buckets.
 * Counts start when the process starts; they are not stored.
 *
 * Locking: meter->mu guards everything; each call holds it briefly. */
#ifndef JOBQ_METER_H
#define JOBQ_METER_H

#include <stdint.h>

struct meter;

struct meter *meter_new(void);

/* NULL is a no-op. */
void meter_free(struct meter *m);

/* Counts one event for key at unix time now_ms. */
void meter_add(struct meter *m, const char *key, int64_t now_ms);

/* Events for key in the 60 seconds up to now_ms. */
int64_t meter_last_minute(struct meter *m, const char *key, int64_t now_ms);

#endif
