/* Black-box API tests for the http job kind. Each test starts a scripted
 * HTTP server in the test process (libmicrohttpd, 127.0.0.1, port 0, a
 * thread per connection) and a real jobqd (env JOBQD) that calls it:
 * retries on 503/429 with Retry-After, final failures, cancel and timeout
 * aborting a slow response, JSON/text/binary bodies, the response cap,
 * redirects, what the request carries, SSRF refusals and submit-time
 * validation. Only 127.0.0.1 is ever contacted; every wait is bounded. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
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

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define SLOW_STEP_MS 20          /* the slow route sends a byte this often */
#define SLOW_MAX_MS 30000        /* and never runs longer */
#define BIN_LEN 256

/* ---- small helpers ---- */

/* The number k of o truncated to a long (unlike harness jlong, a
 * non-integral number is not rejected), -999999 when it is not a number. */
static long jlong_trunc(const cJSON *o, const char *k)
{
	const cJSON *v = jget(o, k);

	return cJSON_IsNumber(v) ? (long)v->valuedouble : -999999;
}

static int contains(const char *s, const char *part)
{
	return s != NULL && strstr(s, part) != NULL;
}

static char *print(const cJSON *j)
{
	char *s = j != NULL ? cJSON_PrintUnformatted(j) : NULL;

	return s != NULL ? s : strdup("(null)");
}

/* ---- the scripted server ----
 *   /flaky/N        503 for the first N requests, then 200 {"hit": n}
 *   /limited        429 with Retry-After: 2 once, then 200
 *   /limited-date   429 with Retry-After as an HTTP date 3 s ahead, then 200
 *   /missing        404
 *   /slow?ms=M      200, one byte every SLOW_STEP_MS for M ms
 *   /json           application/json, two X-Multi headers
 *   /text           text/plain UTF-8
 *   /binary         application/octet-stream, bytes 0..255
 *   /big?n=N        N bytes of 'x' (Content-Length); &chunked=1 without
 *   /redirect       302 to /json
 *   /hop            302 to http://169.254.169.254/latest/meta-data/
 *   /echo           200 JSON of the request: method, headers, body */

enum route { R_FLAKY, R_LIMITED, R_LIMITED_DATE, R_MISSING, R_SLOW, R_JSON, R_TEXT, R_BINARY,
	     R_BIG, R_REDIRECT, R_HOP, R_ECHO, R_OTHER, R_COUNT };

static struct {
	struct MHD_Daemon *d;
	int port;
	char base[64];
	atomic_int hits[R_COUNT];
	atomic_int aborted;      /* requests that ended before their response did */
	atomic_int in_flight;    /* slow responses being sent */
	atomic_int max_in_flight;
	atomic_bool stopping;
} srv;

/* Per request: the body received (for /echo). */
struct req {
	char *body;
	size_t len;
};

struct slow {
	double end;
	bool counted;
};

static enum route route_of(const char *url)
{
	static const struct { const char *prefix; enum route r; } table[] = {
		{"/flaky/", R_FLAKY}, {"/limited-date", R_LIMITED_DATE}, {"/limited", R_LIMITED},
		{"/missing", R_MISSING}, {"/slow", R_SLOW}, {"/json", R_JSON}, {"/text", R_TEXT},
		{"/binary", R_BINARY}, {"/big", R_BIG}, {"/redirect", R_REDIRECT}, {"/hop", R_HOP}, {"/echo", R_ECHO},
	};
	size_t i;

	for (i = 0; i < sizeof table / sizeof table[0]; i++)
		if (strncmp(url, table[i].prefix, strlen(table[i].prefix)) == 0)
			return table[i].r;
	return R_OTHER;
}

static ssize_t slow_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct slow *s = cls;

	(void)pos;
	if (max == 0)
		return 0;
	if (atomic_load(&srv.stopping))
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (mono_ms() >= s->end)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (pos > 0)
		nap_ms(SLOW_STEP_MS);
	buf[0] = '.';
	return 1;
}

static void slow_free(void *cls)
{
	struct slow *s = cls;

	if (s->counted)
		atomic_fetch_sub(&srv.in_flight, 1);
	free(s);
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, const char *type,
			     const void *data, size_t len, const char *const *extra)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data,
								 MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (type != NULL)
		MHD_add_response_header(r, "Content-Type", type);
	for (; extra != NULL && extra[0] != NULL; extra += 2)
		MHD_add_response_header(r, extra[0], extra[1]);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result add_header_json(void *cls, enum MHD_ValueKind kind, const char *key,
				       const char *value)
{
	(void)kind;
	cJSON_AddStringToObject(cls, key, value != NULL ? value : "");
	return MHD_YES;
}

static enum MHD_Result answer_echo(struct MHD_Connection *c, const char *method, struct req *q)
{
	cJSON *o = cJSON_CreateObject(), *h = cJSON_CreateObject();
	enum MHD_Result ret;
	char *text;

	MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_json, h);
	cJSON_AddStringToObject(o, "method", method);
	cJSON_AddItemToObject(o, "headers", h);
	cJSON_AddStringToObject(o, "body", q->body != NULL ? q->body : "");
	text = cJSON_PrintUnformatted(o);
	ret = queue(c, 200, "application/json", text, strlen(text), NULL);
	free(text);
	cJSON_Delete(o);
	return ret;
}

static enum MHD_Result answer_slow(struct MHD_Connection *c)
{
	const char *ms = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ms");
	struct slow *s = calloc(1, sizeof *s);
	struct MHD_Response *r;
	enum MHD_Result ret;
	double d = ms != NULL ? atof(ms) : 1000;
	int now, max;

	s->end = mono_ms() + (d < SLOW_MAX_MS ? d : SLOW_MAX_MS);
	s->counted = true;
	now = atomic_fetch_add(&srv.in_flight, 1) + 1;
	max = atomic_load(&srv.max_in_flight);
	while (now > max && !atomic_compare_exchange_weak(&srv.max_in_flight, &max, now))
		;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, slow_read, s, slow_free);
	MHD_add_response_header(r, "Content-Type", "text/plain");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* Chunked bodies: n bytes of 'x' with no Content-Length. */
static ssize_t big_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	size_t n = *(size_t *)cls, left;

	if (pos >= n)
		return MHD_CONTENT_READER_END_OF_STREAM;
	left = (size_t)(n - pos);
	if (left > max)
		left = max;
	memset(buf, 'x', left);
	return (ssize_t)left;
}

static enum MHD_Result answer_big(struct MHD_Connection *c)
{
	const char *n = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "n");
	const char *chunked = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "chunked");
	size_t len = n != NULL ? (size_t)atol(n) : 0;
	struct MHD_Response *r;
	enum MHD_Result ret;
	size_t *cls;
	char *data;

	if (chunked == NULL) {
		data = malloc(len + 1);
		memset(data, 'x', len);
		ret = queue(c, 200, "text/plain", data, len, NULL);
		free(data);
		return ret;
	}
	cls = malloc(sizeof *cls);
	*cls = len;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, big_read, cls, free);
	MHD_add_response_header(r, "Content-Type", "text/plain");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **con_cls)
{
	static const unsigned char json[] = "{\"a\":[1,2],\"s\":\"x\"}";
	static const char text[] = "h\xc3\xa9llo w\xc3\xb6rld\n";
	struct req *q = *con_cls;
	enum route r = route_of(url);
	char n[32], date[64];
	int hit;

	(void)cls;
	(void)version;
	if (q == NULL) {
		*con_cls = calloc(1, sizeof *q);
		return MHD_YES;
	}
	if (*upload_size > 0) {
		q->body = realloc(q->body, q->len + *upload_size + 1);
		memcpy(q->body + q->len, upload, *upload_size);
		q->len += *upload_size;
		q->body[q->len] = '\0';
		*upload_size = 0;
		return MHD_YES;
	}
	hit = atomic_fetch_add(&srv.hits[r], 1) + 1;
	switch (r) {
	case R_FLAKY:
		if (hit <= atoi(url + strlen("/flaky/")))
			return queue(c, 503, "text/plain", "busy", 4, NULL);
		snprintf(n, sizeof n, "{\"hit\":%d}", hit);
		return queue(c, 200, "application/json", n, strlen(n), NULL);
	case R_LIMITED:
		if (hit == 1)
			return queue(c, 429, "text/plain", "slow down", 9,
				     ARGS("Retry-After", "2"));
		return queue(c, 200, "application/json", "{}", 2, NULL);
	case R_LIMITED_DATE:
		if (hit == 1) {
			time_t t = time(NULL) + 3;
			struct tm tm;

			gmtime_r(&t, &tm);
			strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
			return queue(c, 429, "text/plain", "slow down", 9,
				     ARGS("Retry-After", date));
		}
		return queue(c, 200, "application/json", "{}", 2, NULL);
	case R_MISSING:
		return queue(c, 404, "text/plain", "no such thing", 13, NULL);
	case R_SLOW:
		return answer_slow(c);
	case R_JSON:
		return queue(c, 200, "application/json; charset=utf-8", json, sizeof json - 1,
			     ARGS("X-Multi", "a", "X-Multi", "b"));
	case R_TEXT:
		return queue(c, 200, "text/plain; charset=utf-8", text, sizeof text - 1, NULL);
	case R_BINARY: {
		unsigned char bin[BIN_LEN];
		int i;

		for (i = 0; i < BIN_LEN; i++)
			bin[i] = (unsigned char)i;
		return queue(c, 200, "application/octet-stream", bin, sizeof bin, NULL);
	}
	case R_BIG:
		return answer_big(c);
	case R_REDIRECT:
		return queue(c, 302, "text/plain", "moved", 5, ARGS("Location", "/json"));
	case R_HOP:
		return queue(c, 302, "text/plain", "moved", 5,
			     ARGS("Location", "http://169.254.169.254/latest/meta-data/"));
	case R_ECHO:
		return answer_echo(c, method, q);
	default:
		return queue(c, 404, "text/plain", "unknown route", 13, NULL);
	}
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)c;
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		atomic_fetch_add(&srv.aborted, 1);
	if (q != NULL) {
		free(q->body);
		free(q);
		*con_cls = NULL;
	}
}

static void srv_start(void)
{
	const union MHD_DaemonInfo *info;
	struct sockaddr_in sa;
	int i;

	for (i = 0; i < R_COUNT; i++)
		atomic_store(&srv.hits[i], 0);
	atomic_store(&srv.aborted, 0);
	atomic_store(&srv.in_flight, 0);
	atomic_store(&srv.max_in_flight, 0);
	atomic_store(&srv.stopping, false);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
				 MHD_USE_POLL,
				 0, NULL, NULL, answer, NULL,
				 MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				 MHD_OPTION_CONNECTION_LIMIT, 500u,
				 MHD_OPTION_CONNECTION_TIMEOUT, 60u,
				 MHD_OPTION_END);
	ck_assert_msg(srv.d != NULL, "cannot start the test HTTP server");
	info = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
	ck_assert_msg(info != NULL && info->port != 0, "test HTTP server has no port");
	srv.port = info->port;
	snprintf(srv.base, sizeof srv.base, "http://127.0.0.1:%d", srv.port);
}

static void srv_stop(void)
{
	atomic_store(&srv.stopping, true);
	if (srv.d != NULL)
		MHD_stop_daemon(srv.d);
	srv.d = NULL;
}

/* Waits (bounded) until counter reaches want; returns whether it did. */
static int wait_count(atomic_int *counter, int want, double bound_ms)
{
	double end = mono_ms() + bound_ms;

	while (atomic_load(counter) < want) {
		if (mono_ms() > end)
			return 0;
		nap_ms(5);
	}
	return 1;
}

/* ---- jobqd helpers ---- */

static void start(struct jobqd *d, const char *const *args)
{
	srv_start();
	harness_start(d, args);
}

static void stop(struct jobqd *d)
{
	int st = harness_stop_keep(d);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "jobqd did not exit 0 after SIGTERM (status 0x%x)", st);
	harness_cleanup(d);
	srv_stop();
}

/* Copies payload with its first "%s" replaced by the server's base URL. */
static void expand(char *out, size_t n, const char *payload)
{
	const char *at = strstr(payload, "%s");

	if (at == NULL)
		snprintf(out, n, "%s", payload);
	else
		snprintf(out, n, "%.*s%s%s", (int)(at - payload), payload, srv.base, at + 2);
}

/* Submits {"type":"http","payload":PAYLOAD,EXTRA}; asserts 201; returns
 * the id. payload may use %s for the server base once. */
static char *submit(const struct jobqd *d, const char *payload, const char *extra)
{
	char body[4096], p[2048];

	expand(p, sizeof p, payload);
	snprintf(body, sizeof body, "{\"type\":\"http\",\"payload\":%s%s%s}", p,
		 extra != NULL ? "," : "", extra != NULL ? extra : "");
	return harness_submit(d, body);
}

#define wait_done(d, id) harness_wait_terminal((d), (id), NULL)

#define wait_running(d, id) cJSON_Delete(harness_wait_state((d), (id), "running", NULL))

/* Runs one job to its end; asserts its state and attempts. */
static cJSON *run_job(const struct jobqd *d, const char *payload, const char *extra,
		      const char *state, long attempts)
{
	char *id = submit(d, payload, extra);
	cJSON *j = wait_done(d, id);
	char *text = print(j);

	ck_assert_msg(str_eq(jstr(j, "state"), state) && jlong_trunc(j, "attempts") == attempts,
		      "job %s: want %s after %ld attempt(s), got %s", payload, state, attempts, text);
	free(text);
	free(id);
	return j;
}

static const cJSON *result_of(const cJSON *j)
{
	const cJSON *r = jget(j, "result");

	ck_assert_msg(cJSON_IsObject(r), "job has no result object");
	return r;
}

/* Asserts the job's error contains each of the NULL-terminated parts. */
static void assert_error(const cJSON *j, const char *const *parts)
{
	const char *e = jstr(j, "error");

	for (; *parts != NULL; parts++)
		ck_assert_msg(contains(e, *parts), "error '%s' lacks '%s'", e ? e : "(none)", *parts);
}

/* ---- retries and final failures ---- */

START_TEST(http_503_twice_then_200_succeeds_on_attempt_3)
{
	struct jobqd d;
	char want[128];
	const cJSON *h;
	cJSON *j;

	start(&d, NULL);
	j = run_job(&d, "{\"url\":\"%s/flaky/2\"}", "\"max_attempts\":5,\"backoff_s\":0.05",
		    "succeeded", 3);
	ck_assert_int_eq(jlong_trunc(result_of(j), "status"), 200);
	ck_assert_int_eq(jlong_trunc(jget(result_of(j), "json"), "hit"), 3);
	h = jget(j, "attempt_history");
	ck_assert_int_eq(cJSON_GetArraySize(h), 3);
	snprintf(want, sizeof want, "HTTP 503 from %s/flaky/2", srv.base);
	ck_assert_str_eq(jstr_or(cJSON_GetArrayItem(h, 0), "error"), want);
	ck_assert_str_eq(jstr_or(cJSON_GetArrayItem(h, 1), "error"), want);
	ck_assert_str_eq(jstr_or(cJSON_GetArrayItem(h, 0), "outcome"), "failed");
	ck_assert_int_eq(atomic_load(&srv.hits[R_FLAKY]), 3);
	cJSON_Delete(j);
	stop(&d);
}
END_TEST

/* The 429's Retry-After (seconds, then an HTTP date) sets the wait before
 * the next attempt, far above the 10 ms backoff the job asks for. */
START_TEST(http_429_retry_after_delays_the_next_attempt)
{
	static const struct { const char *path; long min_ms; } cases[] = {
		{"limited", 2000}, {"limited-date", 1000},
	};
	struct jobqd d;
	char payload[128];
	size_t i;

	start(&d, NULL);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *id;
		cJSON *j;
		long long waited = -1;

		snprintf(payload, sizeof payload, "{\"url\":\"%s/%s\"}", srv.base, cases[i].path);
		id = submit(&d, payload, "\"backoff_s\":0.01,\"max_backoff_s\":0.01");
		j = wait_done(&d, id);
		ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && jlong_trunc(j, "attempts") == 2,
			      "%s: %s after %ld attempts", cases[i].path, jstr_or(j, "state"),
			      jlong_trunc(j, "attempts"));
		{
			const cJSON *h = jget(j, "attempt_history");
			const cJSON *a1 = cJSON_GetArrayItem(h, 0), *a2 = cJSON_GetArrayItem(h, 1);

			ck_assert_msg(contains(jstr(a1, "error"), "HTTP 429 from "), "attempt 1: %s",
				      jstr_or(a1, "error"));
			waited = ts_ms_lax(jstr(a2, "started_at")) - ts_ms_lax(jstr(a1, "finished_at"));
		}
		ck_assert_msg(waited >= cases[i].min_ms, "%s: the retry started %lld ms after a "
			      "429 asking for a later retry", cases[i].path, waited);
		cJSON_Delete(j);
		free(id);
	}
	stop(&d);
}
END_TEST

START_TEST(http_404_fails_after_one_attempt)
{
	struct jobqd d;
	char want[128];
	cJSON *j;

	start(&d, NULL);
	j = run_job(&d, "{\"url\":\"%s/missing\"}", "\"max_attempts\":3", "failed", 1);
	snprintf(want, sizeof want, "HTTP 404 from %s/missing", srv.base);
	ck_assert_str_eq(jstr_or(j, "error"), want);
	ck_assert_int_eq(atomic_load(&srv.hits[R_MISSING]), 1);
	cJSON_Delete(j);
	/* expect_status makes the same answer a success. */
	j = run_job(&d, "{\"url\":\"%s/missing\",\"expect_status\":[404,410]}", NULL, "succeeded", 1);
	ck_assert_int_eq(jlong_trunc(result_of(j), "status"), 404);
	ck_assert_str_eq(jstr_or(result_of(j), "body"), "no such thing");
	cJSON_Delete(j);
	stop(&d);
}
END_TEST

START_TEST(http_network_error_is_retried_with_curls_message)
{
	struct jobqd d;
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	char payload[128];
	int fd, port;
	cJSON *j;

	/* A port nothing listens on: bind one, note it, close it. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	start(&d, NULL);
	snprintf(payload, sizeof payload, "{\"url\":\"http://127.0.0.1:%d/\"}", port);
	j = run_job(&d, payload, "\"max_attempts\":2,\"backoff_s\":0.01", "failed", 2);
	assert_error(j, ARGS("onnect"));
	cJSON_Delete(j);
	stop(&d);
}
END_TEST

/* ---- stopping a transfer ---- */

START_TEST(http_cancel_running_job_closes_the_connection_at_once)
{
	struct jobqd d;
	struct resp r;
	double t0, seen;
	char path[128];
	char *id;
	cJSON *j;

	start(&d, NULL);
	id = submit(&d, "{\"url\":\"%s/slow?ms=20000\"}", NULL);
	ck_assert_msg(wait_count(&srv.hits[R_SLOW], 1, 10000), "the slow request never arrived");
	wait_running(&d, id);
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
	t0 = mono_ms();
	harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200 && str_eq(jstr(r.json, "state"), "canceled"),
		      "cancel: %ld %.400s", r.status, r.body);
	harness_resp_free(&r);
	/* Bounded far below the 20 s response: the transfer was aborted. */
	ck_assert_msg(wait_count(&srv.aborted, 1, 5000),
		      "the server never saw the connection closed after the cancel");
	seen = mono_ms() - t0;
	fprintf(stderr, "http cancel: server saw the connection closed %.0f ms after the cancel\n", seen);
	j = wait_done(&d, id);
	ck_assert_str_eq(jstr_or(j, "state"), "canceled");
	ck_assert_int_eq(jlong_trunc(j, "attempts"), 1);
	cJSON_Delete(j);
	free(id);
	stop(&d);
}
END_TEST

START_TEST(http_job_timeout_aborts_the_transfer)
{
	struct jobqd d;
	cJSON *j;
	const cJSON *a;

	start(&d, NULL);
	/* The job's own timeout_s: an attempt outcome "timeout". */
	j = run_job(&d, "{\"url\":\"%s/slow?ms=20000\"}", "\"timeout_s\":0.5,\"max_attempts\":1",
		    "failed", 1);
	a = cJSON_GetArrayItem(jget(j, "attempt_history"), 0);
	ck_assert_str_eq(jstr_or(a, "outcome"), "timeout");
	ck_assert_msg(wait_count(&srv.aborted, 1, 5000), "the server never saw the timeout's close");
	cJSON_Delete(j);
	/* The request's payload.timeout_s: a network error (retryable). */
	j = run_job(&d, "{\"url\":\"%s/slow?ms=20000\",\"timeout_s\":0.3}", "\"max_attempts\":1",
		    "failed", 1);
	a = cJSON_GetArrayItem(jget(j, "attempt_history"), 0);
	ck_assert_str_eq(jstr_or(a, "outcome"), "failed");
	assert_error(j, ARGS("imed out"));
	ck_assert_msg(wait_count(&srv.aborted, 2, 5000), "the server never saw the request timeout's close");
	cJSON_Delete(j);
	stop(&d);
}
END_TEST

/* SIGTERM with a short grace: the running http job is put back (queued,
 * no attempt spent) and jobqd exits 0 promptly. */
START_TEST(http_shutdown_requeues_running_job)
{
	struct jobqd d;
	char *id;
	cJSON *j;
	int st;

	start(&d, ARGS("--shutdown-grace", "0.2"));
	id = submit(&d, "{\"url\":\"%s/slow?ms=20000\"}", NULL);
	ck_assert_msg(wait_count(&srv.hits[R_SLOW], 1, 10000), "the slow request never arrived");
	wait_running(&d, id);
	st = harness_stop_keep(&d);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
	ck_assert_msg(wait_count(&srv.aborted, 1, 5000), "the server never saw the close");
	harness_restart(&d, ARGS("--workers", "1"));
	j = harness_get_job(&d, id, NULL);
	ck_assert_msg(jlong_trunc(j, "attempts") <= 1, "attempts %ld", jlong_trunc(j, "attempts"));
	ck_assert_msg(!str_eq(jstr(j, "state"), "failed") && !str_eq(jstr(j, "state"), "canceled"),
		      "requeued job is %s (%s)", jstr_or(j, "state"), jstr_or(j, "error"));
	cJSON_Delete(j);
	{
		struct resp r;
		char path[128];

		snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
		harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
		harness_resp_free(&r);
	}
	free(id);
	stop(&d);
}
END_TEST

/* Many slow jobs with two workers: all are in flight at once. */
START_TEST(http_many_slow_jobs_run_at_once_on_few_workers)
{
	enum { N = 40 };
	struct jobqd d;
	char *ids[N];
	int i;

	start(&d, ARGS("--workers", "2"));
	for (i = 0; i < N; i++)
		ids[i] = submit(&d, "{\"url\":\"%s/slow?ms=1500\"}", NULL);
	ck_assert_msg(wait_count(&srv.max_in_flight, N, 15000),
		      "only %d of %d slow requests were in flight at once",
		      atomic_load(&srv.max_in_flight), N);
	for (i = 0; i < N; i++) {
		cJSON *j = wait_done(&d, ids[i]);

		ck_assert_msg(str_eq(jstr(j, "state"), "succeeded"), "job %d: %s %s", i,
			      jstr_or(j, "state"), jstr_or(j, "error"));
		cJSON_Delete(j);
		free(ids[i]);
	}
	stop(&d);
}
END_TEST

/* ---- responses ---- */

START_TEST(http_result_holds_json_text_or_base64_body)
{
	struct jobqd d;
	unsigned char bin[BIN_LEN];
	char want[BIN_LEN * 2];
	const cJSON *r, *h;
	cJSON *j;
	size_t n;
	int i;

	start(&d, NULL);
	j = run_job(&d, "{\"url\":\"%s/json\"}", NULL, "succeeded", 1);
	r = result_of(j);
	h = jget(r, "headers");
	ck_assert_int_eq(jlong_trunc(r, "status"), 200);
	ck_assert_str_eq(jstr_or(h, "content-type"), "application/json; charset=utf-8");
	ck_assert_str_eq(jstr_or(h, "x-multi"), "a, b");
	ck_assert_msg(cJSON_GetArraySize(jget(jget(r, "json"), "a")) == 2 &&
		      str_eq(jstr(jget(r, "json"), "s"), "x"), "json not parsed");
	ck_assert_msg(jget(r, "body") == NULL && jget(r, "body_base64") == NULL, "json and body both set");
	cJSON_Delete(j);

	j = run_job(&d, "{\"url\":\"%s/text\"}", NULL, "succeeded", 1);
	r = result_of(j);
	ck_assert_str_eq(jstr_or(r, "body"), "h\xc3\xa9llo w\xc3\xb6rld\n");
	ck_assert_msg(jget(r, "json") == NULL && jget(r, "body_base64") == NULL, "text marked otherwise");
	cJSON_Delete(j);

	j = run_job(&d, "{\"url\":\"%s/binary\"}", NULL, "succeeded", 1);
	r = result_of(j);
	for (i = 0; i < BIN_LEN; i++)
		bin[i] = (unsigned char)i;
	{
		static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		char *o = want;

		for (n = 0; n < BIN_LEN; n += 3) {
			unsigned v = (unsigned)bin[n] << 16 |
				     (n + 1 < BIN_LEN ? (unsigned)bin[n + 1] << 8 : 0) |
				     (n + 2 < BIN_LEN ? bin[n + 2] : 0);
			*o++ = abc[v >> 18 & 63];
			*o++ = abc[v >> 12 & 63];
			*o++ = n + 1 < BIN_LEN ? abc[v >> 6 & 63] : '=';
			*o++ = n + 2 < BIN_LEN ? abc[v & 63] : '=';
		}
		*o = '\0';
	}
	ck_assert_str_eq(jstr_or(r, "body"), want);
	ck_assert_msg(cJSON_IsTrue(jget(r, "body_base64")), "binary body not flagged base64");
	cJSON_Delete(j);
	stop(&d);
}
END_TEST

/* --http-max-response 1000: exactly 1000 bytes pass; 1001 fail for good,
 * whether the size is announced (Content-Length) or not (chunked). */
START_TEST(http_response_over_max_fails_without_retry)
{
	struct jobqd d;
	cJSON *j;

	start(&d, ARGS("--http-max-response", "1000"));
	j = run_job(&d, "{\"url\":\"%s/big?n=1000\"}", NULL, "succeeded", 1);
	ck_assert_int_eq((long)strlen(jstr_or(result_of(j), "body")), 1000);
	cJSON_Delete(j);
	j = run_job(&d, "{\"url\":\"%s/big?n=1001\"}", "\"max_attempts\":3", "failed", 1);
	ck_assert_str_eq(jstr_or(j, "error"), "response larger than 1000 bytes");
	cJSON_Delete(j);
	j = run_job(&d, "{\"url\":\"%s/big?n=200000&chunked=1\"}", "\"max_attempts\":3", "failed", 1);
	ck_assert_str_eq(jstr_or(j, "error"), "response larger than 1000 bytes");
	cJSON_Delete(j);
	/* HEAD gets no body, whatever Content-Length says. */
	j = run_job(&d, "{\"url\":\"%s/big?n=5000\",\"method\":\"HEAD\"}", NULL, "succeeded", 1);
	ck_assert_str_eq(jstr_or(jget(result_of(j), "headers"), "content-length"), "5000");
	ck_assert_str_eq(jstr_or(result_of(j), "body"), "");
	cJSON_Delete(j);
	stop(&d);
}
END_TEST

START_TEST(http_redirects_followed_only_when_asked)
{
	struct jobqd d;
	char want[128];
	cJSON *j;

	start(&d, NULL);
	j = run_job(&d, "{\"url\":\"%s/redirect\"}", NULL, "failed", 1);
	snprintf(want, sizeof want, "HTTP 302 from %s/redirect", srv.base);
	ck_assert_str_eq(jstr_or(j, "error"), want);
	cJSON_Delete(j);
	j = run_job(&d, "{\"url\":\"%s/redirect\",\"expect_status\":302}", NULL, "succeeded", 1);
	ck_assert_int_eq(jlong_trunc(result_of(j), "status"), 302);
	ck_assert_str_eq(jstr_or(jget(result_of(j), "headers"), "location"), "/json");
	cJSON_Delete(j);
	j = run_job(&d, "{\"url\":\"%s/redirect\",\"follow_redirects\":true}", NULL, "succeeded", 1);
	ck_assert_int_eq(jlong_trunc(result_of(j), "status"), 200);
	ck_assert_str_eq(jstr_or(jget(result_of(j), "json"), "s"), "x");
	ck_assert_msg(jget(jget(result_of(j), "headers"), "location") == NULL,
		      "headers of the redirect kept");
	cJSON_Delete(j);
	ck_assert_int_eq(atomic_load(&srv.hits[R_REDIRECT]), 3);
	ck_assert_int_eq(atomic_load(&srv.hits[R_JSON]), 1);
	stop(&d);
}
END_TEST

/* What the server received, from /echo. */
static const cJSON *echoed(const cJSON *j)
{
	const cJSON *e = jget(result_of(j), "json");

	ck_assert_msg(cJSON_IsObject(e), "echo did not answer JSON");
	return e;
}

START_TEST(http_request_method_headers_and_body_reach_the_server)
{
	struct jobqd d;
	const cJSON *e, *h;
	cJSON *j, *sent;

	start(&d, NULL);
	j = run_job(&d, "{\"url\":\"%s/echo\",\"method\":\"POST\",\"headers\":{\"X-Test\":\"yes\"},"
		    "\"json\":{\"k\":[1,2],\"s\":\"\xc3\xa9\"}}", NULL, "succeeded", 1);
	e = echoed(j);
	h = jget(e, "headers");
	ck_assert_str_eq(jstr_or(e, "method"), "POST");
	ck_assert_str_eq(jstr_or(h, "X-Test"), "yes");
	ck_assert_str_eq(jstr_or(h, "Content-Type"), "application/json");
	ck_assert_msg(jget(h, "Expect") == NULL && jget(h, "Accept-Encoding") == NULL,
		      "unexpected Expect or Accept-Encoding header");
	sent = cJSON_Parse(jstr_or(e, "body"));
	ck_assert_msg(sent != NULL && cJSON_GetArraySize(jget(sent, "k")) == 2 &&
		      str_eq(jstr(sent, "s"), "\xc3\xa9"), "json body: %s", jstr_or(e, "body"));
	cJSON_Delete(sent);
	cJSON_Delete(j);

	j = run_job(&d, "{\"url\":\"%s/echo\",\"method\":\"put\",\"body\":\"raw text\","
		    "\"headers\":{\"Content-Type\":\"text/x-mine\",\"X-Empty\":\"\"}}", NULL, "succeeded", 1);
	e = echoed(j);
	h = jget(e, "headers");
	ck_assert_str_eq(jstr_or(e, "method"), "PUT");
	ck_assert_str_eq(jstr_or(e, "body"), "raw text");
	ck_assert_str_eq(jstr_or(h, "Content-Type"), "text/x-mine");
	ck_assert_str_eq(jstr_or(h, "X-Empty"), "");
	cJSON_Delete(j);

	j = run_job(&d, "{\"url\":\"%s/echo\",\"method\":\"PATCH\",\"body\":\"p\"}", NULL, "succeeded", 1);
	e = echoed(j);
	ck_assert_str_eq(jstr_or(e, "method"), "PATCH");
	ck_assert_str_eq(jstr_or(e, "body"), "p");
	ck_assert_msg(jget(jget(e, "headers"), "Content-Type") == NULL,
		      "a made-up Content-Type was sent with a plain body");
	cJSON_Delete(j);

	j = run_job(&d, "{\"url\":\"%s/echo\",\"method\":\"DELETE\"}", NULL, "succeeded", 1);
	ck_assert_str_eq(jstr_or(echoed(j), "method"), "DELETE");
	cJSON_Delete(j);
	j = run_job(&d, "{\"url\":\"%s/echo\"}", NULL, "succeeded", 1);
	ck_assert_str_eq(jstr_or(echoed(j), "method"), "GET");
	cJSON_Delete(j);

	j = run_job(&d, "{\"url\":\"%s/echo\",\"method\":\"HEAD\"}", NULL, "succeeded", 1);
	ck_assert_int_eq(jlong_trunc(result_of(j), "status"), 200);
	ck_assert_str_eq(jstr_or(result_of(j), "body"), "");
	cJSON_Delete(j);
	ck_assert_int_eq(atomic_load(&srv.hits[R_ECHO]), 6);
	stop(&d);
}
END_TEST

/* ---- SSRF rules ---- */

START_TEST(http_deny_rule_refuses_without_retry_and_names_the_rule)
{
	struct jobqd d;
	cJSON *j;

	start(&d, ARGS("--http-deny", "127.0.0.0/8"));
	j = run_job(&d, "{\"url\":\"%s/json\"}", "\"max_attempts\":3", "failed", 1);
	ck_assert_str_eq(jstr_or(j, "error"), "refused: 127.0.0.1 is in denied range 127.0.0.0/8");
	cJSON_Delete(j);
	ck_assert_int_eq(atomic_load(&srv.hits[R_JSON]), 0);
	stop(&d);

	/* A host pattern refuses the name before it is resolved. */
	start(&d, ARGS("--http-deny", "localhost", "--http-deny", "*.example.internal"));
	{
		char payload[128];

		snprintf(payload, sizeof payload, "{\"url\":\"http://localhost:%d/json\"}", srv.port);
		j = run_job(&d, payload, "\"max_attempts\":3", "failed", 1);
		ck_assert_str_eq(jstr_or(j, "error"), "refused: host localhost matches denied pattern localhost");
		cJSON_Delete(j);
	}
	j = run_job(&d, "{\"url\":\"http://api.example.internal/\"}", "\"max_attempts\":3", "failed", 1);
	ck_assert_str_eq(jstr_or(j, "error"),
			 "refused: host api.example.internal matches denied pattern *.example.internal");
	cJSON_Delete(j);
	ck_assert_int_eq(atomic_load(&srv.hits[R_JSON]), 0);
	stop(&d);
}
END_TEST

/* 0.0.0.0/8 and :: connect to this host: a loopback deny refuses them,
 * however the host is spelled, before any packet is sent. */
START_TEST(http_unspecified_address_counts_as_loopback)
{
	static const struct { const char *host; const char *error; } cases[] = {
		{"0", "refused: 0.0.0.0 is in denied range 127.0.0.0/8"},
		{"0.0.0.0", "refused: 0.0.0.0 is in denied range 127.0.0.0/8"},
		{"[::]", "refused: :: is in denied range 127.0.0.0/8"},
		{"[::ffff:0.0.0.0]", "refused: ::ffff:0.0.0.0 is in denied range 127.0.0.0/8"},
	};
	struct jobqd d;
	size_t i;

	start(&d, ARGS("--http-deny", "127.0.0.0/8"));
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char payload[128];
		cJSON *j;

		snprintf(payload, sizeof payload, "{\"url\":\"http://%s:%d/json\"}", cases[i].host, srv.port);
		j = run_job(&d, payload, "\"max_attempts\":3", "failed", 1);
		ck_assert_str_eq(jstr_or(j, "error"), cases[i].error);
		cJSON_Delete(j);
	}
	ck_assert_int_eq(atomic_load(&srv.hits[R_JSON]), 0);
	stop(&d);
}
END_TEST

START_TEST(http_allow_rule_overrides_a_deny)
{
	struct jobqd d;
	cJSON *j;

	start(&d, ARGS("--http-deny", "127.0.0.0/8", "--http-allow", "127.0.0.1/32"));
	j = run_job(&d, "{\"url\":\"%s/json\"}", NULL, "succeeded", 1);
	cJSON_Delete(j);
	stop(&d);
	/* An allowed name opens a denied range for that name only. */
	start(&d, ARGS("--http-deny", "127.0.0.0/8", "--http-allow", "localhost"));
	{
		char payload[128];

		snprintf(payload, sizeof payload, "{\"url\":\"http://localhost:%d/json\"}", srv.port);
		j = run_job(&d, payload, NULL, "succeeded", 1);
		cJSON_Delete(j);
	}
	j = run_job(&d, "{\"url\":\"%s/json\"}", NULL, "failed", 1);
	ck_assert_str_eq(jstr_or(j, "error"), "refused: 127.0.0.1 is in denied range 127.0.0.0/8");
	cJSON_Delete(j);
	ck_assert_int_eq(atomic_load(&srv.hits[R_JSON]), 1);
	stop(&d);
}
END_TEST

/* The built-in denies refuse the metadata addresses before connecting:
 * the refusal, not a connect error, is what the job reports. (The
 * addresses are never contacted: an allow test uses 127.0.0.0/8 above.) */
START_TEST(http_metadata_addresses_refused_by_default)
{
	static const struct { const char *url; const char *error; } cases[] = {
		{"http://169.254.169.254/latest/meta-data/",
		 "refused: 169.254.169.254 is in denied range 169.254.0.0/16"},
		{"http://[fd00:ec2::254]/latest/meta-data/",
		 "refused: fd00:ec2::254 is in denied range fd00:ec2::254/128"},
		{"http://100.100.100.200/latest/meta-data/",
		 "refused: 100.100.100.200 is in denied range 100.100.100.200/32"},
		{"http://[::ffff:169.254.169.254]/",
		 "refused: ::ffff:169.254.169.254 is in denied range 169.254.0.0/16"},
		{"http://metadata.google.internal/computeMetadata/v1/",
		 "refused: host metadata.google.internal matches denied pattern metadata.google.internal"},
	};
	struct jobqd d;
	char payload[256];
	size_t i;

	start(&d, NULL);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *j;

		snprintf(payload, sizeof payload, "{\"url\":\"%s\"}", cases[i].url);
		j = run_job(&d, payload, "\"max_attempts\":3", "failed", 1);
		ck_assert_str_eq(jstr_or(j, "error"), cases[i].error);
		cJSON_Delete(j);
	}
	/* The same address reached through a redirect is refused at the hop. */
	{
		cJSON *j = run_job(&d, "{\"url\":\"%s/hop\",\"follow_redirects\":true}", "\"max_attempts\":3",
				   "failed", 1);

		ck_assert_str_eq(jstr_or(j, "error"), cases[0].error);
		ck_assert_int_eq(atomic_load(&srv.hits[R_HOP]), 1);
		cJSON_Delete(j);
	}
	stop(&d);
}
END_TEST

/* ---- validation at submit ---- */

START_TEST(http_invalid_payloads_get_422_naming_the_field)
{
	static const struct { const char *payload; const char *field; } cases[] = {
		{"{\"url\":\"file:///etc/passwd\"}", "payload.url"},
		{"{\"url\":\"ftp://127.0.0.1/x\"}", "payload.url"},
		{"{\"url\":\"gopher://127.0.0.1/x\"}", "payload.url"},
		{"{\"url\":\"not a url\"}", "payload.url"},
		{"{\"url\":42}", "payload.url"},
		{"{\"method\":\"GET\"}", "payload.url"},
		{"\"http://127.0.0.1/\"", "payload"},
		{"{\"url\":\"http://127.0.0.1/\",\"method\":\"TRACE\"}", "payload.method"},
		{"{\"url\":\"http://127.0.0.1/\",\"headers\":{\"X\":1}}", "payload.headers"},
		{"{\"url\":\"http://127.0.0.1/\",\"headers\":{\"X\":\"a\\r\\nB: c\"}}", "payload.headers"},
		{"{\"url\":\"http://127.0.0.1/\",\"headers\":{\"Bad Name\":\"a\"}}", "payload.headers"},
		{"{\"url\":\"http://127.0.0.1/\",\"headers\":[\"X: a\"]}", "payload.headers"},
		{"{\"url\":\"http://127.0.0.1/\",\"body\":1}", "payload.body"},
		{"{\"url\":\"http://127.0.0.1/\",\"body\":\"a\",\"json\":{}}", "payload.json"},
		{"{\"url\":\"http://127.0.0.1/\",\"method\":\"HEAD\",\"body\":\"a\"}", "payload.body"},
		{"{\"url\":\"http://127.0.0.1/\",\"timeout_s\":0}", "payload.timeout_s"},
		{"{\"url\":\"http://127.0.0.1/\",\"timeout_s\":3601}", "payload.timeout_s"},
		{"{\"url\":\"http://127.0.0.1/\",\"timeout_s\":\"5\"}", "payload.timeout_s"},
		{"{\"url\":\"http://127.0.0.1/\",\"expect_status\":99}", "payload.expect_status"},
		{"{\"url\":\"http://127.0.0.1/\",\"expect_status\":600}", "payload.expect_status"},
		{"{\"url\":\"http://127.0.0.1/\",\"expect_status\":200.5}", "payload.expect_status"},
		{"{\"url\":\"http://127.0.0.1/\",\"expect_status\":[]}", "payload.expect_status"},
		{"{\"url\":\"http://127.0.0.1/\",\"expect_status\":[200,\"201\"]}", "payload.expect_status"},
		{"{\"url\":\"http://127.0.0.1/\",\"follow_redirects\":\"yes\"}", "payload.follow_redirects"},
		{"{\"url\":\"http://127.0.0.1/\",\"timeout\":5}", "payload.timeout"},
	};
	struct jobqd d;
	char body[512];
	size_t i;

	harness_start(&d, NULL);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct resp r;

		snprintf(body, sizeof body, "{\"type\":\"http\",\"payload\":%s}", cases[i].payload);
		harness_request(&d, "POST", "/v1/jobs", "application/json", body, NULL, &r);
		assert_problem(&r, 422, "invalid_payload", cases[i].field);
		harness_resp_free(&r);
	}
	{
		struct resp r;

		harness_request(&d, "POST", "/v1/jobs", "application/json", "{\"type\":\"http\"}", NULL, &r);
		assert_problem(&r, 422, "invalid_payload", "payload");
		harness_resp_free(&r);
		/* Boundaries that pass. */
		harness_request(&d, "POST", "/v1/jobs", "application/json",
				"{\"type\":\"http\",\"delay_s\":3600,\"payload\":{\"url\":\"HTTPS://127.0.0.1:1/\","
				"\"method\":\"options\",\"timeout_s\":3600,\"expect_status\":[100,599],"
				"\"json\":null,\"follow_redirects\":false,\"headers\":{}}}", NULL, &r);
		ck_assert_msg(r.status == 201, "valid payload refused: %ld %.400s", r.status, r.body);
		harness_resp_free(&r);
	}
	{
		int st = harness_stop(&d);

		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0x%x", st);
	}
}
END_TEST

START_TEST(http_bad_rule_flag_exits_2_with_one_line)
{
	static const char *const bad[][2] = {
		{"--http-deny", "10.0.0.0/33"},
		{"--http-allow", "not a rule"},
		{"--http-deny", "*."},
		{"--http-deny", "1.2.3.4/x"},
	};
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct cli_result res;
		const char *nl;

		harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", "jobq.db", bad[i][0], bad[i][1]),
				NULL, &res);
		ck_assert_msg(res.status == 2, "%s %s: exit %d, stderr %s", bad[i][0], bad[i][1],
			      res.status, res.err);
		nl = strchr(res.err, '\n');
		ck_assert_msg(contains(res.err, bad[i][1]) && nl != NULL && nl[1] == '\0',
			      "%s %s: want one line naming the rule, got: %s", bad[i][0], bad[i][1], res.err);
		harness_cli_result_free(&res);
	}
}
END_TEST

/* ---- suite ---- */

static Suite *http_suite(void)
{
	Suite *s = suite_create("jobq_api_http");
	TCase *tc;

	tc = tcase(s, "outcomes");
	tcase_add_test(tc, http_503_twice_then_200_succeeds_on_attempt_3);
	tcase_add_test(tc, http_429_retry_after_delays_the_next_attempt);
	tcase_add_test(tc, http_404_fails_after_one_attempt);
	tcase_add_test(tc, http_network_error_is_retried_with_curls_message);

	tc = tcase(s, "stopping");
	tcase_add_test(tc, http_cancel_running_job_closes_the_connection_at_once);
	tcase_add_test(tc, http_job_timeout_aborts_the_transfer);
	tcase_add_test(tc, http_shutdown_requeues_running_job);
	tcase_add_test(tc, http_many_slow_jobs_run_at_once_on_few_workers);

	tc = tcase(s, "responses");
	tcase_add_test(tc, http_result_holds_json_text_or_base64_body);
	tcase_add_test(tc, http_response_over_max_fails_without_retry);
	tcase_add_test(tc, http_redirects_followed_only_when_asked);
	tcase_add_test(tc, http_request_method_headers_and_body_reach_the_server);

	tc = tcase(s, "ssrf");
	tcase_add_test(tc, http_deny_rule_refuses_without_retry_and_names_the_rule);
	tcase_add_test(tc, http_unspecified_address_counts_as_loopback);
	tcase_add_test(tc, http_allow_rule_overrides_a_deny);
	tcase_add_test(tc, http_metadata_addresses_refused_by_default);

	tc = tcase(s, "validation");
	tcase_add_test(tc, http_invalid_payloads_get_422_naming_the_field);
	tcase_add_test(tc, http_bad_rule_flag_exits_2_with_one_line);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return harness_run(http_suite());
}
