/* The job model shared by every layer: states, the job record, its JSON
 * form, and validation of a submission. Payload, result and error are kept
 * as text: the payload as it was sent (white space aside), the result as
 * compact JSON, and both are rendered exactly as stored. */
#ifndef JOBQ_JOB_H
#define JOBQ_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/json.h"
#include "core/problem.h"
#include "core/uuid.h"

/* The values are stored in the database: never renumber. They are macros
 * too so that the store can spell them in SQL (JOBQ_STR(JOB_QUEUED_V)). */
#define JOB_QUEUED_V 0
#define JOB_RUNNING_V 1
#define JOB_SUCCEEDED_V 2
#define JOB_FAILED_V 3
#define JOB_CANCELED_V 4
#define JOB_SCHEDULED_V 5
#define JOB_BLOCKED_V 6
enum job_state {
	JOB_QUEUED = JOB_QUEUED_V,
	JOB_RUNNING = JOB_RUNNING_V,
	JOB_SUCCEEDED = JOB_SUCCEEDED_V,
	JOB_FAILED = JOB_FAILED_V,
	JOB_CANCELED = JOB_CANCELED_V,
	JOB_SCHEDULED = JOB_SCHEDULED_V,   /* waiting for run_at: a delay or a retry's backoff */
	JOB_BLOCKED = JOB_BLOCKED_V,       /* waiting for the jobs it depends on (core/deps.h) */
	JOB_STATE_COUNT
};
_Static_assert(JOB_QUEUED == 0 && JOB_RUNNING == 1 && JOB_SUCCEEDED == 2 && JOB_FAILED == 3 &&
               JOB_CANCELED == 4 && JOB_SCHEDULED == 5 && JOB_BLOCKED == 6 &&
               JOB_STATE_COUNT == 7,
               "job states are stored by number: never renumber");

/* How one attempt ended (stored as its name). */
enum attempt_outcome {
	ATTEMPT_SUCCEEDED,
	ATTEMPT_FAILED,
	ATTEMPT_TIMEOUT,
	ATTEMPT_CANCELED,
	ATTEMPT_INTERRUPTED, /* jobqd died while it ran */
	ATTEMPT_OUTCOME_COUNT
};

struct job_attempt {
	int attempt;
	int64_t started_at, finished_at; /* unix ms */
	enum attempt_outcome outcome;
	char *error;                     /* owned, or NULL */
};

/* A completion callback: where to POST, and how delivery went. */
/* Stored by number (NONE as NULL): never renumber. */
#define DELIVERY_PENDING_V 0
#define DELIVERY_DELIVERED_V 1
#define DELIVERY_FAILED_V 2
enum delivery_state {
	DELIVERY_NONE = -1,
	DELIVERY_PENDING = DELIVERY_PENDING_V,
	DELIVERY_DELIVERED = DELIVERY_DELIVERED_V,
	DELIVERY_FAILED = DELIVERY_FAILED_V,
};
_Static_assert(DELIVERY_PENDING == 0 && DELIVERY_DELIVERED == 1 && DELIVERY_FAILED == 2,
               "delivery states are stored by number: never renumber");

struct delivery {
	char *url;                       /* owned, or NULL: no callback */
	enum delivery_state state;       /* NONE until the job (or batch) ends */
	int attempts;
	int last_status;                 /* HTTP status of the last try, 0: none */
	char *last_error;                /* owned, or NULL */
};

#define CALLBACK_URL_MAX 2048

/* A batch: jobs submitted together and waited for together. */
struct batch_info {
	char id[UUID_LEN + 1];
	int64_t total;
	int64_t counts[JOB_STATE_COUNT];
	int64_t created_at, finished_at;  /* unix ms; finished_at 0 until done */
	struct delivery callback;         /* cleared with delivery_clear */
};

/* Server-wide defaults for what a submission leaves out (flags). */
struct job_defaults {
	int max_attempts;
	double backoff_s, max_backoff_s, timeout_s, retention_s;
	/* Whether a queue is served by external workers: its jobs may have
	 * any valid type name. NULL: none is. */
	bool (*external)(const void *arg, const char *queue);
	const void *external_arg;
};

#define JOB_MAX_ATTEMPTS_LIMIT 100
#define JOB_BACKOFF_LIMIT_S 86400.0
#define JOB_MAX_BACKOFF_LIMIT_S 604800.0
#define JOB_TIMEOUT_LIMIT_S 604800.0
#define JOB_DELAY_LIMIT_S 31536000.0
#define JOB_RETENTION_LIMIT_S 315360000.0

#define JOB_NAME_MAX 64          /* type and queue names, bytes */
#define JOB_PRIORITY_LIMIT 1000000 /* |priority| bound */
#define JOB_PROGRESS_MSG_MAX 200

/* Dependencies (core/deps.h): what a job waits for while blocked. */
#define JOB_DEPS_MAX 64          /* depends_on entries */
/* Stored by number: never renumber. */
#define DEP_WAIT_V 2
enum dep_policy {
	DEP_CANCEL = 0,              /* a failed or canceled parent cancels the job */
	DEP_RUN = 1,                 /* it counts as resolved: the job runs anyway */
	DEP_WAIT = DEP_WAIT_V,       /* the job stays blocked until the parent succeeds */
	DEP_POLICY_COUNT
};

struct job_deps {
	int n;                       /* entries of depends_on */
	char (*ids)[UUID_LEN + 1];   /* owned: the parents' ids (a batch index resolved) */
	int *refs;                   /* owned: per entry the batch index it named, -1 an id;
	                              * NULL when none named an index */
	enum dep_policy policy;
	int pending;                 /* parents not resolved yet (while blocked) */
	int missing;                 /* out of the store: the entry naming no job, -1 none */
};

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
	int max_attempts;
	double backoff_s, max_backoff_s; /* retry backoff base and cap */
	double timeout_s;            /* per attempt */
	double retention_s;          /* kept this long after finishing */
	int64_t created_at;          /* unix ms */
	int64_t run_at;              /* unix ms: runnable from then on */
	int64_t started_at;          /* unix ms, 0 = never */
	int64_t finished_at;         /* unix ms, 0 = not finished */

	/* Attempt history, loaded only for the single-job read. */
	bool has_history;
	struct job_attempt *history; /* owned */
	int nhistory;

	/* Set by the worker for the store: how the attempt that just ran
	 * ended (not stored on the job row). */
	enum attempt_outcome outcome;

	char batch_id[UUID_LEN + 1];     /* "" when not in a batch */
	char *idem_key;                  /* Idempotency-Key, owned, or NULL */
	char idem_hash[65];              /* SHA-256 of the submitted body, hex */
	struct delivery callback;        /* completion callback */
	/* The node whose pool runs the attempt, or that granted its lease:
	 * "" when the job is not running (or the store keeps no node). */
	char node[UUID_LEN + 1];

	struct job_deps deps;            /* depends_on; n 0: none */
	/* The schedule fire this job stands for (core/schedule.h): the
	 * schedule's name ("" for other jobs) and the fire time (unix ms).
	 * The pair is unique among jobs. */
	char schedule_name[JOB_NAME_MAX + 1];
	int64_t schedule_fire_at;
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

/* The same representation written as text straight into o: byte for byte
 * what cJSON_PrintUnformatted(job_to_json(job)) prints, without building
 * the tree (a reply on the hot path). */
void job_write(struct json_out *o, const struct job *job);

/* job_write into a new buffer: the text (the caller frees it) and its
 * length in *len; NULL when out of memory. */
char *job_to_text(const struct job *job, size_t *len);

const char *attempt_outcome_name(enum attempt_outcome outcome);

/* Returns 0 and sets *out for a known outcome name, else -1. */
int attempt_outcome_parse(const char *name, enum attempt_outcome *out);

/* The delay before the retry that follows attempt number `attempt`:
 * exponential with full jitter, uniform in [0, min(cap, base * 2^(attempt-1))],
 * in ms. */
int64_t job_backoff_ms(const struct job *job, int attempt);

/* Parses a JSON request body into a cJSON value: valid UTF-8, one JSON
 * value (RFC 8259, read by json_parse_strict in core/json.h), nothing after
 * it but white space, and an object. Each "payload" in it is a cJSON_Raw
 * item holding the payload's text as sent. On failure returns NULL and
 * fills p: malformed_json, or invalid_field naming a key given twice, a
 * string holding \u0000 or a number beyond a double outside a payload.
 * The caller frees the result. A fuzz target parses a submit body with
 * this and job_from_submission, a batch body with this and
 * job_batch_from_submission. */
cJSON *job_parse_body(const char *body, size_t len, struct problem *p);

/* Validates a submission object ({type, payload?, queue?, priority?,
 * max_attempts?, backoff_s?, max_backoff_s?, timeout_s?, run_at?, delay_s?,
 * retention_s?}) and builds a new job with a fresh id and created_at,
 * queued or (with a future run_at) scheduled; d fills what is left out. On
 * failure returns -1, fills p, and *out is untouched. The job type is
 * checked against the registry in core/kind.h, and the payload by that
 * kind's validator. A raw payload (from job_parse_body) is stored as is; a
 * kind with a validator reads it with cJSON, so for such a kind a \u0000
 * in it is refused (invalid_payload, naming its place). */
int job_from_submission(const cJSON *body, const struct job_defaults *d,
                        struct job **out, struct problem *p);

#define JOB_BATCH_MAX 10000       /* jobs in one batch */

/* The jobs of a batch submission, in order. */
struct job_batch {
	struct job **jobs;       /* owned, njobs of them */
	int njobs;
	char *callback_url;      /* owned, or NULL */
};

/* Validates a batch submission ({jobs: [...], callback_url?}, as
 * job_parse_body returns it) into b: each job as job_from_submission
 * makes it. A job's problem names its place: jobs[3].priority, or jobs[3]
 * for an item that is not an object. On failure returns -1, fills p and
 * leaves b empty. Free what b holds with job_batch_clear. */
int job_batch_from_submission(const cJSON *body, const struct job_defaults *d,
                              struct job_batch *b, struct problem *p);

/* Frees the jobs and URL b holds and empties it. */
void job_batch_clear(struct job_batch *b);

/* Checks an optional callback_url field (http or https, at most
 * CALLBACK_URL_MAX bytes); *out is its value or NULL. -1 with p filled. */
int job_parse_callback_url(const cJSON *body, const char **out, struct problem *p);

/* The batch's API representation. NULL on OOM. */
cJSON *batch_to_json(const struct batch_info *b);

/* The delivery's JSON: null when there is no callback. */
cJSON *delivery_to_json(const struct delivery *d);

/* Frees what a delivery owns. */
void delivery_clear(struct delivery *d);

/* True when s is a valid queue name: 1..JOB_NAME_MAX of [A-Za-z0-9_.:-]. */
bool job_queue_name_valid(const char *s);

#endif
