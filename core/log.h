/* Logging: one line per event on stderr, as logfmt (default) or JSON, with
 * the keys ts, level and msg first. log_error/warn/info/debug take a printf
 * message and add `at` (the source place) and, for log_errno, `error`
 * (strerror(errno)); log_fields writes a line with keys of its own (request
 * and job lines). The level and format are set once at start-up, before any
 * thread is created. */
#ifndef JOBQ_LOG_H
#define JOBQ_LOG_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

extern enum log_level log_threshold;
extern enum log_format log_format;

/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

/* Parses "logfmt" or "json"; returns -1 for anything else. */
int log_format_parse(const char *name, enum log_format *out);

/* One key and its value. A number is written bare in JSON (it must then be
 * a valid JSON number); everything else is a string, quoted and escaped as
 * the format needs. */
struct log_field {
	const char *key;
	const char *value;
	bool number;
};

void log_write(enum log_level level, const char *file, int line, int err,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Writes ts, level, msg and then the n fields, in order. */
void log_fields(enum log_level level, const char *msg, const struct log_field *f, size_t n);

/* Formats one line like log_fields into out (at most len bytes, always
 * NUL-terminated and ending in a newline when len > 1), with ts given;
 * for tests. Returns the length written. */
size_t log_format_line(char *out, size_t len, enum log_format format, const char *ts,
                       const char *level, const char *msg, const struct log_field *f, size_t n);

#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, 0, __VA_ARGS__)
#define log_errno(...) log_write(LOG_ERROR, __FILE__, __LINE__, errno, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __FILE__, __LINE__, 0, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __FILE__, __LINE__, 0, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __FILE__, __LINE__, 0, __VA_ARGS__)

#endif
