/* Black-box API tests for the issue-4 delivery contract: Idempotency-Key
 * on POST /v1/jobs, batches (/v1/batches, all or none, ?wait) and
 * completion callbacks. Callbacks go to a receiver this test process runs
 * itself (libmicrohttpd on 127.0.0.1, port 0) that records every request
 * and answers from a per-test script; signatures are checked with
 * libcrypto's HMAC-SHA256. Waits are bounded polls; the only timings
 * asserted are the loose ones the contract makes (?wait answers). */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define UNKNOWN_ID "01890000-0000-7000-8000-000000000000"
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define BATCH_MAX 10000
#define SECRET "s3cret-key-for-tests"

/* ---- small JSON, time and format helpers ---- */

static const char *const job_states[] = { "scheduled", "queued", "running",
	"succeeded", "failed", "canceled", NULL };
static const char *const count_keys[] = { "scheduled", "queued", "running",
	"succeeded", "failed", "canceled", NULL };
static const char *const delivery_states[] = { "waiting", "pending",
	"delivered", "failed", NULL };

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- assertions ---- */

#define assert_status(r, st)                                                   \
	ck_assert_msg((r)->status == (long)(st),                               \
		      "status %ld, want %ld %s; body: %.800s", (r)->status,    \
		      (long)(st), (r)->error, (r)->body)

/* "callback": null, or the delivery object of the issue-4 contract. */
static void assert_callback_shape(const cJSON *cb, const char *body)
{
	long n;

	ck_assert_msg(cb != NULL, "\"callback\" key missing: %.1000s", body);
	if (cJSON_IsNull(cb))
		return;
	ck_assert_msg(cJSON_IsObject(cb), "callback neither null nor object: %.1000s",
		      body);
	ck_assert_msg(jstr(cb, "url") != NULL, "callback.url not a string: %.1000s",
		      body);
	ck_assert_msg(in_list(jstr(cb, "state"), delivery_states),
		      "callback.state bad: %.1000s", body);
	ck_assert_msg(jint(cb, "attempts", &n) && n >= 0,
		      "callback.attempts not an integer >= 0: %.1000s", body);
	ck_assert_msg(jnull(cb, "last_status") || jint(cb, "last_status", &n),
		      "callback.last_status neither null nor integer: %.1000s", body);
	ck_assert_msg(jnull(cb, "last_error") || jstr(cb, "last_error") != NULL,
		      "callback.last_error neither null nor string: %.1000s", body);
}

/* Every key of the job object (issues 2-4) is present with the right type. */
static void assert_job_shape(const cJSON *j, const char *body)
{
	static const char *const keys[] = { "id", "type", "queue", "priority",
		"state", "payload", "result", "error", "progress", "attempts",
		"created_at", "started_at", "finished_at", "max_attempts",
		"backoff_s", "max_backoff_s", "timeout_s", "retention_s",
		"run_at", "batch_id", "callback", NULL };
	size_t i;

	ck_assert_msg(cJSON_IsObject(j), "job is not a JSON object: %.800s", body);
	for (i = 0; keys[i] != NULL; i++)
		ck_assert_msg(jget(j, keys[i]) != NULL, "job lacks key \"%s\": %.800s",
			      keys[i], body);
	ck_assert_msg(is_uuidv7(jstr(j, "id")), "id not a UUIDv7: %.800s", body);
	ck_assert_msg(in_list(jstr(j, "state"), job_states), "bad state: %.800s",
		      body);
	ck_assert_msg(jnull(j, "batch_id") || is_uuidv7(jstr(j, "batch_id")),
		      "batch_id neither null nor a UUIDv7: %.800s", body);
	assert_callback_shape(jget(j, "callback"), body);
}

static void assert_exit_0(const struct jobqd *d, int st, const char *what)
{
	char *log;

	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	log = harness_read_file(d->log);
	fprintf(stderr, "---- jobqd log ----\n%s\n----\n", log);
	ck_abort_msg("%s: jobqd did not exit 0 (%s %d); log tail:\n%s", what,
		     WIFEXITED(st) ? "exit" : "signal",
		     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
		     strlen(log) > 3000 ? log + strlen(log) - 3000 : log);
}

/* Ends a test: SIGTERM must give exit code 0 (graceful stop). */
static void stop_ok(struct jobqd *d)
{
	assert_exit_0(d, harness_stop_keep(d), "stop after SIGTERM");
	harness_cleanup(d);
}

/* ---- jobs ---- */

/* POST /v1/jobs with an optional extra header ("Idempotency-Key: K"). */
static void post_job(const struct jobqd *d, const char *body, const char *hdr,
		     struct resp *r)
{
	harness_request(d, "POST", "/v1/jobs", "application/json", body, hdr, r);
}

/* Asserts the Location header of r is prefix + id. */
static void assert_location(const struct resp *r, const char *prefix,
			    const char *id)
{
	char loc[256] = "", want[256];

	snprintf(want, sizeof want, "%s%s", prefix, id != NULL ? id : "(null)");
	ck_assert_msg(harness_header(r, "Location", loc, sizeof loc) &&
		      strcmp(loc, want) == 0, "Location '%s', want '%s'", loc,
		      want);
}

/* Every job the harness reads has the job shape (its JSON in messages). */
static void check_job(const cJSON *j, const char *text, int from_get)
{
	(void)from_get;
	assert_job_shape(j, text);
}

#define submit_json(d, body) harness_submit_json((d), (body), NULL)
#define submit harness_submit
#define get_job harness_get_job
#define wait_terminal(d, id) harness_wait_terminal((d), (id), NULL)
#define wait_state(d, id, state) harness_wait_state((d), (id), (state), NULL)

static void cancel_ok(const struct jobqd *d, const char *id)
{
	struct resp r;

	job_action(d, id, "cancel", &r);
	assert_status(&r, 200);
	ck_assert_msg(str_eq(jstr(r.json, "state"), "canceled"),
		      "cancel reply not canceled: %.800s", r.body);
	harness_resp_free(&r);
}

#define queue_action(d, queue, action) cJSON_Delete(harness_queue_action((d), (queue), (action)))

/* GET /v1/jobs?limit=1000; asserts 200 and the shape of every job. */
static cJSON *list_jobs(const struct jobqd *d)
{
	struct resp r;
	const cJSON *it;
	cJSON *j;

	harness_request(d, "GET", "/v1/jobs?limit=1000", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(cJSON_IsArray(jget(r.json, "jobs")),
		      "jobs not an array: %.800s", r.body);
	cJSON_ArrayForEach(it, jget(r.json, "jobs"))
		assert_job_shape(it, r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

static int count_jobs(const struct jobqd *d)
{
	cJSON *l = list_jobs(d);
	int n = cJSON_GetArraySize(jget(l, "jobs"));

	cJSON_Delete(l);
	return n;
}

/* ---- batches ---- */

static void assert_batch_shape(const cJSON *b, const char *body)
{
	const cJSON *c;
	long n, sum = 0;
	size_t i;

	ck_assert_msg(cJSON_IsObject(b), "batch is not a JSON object: %.800s",
		      body);
	ck_assert_msg(is_uuidv7(jstr(b, "id")), "batch id not a UUIDv7: %.800s",
		      body);
	ck_assert_msg(jint(b, "total", &n) && n >= 1,
		      "batch total not an integer >= 1: %.800s", body);
	c = jget(b, "counts");
	ck_assert_msg(cJSON_IsObject(c), "batch counts not an object: %.800s",
		      body);
	for (i = 0; count_keys[i] != NULL; i++) {
		ck_assert_msg(jint(c, count_keys[i], &n) && n >= 0,
			      "counts.%s not an integer >= 0: %.800s",
			      count_keys[i], body);
		sum += n;
	}
	ck_assert_msg(sum == jlong(b, "total"),
		      "batch counts add up to %ld, total %ld: %.800s", sum,
		      jlong(b, "total"), body);
	ck_assert_msg(cJSON_IsBool(jget(b, "done")), "done not a boolean: %.800s",
		      body);
	ck_assert_msg(is_rfc3339_ms(jstr(b, "created_at")),
		      "batch created_at not RFC 3339: %.800s", body);
	if (cJSON_IsTrue(jget(b, "done")))
		ck_assert_msg(is_rfc3339_ms(jstr(b, "finished_at")),
			      "done batch without finished_at: %.800s", body);
	else
		ck_assert_msg(jnull(b, "finished_at"),
			      "batch not done but finished_at set: %.800s", body);
	assert_callback_shape(jget(b, "callback"), body);
}

static long count_of(const cJSON *b, const char *state)
{
	return jlong(jget(b, "counts"), state);
}

/* POST /v1/batches; asserts 201, Location, id/total/job_ids; returns the body. */
static cJSON *create_batch(const struct jobqd *d, const char *body, int total)
{
	struct resp r;
	const cJSON *ids, *it;
	cJSON *j;

	harness_request(d, "POST", "/v1/batches", "application/json", body, NULL,
			&r);
	ck_assert_msg(r.status == 201, "batch %.300s: status %ld %s; body: %.800s",
		      body, r.status, r.error, r.body);
	ck_assert_msg(is_uuidv7(jstr(r.json, "id")), "batch id not a UUIDv7: %.800s",
		      r.body);
	ck_assert_msg(jlong(r.json, "total") == total, "total %ld, want %d: %.300s",
		      jlong(r.json, "total"), total, r.body);
	ids = jget(r.json, "job_ids");
	ck_assert_msg(cJSON_IsArray(ids) && cJSON_GetArraySize(ids) == total,
		      "job_ids not an array of %d: %.300s", total, r.body);
	cJSON_ArrayForEach(it, ids)
		ck_assert_msg(cJSON_IsString(it) && is_uuidv7(it->valuestring),
			      "job id not a UUIDv7 in %.300s", r.body);
	assert_location(&r, "/v1/batches/", jstr(r.json, "id"));
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

static const char *job_id_at(const cJSON *batch, int i)
{
	const cJSON *v = cJSON_GetArrayItem(jget(batch, "job_ids"), i);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* GET /v1/batches/{id}[?query]; fills r (status unchecked). */
static void batch_request(const struct jobqd *d, const char *id,
			  const char *query, struct resp *r)
{
	char path[256];

	snprintf(path, sizeof path, "/v1/batches/%s%s%s", id, query ? "?" : "",
		 query ? query : "");
	harness_request(d, "GET", path, NULL, NULL, NULL, r);
}

static cJSON *get_batch(const struct jobqd *d, const char *id, const char *query)
{
	struct resp r;
	cJSON *j;

	batch_request(d, id, query, &r);
	assert_status(&r, 200);
	assert_batch_shape(r.json, r.body);
	ck_assert_msg(str_eq(jstr(r.json, "id"), id), "GET batch %s answered %.800s",
		      id, r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

/* Long-polls until the batch is done (at most ~30 s). */
static cJSON *wait_batch_done(const struct jobqd *d, const char *id)
{
	double end = mono_ms() + 30000.0;
	cJSON *b;

	for (;;) {
		b = get_batch(d, id, "wait=5");
		if (cJSON_IsTrue(jget(b, "done")))
			return b;
		ck_assert_msg(mono_ms() < end, "batch %s not done after 30 s", id);
		cJSON_Delete(b);
	}
}

/* ---- the callback receiver ---- */

#define RECV_MAX 64
#define SCRIPT_MAX 16

/* One request the receiver got. Written once under the lock, before
 * nhits is bumped; read-only afterwards. */
struct hit {
	char method[16];
	char path[256];
	char event[64];
	char job[64];
	char signature[160];
	char content_type[128];
	char user_agent[128];
	char query_x[64];   /* the query parameter x, "" if absent */
	int has_signature;
	int answered;       /* the status the receiver replied with */
	char *body;         /* NUL-terminated */
	size_t body_len;
};

/* An HTTP server in this process. mu guards hits, nhits, script, next
 * and fallback. Answers script[0], script[1], ... then fallback. */
struct receiver {
	struct MHD_Daemon *mhd;
	int port;
	char base[64];      /* "http://127.0.0.1:PORT" */
	pthread_mutex_t mu;
	struct hit hits[RECV_MAX];
	int nhits;
	int script[SCRIPT_MAX];
	int nscript;
	int next;
	int fallback;
};

struct upload {
	char *p;
	size_t len, cap;
};

static void copy_header(struct MHD_Connection *c, const char *name, char *out,
			size_t n, int *found)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

	snprintf(out, n, "%s", v != NULL ? v : "");
	if (found != NULL)
		*found = v != NULL;
}

/* Records the finished request; returns the status to answer. */
static int recv_record(struct receiver *rc, struct MHD_Connection *c,
		       const char *url, const char *method, struct upload *u)
{
	struct hit h;
	const char *v;
	int status;

	memset(&h, 0, sizeof h);
	snprintf(h.method, sizeof h.method, "%s", method);
	snprintf(h.path, sizeof h.path, "%s", url);
	copy_header(c, "X-Jobq-Event", h.event, sizeof h.event, NULL);
	copy_header(c, "X-Jobq-Job", h.job, sizeof h.job, NULL);
	copy_header(c, "X-Jobq-Signature", h.signature, sizeof h.signature,
		    &h.has_signature);
	copy_header(c, "Content-Type", h.content_type, sizeof h.content_type, NULL);
	copy_header(c, "User-Agent", h.user_agent, sizeof h.user_agent, NULL);
	v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "x");
	snprintf(h.query_x, sizeof h.query_x, "%s", v != NULL ? v : "");
	h.body = malloc(u->len + 1);
	if (h.body == NULL)
		abort();
	if (u->len > 0)
		memcpy(h.body, u->p, u->len);
	h.body[u->len] = '\0';
	h.body_len = u->len;

	pthread_mutex_lock(&rc->mu);
	status = rc->next < rc->nscript ? rc->script[rc->next++] : rc->fallback;
	h.answered = status;
	if (rc->nhits < RECV_MAX)
		rc->hits[rc->nhits++] = h;
	else
		free(h.body);
	pthread_mutex_unlock(&rc->mu);
	return status;
}

static enum MHD_Result recv_handler(void *cls, struct MHD_Connection *c,
				    const char *url, const char *method,
				    const char *version, const char *data,
				    size_t *size, void **con_cls)
{
	struct receiver *rc = cls;
	struct upload *u = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int status;

	(void)version;
	if (u == NULL) {
		u = calloc(1, sizeof *u);
		if (u == NULL)
			return MHD_NO;
		*con_cls = u;
		return MHD_YES;
	}
	if (*size > 0) {
		if (u->len + *size + 1 > u->cap) {
			u->cap = (u->len + *size + 1) * 2;
			u->p = realloc(u->p, u->cap);
			if (u->p == NULL)
				abort();
		}
		memcpy(u->p + u->len, data, *size);
		u->len += *size;
		*size = 0;
		return MHD_YES;
	}
	status = recv_record(rc, c, url, method, u);
	resp = MHD_create_response_from_buffer(3, (void *)"ok\n",
					       MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void recv_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			   enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (u != NULL) {
		free(u->p);
		free(u);
		*con_cls = NULL;
	}
}

/* Starts the receiver on 127.0.0.1 with a port the kernel picks. script
 * (terminated by 0, may be NULL) is answered first, then fallback. */
static void recv_start(struct receiver *rc, const int *script, int fallback)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd, one = 1;

	memset(rc, 0, sizeof *rc);
	pthread_mutex_init(&rc->mu, NULL);
	while (script != NULL && script[rc->nscript] != 0 &&
	       rc->nscript < SCRIPT_MAX) {
		rc->script[rc->nscript] = script[rc->nscript];
		rc->nscript++;
	}
	rc->fallback = fallback;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "receiver socket failed");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
		      listen(fd, 64) == 0 &&
		      getsockname(fd, (struct sockaddr *)&sa, &len) == 0,
		      "receiver bind/listen on 127.0.0.1:0 failed");
	rc->port = ntohs(sa.sin_port);
	snprintf(rc->base, sizeof rc->base, "http://127.0.0.1:%d", rc->port);
	rc->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
				   recv_handler, rc, MHD_OPTION_LISTEN_SOCKET, fd,
				   MHD_OPTION_NOTIFY_COMPLETED, recv_completed,
				   NULL, MHD_OPTION_CONNECTION_TIMEOUT,
				   (unsigned int)10, MHD_OPTION_END);
	ck_assert_msg(rc->mhd != NULL, "MHD_start_daemon failed");
}

static void recv_stop(struct receiver *rc)
{
	int i;

	if (rc->mhd != NULL)
		MHD_stop_daemon(rc->mhd); /* closes the listen socket too */
	rc->mhd = NULL;
	for (i = 0; i < rc->nhits; i++)
		free(rc->hits[i].body);
	rc->nhits = 0;
	pthread_mutex_destroy(&rc->mu);
}

static void recv_set_fallback(struct receiver *rc, int status)
{
	pthread_mutex_lock(&rc->mu);
	rc->fallback = status;
	pthread_mutex_unlock(&rc->mu);
}

static int recv_count(struct receiver *rc)
{
	int n;

	pthread_mutex_lock(&rc->mu);
	n = rc->nhits;
	pthread_mutex_unlock(&rc->mu);
	return n;
}

/* How many requests carried X-Jobq-Event event and X-Jobq-Job job (NULL:
 * any); *last gets the index of the last one (-1 if none). */
static int recv_count_for(struct receiver *rc, const char *event,
			  const char *job, int *last)
{
	int i, n = 0, total = recv_count(rc);

	if (last != NULL)
		*last = -1;
	for (i = 0; i < total; i++) {
		if (event != NULL && strcmp(rc->hits[i].event, event) != 0)
			continue;
		if (job != NULL && strcmp(rc->hits[i].job, job) != 0)
			continue;
		n++;
		if (last != NULL)
			*last = i;
	}
	return n;
}

/* Waits (bounded) until the receiver holds at least n requests. */
static void recv_wait(struct receiver *rc, int n, double bound_ms)
{
	double end = mono_ms() + bound_ms;

	while (recv_count(rc) < n) {
		ck_assert_msg(mono_ms() < end,
			      "receiver got %d requests, want %d within %.0f ms",
			      recv_count(rc), n, bound_ms);
		nap_ms(10);
	}
}

/* A summary of every request, for failure messages. */
static void recv_describe(struct receiver *rc, char *out, size_t n)
{
	int i, total = recv_count(rc);
	size_t len;

	snprintf(out, n, "%d request(s):", total);
	for (i = 0; i < total; i++) {
		len = strlen(out);
		snprintf(out + len, n - len, " [%s %s event=%s job=%s -> %d]",
			 rc->hits[i].method, rc->hits[i].path, rc->hits[i].event,
			 rc->hits[i].job, rc->hits[i].answered);
	}
}

/* "sha256=" + lowercase hex HMAC-SHA256 of body with key. */
static void expected_signature(const char *key, const char *body, size_t len,
			       char *out, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	size_t off;

	ck_assert(HMAC(EVP_sha256(), key, (int)strlen(key),
		       (const unsigned char *)body, len, md, &mdlen) != NULL);
	snprintf(out, n, "sha256=");
	for (i = 0; i < mdlen; i++) {
		off = strlen(out);
		snprintf(out + off, n - off, "%02x", md[i]);
	}
}

static const char *delivery_state(const cJSON *owner)
{
	return jstr(jget(owner, "callback"), "state");
}

/* Polls GET of the job (or batch) until its callback state is want, at
 * most bound_ms; a final state other than want fails at once. */
static cJSON *wait_delivery(const struct jobqd *d, const char *id, int batch,
			    const char *want, double bound_ms)
{
	double end = mono_ms() + bound_ms;
	const char *st;
	char *txt;
	cJSON *j;

	for (;;) {
		j = batch ? get_batch(d, id, NULL) : get_job(d, id, NULL);
		st = delivery_state(j);
		if (str_eq(st, want))
			return j;
		if ((str_eq(st, "delivered") || str_eq(st, "failed")) ||
		    mono_ms() > end) {
			txt = cJSON_PrintUnformatted(jget(j, "callback"));
			ck_abort_msg("%s %s: callback %s, want state %s within %.0f ms",
				     batch ? "batch" : "job", id,
				     txt ? txt : "?", want, bound_ms);
		}
		cJSON_Delete(j);
		nap_ms(20);
	}
}

/* Asserts the delivery object: state, attempts, last_status (0: null). */
static void assert_delivery(const cJSON *owner, const char *url,
			    const char *state, long attempts, long last_status)
{
	const cJSON *cb = jget(owner, "callback");
	char *txt = cJSON_PrintUnformatted(cb);

	ck_assert_msg(cJSON_IsObject(cb) && str_eq(jstr(cb, "url"), url) &&
		      str_eq(jstr(cb, "state"), state) &&
		      jlong(cb, "attempts") == attempts &&
		      (last_status == 0 ? jnull(cb, "last_status")
					: jlong(cb, "last_status") == last_status),
		      "callback %s, want url %s state %s attempts %ld last_status %ld",
		      txt ? txt : "?", url, state, attempts, last_status);
	free(txt);
}

/* Asserts one job.finished request: method, path, headers, body. Returns
 * the parsed body (the job). */
static cJSON *assert_job_callback(const struct hit *h, const char *path,
				  const char *id, const char *state)
{
	cJSON *j;

	ck_assert_msg(strcmp(h->method, "POST") == 0, "callback method %s",
		      h->method);
	ck_assert_msg(strcmp(h->path, path) == 0, "callback path %s, want %s",
		      h->path, path);
	ck_assert_msg(strcmp(h->event, "job.finished") == 0,
		      "X-Jobq-Event '%s', want job.finished", h->event);
	ck_assert_msg(strcmp(h->job, id) == 0, "X-Jobq-Job '%s', want %s", h->job,
		      id);
	ck_assert_msg(strcmp(h->content_type, "application/json") == 0,
		      "callback Content-Type '%s'", h->content_type);
	ck_assert_msg(strcmp(h->user_agent, "jobq/0.1.0") == 0,
		      "callback User-Agent '%s', want jobq/0.1.0", h->user_agent);
	j = cJSON_ParseWithOpts(h->body, NULL, 1);
	ck_assert_msg(j != NULL, "callback body is not JSON: %.800s", h->body);
	assert_job_shape(j, h->body);
	ck_assert_msg(str_eq(jstr(j, "id"), id) && str_eq(jstr(j, "state"), state),
		      "callback body id/state, want %s %s: %.800s", id, state,
		      h->body);
	ck_assert_msg(jget(j, "attempt_history") == NULL,
		      "callback body has attempt_history: %.800s", h->body);
	return j;
}

/* ---- idempotency ---- */

#define IDEM_BODY "{\"type\":\"echo\",\"payload\":{\"n\":1}}"

START_TEST(idempotency_same_key_same_body_replays_the_job)
{
	struct jobqd d;
	struct resp r;
	char *id, *other;
	cJSON *l;

	harness_start(&d, NULL);
	post_job(&d, IDEM_BODY, "Idempotency-Key: order-42", &r);
	assert_status(&r, 201);
	assert_job_shape(r.json, r.body);
	id = strdup(jstr(r.json, "id"));
	assert_location(&r, "/v1/jobs/", id);
	ck_assert_msg(jnull(r.json, "batch_id") && jnull(r.json, "callback"),
		      "plain job: batch_id and callback not null: %.800s", r.body);
	harness_resp_free(&r);
	cJSON_Delete(wait_terminal(&d, id));

	/* the same request again: 200, the same job as it is now */
	post_job(&d, IDEM_BODY, "Idempotency-Key: order-42", &r);
	assert_status(&r, 200);
	assert_job_shape(r.json, r.body);
	ck_assert_msg(str_eq(jstr(r.json, "id"), id), "replay id %s, want %s",
		      jstr_or(r.json, "id"), id);
	ck_assert_msg(str_eq(jstr(r.json, "state"), "succeeded"),
		      "replay shows the job as it is now: %.800s", r.body);
	assert_location(&r, "/v1/jobs/", id);
	harness_resp_free(&r);
	ck_assert_int_eq(count_jobs(&d), 1);

	/* the same key with another body (even one only spaced differently) */
	post_job(&d, "{\"type\":\"echo\",\"payload\":{\"n\":2}}",
		 "Idempotency-Key: order-42", &r);
	assert_problem(&r, 409, "idempotency_conflict", "Idempotency-Key");
	harness_resp_free(&r);
	post_job(&d, "{\"type\":\"echo\", \"payload\":{\"n\":1}}",
		 "Idempotency-Key: order-42", &r);
	assert_problem(&r, 409, "idempotency_conflict", "Idempotency-Key");
	harness_resp_free(&r);
	ck_assert_int_eq(count_jobs(&d), 1);

	/* another key, or none: a new job each time */
	post_job(&d, IDEM_BODY, "Idempotency-Key: order-43", &r);
	assert_status(&r, 201);
	other = strdup(jstr_or(r.json, "id"));
	ck_assert_msg(strcmp(other, id) != 0, "a different key reused job %s", id);
	harness_resp_free(&r);
	post_job(&d, IDEM_BODY, NULL, &r);
	assert_status(&r, 201);
	ck_assert_msg(!str_eq(jstr(r.json, "id"), id) &&
		      !str_eq(jstr(r.json, "id"), other),
		      "a request without key reused a job");
	harness_resp_free(&r);
	l = list_jobs(&d);
	ck_assert_int_eq(cJSON_GetArraySize(jget(l, "jobs")), 3);
	cJSON_Delete(l);
	free(other);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(idempotency_bad_keys_are_refused)
{
	char long_key[300], hdr[320];
	static const char *const bad_headers[] = {
		"Idempotency-Key;",             /* curl: the header, empty */
		"Idempotency-Key: ab\tcd",      /* a control character */
		"Idempotency-Key: ab\x01" "cd",
		"Idempotency-Key: caf\xc3\xa9", /* not ASCII */
		NULL,
	};
	const char *headers[3];
	struct jobqd d;
	struct resp r;
	size_t i;

	harness_start(&d, NULL);
	for (i = 0; bad_headers[i] != NULL; i++) {
		headers[0] = "Content-Type: application/json";
		headers[1] = bad_headers[i];
		headers[2] = NULL;
		harness_request_raw(&d, "POST", "/v1/jobs", headers, IDEM_BODY,
				    strlen(IDEM_BODY), 0, &r);
		assert_problem(&r, 400, "invalid_field", "Idempotency-Key");
		harness_resp_free(&r);
	}
	memset(long_key, 'k', 256);
	long_key[256] = '\0';
	snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", long_key);
	post_job(&d, IDEM_BODY, hdr, &r);
	assert_problem(&r, 400, "invalid_field", "Idempotency-Key");
	harness_resp_free(&r);
	ck_assert_int_eq(count_jobs(&d), 0);

	/* the boundaries are accepted: 255 chars, one char, spaces and ~ */
	long_key[255] = '\0';
	snprintf(hdr, sizeof hdr, "Idempotency-Key: %s", long_key);
	post_job(&d, IDEM_BODY, hdr, &r);
	assert_status(&r, 201);
	harness_resp_free(&r);
	post_job(&d, IDEM_BODY, "Idempotency-Key: x", &r);
	assert_status(&r, 201);
	harness_resp_free(&r);
	post_job(&d, IDEM_BODY, "Idempotency-Key: a b~!", &r);
	assert_status(&r, 201);
	harness_resp_free(&r);
	ck_assert_int_eq(count_jobs(&d), 3);
	stop_ok(&d);
}
END_TEST

START_TEST(idempotency_replay_survives_kill9)
{
	struct jobqd d;
	struct resp r;
	char *id;

	harness_start(&d, NULL);
	post_job(&d, IDEM_BODY, "Idempotency-Key: durable-1", &r);
	assert_status(&r, 201);
	id = strdup(jstr_or(r.json, "id"));
	harness_resp_free(&r);
	harness_kill9(&d);
	harness_restart(&d, NULL);
	post_job(&d, IDEM_BODY, "Idempotency-Key: durable-1", &r);
	assert_status(&r, 200);
	ck_assert_msg(str_eq(jstr(r.json, "id"), id),
		      "replay after restart answered %.800s, want job %s", r.body,
		      id);
	assert_location(&r, "/v1/jobs/", id);
	harness_resp_free(&r);
	post_job(&d, "{\"type\":\"echo\"}", "Idempotency-Key: durable-1", &r);
	assert_problem(&r, 409, "idempotency_conflict", "Idempotency-Key");
	harness_resp_free(&r);
	ck_assert_int_eq(count_jobs(&d), 1);
	free(id);
	stop_ok(&d);
}
END_TEST

/* Keys live as long as their job: after DELETE the key is free again. */
START_TEST(idempotency_key_freed_when_job_deleted)
{
	struct jobqd d;
	struct resp r;
	char path[128];
	char *id;

	harness_start(&d, NULL);
	post_job(&d, IDEM_BODY, "Idempotency-Key: reuse-me", &r);
	assert_status(&r, 201);
	id = strdup(jstr_or(r.json, "id"));
	harness_resp_free(&r);
	cJSON_Delete(wait_terminal(&d, id));
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	harness_request(&d, "DELETE", path, NULL, NULL, NULL, &r);
	assert_status(&r, 204);
	harness_resp_free(&r);
	post_job(&d, "{\"type\":\"echo\"}", "Idempotency-Key: reuse-me", &r);
	assert_status(&r, 201);
	ck_assert_msg(!str_eq(jstr(r.json, "id"), id),
		      "a deleted job's key replayed it: %.800s", r.body);
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

#define N_RACERS 8

struct racer {
	const struct jobqd *d;
	pthread_barrier_t *start;
	struct resp r;
};

static void *race_submit(void *p)
{
	struct racer *a = p;

	pthread_barrier_wait(a->start);
	post_job(a->d, IDEM_BODY, "Idempotency-Key: race-key", &a->r);
	return NULL;
}

START_TEST(idempotency_concurrent_same_key_makes_one_job)
{
	struct racer a[N_RACERS];
	pthread_t th[N_RACERS];
	pthread_barrier_t start;
	struct jobqd d;
	const char *id = NULL;
	int i, n201 = 0, n200 = 0;
	cJSON *l;

	harness_start(&d, NULL);
	pthread_barrier_init(&start, NULL, N_RACERS);
	for (i = 0; i < N_RACERS; i++) {
		memset(&a[i], 0, sizeof a[i]);
		a[i].d = &d;
		a[i].start = &start;
		ck_assert(pthread_create(&th[i], NULL, race_submit, &a[i]) == 0);
	}
	for (i = 0; i < N_RACERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	for (i = 0; i < N_RACERS; i++) {
		ck_assert_msg(a[i].r.status == 201 || a[i].r.status == 200,
			      "racer %d: status %ld %s; body %.800s", i,
			      a[i].r.status, a[i].r.error, a[i].r.body);
		n201 += a[i].r.status == 201;
		n200 += a[i].r.status == 200;
		if (id == NULL)
			id = jstr(a[i].r.json, "id");
		ck_assert_msg(str_eq(jstr(a[i].r.json, "id"), id),
			      "racer %d got job %s, another got %s", i,
			      jstr_or(a[i].r.json, "id"), id ? id : "?");
	}
	ck_assert_msg(n201 == 1 && n200 == N_RACERS - 1,
		      "%d answers 201 and %d 200, want 1 and %d", n201, n200,
		      N_RACERS - 1);
	l = list_jobs(&d);
	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 1 &&
		      str_eq(jstr(cJSON_GetArrayItem(jget(l, "jobs"), 0), "id"), id),
		      "jobs after the race: %d, want only %s",
		      cJSON_GetArraySize(jget(l, "jobs")), id);
	cJSON_Delete(l);
	for (i = 0; i < N_RACERS; i++)
		harness_resp_free(&a[i].r);
	stop_ok(&d);
}
END_TEST

/* ---- batches ---- */

START_TEST(batches_create_lists_jobs_in_order_then_done)
{
	struct jobqd d;
	cJSON *b, *g, *j;
	const char *bid;
	char want[32];
	int i;

	harness_start(&d, NULL);
	queue_action(&d, "held", "pause"); /* so "not done" can be seen */
	b = create_batch(&d,
			 "{\"jobs\":[{\"type\":\"echo\",\"queue\":\"held\",\"payload\":0},"
			 "{\"type\":\"echo\",\"queue\":\"held\",\"payload\":1},"
			 "{\"type\":\"echo\",\"queue\":\"held\",\"payload\":2}]}",
			 3);
	bid = jstr(b, "id");
	ck_assert_msg(strcmp(job_id_at(b, 0), job_id_at(b, 1)) != 0 &&
		      strcmp(job_id_at(b, 1), job_id_at(b, 2)) != 0 &&
		      strcmp(job_id_at(b, 0), job_id_at(b, 2)) != 0,
		      "job_ids not distinct");
	for (i = 0; i < 3; i++) {
		j = get_job(&d, job_id_at(b, i), NULL);
		snprintf(want, sizeof want, "%d", i);
		ck_assert_msg(json_equal_text(jget(j, "payload"), want) &&
			      str_eq(jstr(j, "batch_id"), bid) &&
			      str_eq(jstr(j, "state"), "queued"),
			      "job_ids[%d]: payload %d, batch_id %s, queued expected; got "
			      "batch_id %s state %s", i, i, bid,
			      jstr_or(j, "batch_id"), jstr_or(j, "state"));
		cJSON_Delete(j);
	}
	g = get_batch(&d, bid, NULL);
	ck_assert_msg(!cJSON_IsTrue(jget(g, "done")) && jnull(g, "finished_at") &&
		      jlong(g, "total") == 3 && count_of(g, "queued") == 3 &&
		      jnull(g, "callback"),
		      "batch of held jobs: done %d total %ld queued %ld",
		      cJSON_IsTrue(jget(g, "done")), jlong(g, "total"),
		      count_of(g, "queued"));
	cJSON_Delete(g);

	queue_action(&d, "held", "resume");
	g = wait_batch_done(&d, bid);
	ck_assert_msg(count_of(g, "succeeded") == 3 && jts(g, "finished_at") >=
		      jts(g, "created_at"), "done batch: succeeded %ld, finished_at %s",
		      count_of(g, "succeeded"), jstr_or(g, "finished_at"));
	cJSON_Delete(g);
	/* jobs of a batch are listed as usual, each with its batch_id */
	g = list_jobs(&d);
	ck_assert_int_eq(cJSON_GetArraySize(jget(g, "jobs")), 3);
	for (i = 0; i < 3; i++)
		ck_assert_msg(str_eq(jstr(cJSON_GetArrayItem(jget(g, "jobs"), i),
					  "batch_id"), bid),
			      "listed job %d lacks batch_id %s", i, bid);
	cJSON_Delete(g);
	cJSON_Delete(b);
	stop_ok(&d);
}
END_TEST

START_TEST(batches_wait_answers_when_last_job_finishes)
{
	struct jobqd d;
	struct resp r;
	cJSON *b, *g, *sleeper;
	const char *bid;

	harness_start(&d, NULL);
	b = create_batch(&d,
			 "{\"jobs\":[{\"type\":\"echo\"},"
			 "{\"type\":\"sleep\",\"payload\":{\"seconds\":1}}]}",
			 2);
	bid = jstr(b, "id");
	batch_request(&d, bid, "wait=10", &r);
	assert_status(&r, 200);
	assert_batch_shape(r.json, r.body);
	ck_assert_msg(cJSON_IsTrue(jget(r.json, "done")) &&
		      count_of(r.json, "succeeded") == 2,
		      "wait=10 answered before the batch was done: %.800s", r.body);
	/* woken by the finishing commit, not by the 10 s bound (loose) */
	ck_assert_msg(r.ms < 9000.0, "wait=10 answered after %.0f ms", r.ms);
	sleeper = get_job(&d, job_id_at(b, 1), NULL);
	ck_assert_msg(str_eq(jstr(sleeper, "state"), "succeeded") &&
		      jts(r.json, "finished_at") >= jts(sleeper, "finished_at") &&
		      jts(sleeper, "finished_at") > 0,
		      "batch finished_at %s before its last job's %s",
		      jstr_or(r.json, "finished_at"), jstr_or(sleeper, "finished_at"));
	cJSON_Delete(sleeper);
	harness_resp_free(&r);

	/* a done batch answers a wait at once */
	g = get_batch(&d, bid, "wait=30");
	ck_assert_msg(cJSON_IsTrue(jget(g, "done")), "done batch not done");
	cJSON_Delete(g);
	cJSON_Delete(b);
	stop_ok(&d);
}
END_TEST

START_TEST(batches_wait_times_out_with_current_counts)
{
	struct jobqd d;
	struct resp r;
	cJSON *b;

	harness_start(&d, NULL);
	b = create_batch(&d,
			 "{\"jobs\":[{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}]}",
			 1);
	batch_request(&d, jstr(b, "id"), "wait=1", &r);
	assert_status(&r, 200);
	assert_batch_shape(r.json, r.body);
	ck_assert_msg(!cJSON_IsTrue(jget(r.json, "done")) &&
		      jnull(r.json, "finished_at") &&
		      count_of(r.json, "queued") + count_of(r.json, "running") == 1,
		      "wait=1 on a 30 s job: %.800s", r.body);
	/* it waited (about 1 s), not longer than the bound (loose) */
	ck_assert_msg(r.ms >= 900.0 && r.ms < 10000.0,
		      "wait=1 answered after %.0f ms", r.ms);
	harness_resp_free(&r);
	cancel_ok(&d, job_id_at(b, 0));
	cJSON_Delete(wait_batch_done(&d, jstr(b, "id")));
	cJSON_Delete(b);
	stop_ok(&d);
}
END_TEST

START_TEST(batches_all_or_none_invalid_job_stores_nothing)
{
	static const struct {
		const char *body;
		long status;
		const char *code;
		const char *field;
	} cases[] = {
		{ "{\"jobs\":[{\"type\":\"echo\"},{\"type\":\"echo\"},"
		  "{\"type\":\"nope\"},{\"type\":\"echo\"}]}",
		  422, "unknown_job_type", "jobs[2].type" },
		{ "{\"jobs\":[{\"type\":\"sleep\",\"payload\":{\"seconds\":-1}},"
		  "{\"type\":\"echo\"}]}",
		  422, "invalid_payload", "jobs[0].payload.seconds" },
		{ "{\"jobs\":[{\"type\":\"echo\"},{\"type\":\"echo\",\"priority\":1.5}]}",
		  400, "invalid_field", "jobs[1].priority" },
		{ "{\"jobs\":[{\"type\":\"echo\"},{}]}", 400, "invalid_field",
		  "jobs[1].type" },
		{ "{\"jobs\":[{\"type\":\"echo\",\"bar\":1}]}", 400, "invalid_field",
		  "jobs[0].bar" },
		{ "{\"jobs\":[{\"type\":\"echo\",\"callback_url\":\"ftp://x\"}]}", 400,
		  "invalid_field", "jobs[0].callback_url" },
		{ "{\"jobs\":[{\"type\":\"echo\"},{\"type\":\"echo\",\"priority\":1,"
		  "\"priority\":\"x\"}]}", 400, "invalid_field", "jobs[1].priority" },
		{ "{\"jobs\":[{\"type\":\"echo\\u0000evil\",\"payload\":\"a\\u0000b\"}]}", 400,
		  "invalid_field", "jobs[0].type" },
		{ "{\"jobs\":[{\"type\":\"echo\",\"delay_s\":1e400}]}", 400,
		  "invalid_field", "jobs[0].delay_s" },
		{ "{\"jobs\":[{\"type\":\"fail\",\"payload\":{\"message\":\"\\u0000\"}}]}", 422,
		  "invalid_payload", "jobs[0].payload.message" },
		{ "{\"jobs\":[{\"type\":\"echo\",\"callback_url\":\"http://[::1\"}]}", 400,
		  "invalid_field", "jobs[0].callback_url" },
	};
	struct jobqd d;
	struct resp r;
	size_t i;

	harness_start(&d, NULL);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		harness_request(&d, "POST", "/v1/batches", "application/json",
				cases[i].body, NULL, &r);
		assert_problem(&r, cases[i].status, cases[i].code, cases[i].field);
		harness_resp_free(&r);
		ck_assert_msg(count_jobs(&d) == 0,
			      "refused batch %s stored jobs", cases[i].body);
	}
	stop_ok(&d);
}
END_TEST

#define BAD_BATCH(body, field) \
	{ "POST", "/v1/batches", NULL, body, 400, "invalid_field", field, NULL }
#define ONE_JOB "\"jobs\":[{\"type\":\"echo\"}]"

static const struct harness_bad_case bad_cases[] = {
	BAD_BATCH("{}", "jobs"),
	BAD_BATCH("{\"callback_url\":\"http://127.0.0.1:1/x\"}", "jobs"),
	BAD_BATCH("{\"jobs\":null}", "jobs"),
	BAD_BATCH("{\"jobs\":{\"type\":\"echo\"}}", "jobs"),
	BAD_BATCH("{\"jobs\":\"echo\"}", "jobs"),
	BAD_BATCH("{\"jobs\":3}", "jobs"),
	BAD_BATCH("{\"jobs\":[]}", "jobs"),
	BAD_BATCH("{\"jobs\":[{\"type\":\"echo\"},5]}", "jobs[1]"),
	BAD_BATCH("{\"jobs\":[{\"type\":\"echo\"},[]]}", "jobs[1]"),
	BAD_BATCH("{\"jobs\":[{\"type\":\"echo\"},\"echo\"]}", "jobs[1]"),
	BAD_BATCH("{\"jobs\":[{\"type\":\"echo\"},null]}", "jobs[1]"),
	BAD_BATCH("{" ONE_JOB ",\"foo\":1}", "foo"),
	BAD_BATCH("{\"priority\":1," ONE_JOB "}", "priority"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"ftp://x\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"file:///etc/passwd\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"http://\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"127.0.0.1:8080/x\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":42}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":null}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"http://[::1\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"http://127.0.0.1:99999/x\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB ",\"callback_url\":\"http://127.0.0.1/\\u0000x\"}", "callback_url"),
	BAD_BATCH("{" ONE_JOB "," ONE_JOB "}", "jobs"),
	{ "POST", "/v1/batches", NULL, "{\"jobs\":[", 400, "malformed_json", NULL, NULL },
	{ "POST", "/v1/batches", NULL, "[{\"type\":\"echo\"}]", 400, "malformed_json", NULL, NULL },
	/* lookups */
	{ "GET", "/v1/batches/" UNKNOWN_ID, NULL, NULL, 404, "batch_not_found", NULL, NULL },
	{ "GET", "/v1/batches/not-a-uuid", NULL, NULL, 404, "batch_not_found", NULL, NULL },
	{ "GET", "/v1/batches/{id}?wait=-1", NULL, NULL, 400, "invalid_query", "wait", NULL },
	{ "GET", "/v1/batches/{id}?wait=abc", NULL, NULL, 400, "invalid_query", "wait", NULL },
	{ "GET", "/v1/batches/{id}?wait=", NULL, NULL, 400, "invalid_query", "wait", NULL },
	/* methods */
	{ "GET", "/v1/batches", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
	{ "DELETE", "/v1/batches", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
	{ "PUT", "/v1/batches", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
	{ "POST", "/v1/batches/{id}", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	{ "DELETE", "/v1/batches/{id}", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	/* callback_url on single jobs */
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":\"ftp://x\"}",
	  400, "invalid_field", "callback_url", NULL },
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":\"gopher://h/\"}",
	  400, "invalid_field", "callback_url", NULL },
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":\"//h/x\"}",
	  400, "invalid_field", "callback_url", NULL },
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":true}",
	  400, "invalid_field", "callback_url", NULL },
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":{}}",
	  400, "invalid_field", "callback_url", NULL },
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":\"http://[::1\"}",
	  400, "invalid_field", "callback_url", NULL },
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":\"http://[::1]:99999/x\"}",
	  400, "invalid_field", "callback_url", NULL },
	{ "POST", "/v1/jobs", NULL, "{\"type\":\"echo\",\"callback_url\":\"http://127.0.0.1:99999/x\"}",
	  400, "invalid_field", "callback_url", NULL },
};

#define N_BAD_CASES ((int)(sizeof bad_cases / sizeof bad_cases[0]))

/* {"jobs":[{"type":"echo","payload":0}, ... n], "callback_url"?}; malloc'd. */
static char *batch_of_echos(int n, const char *callback_url)
{
	size_t cap = (size_t)n * 40 + 4096, len;
	char *s = malloc(cap);
	int i;

	ck_assert(s != NULL);
	len = (size_t)snprintf(s, cap, "{\"jobs\":[");
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(s + len, cap - len,
					"%s{\"type\":\"echo\",\"payload\":%d}",
					i ? "," : "", i);
	if (callback_url != NULL)
		len += (size_t)snprintf(s + len, cap - len,
					"],\"callback_url\":\"%s\"}", callback_url);
	else
		len += (size_t)snprintf(s + len, cap - len, "]}");
	ck_assert(len < cap);
	return s;
}

START_TEST(batches_reject_bad_input_with_exact_problems)
{
	char url[2200], body[2400];
	size_t cap = 128 * 1024;
	char *report = calloc(1, cap), *big;
	struct jobqd d;
	struct resp r;
	cJSON *b, *l;
	int i, nbad = 0, st = 0;
	size_t len;

	ck_assert(report != NULL);
	harness_start(&d, NULL);
	b = create_batch(&d, "{\"jobs\":[{\"type\":\"echo\"}]}", 1);
	for (i = 0; i < N_BAD_CASES; i++) {
		if (!harness_bad_case_run(&d, &bad_cases[i], jstr(b, "id"), report, cap))
			continue;
		nbad++;
		/* a case that kills jobqd is reported; the rest still run */
		if (harness_wait_exit(&d, 300.0, &st)) {
			len = strlen(report);
			snprintf(report + len, cap - len,
				 "    ^ jobqd died on this request (wait status %d); "
				 "restarted\n", st);
			harness_restart(&d, NULL);
		}
	}
	if (nbad > 0)
		fprintf(stderr, "bad-input mismatches (%d of %d):\n%s", nbad,
			N_BAD_CASES, report);
	ck_assert_msg(nbad == 0, "%d of %d bad-input cases mismatched:\n%s", nbad,
		      N_BAD_CASES, report);

	/* more than 10000 jobs */
	big = batch_of_echos(BATCH_MAX + 1, NULL);
	harness_request(&d, "POST", "/v1/batches", "application/json", big, NULL,
			&r);
	assert_problem(&r, 400, "invalid_field", "jobs");
	harness_resp_free(&r);
	free(big);

	/* callback_url: at most 2048 bytes */
	snprintf(url, sizeof url, "http://127.0.0.1:1/");
	while (strlen(url) < 2049)
		strcat(url, "a");
	snprintf(body, sizeof body, "{" ONE_JOB ",\"callback_url\":\"%s\"}", url);
	harness_request(&d, "POST", "/v1/batches", "application/json", body, NULL,
			&r);
	assert_problem(&r, 400, "invalid_field", "callback_url");
	harness_resp_free(&r);
	snprintf(body, sizeof body, "{\"type\":\"echo\",\"callback_url\":\"%s\"}",
		 url);
	post_job(&d, body, NULL, &r);
	assert_problem(&r, 400, "invalid_field", "callback_url");
	harness_resp_free(&r);

	l = list_jobs(&d);
	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 1,
		      "bad input stored jobs: %d listed, want 1",
		      cJSON_GetArraySize(jget(l, "jobs")));
	cJSON_Delete(l);
	cJSON_Delete(b);
	free(report);
	stop_ok(&d);
}
END_TEST

START_TEST(batches_accept_10000_jobs_in_one_request)
{
	struct jobqd d;
	char *body;
	const char **ids;
	cJSON *b, *g, *j;
	int i;

	harness_start(&d, NULL);
	body = batch_of_echos(BATCH_MAX, NULL);
	b = create_batch(&d, body, BATCH_MAX);
	free(body);
	ids = calloc(BATCH_MAX, sizeof *ids);
	ck_assert(ids != NULL);
	for (i = 0; i < BATCH_MAX; i++)
		ids[i] = job_id_at(b, i);
	qsort(ids, BATCH_MAX, sizeof *ids, cmp_str);
	for (i = 1; i < BATCH_MAX; i++)
		ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0,
			      "job id %s appears twice", ids[i]);
	free(ids);
	g = wait_batch_done(&d, jstr(b, "id"));
	ck_assert_msg(jlong(g, "total") == BATCH_MAX &&
		      count_of(g, "succeeded") == BATCH_MAX,
		      "10000-job batch done with %ld succeeded of %ld",
		      count_of(g, "succeeded"), jlong(g, "total"));
	cJSON_Delete(g);
	for (i = 0; i < BATCH_MAX; i += BATCH_MAX - 1) {
		j = get_job(&d, job_id_at(b, i), NULL);
		ck_assert_msg(str_eq(jstr(j, "batch_id"), jstr(b, "id")) &&
			      jlong(j, "payload") == i,
			      "job %d of the big batch: batch_id %s payload %ld", i,
			      jstr_or(j, "batch_id"), jlong(j, "payload"));
		cJSON_Delete(j);
	}
	cJSON_Delete(b);
	stop_ok(&d);
}
END_TEST

START_TEST(batches_retry_failed_job_makes_batch_not_done)
{
	struct jobqd d;
	struct resp r;
	cJSON *b, *g;
	const char *bid;

	harness_start(&d, NULL);
	b = create_batch(&d,
			 "{\"jobs\":[{\"type\":\"echo\",\"queue\":\"rq\"},"
			 "{\"type\":\"fail\",\"queue\":\"rq\",\"payload\":"
			 "{\"retryable\":false}}]}",
			 2);
	bid = jstr(b, "id");
	g = wait_batch_done(&d, bid);
	ck_assert_msg(count_of(g, "succeeded") == 1 && count_of(g, "failed") == 1,
		      "batch counts succeeded %ld failed %ld",
		      count_of(g, "succeeded"), count_of(g, "failed"));
	cJSON_Delete(g);

	queue_action(&d, "rq", "pause"); /* the retried job waits, observably */
	job_action(&d, job_id_at(b, 1), "retry", &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	g = get_batch(&d, bid, NULL);
	ck_assert_msg(!cJSON_IsTrue(jget(g, "done")) && jnull(g, "finished_at") &&
		      count_of(g, "queued") == 1 && count_of(g, "failed") == 0,
		      "batch after a retry: done %d finished_at %s queued %ld",
		      cJSON_IsTrue(jget(g, "done")), jstr_or(g, "finished_at"),
		      count_of(g, "queued"));
	cJSON_Delete(g);
	queue_action(&d, "rq", "resume");
	g = wait_batch_done(&d, bid);
	ck_assert_msg(count_of(g, "failed") == 1 &&
		      is_rfc3339_ms(jstr(g, "finished_at")),
		      "batch done again: failed %ld finished_at %s",
		      count_of(g, "failed"), jstr_or(g, "finished_at"));
	cJSON_Delete(g);
	cJSON_Delete(b);
	stop_ok(&d);
}
END_TEST

/* ---- callbacks ---- */

START_TEST(callbacks_succeeded_job_posts_job_json_once)
{
	struct receiver rc;
	struct jobqd d;
	char url[128], url2[128], body[256], txt[2048];
	char *id, *id2;
	cJSON *j, *cb;
	int last;

	recv_start(&rc, NULL, 200);
	harness_start(&d, NULL);
	snprintf(url, sizeof url, "%s/hooks/a?x=1", rc.base);
	snprintf(body, sizeof body,
		 "{\"type\":\"echo\",\"queue\":\"cbq\",\"payload\":{\"k\":[1,2]},"
		 "\"callback_url\":\"%s\"}", url);
	queue_action(&d, "cbq", "pause"); /* to see "waiting" before it ends */
	j = submit_json(&d, body);
	id = strdup(jstr(j, "id"));
	assert_delivery(j, url, "waiting", 0, 0);
	ck_assert_msg(jnull(jget(j, "callback"), "last_error"),
		      "fresh callback has last_error");
	cJSON_Delete(j);
	j = get_job(&d, id, NULL);
	assert_delivery(j, url, "waiting", 0, 0);
	cJSON_Delete(j);
	ck_assert_int_eq(recv_count(&rc), 0);
	queue_action(&d, "cbq", "resume");

	j = wait_delivery(&d, id, 0, "delivered", 15000.0);
	assert_delivery(j, url, "delivered", 1, 200);
	ck_assert_msg(jnull(jget(j, "callback"), "last_error"),
		      "delivered callback has last_error");
	cJSON_Delete(j);

	/* a second job's delivery as a barrier, then count the first's */
	snprintf(url2, sizeof url2, "%s/hooks/b", rc.base);
	snprintf(body, sizeof body,
		 "{\"type\":\"echo\",\"callback_url\":\"%s\"}", url2);
	id2 = submit(&d, body);
	cJSON_Delete(wait_delivery(&d, id2, 0, "delivered", 15000.0));
	recv_describe(&rc, txt, sizeof txt);
	ck_assert_msg(recv_count_for(&rc, NULL, id, &last) == 1,
		      "job %s: want exactly one callback; %s", id, txt);
	cb = assert_job_callback(&rc.hits[last], "/hooks/a", id, "succeeded");
	ck_assert_msg(strcmp(rc.hits[last].query_x, "1") == 0,
		      "callback URL lost its query: x='%s'", rc.hits[last].query_x);
	ck_assert_msg(json_equal_text(jget(cb, "result"), "{\"k\":[1,2]}"),
		      "callback result: %.800s", rc.hits[last].body);
	ck_assert_msg(!rc.hits[last].has_signature,
		      "X-Jobq-Signature sent without --callback-secret: %s",
		      rc.hits[last].signature);
	cJSON_Delete(cb);
	ck_assert_msg(recv_count_for(&rc, "job.finished", id2, NULL) == 1,
		      "job %s: want exactly one callback; %s", id2, txt);
	ck_assert_msg(recv_count(&rc) == 2, "unexpected callbacks: %s", txt);
	free(id);
	free(id2);
	stop_ok(&d);
	recv_stop(&rc);
}
END_TEST

START_TEST(callbacks_signature_is_hmac_sha256_of_body)
{
	struct receiver rc;
	struct jobqd d;
	char url[128], body[256], want[160];
	const struct hit *h;
	char *id;
	int last;

	recv_start(&rc, NULL, 200);
	harness_start(&d, ARGS("--callback-secret", SECRET));
	snprintf(url, sizeof url, "%s/signed", rc.base);
	snprintf(body, sizeof body,
		 "{\"type\":\"echo\",\"payload\":\"sign me\",\"callback_url\":\"%s\"}",
		 url);
	id = submit(&d, body);
	cJSON_Delete(wait_delivery(&d, id, 0, "delivered", 15000.0));
	ck_assert_int_eq(recv_count_for(&rc, "job.finished", id, &last), 1);
	h = &rc.hits[last];
	cJSON_Delete(assert_job_callback(h, "/signed", id, "succeeded"));
	expected_signature(SECRET, h->body, h->body_len, want, sizeof want);
	ck_assert_msg(h->has_signature && strcmp(h->signature, want) == 0,
		      "X-Jobq-Signature '%s', want '%s' for body %.600s",
		      h->signature, want, h->body);
	/* a different key gives a different signature: it is keyed */
	expected_signature("other", h->body, h->body_len, want, sizeof want);
	ck_assert_msg(strcmp(h->signature, want) != 0, "signature not keyed");
	free(id);
	stop_ok(&d);
	recv_stop(&rc);
}
END_TEST

START_TEST(callbacks_retried_until_2xx)
{
	static const int script[] = { 500, 500, 0 };
	struct receiver rc;
	struct jobqd d;
	char url[128], body[256], txt[2048];
	int i, seen_pending = 0;
	double end;
	char *id;
	cJSON *j;

	recv_start(&rc, script, 200);
	harness_start(&d, NULL);
	snprintf(url, sizeof url, "%s/flaky", rc.base);
	snprintf(body, sizeof body,
		 "{\"type\":\"echo\",\"callback_url\":\"%s\"}", url);
	id = submit(&d, body);
	/* between tries the job shows pending with the last failure */
	end = mono_ms() + 20000.0;
	for (;;) {
		j = get_job(&d, id, NULL);
		if (str_eq(delivery_state(j), "pending") &&
		    jlong(jget(j, "callback"), "last_status") == 500)
			seen_pending = 1;
		if (str_eq(delivery_state(j), "delivered") ||
		    str_eq(delivery_state(j), "failed") || mono_ms() > end)
			break;
		cJSON_Delete(j);
		nap_ms(20);
	}
	recv_describe(&rc, txt, sizeof txt);
	assert_delivery(j, url, "delivered", 3, 200);
	cJSON_Delete(j);
	ck_assert_msg(seen_pending, "never saw callback pending with last_status 500");
	ck_assert_msg(recv_count_for(&rc, "job.finished", id, NULL) == 3 &&
		      recv_count(&rc) == 3, "want 3 tries; %s", txt);
	for (i = 0; i < 3; i++)
		cJSON_Delete(assert_job_callback(&rc.hits[i], "/flaky", id,
						 "succeeded"));
	free(id);
	stop_ok(&d);
	recv_stop(&rc);
}
END_TEST

START_TEST(callbacks_failed_and_canceled_jobs_call_back)
{
	struct receiver rc;
	struct jobqd d;
	char url[128], body[256], txt[2048];
	char *failed_id, *canceled_id;
	int last;
	cJSON *cb;

	recv_start(&rc, NULL, 200);
	harness_start(&d, NULL);
	snprintf(url, sizeof url, "%s/done", rc.base);
	snprintf(body, sizeof body,
		 "{\"type\":\"fail\",\"payload\":{\"message\":\"boom\","
		 "\"retryable\":false},\"callback_url\":\"%s\"}", url);
	failed_id = submit(&d, body);
	snprintf(body, sizeof body,
		 "{\"type\":\"sleep\",\"payload\":{\"seconds\":30},"
		 "\"callback_url\":\"%s\"}", url);
	canceled_id = submit(&d, body);
	cJSON_Delete(wait_state(&d, canceled_id, "running"));
	cancel_ok(&d, canceled_id);

	cJSON_Delete(wait_delivery(&d, failed_id, 0, "delivered", 15000.0));
	cJSON_Delete(wait_delivery(&d, canceled_id, 0, "delivered", 15000.0));
	recv_describe(&rc, txt, sizeof txt);
	ck_assert_msg(recv_count_for(&rc, "job.finished", failed_id, &last) == 1,
		      "failed job: want one callback; %s", txt);
	cb = assert_job_callback(&rc.hits[last], "/done", failed_id, "failed");
	ck_assert_msg(str_eq(jstr(cb, "error"), "boom"),
		      "failed job callback error: %.800s", rc.hits[last].body);
	cJSON_Delete(cb);
	ck_assert_msg(recv_count_for(&rc, "job.finished", canceled_id, &last) == 1,
		      "canceled job: want one callback; %s", txt);
	cJSON_Delete(assert_job_callback(&rc.hits[last], "/done", canceled_id,
					 "canceled"));
	free(failed_id);
	free(canceled_id);
	stop_ok(&d);
	recv_stop(&rc);
}
END_TEST

START_TEST(callbacks_batch_finished_posts_batch_json)
{
	struct receiver rc;
	struct jobqd d;
	char url[128], txt[2048];
	char *body;
	int last;
	cJSON *b, *g, *sent;
	const struct hit *h;

	recv_start(&rc, NULL, 200);
	harness_start(&d, NULL);
	snprintf(url, sizeof url, "%s/batch-hook", rc.base);
	body = batch_of_echos(3, url);
	b = create_batch(&d, body, 3);
	free(body);
	g = get_batch(&d, jstr(b, "id"), NULL);
	ck_assert_msg(cJSON_IsObject(jget(g, "callback")) &&
		      str_eq(jstr(jget(g, "callback"), "url"), url),
		      "batch callback url not shown");
	cJSON_Delete(g);

	g = wait_delivery(&d, jstr(b, "id"), 1, "delivered", 15000.0);
	assert_delivery(g, url, "delivered", 1, 200);
	ck_assert_msg(cJSON_IsTrue(jget(g, "done")), "delivered before done");
	cJSON_Delete(g);
	recv_describe(&rc, txt, sizeof txt);
	ck_assert_msg(recv_count_for(&rc, "batch.finished", NULL, &last) == 1 &&
		      recv_count(&rc) == 1,
		      "want exactly one batch.finished request; %s", txt);
	h = &rc.hits[last];
	ck_assert_msg(strcmp(h->method, "POST") == 0 &&
		      strcmp(h->path, "/batch-hook") == 0 &&
		      strcmp(h->content_type, "application/json") == 0,
		      "batch callback %s %s Content-Type %s", h->method, h->path,
		      h->content_type);
	sent = cJSON_ParseWithOpts(h->body, NULL, 1);
	ck_assert_msg(sent != NULL, "batch callback body not JSON: %.800s", h->body);
	assert_batch_shape(sent, h->body);
	ck_assert_msg(str_eq(jstr(sent, "id"), jstr(b, "id")) &&
		      cJSON_IsTrue(jget(sent, "done")) &&
		      jlong(sent, "total") == 3 &&
		      count_of(sent, "succeeded") == 3,
		      "batch callback body: %.800s", h->body);
	cJSON_Delete(sent);
	/* the batch's jobs have no callback of their own */
	g = get_job(&d, job_id_at(b, 0), NULL);
	ck_assert_msg(jnull(g, "callback"), "batch job has a callback");
	cJSON_Delete(g);
	cJSON_Delete(b);
	stop_ok(&d);
	recv_stop(&rc);
}
END_TEST

START_TEST(callbacks_pending_delivery_survives_kill9)
{
	struct receiver rc;
	struct jobqd d;
	char url[128], body[256], txt[2048];
	const cJSON *cb;
	int before, i, ok_after = 0;
	double end;
	char *id;
	cJSON *j;

	recv_start(&rc, NULL, 500);
	harness_start(&d, NULL);
	snprintf(url, sizeof url, "%s/later", rc.base);
	snprintf(body, sizeof body,
		 "{\"type\":\"echo\",\"callback_url\":\"%s\"}", url);
	id = submit(&d, body);
	recv_wait(&rc, 1, 15000.0);
	/* kill once jobqd has recorded the failed first try */
	end = mono_ms() + 15000.0;
	for (;;) {
		j = wait_delivery(&d, id, 0, "pending", 15000.0);
		cb = jget(j, "callback");
		if (jlong(cb, "attempts") >= 1 && jlong(cb, "last_status") == 500)
			break;
		ck_assert_msg(mono_ms() < end, "first failed try never recorded");
		cJSON_Delete(j);
		nap_ms(10);
	}
	cJSON_Delete(j);
	harness_kill9(&d);
	before = recv_count(&rc);
	recv_set_fallback(&rc, 200);
	harness_restart(&d, NULL);

	j = wait_delivery(&d, id, 0, "delivered", 20000.0);
	cb = jget(j, "callback");
	recv_describe(&rc, txt, sizeof txt);
	ck_assert_msg(jlong(cb, "last_status") == 200 &&
		      jlong(cb, "attempts") >= 2,
		      "after restart: callback attempts %ld last_status %ld; %s",
		      jlong(cb, "attempts"), jlong(cb, "last_status"), txt);
	cJSON_Delete(j);
	for (i = before; i < recv_count(&rc); i++)
		ok_after += rc.hits[i].answered == 200;
	ck_assert_msg(ok_after == 1, "want one 200-answered try after the restart; %s",
		      txt);
	cJSON_Delete(assert_job_callback(&rc.hits[recv_count(&rc) - 1], "/later",
					 id, "succeeded"));
	free(id);
	stop_ok(&d);
	recv_stop(&rc);
}
END_TEST

/* ---- suite ---- */

static Suite *delivery_suite(void)
{
	Suite *s = suite_create("jobq_api_delivery");
	TCase *tc;

	tc = tcase(s, "idempotency");
	tcase_add_test(tc, idempotency_same_key_same_body_replays_the_job);
	tcase_add_test(tc, idempotency_bad_keys_are_refused);
	tcase_add_test(tc, idempotency_replay_survives_kill9);
	tcase_add_test(tc, idempotency_key_freed_when_job_deleted);
	tcase_add_test(tc, idempotency_concurrent_same_key_makes_one_job);

	tc = tcase(s, "batches");
	tcase_add_test(tc, batches_create_lists_jobs_in_order_then_done);
	tcase_add_test(tc, batches_wait_answers_when_last_job_finishes);
	tcase_add_test(tc, batches_wait_times_out_with_current_counts);
	tcase_add_test(tc, batches_all_or_none_invalid_job_stores_nothing);
	tcase_add_test(tc, batches_reject_bad_input_with_exact_problems);
	tcase_add_test(tc, batches_retry_failed_job_makes_batch_not_done);

	/* Tagged "bulk": a volume test with no concurrency of its own, which
	 * `make SANITIZE=thread` leaves out (CK_EXCLUDE_TAGS=bulk): under
	 * ThreadSanitizer its 10000 jobs need about its 30 s bound on an idle
	 * 2-core machine and far more on a busy one. */
	tc = tcase(s, "batches_bulk");
	tcase_set_tags(tc, "bulk");
	tcase_add_test(tc, batches_accept_10000_jobs_in_one_request);

	tc = tcase(s, "callbacks");
	tcase_add_test(tc, callbacks_succeeded_job_posts_job_json_once);
	tcase_add_test(tc, callbacks_signature_is_hmac_sha256_of_body);
	tcase_add_test(tc, callbacks_retried_until_2xx);
	tcase_add_test(tc, callbacks_failed_and_canceled_jobs_call_back);
	tcase_add_test(tc, callbacks_batch_finished_posts_batch_json);
	tcase_add_test(tc, callbacks_pending_delivery_survives_kill9);
	return s;
}

int main(void)
{
	harness_set_job_check(check_job);
	return harness_run(delivery_suite());
}
