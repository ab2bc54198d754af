/* Logging: one macro per level; each line carries the time, level, source
 * place and, for log_errno, strerror(errno). Lines go to stderr. The level is
 * set once at start-up, before any thread is created. */
#ifndef JOBQ_LOG_H
#define JOBQ_LOG_H

#include <errno.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

extern enum log_level log_threshold;

/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

void log_write(enum log_level level, const char *file, int line, int err,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, 0, __VA_ARGS__)
#define log_errno(...) log_write(LOG_ERROR, __FILE__, __LINE__, errno, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_WARN, __FILE__, __LINE__, 0, __VA_ARGS__)
#define log_info(...)  log_write(LOG_INFO, __FILE__, __LINE__, 0, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __FILE__, __LINE__, 0, __VA_ARGS__)

#endif
