/* The lease API: external workers take jobs of external queues, extend
 * their leases, and answer with an outcome.
 *
 * POST /v1/leases posts a lease op; with nothing leased and wait_s left it
 * suspends on the hub key LEASES_READY_KEY, which leases_notify fires after
 * every commit that makes a job of an external queue ready (submit, retry,
 * release, expiry, promotion of a scheduled job), then leases again. A
 * generation counter closes the gap between the lease's commit and the
 * arming of the waiter: a notice in between is seen as a new generation.
 *
 * Every answer names the lease it answers for; the store applies it only
 * while that lease is the job's current one (STORE_CONFLICT otherwise,
 * replied 409 lease_lost, nothing changed). */
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hub.h"
#include "core/job.h"
#include "core/json.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "server/config.h"
#include "store/store.h"

#define LEASE_MAX_JOBS 100
#define LEASE_MAX_QUEUES 64
#define LEASE_DEFAULT_S 60
#define LEASE_MIN_S 1
#define LEASE_MAX_S 3600
#define LEASE_WAIT_MAX_S 60
#define LEASE_WORKER_MAX 200
#define LEASE_ERROR_MAX 65536

static atomic_uint_fast64_t lease_generation;

void leases_notify(struct hub *hub)
{
	atomic_fetch_add(&lease_generation, 1);
	hub_notify(hub, LEASES_READY_KEY);
}

/* ---- the body ------------------------------------------------------- */

/* The request body as a JSON object; NULL after replying 400. */
static cJSON *parse_object(struct req *r)
{
	struct problem p;
	cJSON *body = json_parse_strict(r->body ? r->body : "", r->body_len, &p);
	if (!body) {
		reply_problem(r, &p);
		return NULL;
	}
	if (!cJSON_IsObject(body)) {
		cJSON_Delete(body);
		reply_error(r, PROBLEM_INVALID_FIELD, NULL, "the body must be a JSON object");
		return NULL;
	}
	return body;
}

/* An optional number in [min, max] (integer when asked) into *out; -1
 * after replying 400 naming it. */
static int optional_number(struct req *r, const cJSON *body, const char *name, double min, double max,
                           bool integer, double *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < min || v->valuedouble > max ||
	    (integer && v->valuedouble != floor(v->valuedouble))) {
		reply_error(r, PROBLEM_INVALID_FIELD, name, "%s must be %s from %g to %g", name,
		            integer ? "an integer" : "a number", min, max);
		return -1;
	}
	*out = v->valuedouble;
	return 0;
}

/* The required lease_id (any string: one that is not the job's lease is
 * lost, not malformed); NULL after replying 400. */
static const char *lease_id_of(struct req *r, const cJSON *body)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "lease_id");
	if (!cJSON_IsString(v)) {
		reply_error(r, PROBLEM_INVALID_FIELD, "lease_id", "lease_id is required: the lease's id, a string");
		return NULL;
	}
	return v->valuestring;
}

/* Copies a lease id that can be one into out; false for any other string
 * (which can be no job's lease). */
static bool lease_id_copy(const char *id, char out[STORE_LEASE_ID_LEN + 1])
{
	if (strlen(id) != STORE_LEASE_ID_LEN || strspn(id, "0123456789abcdef") != STORE_LEASE_ID_LEN)
		return false;
	memcpy(out, id, STORE_LEASE_ID_LEN + 1);
	return true;
}

static void reply_lease_lost(struct req *r, const char *id)
{
	reply_error(r, PROBLEM_LEASE_LOST, "lease_id",
	            "this lease is not job %s's current lease (it expired, was answered, or the job was canceled)", id);
}

/* ---- POST /v1/leases ------------------------------------------------ */

struct lease_req {
	struct store_op op;
	struct hub_waiter waiter;
	struct hub *hub;
	char queues[LEASE_MAX_QUEUES][JOB_NAME_MAX + 1];
	int nqueues, max;
	int64_t lease_ms;
	int64_t deadline;            /* monotonic ms the wait ends */
	uint_fast64_t generation;    /* lease_generation when the lease was posted */
	const struct config *cfg;
};

static void lease_req_free(void *p)
{
	struct lease_req *lr = p;
	if (!lr)
		return;
	if (lr->hub)
		hub_disarm(lr->hub, &lr->waiter);
	for (int i = 0; i < lr->op.lease.nleased; i++)
		job_free(lr->op.lease.leased[i].job);
	free(lr->op.lease.leased);
	free(lr);
}

/* Writer thread: the queue's --queue limit, INT_MAX when it has none. */
static int lease_queue_limit(struct store_op *op, const char *queue)
{
	const struct config *cfg = ((struct lease_req *)((struct req *)op->arg)->ctx)->cfg;
	for (int i = 0; i < cfg->nqueues; i++)
		if (strcmp(cfg->queues[i].name, queue) == 0)
			return cfg->queues[i].limit;
	return INT_MAX;
}

static void lease_committed(struct req *r);

static void lease_post(struct req *r)
{
	struct lease_req *lr = r->ctx;
	for (int i = 0; i < lr->op.lease.nleased; i++)
		job_free(lr->op.lease.leased[i].job);
	free(lr->op.lease.leased);
	lr->generation = atomic_load(&lease_generation);
	lr->op = (struct store_op){
		.kind = STORE_OP_LEASE,
		.lease = {.queues = (const char (*)[JOB_NAME_MAX + 1])lr->queues, .nqueues = lr->nqueues,
		          .max = lr->max, .lease_ms = lr->lease_ms, .queue_limit = lease_queue_limit},
	};
	handler_post(r, &lr->op, lease_committed);
}

static bool lease_ready_again(struct req *r, const char *key)
{
	(void)key;
	struct lease_req *lr = r->ctx;
	return atomic_load(&lease_generation) != lr->generation;
}

static void lease_woken(struct req *r)
{
	struct lease_req *lr = r->ctx;
	hub_disarm(lr->hub, &lr->waiter);
	if (clock_mono_ms() < lr->deadline && !atomic_load(&r->app->stopping)) {
		lease_post(r);
		return;
	}
	reply_static(r, 200, "application/json", "{\"jobs\":[]}", strlen("{\"jobs\":[]}"));
}

/* One leased job: its representation, its attempt, lease id and expiry. */
static void write_leased(struct json_out *o, const struct store_leased *l)
{
	size_t start = o->len;
	job_write(o, l->job);
	if (o->oom || o->len == start)
		return;
	o->len--; /* reopen the object: drop its '}' */
	char expires[32], num[24];
	clock_rfc3339(l->expires_at, expires);
	snprintf(num, sizeof num, "%d", l->job->attempts);
	json_out_lit(o, ",\"attempt\":");
	json_out_raw(o, num, strlen(num));
	json_out_lit(o, ",\"lease_id\":");
	json_out_str(o, l->lease_id);
	json_out_lit(o, ",\"lease_expires_at\":");
	json_out_str(o, expires);
	json_out_lit(o, "}");
}

static void lease_committed(struct req *r)
{
	struct lease_req *lr = r->ctx;
	if (lr->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	if (lr->op.lease.nleased == 0) {
		double left_s = (double)(lr->deadline - clock_mono_ms()) / 1000;
		/* A rate-limited queue's next token: lease again then. */
		int64_t token_ms = lr->op.lease.next_token ? lr->op.lease.next_token - clock_now_ms() : -1;
		if (token_ms >= 0 && (double)token_ms / 1000 < left_s)
			left_s = token_ms > 0 ? (double)token_ms / 1000 : 0.001;
		if (left_s > 0 && !atomic_load(&r->app->stopping)) {
			handler_wait(r, &lr->waiter, LEASES_READY_KEY, left_s, lease_woken, lease_ready_again);
			return;
		}
	}
	struct json_out o = {.buf = NULL};
	json_out_lit(&o, "{\"jobs\":[");
	for (int i = 0; i < lr->op.lease.nleased; i++) {
		if (i)
			json_out_lit(&o, ",");
		write_leased(&o, &lr->op.lease.leased[i]);
	}
	json_out_lit(&o, "]}");
	handler_reply_out(r, 200, &o);
}

/* queues: 1..LEASE_MAX_QUEUES external queue names; -1 after replying. */
static int parse_queues(struct req *r, const cJSON *body, struct lease_req *lr)
{
	const cJSON *qs = cJSON_GetObjectItemCaseSensitive(body, "queues");
	int n = cJSON_IsArray(qs) ? cJSON_GetArraySize(qs) : -1;
	if (n < 1 || n > LEASE_MAX_QUEUES) {
		reply_error(r, PROBLEM_INVALID_FIELD, "queues", "queues must be an array of 1 to %d queue names",
		            LEASE_MAX_QUEUES);
		return -1;
	}
	const cJSON *q;
	int i = 0;
	cJSON_ArrayForEach(q, qs) {
		char field[32];
		snprintf(field, sizeof field, "queues[%d]", i);
		if (!cJSON_IsString(q) || !job_queue_name_valid(q->valuestring)) {
			reply_error(r, PROBLEM_INVALID_FIELD, field,
			            "%s must be a queue name: 1 to %d characters of A-Z a-z 0-9 _ . : -", field, JOB_NAME_MAX);
			return -1;
		}
		if (!config_queue_external(r->app->cfg, q->valuestring)) {
			reply_error(r, PROBLEM_QUEUE_NOT_EXTERNAL, field,
			            "queue %s is not served by external workers (see --external-queue)", q->valuestring);
			return -1;
		}
		int k = 0;
		while (k < lr->nqueues && strcmp(lr->queues[k], q->valuestring) != 0)
			k++;
		if (k == lr->nqueues)
			snprintf(lr->queues[lr->nqueues++], sizeof lr->queues[0], "%s", q->valuestring);
		i++;
	}
	return 0;
}

void leases_create(struct req *r)
{
	if (handler_refuse_if_stopping(r))
		return;
	cJSON *body = parse_object(r);
	if (!body)
		return;
	struct lease_req *lr = handler_new_ctx(r, sizeof *lr, lease_req_free);
	if (!lr) {
		cJSON_Delete(body);
		return;
	}
	lr->hub = r->app->hub;
	lr->cfg = r->app->cfg;
	double max = 1, wait_s = 0, lease_s = LEASE_DEFAULT_S;
	const cJSON *worker = cJSON_GetObjectItemCaseSensitive(body, "worker");
	int rc = parse_queues(r, body, lr);
	if (rc == 0)
		rc = optional_number(r, body, "max", 1, LEASE_MAX_JOBS, true, &max);
	if (rc == 0)
		rc = optional_number(r, body, "wait_s", 0, LEASE_WAIT_MAX_S, false, &wait_s);
	if (rc == 0)
		rc = optional_number(r, body, "lease_s", LEASE_MIN_S, LEASE_MAX_S, false, &lease_s);
	if (rc == 0 && worker && (!cJSON_IsString(worker) || strlen(worker->valuestring) > LEASE_WORKER_MAX)) {
		reply_error(r, PROBLEM_INVALID_FIELD, "worker", "worker must be a string of at most %d bytes",
		            LEASE_WORKER_MAX);
		rc = -1;
	}
	cJSON_Delete(body);
	if (rc != 0)
		return;
	lr->max = (int)max;
	lr->lease_ms = llround(lease_s * 1000);
	lr->deadline = clock_mono_ms() + llround(wait_s * 1000);
	lease_post(r);
}

/* ---- heartbeat ------------------------------------------------------ */

struct answer_req {
	struct store_op op;
	struct job *job;             /* complete, fail, release: the job, then its outcome */
	char fence[STORE_LEASE_ID_LEN + 1]; /* the lease the answer is for */
};

static void answer_req_free(void *p)
{
	struct answer_req *ar = p;
	if (!ar)
		return;
	job_free(ar->job);
	free(ar);
}

/* The job id of the path; NULL after replying 404. */
static const char *job_id_of(struct req *r)
{
	if (!r->param || !uuid_valid(r->param)) {
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %.40s", r->param ? r->param : "");
		return NULL;
	}
	return r->param;
}

/* What every answer starts with: the job id, the body, the request's
 * context and the lease_id. NULL after replying (the body is freed). */
static cJSON *answer_begin(struct req *r, struct answer_req **ar, const char **lease_id)
{
	const char *id = job_id_of(r);
	cJSON *body = id ? parse_object(r) : NULL;
	if (!body)
		return NULL;
	*ar = handler_new_ctx(r, sizeof **ar, answer_req_free);
	*lease_id = *ar ? lease_id_of(r, body) : NULL;
	if (!*lease_id) {
		cJSON_Delete(body);
		return NULL;
	}
	return body;
}

static void heartbeat_committed(struct req *r)
{
	struct answer_req *ar = r->ctx;
	struct store_op_heartbeat *h = &ar->op.heartbeat;
	if (ar->op.rc == STORE_NOT_FOUND) {
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %s", h->id);
	} else if (ar->op.rc == STORE_CONFLICT) {
		reply_lease_lost(r, h->id);
	} else if (ar->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
	} else if (h->canceled) {
		static const char canceled[] = "{\"lease_expires_at\":null,\"cancel\":true}";
		reply_static(r, 200, "application/json", canceled, sizeof canceled - 1);
	} else {
		char expires[32];
		clock_rfc3339(h->expires_at, expires);
		struct json_out o = {.buf = NULL};
		json_out_lit(&o, "{\"lease_expires_at\":");
		json_out_str(&o, expires);
		json_out_lit(&o, ",\"cancel\":false}");
		handler_reply_out(r, 200, &o);
	}
}

/* progress: {percent 0..100, message?}; -1 after replying 400. */
static int parse_progress(struct req *r, const cJSON *body, struct store_op_heartbeat *h)
{
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(body, "progress");
	if (!pr || cJSON_IsNull(pr))
		return 0;
	if (!cJSON_IsObject(pr)) {
		reply_error(r, PROBLEM_INVALID_FIELD, "progress", "progress must be an object {percent, message}");
		return -1;
	}
	const cJSON *pc = cJSON_GetObjectItemCaseSensitive(pr, "percent");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(pr, "message");
	if (!cJSON_IsNumber(pc) || !isfinite(pc->valuedouble) || pc->valuedouble < 0 || pc->valuedouble > 100) {
		reply_error(r, PROBLEM_INVALID_FIELD, "progress.percent", "progress.percent must be a number from 0 to 100");
		return -1;
	}
	if (msg && !cJSON_IsNull(msg) && (!cJSON_IsString(msg) || strlen(msg->valuestring) > JOB_PROGRESS_MSG_MAX)) {
		reply_error(r, PROBLEM_INVALID_FIELD, "progress.message",
		            "progress.message must be a string of at most %d bytes", JOB_PROGRESS_MSG_MAX);
		return -1;
	}
	h->has_progress = true;
	h->percent = pc->valuedouble;
	snprintf(h->message, sizeof h->message, "%s", msg && cJSON_IsString(msg) ? msg->valuestring : "");
	return 0;
}

void leases_heartbeat(struct req *r)
{
	struct answer_req *ar = NULL;
	const char *lease_id = NULL, *id = r->param;
	cJSON *body = answer_begin(r, &ar, &lease_id);
	if (!body)
		return;
	double lease_s = 0;
	if (optional_number(r, body, "lease_s", LEASE_MIN_S, LEASE_MAX_S, false, &lease_s) != 0 ||
	    parse_progress(r, body, &ar->op.heartbeat) != 0) {
		cJSON_Delete(body);
		return;
	}
	struct store_op_heartbeat *h = &ar->op.heartbeat;
	bool well_formed = lease_id_copy(lease_id, h->lease_id);
	cJSON_Delete(body);
	snprintf(h->id, sizeof h->id, "%s", id);
	h->lease_ms = llround(lease_s * 1000);
	if (!well_formed) {
		/* No lease has that id; the job's existence decides 404 or 409. */
		memset(h->lease_id, '-', STORE_LEASE_ID_LEN);
		h->lease_id[STORE_LEASE_ID_LEN] = '\0';
	}
	ar->op.kind = STORE_OP_HEARTBEAT;
	handler_post(r, &ar->op, heartbeat_committed);
}

/* ---- complete, fail, release ---------------------------------------- */

enum answer { ANSWER_COMPLETE, ANSWER_FAIL, ANSWER_RELEASE };

static void answer_committed(struct req *r)
{
	struct answer_req *ar = r->ctx;
	if (ar->op.rc == STORE_CONFLICT) {
		reply_lease_lost(r, ar->job->id);
		return;
	}
	if (ar->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	if (handler_prefers_minimal(r)) { /* a worker needs only the status */
		reply_header(r, "Preference-Applied", "return=minimal");
		reply_static(r, 204, NULL, "", 0);
		return;
	}
	struct job *job = NULL;
	enum store_rc rc = store_get_job(r->app->store, ar->job->id, &job);
	if (rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %s", ar->job->id);
	else if (rc != STORE_OK)
		handler_reply_unavailable(r);
	else {
		struct json_out o = {.buf = NULL};
		job_write(&o, job);
		handler_reply_out(r, 200, &o);
	}
	job_free(job);
}

/* Fills the job's outcome from the answer's body; -1 after replying 400. */
static int take_outcome(struct req *r, const cJSON *body, enum answer kind, struct store_op *op)
{
	struct job *job = op->finish.job;
	int64_t now = clock_now_ms();
	job->finished_at = now;
	free(job->error);
	job->error = NULL;
	if (kind == ANSWER_COMPLETE) {
		const cJSON *result = cJSON_GetObjectItemCaseSensitive(body, "result");
		free(job->result);
		job->result = result && !cJSON_IsNull(result) ? cJSON_PrintUnformatted(result) : NULL;
		if (result && !cJSON_IsNull(result) && !job->result) {
			reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
			return -1;
		}
		job->state = JOB_SUCCEEDED;
		job->outcome = ATTEMPT_SUCCEEDED;
		return 0;
	}
	if (kind == ANSWER_RELEASE) {
		double delay_s = 0;
		if (optional_number(r, body, "delay_s", 0, JOB_DELAY_LIMIT_S, false, &delay_s) != 0)
			return -1;
		op->finish.lease.release = true;
		job->state = delay_s > 0 ? JOB_SCHEDULED : JOB_QUEUED;
		job->run_at = now + llround(delay_s * 1000);
		return 0;
	}
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(body, "error");
	const cJSON *retryable = cJSON_GetObjectItemCaseSensitive(body, "retryable");
	if (error && (!cJSON_IsString(error) || strlen(error->valuestring) > LEASE_ERROR_MAX)) {
		reply_error(r, PROBLEM_INVALID_FIELD, "error", "error must be a string of at most %d bytes", LEASE_ERROR_MAX);
		return -1;
	}
	if (retryable && !cJSON_IsBool(retryable)) {
		reply_error(r, PROBLEM_INVALID_FIELD, "retryable", "retryable must be true or false");
		return -1;
	}
	if (!(job->error = strdup(error ? error->valuestring : "failed"))) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return -1;
	}
	job->outcome = ATTEMPT_FAILED;
	store_attempt_failed(job, !retryable || cJSON_IsTrue(retryable), now, 0);
	return 0;
}

static void answer(struct req *r, enum answer kind)
{
	struct answer_req *ar = NULL;
	const char *lease_id = NULL, *id = r->param;
	cJSON *body = answer_begin(r, &ar, &lease_id);
	if (!body)
		return;
	enum store_rc rc = store_get_job(r->app->store, id, &ar->job);
	if (rc != STORE_OK) {
		cJSON_Delete(body);
		if (rc == STORE_NOT_FOUND)
			reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %s", id);
		else
			handler_reply_unavailable(r);
		return;
	}
	/* The fence: the store applies the answer only under this lease. A
	 * job not running has no lease, and a string that is no lease id is
	 * none of its leases: nothing to post. */
	if (!lease_id_copy(lease_id, ar->fence) || ar->job->state != JOB_RUNNING) {
		cJSON_Delete(body);
		reply_lease_lost(r, id);
		return;
	}
	ar->op.kind = STORE_OP_FINISH;
	ar->op.finish.job = ar->job;
	ar->op.finish.lease.lease_id = ar->fence;
	int bad = take_outcome(r, body, kind, &ar->op);
	cJSON_Delete(body);
	if (!bad)
		handler_post(r, &ar->op, answer_committed);
}

void leases_complete(struct req *r)
{
	answer(r, ANSWER_COMPLETE);
}

void leases_fail(struct req *r)
{
	answer(r, ANSWER_FAIL);
}

void leases_release(struct req *r)
{
	answer(r, ANSWER_RELEASE);
}
