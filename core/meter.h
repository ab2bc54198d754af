/* Meters: events per key over the last minute, in one-second buckets, and
 * per calendar minute over the last METER_MINUTES minutes. Counts start
 * when the process starts; they are not stored. Memory is fixed per key.
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

/* The minutes meter_minutes reports. */
#define METER_MINUTES 15

/* Events for key in each of the METER_MINUTES calendar minutes (UTC) up to
 * and including the one holding now_ms, oldest first: minute_ms[i] is the
 * minute's start (unix ms), count[i] the events in it. */
void meter_minutes(struct meter *m, const char *key, int64_t now_ms,
                   int64_t minute_ms[METER_MINUTES], int64_t count[METER_MINUTES]);

#endif
