/* A token bucket for a queue's start rate: pure arithmetic on a state the
 * store keeps (no clock, no I/O; every function takes `now`), so the same
 * maths serves one node and many nodes sharing one row.
 *
 * Tokens refill continuously at limit per period_ms, up to burst; a start
 * takes one whole token. A pause (an HTTP 429's Retry-After) empties the
 * bucket until paused_until, when one token is there for the job that was
 * told to come back, and the refill goes on from then. */
#ifndef JOBQ_CORE_BUCKET_H
#define JOBQ_CORE_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

#define BUCKET_LIMIT_MAX 1e6
#define BUCKET_BURST_MAX 1e6
#define BUCKET_PERIOD_MAX_MS 86400000LL

struct bucket {
	double limit;            /* tokens per period, 1..BUCKET_LIMIT_MAX */
	int64_t period_ms;       /* 1..BUCKET_PERIOD_MAX_MS */
	double burst;            /* capacity, 1..BUCKET_BURST_MAX */
	double tokens;           /* as of refilled_at; 0..burst */
	int64_t refilled_at;     /* unix ms */
	int64_t paused_until;    /* unix ms; 0: not paused */
};

/* A full bucket as of now (a new or changed limit starts with its burst). */
void bucket_init(struct bucket *b, double limit, int64_t period_ms, double burst, int64_t now);

/* Brings tokens up to now. Time before refilled_at (another node's clock
 * ran ahead) adds nothing; a pause holds tokens at 0 until it ends. */
void bucket_refill(struct bucket *b, int64_t now);

/* Whole tokens available now (after bucket_refill). */
int bucket_whole(const struct bucket *b, int64_t now);

/* Takes up to n whole tokens (after bucket_refill); returns how many. */
int bucket_take(struct bucket *b, int64_t now, int n);

/* When the next whole token is due (unix ms, > now when none is there
 * now, <= now when one is); after bucket_refill. */
int64_t bucket_next_at(const struct bucket *b, int64_t now);

/* Pauses the bucket until `until` (a later pause wins, an earlier one is
 * ignored): empty now, one token at until. */
void bucket_pause(struct bucket *b, int64_t now, int64_t until);

#endif
