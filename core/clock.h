/* Time: wall-clock milliseconds for timestamps stored and shown, monotonic
 * milliseconds for deadlines, and condition variables that wait on the
 * monotonic clock so a wall-clock jump never stretches or cuts a wait. */
#ifndef JOBQ_CLOCK_H
#define JOBQ_CLOCK_H

#include <pthread.h>
#include <stdint.h>

/* Unix time in milliseconds. */
int64_t clock_now_ms(void);

/* Monotonic milliseconds, for deadlines only. */
int64_t clock_mono_ms(void);

/* Monotonic microseconds, to order events (e.g. a wake-up and a read). */
int64_t clock_mono_us(void);

/* Formats unix ms as RFC 3339 UTC with milliseconds: 2026-11-21T13:05:11.123Z. */
void clock_rfc3339(int64_t ms, char out[32]);

/* Parses an RFC 3339 date-time (2026-11-21T13:05:11Z, with an optional
 * fraction and a Z or +hh:mm offset) into unix ms. Returns 0 or -1. */
int clock_parse_rfc3339(const char *s, int64_t *out_ms);

/* Initialises cond to wait on CLOCK_MONOTONIC. */
void clock_cond_init(pthread_cond_t *cond);

/* pthread_cond_timedwait until the monotonic deadline (ms). Returns 0 or
 * ETIMEDOUT. */
int clock_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu,
                          int64_t deadline_mono_ms);

#endif
