/* The token bucket's arithmetic (core/bucket.h). Tokens are a double: a
 * refill of limit * elapsed / period_ms is exact enough over any period
 * (at 1e6 per 24 h, a millisecond is 0.0116 token), and a whole token is
 * counted with a small tolerance so rounding never delays a due start. */
#include "core/bucket.h"

#include <math.h>

#define BUCKET_EPS 1e-9

void bucket_init(struct bucket *b, double limit, int64_t period_ms, double burst, int64_t now)
{
	b->limit = limit;
	b->period_ms = period_ms > 0 ? period_ms : 1;
	b->burst = burst >= 1 ? burst : 1;
	b->tokens = b->burst;
	b->refilled_at = now;
	b->paused_until = 0;
}

void bucket_refill(struct bucket *b, int64_t now)
{
	if (b->paused_until) {
		if (now < b->paused_until)
			return;
		/* The pause is over: one token at its end, refilling since. */
		if (b->refilled_at < b->paused_until) {
			b->tokens = 1;
			b->refilled_at = b->paused_until;
		}
		b->paused_until = 0;
	}
	if (now <= b->refilled_at)
		return;
	double add = b->limit * (double)(now - b->refilled_at) / (double)b->period_ms;
	b->tokens = fmin(b->burst, b->tokens + add);
	b->refilled_at = now;
}

int bucket_whole(const struct bucket *b, int64_t now)
{
	if (b->paused_until && now < b->paused_until)
		return 0;
	double t = floor(b->tokens + BUCKET_EPS);
	return t > 0 ? (t > 1e9 ? 1000000000 : (int)t) : 0;
}

int bucket_take(struct bucket *b, int64_t now, int n)
{
	int have = bucket_whole(b, now);
	int got = n < have ? n : have;
	if (got <= 0)
		return 0;
	b->tokens -= got;
	if (b->tokens < 0)
		b->tokens = 0;
	return got;
}

int64_t bucket_next_at(const struct bucket *b, int64_t now)
{
	if (b->paused_until && now < b->paused_until)
		return b->paused_until;
	if (bucket_whole(b, now) > 0)
		return now;
	/* ms from refilled_at until the token is whole, rounded up */
	double ms = ceil((1 - b->tokens) * (double)b->period_ms / b->limit - BUCKET_EPS);
	int64_t at = b->refilled_at + (int64_t)ms;
	return at > now ? at : now + 1;
}

void bucket_pause(struct bucket *b, int64_t now, int64_t until)
{
	if (until <= now || until <= b->paused_until)
		return;
	bucket_refill(b, now);
	b->tokens = 0;
	b->refilled_at = now;
	b->paused_until = until;
}
