/* /v1/jobs: submit, read (with long-poll), list and cancel jobs.
 *
 * Submit and cancel are writes: the handler posts an op to the store
 * writer and suspends; the writer resumes the request after its commit.
 * A long-poll suspends on the hub until the job finishes or the deadline
 * passes; it holds no database read while suspended. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/deps.h"
#include "core/digest.h"
#include "core/hash.h"
#include "core/hub.h"
#include "core/job.h"
#include "core/log.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define CANCEL_WAIT_S 10
#define LIST_DEFAULT 50
#define LIST_MAX 1000

/* State of a request that suspends: its store op and its hub waiter. */
struct job_req {
	struct store_op op;
	struct hub_waiter waiter;
	struct hub *hub;
	struct job *job;         /* SUBMIT: the job being inserted */
	double wait_s;
	bool prefer_wait;
};

static void job_req_free(void *p)
{
	struct job_req *jr = p;
	if (!jr)
		return;
	/* A completed request is never suspended, so its waiter has fired
	 * or was never armed; disarm anyway for a request cut short. */
	if (jr->hub)
		hub_disarm(jr->hub, &jr->waiter);
	job_free(jr->job);
	free(jr);
}

static struct job_req *job_req_new(struct req *r)
{
	struct job_req *jr = handler_new_ctx(r, sizeof *jr, job_req_free);
	if (jr)
		jr->hub = r->app->hub;
	return jr;
}

/* The job's representation, written straight into the reply. */
static void reply_job_text(struct req *r, int status, const struct job *job)
{
	struct json_out o = {.buf = NULL};
	job_write(&o, job);
	handler_reply_out(r, status, &o);
}

static void reply_job(struct req *r, int status, struct job *job)
{
	if (job->state == JOB_RUNNING)
		run_table_progress(r->app->runs, job->id, job);
	reply_job_text(r, status, job);
}

/* Reads job id into *out, or replies 404/503 and returns -1. */
static int load_job(struct req *r, const char *id, struct job **out)
{
	enum store_rc rc = id && uuid_valid(id) ? store_get_job(r->app->store, id, out) : STORE_NOT_FOUND;
	if (rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %.40s", id ? id : "");
	else if (rc != STORE_OK)
		handler_reply_unavailable(r);
	return rc == STORE_OK ? 0 : -1;
}

/* ---- POST /v1/jobs -------------------------------------------------- */

static void create_done(struct req *r)
{
	struct job_req *jr = r->ctx;
	if (jr->op.rc == STORE_CONFLICT) {
		reply_error(r, PROBLEM_IDEMPOTENCY_CONFLICT, "Idempotency-Key",
		            "this Idempotency-Key was used with a different request body");
		return;
	}
	if (jr->op.rc == STORE_NOT_FOUND && jr->job->deps.missing >= 0) {
		int i = jr->job->deps.missing;
		char field[32];
		snprintf(field, sizeof field, "depends_on[%d]", i);
		reply_error(r, PROBLEM_INVALID_DEPENDENCY, field, "%s: no job with id %s", field, jr->job->deps.ids[i]);
		return;
	}
	if (jr->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	reply_header(r, "Location", "/v1/jobs/%s", jr->job->id);
	if (!jr->op.submit.replayed) {
		reply_job_text(r, 201, jr->job);
		return;
	}
	/* The same request again: the job it made, as it is now. */
	struct job *job = NULL;
	if (load_job(r, jr->job->id, &job) == 0)
		reply_job(r, 200, job);
	job_free(job);
}

#define IDEMPOTENCY_KEY_MAX 255

/* Reads the Idempotency-Key header into job; -1 after replying 400. */
static int take_idempotency_key(struct req *r, struct job *job)
{
	return jobs_take_idempotency_key(r, &job->idem_key, job->idem_hash);
}

int jobs_take_idempotency_key(struct req *r, char **out, char hash[65])
{
	const char *key = req_header(r, "Idempotency-Key");
	if (!key)
		return 0;
	size_t n = strlen(key);
	bool ok = n > 0 && n <= IDEMPOTENCY_KEY_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = key[i] >= 0x20 && key[i] < 0x7f;
	if (!ok) {
		reply_error(r, PROBLEM_INVALID_FIELD, "Idempotency-Key",
		            "Idempotency-Key must be 1 to %d printable ASCII characters", IDEMPOTENCY_KEY_MAX);
		return -1;
	}
	if (!(*out = strdup(key))) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return -1;
	}
	digest_sha256_hex(r->body, r->body_len, hash);
	return 0;
}

void jobs_create(struct req *r)
{
	if (handler_refuse_if_stopping(r))
		return;
	struct problem p;
	cJSON *body = job_parse_body(r->body, r->body_len, &p);
	struct job *job = NULL;
	int rc = body ? job_from_submission(body, &r->app->cfg->defaults, &job, &p) : -1;
	cJSON_Delete(body);
	if (rc == 0 && deps_refuse_refs(job, &p) != 0) {
		job_free(job);
		rc = -1;
	}
	if (rc != 0) {
		reply_problem(r, &p);
		return;
	}
	struct job_req *jr = take_idempotency_key(r, job) == 0 ? job_req_new(r) : NULL;
	if (!jr) {
		job_free(job);
		return;
	}
	jr->job = job;
	jr->op.kind = STORE_OP_SUBMIT;
	jr->op.submit.job = job;
	handler_post(r, &jr->op, create_done);
}

/* ---- GET /v1/jobs/{id} ---------------------------------------------- */

static void get_reply(struct req *r, struct job *job)
{
	struct job_req *jr = r->ctx;
	if (jr && jr->prefer_wait)
		reply_header(r, "Preference-Applied", "wait=%g", jr->wait_s);
	reply_job(r, 200, job);
}

/* Answers for a burst of long-polls. When a job ends every waiter on it
 * wakes at once; each used to read the job with its history, render it and
 * hash it for its ETag: 10,000 reads, renders and hashes of one row. Now
 * the first one resumed keeps the reply it made of a finished job (text
 * and ETag, shared by reference), with the time its read began; a waiter
 * woken before that time sends those same bytes. Its answer is then the
 * job as it was after it woke, as if it had read it itself. */
#define BURST_SLOTS 64

struct burst {
	char id[UUID_LEN + 1];
	int64_t read_us;         /* clock_mono_us() before the read */
	struct req_shared *reply;
};

static struct {
	pthread_mutex_t mu;
	struct burst slot[BURST_SLOTS];
} bursts = {.mu = PTHREAD_MUTEX_INITIALIZER};

static struct burst *burst_slot(const char *id)
{
	return &bursts.slot[hash_str(id) % BURST_SLOTS];
}

/* A reference to the reply kept for job id if it was read after woke_us. */
static struct req_shared *burst_take(const char *id, int64_t woke_us)
{
	struct req_shared *reply = NULL;
	pthread_mutex_lock(&bursts.mu);
	struct burst *b = burst_slot(id);
	if (b->reply && b->read_us >= woke_us && strcmp(b->id, id) == 0)
		reply = req_shared_ref(b->reply);
	pthread_mutex_unlock(&bursts.mu);
	return reply;
}

static void burst_keep(const char *id, int64_t read_us, struct req_shared *reply)
{
	struct req_shared *old = NULL;
	pthread_mutex_lock(&bursts.mu);
	struct burst *b = burst_slot(id);
	if (!b->reply || b->read_us <= read_us) { /* else a later read is kept already */
		old = b->reply;
		snprintf(b->id, sizeof b->id, "%s", id);
		b->read_us = read_us;
		b->reply = req_shared_ref(reply);
	}
	pthread_mutex_unlock(&bursts.mu);
	req_shared_put(old);
}

static void get_resumed(struct req *r)
{
	struct job_req *jr = r->ctx;
	hub_disarm(jr->hub, &jr->waiter);
	struct req_shared *reply = r->param ? burst_take(r->param, jr->waiter.woke_us) : NULL;
	if (!reply) {
		int64_t read_us = clock_mono_us();
		struct job *job = NULL;
		if (load_job(r, r->param, &job) != 0)
			return;
		if (!job_state_terminal(job->state)) {
			get_reply(r, job); /* the wait ran out: live progress, never kept */
			job_free(job);
			return;
		}
		size_t len = 0;
		char *body = job_to_text(job, &len);
		reply = body ? req_shared_new(body, len) : NULL;
		if (reply)
			burst_keep(job->id, read_us, reply);
		job_free(job);
		if (!reply) {
			reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
			return;
		}
	}
	if (jr->prefer_wait)
		reply_header(r, "Preference-Applied", "wait=%g", jr->wait_s);
	reply_shared(r, 200, "application/json", reply);
}

/* For handler_wait: has job id ended (or become unreadable)? */
static bool job_ended(struct req *r, const char *id)
{
	struct job *now = NULL;
	bool ended = store_get_job(r->app->store, id, &now) != STORE_OK || job_state_terminal(now->state);
	job_free(now);
	return ended;
}

static void wait_for_job(struct req *r, const char *id, double wait_s, req_fn on_resume)
{
	struct job_req *jr = r->ctx;
	handler_wait(r, &jr->waiter, id, wait_s, on_resume, job_ended);
}

void jobs_get(struct req *r)
{
	double wait_s;
	bool prefer;
	if (handler_parse_wait(r, &wait_s, &prefer) != 0)
		return;
	struct job *job = NULL;
	if (load_job(r, r->param, &job) != 0)
		return;
	struct job_req *jr = NULL;
	if (wait_s > 0 || prefer) {
		jr = job_req_new(r);
		if (!jr) {
			job_free(job);
			return;
		}
		jr->wait_s = wait_s;
		jr->prefer_wait = prefer;
	}
	if (job_state_terminal(job->state) || wait_s <= 0 || atomic_load(&r->app->stopping))
		get_reply(r, job);
	else
		wait_for_job(r, job->id, wait_s, get_resumed);
	job_free(job);
}

/* ---- GET /v1/jobs --------------------------------------------------- */

int jobs_parse_list_query(const char *state, const char *limit, const char *cursor, struct store_filter *f,
                          struct problem *p)
{
	memset(f, 0, sizeof *f);
	f->limit = LIST_DEFAULT;
	if (state) {
		if (job_state_parse(state, &f->state) != 0) {
			/* From the state table, so a new state is listed too. */
			char names[160] = "";
			size_t at = 0;
			for (int i = 0; i < JOB_STATE_COUNT && at < sizeof names; i++)
				at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i ? ", " : "",
				                       job_state_name((enum job_state)i));
			return problem_set(p, PROBLEM_INVALID_QUERY, "state", "state must be one of %s", names);
		}
		f->has_state = true;
	}
	if (limit) {
		char *end;
		long n = strtol(limit, &end, 10);
		if (end == limit || *end || n < 1 || n > LIST_MAX)
			return problem_set(p, PROBLEM_INVALID_QUERY, "limit", "limit must be an integer from 1 to %d",
			                   LIST_MAX);
		f->limit = (int)n;
	}
	if (cursor) {
		/* The cursor is opaque to clients; it is the last row's seq. */
		char *end;
		errno = 0;
		long long seq = strtoll(cursor, &end, 10);
		if (end == cursor || *end || seq < 1 || errno || cursor[strspn(cursor, "0123456789")] != '\0')
			return problem_set(p, PROBLEM_INVALID_QUERY, "cursor",
			                   "cursor must be a next_cursor value from a previous page");
		f->before_seq = seq;
	}
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

void id_set_clear(struct id_set *s)
{
	free(s->id);
	free(s->ptr);
	memset(s, 0, sizeof *s);
}

bool id_set_has(const struct id_set *s, const char *id)
{
	return s->n > 0 && bsearch(id, s->id, s->n, sizeof s->id[0], cmp_id) != NULL;
}

int jobs_parse_ids(const char *text, struct id_set *s, struct problem *p)
{
	memset(s, 0, sizeof *s);
	size_t given = 1;
	for (const char *c = text; *c; c++)
		given += *c == ',';
	if (given > JOBS_IDS_MAX)
		return problem_set(p, PROBLEM_INVALID_QUERY, "ids", "ids holds %zu ids; at most %d are allowed",
		                   given, JOBS_IDS_MAX);
	s->id = calloc(given, sizeof s->id[0]);
	s->ptr = calloc(given, sizeof s->ptr[0]);
	if (!s->id || !s->ptr) {
		id_set_clear(s);
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	}
	for (const char *c = text;; c++) {
		size_t len = strcspn(c, ",");
		if (len != UUID_LEN) {
			id_set_clear(s);
			return problem_set(p, PROBLEM_INVALID_QUERY, "ids",
			                   "ids must be 1 to %d job ids separated by commas", JOBS_IDS_MAX);
		}
		memcpy(s->id[s->n], c, UUID_LEN);
		s->id[s->n][UUID_LEN] = '\0';
		for (char *x = s->id[s->n]; *x; x++) /* ids are stored in lower case */
			*x = (char)(*x >= 'A' && *x <= 'F' ? *x - 'A' + 'a' : *x);
		if (!uuid_valid(s->id[s->n])) {
			id_set_clear(s);
			return problem_set(p, PROBLEM_INVALID_QUERY, "ids", "ids must be job ids (UUIDs) separated by commas");
		}
		s->n++;
		c += len;
		if (!*c)
			break;
	}
	id_set_sort(s);
	return 0;
}

void id_set_sort(struct id_set *s)
{
	qsort(s->id, s->n, sizeof s->id[0], cmp_id);
	size_t kept = 0;
	for (size_t i = 0; i < s->n; i++)
		if (kept == 0 || strcmp(s->id[kept - 1], s->id[i]) != 0)
			memmove(s->id[kept++], s->id[i], sizeof s->id[0]);
	s->n = kept;
	for (size_t i = 0; i < s->n; i++)
		s->ptr[i] = s->id[i];
}

static int parse_list_query(struct req *r, struct store_filter *f, struct id_set *ids)
{
	struct problem p;
	const char *batch = req_query(r, "batch_id"), *idq = req_query(r, "ids");
	memset(ids, 0, sizeof *ids);
	if (jobs_parse_list_query(req_query(r, "state"), req_query(r, "limit"), req_query(r, "cursor"), f, &p) != 0 ||
	    (idq && jobs_parse_ids(idq, ids, &p) != 0)) {
		reply_problem(r, &p);
		return -1;
	}
	if (batch && !uuid_valid(batch)) {
		id_set_clear(ids);
		reply_error(r, PROBLEM_INVALID_QUERY, "batch_id", "batch_id must be a batch id (a UUID)");
		return -1;
	}
	f->queue = req_query(r, "queue");
	f->type = req_query(r, "type");
	f->batch_id = batch;
	f->ids = ids->ptr;
	f->nids = ids->n;
	return 0;
}

void jobs_write_page(struct req *r, struct json_out *o, struct job **jobs, size_t n, int64_t next)
{
	json_out_lit(o, "\"jobs\":[");
	for (size_t i = 0; i < n; i++) {
		if (jobs[i]->state == JOB_RUNNING)
			run_table_progress(r->app->runs, jobs[i]->id, jobs[i]);
		if (i > 0)
			json_out_lit(o, ",");
		job_write(o, jobs[i]);
		job_free(jobs[i]);
	}
	free(jobs);
	json_out_lit(o, "],\"next_cursor\":");
	if (next > 0) {
		char cursor[32];
		snprintf(cursor, sizeof cursor, "%lld", (long long)next);
		json_out_str(o, cursor);
	} else {
		json_out_lit(o, "null");
	}
}

void jobs_list(struct req *r)
{
	struct store_filter f;
	struct id_set ids;
	if (parse_list_query(r, &f, &ids) != 0)
		return;
	struct job **jobs = NULL;
	size_t n = 0;
	int64_t next = 0;
	enum store_rc rc = store_list_jobs(r->app->store, &f, &jobs, &n, &next);
	id_set_clear(&ids);
	if (rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	struct json_out o = {.buf = NULL};
	json_out_lit(&o, "{");
	jobs_write_page(r, &o, jobs, n, next);
	json_out_lit(&o, "}");
	handler_reply_out(r, 200, &o);
}


/* ---- POST /v1/jobs/{id}/cancel --------------------------------------- */

/* After the job ended (or the wait ran out): report how the cancel went. */
static void cancel_finished(struct req *r)
{
	struct job_req *jr = r->ctx;
	hub_disarm(jr->hub, &jr->waiter);
	struct job *job = NULL;
	if (load_job(r, jr->op.cancel.id, &job) != 0)
		return;
	if (job->state == JOB_CANCELED)
		reply_job(r, 200, job);
	else if (job_state_terminal(job->state))
		reply_error(r, PROBLEM_JOB_FINISHED, NULL, "job %s %s before the cancel took effect",
		            job->id, job_state_name(job->state));
	else
		reply_job(r, 202, job); /* still stopping; the cancel stands */
	job_free(job);
}

/* Writer thread: the cancel op is committed. A running job is told to stop
 * here, before the writer applies anything else. */
static void cancel_op_done(struct store_op *op)
{
	struct req *r = op->arg;
	if (op->rc == STORE_OK && op->cancel.found == JOB_RUNNING)
		run_table_stop(r->app->runs, op->cancel.id, RUN_STOP_CANCEL);
	req_resume(r);
}

static void cancel_committed(struct req *r)
{
	struct job_req *jr = r->ctx;
	if (jr->op.rc == STORE_NOT_FOUND) {
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %s", jr->op.cancel.id);
	} else if (jr->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
	} else if (job_state_terminal(jr->op.cancel.found)) {
		reply_error(r, PROBLEM_JOB_FINISHED, NULL, "job %s already %s", jr->op.cancel.id,
		            job_state_name(jr->op.cancel.found));
	} else if (jr->op.cancel.found == JOB_QUEUED || jr->op.cancel.found == JOB_SCHEDULED ||
	           jr->op.cancel.found == JOB_BLOCKED) {
		cancel_finished(r);
	} else {
		wait_for_job(r, jr->op.cancel.id, CANCEL_WAIT_S, cancel_finished);
	}
}

/* Posts an op on job r->param and suspends until it commits; replies
 * 404 itself for an id that cannot exist. done may be NULL. */
static void post_job_op(struct req *r, enum store_op_kind kind, void (*done)(struct store_op *),
                        req_fn on_commit)
{
	if (!r->param || !uuid_valid(r->param)) {
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %.40s", r->param ? r->param : "");
		return;
	}
	struct job_req *jr = job_req_new(r);
	if (!jr)
		return;
	jr->op.kind = kind;
	memcpy(store_op_target(&jr->op)->id, r->param, sizeof store_op_target(&jr->op)->id);
	jr->op.done = done;
	handler_post(r, &jr->op, on_commit);
}

void jobs_cancel(struct req *r)
{
	post_job_op(r, STORE_OP_CANCEL, cancel_op_done, cancel_committed);
}

/* ---- POST /v1/jobs/{id}/retry ----------------------------------------- */

static void retry_committed(struct req *r)
{
	struct job_req *jr = r->ctx;
	jr->job = jr->op.retry.job; /* freed with the request */
	if (jr->op.rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %s", jr->op.retry.id);
	else if (jr->op.rc != STORE_OK)
		handler_reply_unavailable(r);
	else if (jr->op.retry.found != JOB_FAILED && jr->op.retry.found != JOB_CANCELED)
		reply_error(r, PROBLEM_JOB_NOT_RETRYABLE, NULL, "job %s is %s; only failed or canceled jobs can be retried",
		            jr->op.retry.id, job_state_name(jr->op.retry.found));
	else if (jr->job)
		reply_job(r, 200, jr->job);
	else
		handler_reply_unavailable(r);
}

void jobs_retry(struct req *r)
{
	post_job_op(r, STORE_OP_RETRY, NULL, retry_committed);
}

/* ---- DELETE /v1/jobs/{id} --------------------------------------------- */

static void delete_committed(struct req *r)
{
	struct job_req *jr = r->ctx;
	if (jr->op.rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %s", jr->op.del.id);
	else if (jr->op.rc != STORE_OK)
		handler_reply_unavailable(r);
	else if (!job_state_terminal(jr->op.del.found))
		reply_error(r, PROBLEM_JOB_NOT_FINISHED, NULL, "job %s is %s; cancel it first, or wait for it to end",
		            jr->op.del.id, job_state_name(jr->op.del.found));
	else
		reply_static(r, 204, NULL, "", 0);
}

void jobs_delete(struct req *r)
{
	post_job_op(r, STORE_OP_DELETE, NULL, delete_committed);
}
