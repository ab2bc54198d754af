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

int64_t clock_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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

/* Reads exactly n digits. */
static int digits(const char **s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*s)++) {
		if (**s < '0' || **s > '9')
			return -1;
		v = v * 10 + (**s - '0');
	}
	*out = v;
	return 0;
}

int clock_parse_rfc3339(const char *s, int64_t *out_ms)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	if (digits(&s, 4, &y) || *s++ != '-' || digits(&s, 2, &mo) || *s++ != '-' ||
	    digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' ') || !*s++ ||
	    digits(&s, 2, &h) || *s++ != ':' || digits(&s, 2, &mi) || *s++ != ':' ||
	    digits(&s, 2, &sec))
		return -1;
	int ms = 0;
	if (*s == '.') {
		s++;
		int scale = 100, n = 0;
		for (; *s >= '0' && *s <= '9'; s++, n++) {
			ms += (*s - '0') * scale;
			scale /= 10;
		}
		if (n == 0)
			return -1;
	}
	int sign = 0;
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (digits(&s, 2, &oh) || *s++ != ':' || digits(&s, 2, &om) || oh > 23 || om > 59)
			return -1;
	} else {
		return -1;
	}
	if (*s || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
	                .tm_hour = h, .tm_min = mi, .tm_sec = sec};
	time_t t = timegm(&tm);
	/* timegm normalises 31 February into March: refuse such dates. */
	struct tm back;
	gmtime_r(&t, &back);
	if (back.tm_mday != d && sec != 60)
		return -1;
	*out_ms = ((int64_t)t - sign * (oh * 3600 + om * 60)) * 1000 + ms;
	return 0;
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
