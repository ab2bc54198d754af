/* Logging to stderr, one line per call, written with a single fputs so
 * lines from different threads do not interleave. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"

enum log_level log_threshold = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_write(enum log_level level, const char *file, int line, int err,
               const char *fmt, ...)
{
	if (level > log_threshold)
		return;
	char when[32], msg[1024], out[1400];
	clock_rfc3339(clock_now_ms(), when);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err)
		snprintf(out, sizeof out, "%s %s %s:%d %s: %s\n", when,
		         level_names[level], file, line, msg, strerror(err));
	else
		snprintf(out, sizeof out, "%s %s %s:%d %s\n", when,
		         level_names[level], file, line, msg);
	fputs(out, stderr);
}
