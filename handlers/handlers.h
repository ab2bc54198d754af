/* Every REST handler: one file per resource. Each parses and validates the
 * request, calls core/ and store/, and shapes the JSON reply. */
#ifndef JOBQ_HANDLERS_H
#define JOBQ_HANDLERS_H

#include <stdbool.h>

#include "core/hub.h"
#include "core/json.h"
#include "server/req.h"
#include "store/store.h"

/* handlers/common.c */

/* 503 storage_unavailable with Retry-After. */
void handler_reply_unavailable(struct req *r);

#define HANDLER_WAIT_MAX_S 60.0

/* Replies status with the JSON text written into o (taken; the writer is
 * zeroed), or 500 when writing it ran out of memory. */
void handler_reply_out(struct req *r, int status, struct json_out *o);

/* A zeroed request context of size bytes, freed with the request by
 * ctx_free; NULL after replying 500. */
void *handler_new_ctx(struct req *r, size_t size, void (*ctx_free)(void *ctx));

/* Replies 503 shutting_down with Retry-After and returns true while jobqd
 * is stopping; for requests that would add work. */
bool handler_refuse_if_stopping(struct req *r);

/* Reads ?wait=S, or else a Prefer: wait=S header (RFC 7240; an unusable
 * preference is ignored), clamped to HANDLER_WAIT_MAX_S. Returns -1 after
 * replying 400 for a bad ?wait. */
int handler_parse_wait(struct req *r, double *wait_s, bool *from_prefer);

/* handler_parse_wait without the request: query is ?wait's value and
 * prefer the Prefer header's (each NULL when absent). *from_prefer is
 * true only when a usable wait preference was taken. -1 for a bad query
 * value (nothing replied). */
int handler_wait_parse(const char *query, const char *prefer, double *wait_s, bool *from_prefer);

/* Whether the request asks for no body in a success answer
 * (`Prefer: return=minimal`, RFC 7240). */
bool handler_prefers_minimal(struct req *r);

/* Suspends r until the hub fires id or wait_s passes, then on_resume runs.
 * ended(r, id) is asked after arming, so an end that landed between the
 * caller's read and the arming is not missed. w lives in r's ctx. */
void handler_wait(struct req *r, struct hub_waiter *w, const char *id, double wait_s,
                  req_fn on_resume, bool (*ended)(struct req *r, const char *id));

/* A zeroed op of that kind, owned by the request (its ctx); NULL after
 * replying 500. */
struct store_op *handler_new_op(struct req *r, enum store_op_kind kind);

/* Suspends r and posts op; on_commit runs on the HTTP thread once the op
 * is committed or failed. op->done, when set, must end in req_resume. */
void handler_post(struct req *r, struct store_op *op, req_fn on_commit);

/* handlers/jobs.c */
void jobs_create(struct req *r);
void jobs_get(struct req *r);
void jobs_list(struct req *r);
void jobs_cancel(struct req *r);
void jobs_retry(struct req *r);
void jobs_delete(struct req *r);

/* GET /v1/jobs' ?state, ?limit and ?cursor (each NULL when absent) into
 * f (zeroed first; queue and type are left NULL); -1 with p filled
 * (invalid_query naming the parameter). */
int jobs_parse_list_query(const char *state, const char *limit, const char *cursor, struct store_filter *f,
                          struct problem *p);

/* Reads an Idempotency-Key header (1 to 255 printable ASCII characters)
 * into *key (malloc'd; left alone without the header) and the SHA-256 of
 * the body into hash; -1 after replying 400 naming the header. */
int jobs_take_idempotency_key(struct req *r, char **key, char hash[65]);

/* Writes `"jobs":[...],"next_cursor":...` of a list page into o; takes
 * jobs (each and the array freed). */
void jobs_write_page(struct req *r, struct json_out *o, struct job **jobs, size_t n, int64_t next);

#define JOBS_IDS_MAX 1000

/* A set of job ids from a query (?ids=a,b,c): sorted, each once. */
struct id_set {
	char (*id)[UUID_LEN + 1];
	const char **ptr;                 /* ptr[i] == id[i], for store_filter.ids */
	size_t n;
};

/* Parses text, comma-separated UUIDs (1 to JOBS_IDS_MAX of them), into s
 * (zeroed first); -1 with p filled (invalid_query naming `ids`, or
 * internal). Free with id_set_clear. */
int jobs_parse_ids(const char *text, struct id_set *s, struct problem *p);
void id_set_clear(struct id_set *s);

/* Sorts s->id[0..n), drops repeats and sets ptr (allocated for n). */
void id_set_sort(struct id_set *s);

/* Whether id is in s (s->n > 0). */
bool id_set_has(const struct id_set *s, const char *id);

/* handlers/bulk.c: POST /v1/jobs/cancel, /retry and /delete with a body
 * {filter: {state?, queue?, type?, batch_id?}, limit?, cursor?, dry_run?}:
 * one page of the filter's jobs acted on per call. */
void jobs_bulk_cancel(struct req *r);
void jobs_bulk_retry(struct req *r);
void jobs_bulk_delete(struct req *r);

/* handlers/workers.c: GET /v1/leases, the jobs leased now (?queue, ?limit) */
void leases_list(struct req *r);

/* handlers/leases.c: the lease API of external workers */
void leases_create(struct req *r);
void leases_heartbeat(struct req *r);
void leases_complete(struct req *r);
void leases_fail(struct req *r);
void leases_release(struct req *r);

/* The hub key lease long-polls wait on. */
#define LEASES_READY_KEY "leases:ready"

/* After a commit that made a job of an external queue ready: wakes the
 * waiting lease requests. */
void leases_notify(struct hub *hub);

/* handlers/batches.c */
void batches_create(struct req *r);
void batches_get(struct req *r);


/* handlers/events.c */
void events_job_stream(struct req *r);
void events_stream(struct req *r);

/* handlers/metrics.c */
void metrics_get(struct req *r);

/* handlers/queues.c */
typedef char queue_name[JOB_NAME_MAX + 1];

/* Up to max queue names after `after` (NULL: from the first), sorted:
 * those the store knows (with jobs, or paused) and the configured ones.
 * The caller frees *names. -1 after replying 503 or 500. */
int queues_names_page(struct req *r, const char *after, int max, queue_name **names, size_t *n);
void queues_list(struct req *r);
void queues_get(struct req *r);
void queues_pause(struct req *r);
void queues_resume(struct req *r);

/* handlers/rates.c: a queue's rate limit */
void queues_rate_put(struct req *r);
void queues_rate_delete(struct req *r);
/* Adds "rate" (rate's limit, its bucket brought to now; null when rate is
 * NULL) to the queue object o. */
void rates_add_json(cJSON *o, const struct store_rate *rate, int64_t now);
/* Reads queue name's rate and adds it to o; -1 when the store could not
 * be read (nothing replied). */
int rates_queue_json(struct req *r, cJSON *o, const char *name);
/* Appends to names[*n] (grown) the queues with a rate limit after `after`
 * that are not there yet, so a queue is listed once it has a limit; -1
 * after replying. */
int rates_merge_names(struct req *r, const char *after, char (**names)[JOB_NAME_MAX + 1], size_t *n);
/* jobq_queue_rate_limit, jobq_queue_rate_tokens and
 * jobq_rate_limited_total of every queue with a limit; -1 after replying. */
struct metrics_text;
int rates_render_metrics(struct req *r, struct metrics_text *t);
/* handlers/schedules.c */
void schedules_create(struct req *r);
void schedules_list(struct req *r);
void schedules_get(struct req *r);
void schedules_replace(struct req *r);
void schedules_delete(struct req *r);
void schedules_pause(struct req *r);
void schedules_resume(struct req *r);
void schedules_run(struct req *r);

/* handlers/dashboard.c: the dashboard's files at /, /app.js, /style.css */
void dashboard_get(struct req *r);

/* handlers/system.c */
void system_healthz(struct req *r);
void system_readyz(struct req *r);
/* GET /v1/info: version, backend, and what a 201 guarantees (--sync) */
void system_info(struct req *r);
void system_cluster(struct req *r);
void system_openapi(struct req *r);

#endif
