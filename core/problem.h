/* Error kinds: one table gives each its code, HTTP status and title. It
 * feeds every application/problem+json body (RFC 9457) and is mirrored in
 * openapi.yaml's Problem.code enum. */
#ifndef JOBQ_PROBLEM_H
#define JOBQ_PROBLEM_H

#include <cjson/cJSON.h>

enum problem_kind {
	PROBLEM_MALFORMED_JSON,
	PROBLEM_INVALID_FIELD,
	PROBLEM_INVALID_QUERY,
	PROBLEM_UNKNOWN_JOB_TYPE,
	PROBLEM_INVALID_PAYLOAD,
	PROBLEM_NOT_FOUND,
	PROBLEM_JOB_NOT_FOUND,
	PROBLEM_METHOD_NOT_ALLOWED,
	PROBLEM_UNAUTHORIZED,
	PROBLEM_FORBIDDEN,
	PROBLEM_ORIGIN_NOT_ALLOWED,
	PROBLEM_JOB_FINISHED,
	PROBLEM_JOB_NOT_RETRYABLE,
	PROBLEM_JOB_NOT_FINISHED,
	PROBLEM_QUEUE_NOT_FOUND,
	PROBLEM_BATCH_NOT_FOUND,
	PROBLEM_IDEMPOTENCY_CONFLICT,
	PROBLEM_BODY_TOO_LARGE,
	PROBLEM_UNSUPPORTED_MEDIA_TYPE,
	PROBLEM_SHUTTING_DOWN,
	PROBLEM_STORAGE_UNAVAILABLE,
	PROBLEM_BAD_REQUEST,
	PROBLEM_REQUEST_TIMEOUT,
	PROBLEM_TOO_MANY_CONNECTIONS,
	PROBLEM_INTERNAL,
	PROBLEM_LEASE_LOST,
	PROBLEM_QUEUE_NOT_EXTERNAL,
	PROBLEM_INVALID_DEPENDENCY,   /* depends_on: unknown job, cycle, too many */
	/* schedules */
	PROBLEM_SCHEDULE_NOT_FOUND,
	PROBLEM_SCHEDULE_EXISTS,
	PROBLEM_UNKNOWN_TIME_ZONE,
	PROBLEM_KIND_COUNT
};

struct problem_info {
	const char *code;  /* machine-readable, e.g. "invalid_field" */
	int status;        /* HTTP status */
	const char *title; /* short human summary */
};

/* One concrete problem: its kind, the offending field (empty when none)
 * and a sentence for a person. */
struct problem {
	enum problem_kind kind;
	char field[96];
	char detail[256];
};

const struct problem_info *problem_info(enum problem_kind kind);

/* Fills p. field may be NULL. Returns -1 so validators can
 * `return problem_set(...)`. */
int problem_set(struct problem *p, enum problem_kind kind, const char *field,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The problem+json body; NULL only when out of memory. */
cJSON *problem_to_json(const struct problem *p);

#endif
