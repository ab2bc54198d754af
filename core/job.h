/* The job model shared by every layer: states, the job record, its JSON
 * form, and validation of a submission. Payload, result and error are kept
 * as text (payload and result as compact JSON) exactly as stored. */
#ifndef JOBQ_JOB_H
#define JOBQ_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/problem.h"
#include "core/uuid.h"

enum job_state {
	JOB_QUEUED,
	JOB_RUNNING,
	JOB_SUCCEEDED,
	JOB_FAILED,
	JOB_CANCELED,
	JOB_STATE_COUNT
};

#define JOB_NAME_MAX 64          /* type and queue names, bytes */
#define JOB_PRIORITY_LIMIT 1000000 /* |priority| bound */
#define JOB_PROGRESS_MSG_MAX 200

struct job {
	int64_t seq;                 /* store order; 0 until inserted */
	char id[UUID_LEN + 1];
	char type[JOB_NAME_MAX + 1];
	char queue[JOB_NAME_MAX + 1];
	int priority;
	enum job_state state;
	char *payload;               /* compact JSON text or NULL */
	char *result;                /* compact JSON text or NULL */
	char *error;                 /* text or NULL */
	bool has_progress;
	double progress_percent;     /* 0..100 */
	char progress_message[JOB_PROGRESS_MSG_MAX + 1];
	int attempts;
	int64_t created_at;          /* unix ms */
	int64_t started_at;          /* unix ms, 0 = never */
	int64_t finished_at;         /* unix ms, 0 = not finished */
};

const char *job_state_name(enum job_state state);

/* Returns 0 and sets *out for a known state name, else -1. */
int job_state_parse(const char *name, enum job_state *out);

static inline bool job_state_terminal(enum job_state s)
{
	return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELED;
}

/* A zeroed job; NULL when out of memory. */
struct job *job_new(void);

/* Frees the job and the strings it owns. NULL is a no-op. */
void job_free(struct job *job);

/* The job's API representation (every key present). NULL on OOM. */
cJSON *job_to_json(const struct job *job);

/* Parses a JSON request body into a cJSON value: valid UTF-8, one JSON
 * value, nothing after it but white space, and an object. On failure
 * returns NULL and fills p (malformed_json). The caller frees the result. */
cJSON *job_parse_body(const char *body, size_t len, struct problem *p);

/* Validates a submission object ({type, payload?, queue?, priority?}) and
 * builds a new queued job with a fresh id and created_at. On failure returns
 * -1, fills p, and *out is untouched. The job type is checked against the
 * registry in core/kind.h, and the payload by that kind's validator. */
int job_from_submission(const cJSON *body, struct job **out, struct problem *p);

/* True when s is valid UTF-8 (no overlongs, no surrogates). */
bool utf8_valid(const char *s, size_t len);

#endif
