/* Clocks and monotonic condition-variable waits. */
#include "core/clock.h"

#include <stdio.h>
#include <time.h>

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t clock_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

void clock_rfc3339(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* strftime keeps the compiler's range analysis out of the way. */
	char date[24];
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 32, "%.19s.%03dZ", date, (int)(ms % 1000));
}

void clock_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

int clock_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu,
                          int64_t deadline_mono_ms)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_mono_ms / 1000),
		.tv_nsec = (long)(deadline_mono_ms % 1000) * 1000000,
	};
	return pthread_cond_timedwait(cond, mu, &ts);
}
