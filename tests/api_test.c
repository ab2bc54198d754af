/* Black-box API tests for jobqd, against the contract in the API spec
 * (issue 2). Each test starts its own jobqd on port 0 with a fresh temp DB
 * (tests/harness.c), checks exact status codes and JSON fields, and stops
 * it with SIGTERM expecting exit 0 and a log free of sanitizer reports. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define UNKNOWN_ID "01890000-0000-7000-8000-000000000000"
#define TEST_TIMEOUT_S 90
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)

/* ---- small JSON and format helpers ---- */

static int is_state(const char *s)
{
	static const char *const states[] = { "queued", "running", "succeeded",
					      "failed", "canceled", NULL };
	size_t i;

	for (i = 0; s != NULL && states[i] != NULL; i++)
		if (strcmp(s, states[i]) == 0)
			return 1;
	return 0;
}

/* ---- assertions ---- */

#define assert_status(r, st)                                                   \
	ck_assert_msg((r)->status == (long)(st),                               \
		      "status %ld, want %ld %s; body: %.800s", (r)->status,    \
		      (long)(st), (r)->error, (r)->body)

/* Every key of the job object is present with the right JSON type. */
static void assert_job_shape(const cJSON *j, const char *body)
{
	static const char *const keys[] = { "id", "type", "queue", "priority",
		"state", "payload", "result", "error", "progress", "attempts",
		"created_at", "started_at", "finished_at", NULL };
	const cJSON *v;
	const char *s;
	long n;
	size_t i;

	ck_assert_msg(cJSON_IsObject(j), "job is not a JSON object: %.800s", body);
	for (i = 0; keys[i] != NULL; i++)
		ck_assert_msg(jget(j, keys[i]) != NULL, "job lacks key \"%s\": %.800s",
			      keys[i], body);
	ck_assert_msg(is_uuidv7(jstr(j, "id")), "id not a lowercase UUIDv7: %.800s",
		      body);
	ck_assert_msg(jstr(j, "type") != NULL, "type not a string: %.800s", body);
	ck_assert_msg(jstr(j, "queue") != NULL, "queue not a string: %.800s", body);
	ck_assert_msg(jint(j, "priority", &n), "priority not an integer: %.800s",
		      body);
	ck_assert_msg(is_state(jstr(j, "state")), "bad state: %.800s", body);
	ck_assert_msg(jint(j, "attempts", &n) && n >= 0,
		      "attempts not an integer >= 0: %.800s", body);
	ck_assert_msg(jnull(j, "error") || jstr(j, "error") != NULL,
		      "error neither null nor string: %.800s", body);
	v = jget(j, "progress");
	ck_assert_msg(cJSON_IsNull(v) || cJSON_IsObject(v),
		      "progress neither null nor object: %.800s", body);
	ck_assert_msg(is_rfc3339_ms(jstr(j, "created_at")),
		      "created_at not RFC 3339 with ms: %.800s", body);
	s = jstr(j, "started_at");
	ck_assert_msg(jnull(j, "started_at") || is_rfc3339_ms(s),
		      "started_at neither null nor RFC 3339: %.800s", body);
	s = jstr(j, "finished_at");
	ck_assert_msg(jnull(j, "finished_at") || is_rfc3339_ms(s),
		      "finished_at neither null nor RFC 3339: %.800s", body);
}

/* Ends a test: SIGTERM must give exit code 0 (graceful stop). */
static void stop_ok(struct jobqd *d)
{
	int st = harness_stop_keep(d);
	char *log;

	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		log = harness_read_file(d->log);
		fprintf(stderr, "---- jobqd log ----\n%s\n----\n", log);
		ck_abort_msg("jobqd did not exit 0 after SIGTERM (%s %d); log tail:\n%s",
			     WIFEXITED(st) ? "exit" : "signal",
			     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
			     strlen(log) > 3000 ? log + strlen(log) - 3000 : log);
	}
	harness_cleanup(d);
}

/* Every job the harness reads has the job shape (its JSON in messages). */
static void check_job(const cJSON *j, const char *text, int from_get)
{
	(void)from_get;
	assert_job_shape(j, text);
}

/* POSTs a job and returns its id (malloc'd); asserts 201 and a queued job. */
#define submit(d, body) harness_submit_state((d), (body), "queued")
#define get_job harness_get_job
#define wait_terminal(d, id) harness_wait_terminal((d), (id), NULL)
#define wait_state(d, id, state) harness_wait_state((d), (id), (state), NULL)

static void cancel(const struct jobqd *d, const char *id, struct resp *r)
{
	char path[256];

	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
	harness_request(d, "POST", path, NULL, NULL, NULL, r);
}

static cJSON *cancel_ok(const struct jobqd *d, const char *id)
{
	struct resp r;
	cJSON *j;

	cancel(d, id, &r);
	assert_status(&r, 200);
	assert_job_shape(r.json, r.body);
	ck_assert_msg(strcmp(jstr(r.json, "state"), "canceled") == 0,
		      "cancel reply not canceled: %.800s", r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

/* GET a list path; asserts 200 and the list shape. */
static cJSON *list(const struct jobqd *d, const char *path)
{
	struct resp r;
	const cJSON *jobs, *nc, *it;
	cJSON *j;

	harness_request(d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(cJSON_IsObject(r.json), "list not an object: %.800s", r.body);
	jobs = jget(r.json, "jobs");
	nc = jget(r.json, "next_cursor");
	ck_assert_msg(cJSON_IsArray(jobs), "jobs not an array: %.800s", r.body);
	ck_assert_msg(cJSON_IsNull(nc) || cJSON_IsString(nc),
		      "next_cursor neither null nor string: %.800s", r.body);
	cJSON_ArrayForEach(it, jobs)
		assert_job_shape(it, r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

/* Asserts the list's ids are exactly ids[0..n-1] in that order. */
static void assert_list_ids(const cJSON *l, char *const *ids, int n,
			    const char *what)
{
	const cJSON *jobs = jget(l, "jobs");
	int i;

	ck_assert_msg(cJSON_GetArraySize(jobs) == n, "%s: %d jobs, want %d", what,
		      cJSON_GetArraySize(jobs), n);
	for (i = 0; i < n; i++)
		ck_assert_msg(strcmp(jstr(cJSON_GetArrayItem(jobs, i), "id"),
				     ids[i]) == 0,
			      "%s: job %d is %s, want %s", what, i,
			      jstr(cJSON_GetArrayItem(jobs, i), "id"), ids[i]);
}

/* ---- submit and get ---- */

START_TEST(jobs_submit_echo_returns_201_location_and_queued_job)
{
	static const char payload[] = "{\"a\":1,\"b\":[true,null,\"x\"]}";
	struct jobqd d;
	struct resp r;
	char hdr[256], want[128], *id, body[256];
	const char *created;
	long n;
	size_t len;
	cJSON *j;

	harness_start(&d, NULL);
	snprintf(body, sizeof body, "{\"type\":\"echo\",\"payload\":%s}", payload);
	harness_request(&d, "POST", "/v1/jobs", "application/json", body, NULL,
			&r);
	assert_status(&r, 201);
	ck_assert_msg(harness_header(&r, "Content-Type", hdr, sizeof hdr) &&
		      strncmp(hdr, "application/json", 16) == 0,
		      "Content-Type '%s'", hdr);
	assert_job_shape(r.json, r.body);
	id = strdup(jstr(r.json, "id"));
	snprintf(want, sizeof want, "/v1/jobs/%s", id);
	ck_assert_msg(harness_header(&r, "Location", hdr, sizeof hdr) &&
		      strcmp(hdr, want) == 0, "Location '%s', want '%s'", hdr, want);
	ck_assert_str_eq(jstr(r.json, "state"), "queued");
	ck_assert_str_eq(jstr(r.json, "type"), "echo");
	ck_assert_str_eq(jstr(r.json, "queue"), "default");
	ck_assert_msg(jint(r.json, "priority", &n) && n == 0, "priority: %s", r.body);
	ck_assert_msg(jint(r.json, "attempts", &n) && n == 0, "attempts: %s", r.body);
	ck_assert_msg(json_equal_text(jget(r.json, "payload"), payload),
		      "payload not echoed: %s", r.body);
	ck_assert_msg(jnull(r.json, "result") && jnull(r.json, "error") &&
		      jnull(r.json, "progress") && jnull(r.json, "started_at") &&
		      jnull(r.json, "finished_at"),
		      "fresh job has non-null result/error/progress/started/finished: %s",
		      r.body);
	/* compact JSON: no whitespace (a final newline is tolerated) */
	len = strlen(r.body);
	if (len > 0 && r.body[len - 1] == '\n')
		len--;
	ck_assert_msg(strcspn(r.body, " \t\n\r") >= len, "JSON not compact: %s",
		      r.body);
	created = jstr(r.json, "created_at");
	snprintf(want, sizeof want, "%s", created);
	harness_resp_free(&r);

	j = get_job(&d, id, "wait=5");
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_msg(json_equal_text(jget(j, "result"), payload),
		      "result is not the payload");
	ck_assert_msg(json_equal_text(jget(j, "payload"), payload),
		      "payload changed");
	ck_assert_msg(jint(j, "attempts", &n) && n == 1, "attempts %ld, want 1", n);
	ck_assert_msg(jnull(j, "error"), "error not null on success");
	ck_assert_str_eq(jstr(j, "created_at"), want);
	ck_assert_msg(is_rfc3339_ms(jstr(j, "started_at")) &&
		      is_rfc3339_ms(jstr(j, "finished_at")),
		      "started_at/finished_at not set");
	ck_assert_msg(ts_ms(jstr(j, "created_at")) <= ts_ms(jstr(j, "started_at")) &&
		      ts_ms(jstr(j, "started_at")) <= ts_ms(jstr(j, "finished_at")),
		      "created_at <= started_at <= finished_at violated: %s %s %s",
		      jstr(j, "created_at"), jstr(j, "started_at"),
		      jstr(j, "finished_at"));
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_submit_accepts_charset_and_boundary_values)
{
	static const char q64[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-";
	struct jobqd d;
	struct resp r;
	char body[512];
	long n;
	char *id;
	cJSON *j;

	ck_assert_uint_eq(strlen(q64), 66);
	harness_start(&d, NULL);
	/* 64 characters of the allowed set, top priority, payload omitted */
	snprintf(body, sizeof body,
		 "{\"type\":\"echo\",\"queue\":\"%.64s\",\"priority\":1000000}", q64 + 2);
	harness_request(&d, "POST", "/v1/jobs", "application/json; charset=utf-8",
			body, NULL, &r);
	assert_status(&r, 201);
	assert_job_shape(r.json, r.body);
	ck_assert_str_eq(jstr(r.json, "queue"), q64 + 2);
	ck_assert_msg(jint(r.json, "priority", &n) && n == 1000000, "priority: %s",
		      r.body);
	ck_assert_msg(jnull(r.json, "payload"), "omitted payload not null: %s",
		      r.body);
	harness_resp_free(&r);

	id = submit(&d, "{\"type\":\"echo\",\"queue\":\"a\",\"priority\":-1000000,"
			"\"payload\":\"h\xc3\xa9llo \xe2\x9c\x93\"}");
	j = wait_terminal(&d, id);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_str_eq(jstr(j, "queue"), "a");
	ck_assert_msg(jint(j, "priority", &n) && n == -1000000, "priority %ld", n);
	ck_assert_str_eq(jstr(j, "result"), "h\xc3\xa9llo \xe2\x9c\x93");
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_get_with_prefer_wait_header_applies_preference)
{
	struct jobqd d;
	struct resp r;
	char path[128], hdr[128];
	char *id;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.3}}");
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	harness_request(&d, "GET", path, NULL, NULL, "Prefer: wait=5", &r);
	assert_status(&r, 200);
	assert_job_shape(r.json, r.body);
	ck_assert_msg(strcmp(jstr(r.json, "state"), "succeeded") == 0,
		      "Prefer: wait=5 did not wait for the 0.3 s job: %s", r.body);
	ck_assert_msg(harness_header(&r, "Preference-Applied", hdr, sizeof hdr),
		      "no Preference-Applied header; headers:\n%s", r.headers);
	ck_assert_str_eq(hdr, "wait=5");
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_wait_wakes_when_short_sleep_completes)
{
	struct jobqd d;
	struct resp r;
	char path[128];
	char *id;
	long n;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.3}}");
	snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", id);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_job_shape(r.json, r.body);
	ck_assert_msg(strcmp(jstr(r.json, "state"), "succeeded") == 0,
		      "wait=30 answered before the end: %s", r.body);
	/* contract: answers as soon as the job is terminal, not after 30 s */
	ck_assert_msg(r.ms < 20000.0, "wait=30 took %.0f ms for a 0.3 s job",
		      r.ms);
	ck_assert_msg(json_equal_text(jget(r.json, "result"), "{\"slept\":0.3}"),
		      "sleep result: %s", r.body);
	ck_assert_msg(jint(r.json, "attempts", &n) && n == 1, "attempts: %s", r.body);
	ck_assert_msg(is_rfc3339_ms(jstr(r.json, "finished_at")),
		      "finished_at not set: %s", r.body);
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

/* One waiter of many: what libcurl received for it. */
struct waiter_buf {
	char body[8192];
	size_t body_len;
	char etag[80];
	char request_id[80];
	int applied;            /* a Preference-Applied header came back */
};

static size_t waiter_body(char *p, size_t size, size_t n, void *arg)
{
	struct waiter_buf *w = arg;
	size_t len = size * n;
	if (w->body_len + len < sizeof w->body) {
		memcpy(w->body + w->body_len, p, len);
		w->body_len += len;
		w->body[w->body_len] = '\0';
	}
	return len;
}

/* Copies the value of "Name: value" into out when line is that header. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);
	if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return;
	line += n + 1, len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t'))
		line++, len--;
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' || line[len - 1] == ' '))
		len--;
	snprintf(out, cap, "%.*s", (int)len, line);
}

static size_t waiter_header(char *p, size_t size, size_t n, void *arg)
{
	struct waiter_buf *w = arg;
	char applied[80] = "";
	header_value(p, size * n, "ETag", w->etag, sizeof w->etag);
	header_value(p, size * n, "X-Request-Id", w->request_id, sizeof w->request_id);
	header_value(p, size * n, "Preference-Applied", applied, sizeof applied);
	w->applied |= applied[0] != '\0';
	return size * n;
}

#define NWAITERS 48

/* Every long-poll woken by one job's end sends the same bytes and the same
 * ETag (one reply made and hashed for the burst), while what belongs to each
 * request stays its own: the request id and Preference-Applied. */
START_TEST(jobs_wait_many_waiters_get_identical_body_and_etag)
{
	struct jobqd d;
	struct resp r;
	char path[160], url[256], inm[128];
	static struct waiter_buf w[NWAITERS];
	CURL *e[NWAITERS];
	struct curl_slist *prefer = curl_slist_append(NULL, "Prefer: wait=30");
	CURLM *m = curl_multi_init();
	int running = 1;
	char *id;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":1}}");
	for (int i = 0; i < NWAITERS; i++) {
		memset(&w[i], 0, sizeof w[i]);
		/* half ask with ?wait, half with Prefer: wait */
		snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/jobs/%s%s", d.port, id, i % 2 ? "" : "?wait=30");
		e[i] = curl_easy_init();
		curl_easy_setopt(e[i], CURLOPT_URL, url);
		curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, waiter_body);
		curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &w[i]);
		curl_easy_setopt(e[i], CURLOPT_HEADERFUNCTION, waiter_header);
		curl_easy_setopt(e[i], CURLOPT_HEADERDATA, &w[i]);
		curl_easy_setopt(e[i], CURLOPT_TIMEOUT, 60L);
		if (i % 2)
			curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, prefer);
		curl_multi_add_handle(m, e[i]);
	}
	for (int rounds = 0; running && rounds < 60000; rounds++) {
		ck_assert_int_eq(curl_multi_perform(m, &running), CURLM_OK);
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	ck_assert_msg(!running, "the waiters were not all answered");
	for (int i = 0; i < NWAITERS; i++) {
		long status = 0;
		curl_easy_getinfo(e[i], CURLINFO_RESPONSE_CODE, &status);
		ck_assert_msg(status == 200, "waiter %d: status %ld", i, status);
		ck_assert_msg(strstr(w[i].body, "\"state\":\"succeeded\"") != NULL, "waiter %d: %s", i, w[i].body);
		ck_assert_msg(strcmp(w[i].body, w[0].body) == 0, "waiter %d got %s, waiter 0 %s", i, w[i].body, w[0].body);
		ck_assert_msg(strlen(w[i].etag) == 34 && strcmp(w[i].etag, w[0].etag) == 0,
			      "waiter %d ETag '%s', waiter 0 '%s'", i, w[i].etag, w[0].etag);
		ck_assert_msg(w[i].applied == (i % 2), "waiter %d: Preference-Applied %s", i,
			      w[i].applied ? "sent" : "missing");
		ck_assert_msg(is_uuidv7(w[i].request_id), "waiter %d: X-Request-Id '%s'", i, w[i].request_id);
		for (int k = 0; k < i; k++)
			ck_assert_msg(strcmp(w[i].request_id, w[k].request_id) != 0,
				      "waiters %d and %d share request id %s", k, i, w[i].request_id);
		curl_multi_remove_handle(m, e[i]);
		curl_easy_cleanup(e[i]);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(prefer);
	/* A plain read renders the job anew: the same bytes, the same ETag,
	 * and that ETag revalidates. */
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(r.body_len == w[0].body_len && memcmp(r.body, w[0].body, r.body_len) == 0,
		      "a plain GET answered %s, the waiters %s", r.body, w[0].body);
	ck_assert(harness_header(&r, "ETag", inm, sizeof inm) && strcmp(inm, w[0].etag) == 0);
	harness_resp_free(&r);
	snprintf(inm, sizeof inm, "If-None-Match: %s", w[0].etag);
	harness_request(&d, "GET", path, NULL, NULL, inm, &r);
	assert_status(&r, 304);
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_wait_expires_with_running_state_and_progress)
{
	struct jobqd d;
	struct resp r;
	char path[128];
	char *id;
	const cJSON *prog, *pct;
	const char *msg;
	double slept = -1, total = -1;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	snprintf(path, sizeof path, "/v1/jobs/%s?wait=1", id);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_job_shape(r.json, r.body);
	ck_assert_msg(strcmp(jstr(r.json, "state"), "running") == 0,
		      "state after wait=1 on a 30 s sleep: %s", r.body);
	/* lower bound only: it must not answer before the wait ran out */
	ck_assert_msg(r.ms >= 900.0, "wait=1 answered a running job after %.0f ms",
		      r.ms);
	prog = jget(r.json, "progress");
	ck_assert_msg(cJSON_IsObject(prog), "progress not an object: %s", r.body);
	pct = jget(prog, "percent");
	ck_assert_msg(cJSON_IsNumber(pct) && pct->valuedouble >= 0.0 &&
		      pct->valuedouble <= 100.0, "percent not in 0..100: %s", r.body);
	msg = jstr(prog, "message");
	ck_assert_msg(msg != NULL && sscanf(msg, "slept %lfs of %lfs", &slept,
					    &total) == 2 &&
		      total == 30.0 && slept >= 0.0 && slept <= 30.0,
		      "progress message not \"slept X.Xs of 30.0s\": %s", r.body);
	harness_resp_free(&r);
	j = cancel_ok(&d, id);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_get_wait_accepts_zero_fraction_and_clamps_large)
{
	static const char *const queries[] = { "wait=0", "wait=0.5", "wait=60",
					       "wait=1000", NULL };
	struct jobqd d;
	char *id;
	cJSON *j;
	int i;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"echo\",\"payload\":7}");
	cJSON_Delete(wait_terminal(&d, id));
	for (i = 0; queries[i] != NULL; i++) {
		j = get_job(&d, id, queries[i]);
		ck_assert_msg(strcmp(jstr(j, "state"), "succeeded") == 0,
			      "%s: state %s", queries[i], jstr(j, "state"));
		cJSON_Delete(j);
	}
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- fail ---- */

START_TEST(jobs_fail_job_reports_its_message)
{
	struct jobqd d;
	char *id;
	long n;
	cJSON *j;

	harness_start(&d, NULL);
	/* One attempt: retries are the semantics suite's business. */
	id = submit(&d, "{\"type\":\"fail\",\"payload\":{\"message\":\"boom 42\"},\"max_attempts\":1}");
	j = wait_terminal(&d, id);
	ck_assert_str_eq(jstr(j, "state"), "failed");
	ck_assert_msg(jstr(j, "error") != NULL, "error not a string");
	ck_assert_str_eq(jstr(j, "error"), "boom 42");
	ck_assert_msg(jnull(j, "result"), "result not null on failure");
	ck_assert_msg(jint(j, "attempts", &n) && n == 1, "attempts %ld", n);
	ck_assert_msg(is_rfc3339_ms(jstr(j, "finished_at")), "finished_at not set");
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_fail_job_default_message_is_failed)
{
	static const char *const bodies[] = {
		"{\"type\":\"fail\",\"max_attempts\":1}",
		"{\"type\":\"fail\",\"payload\":{},\"max_attempts\":1}",
		NULL,
	};
	struct jobqd d;
	char *id;
	cJSON *j;
	int i;

	harness_start(&d, NULL);
	for (i = 0; bodies[i] != NULL; i++) {
		id = submit(&d, bodies[i]);
		j = wait_terminal(&d, id);
		ck_assert_msg(strcmp(jstr(j, "state"), "failed") == 0,
			      "%s: state %s", bodies[i], jstr(j, "state"));
		ck_assert_msg(jstr(j, "error") != NULL &&
			      strcmp(jstr(j, "error"), "failed") == 0,
			      "%s: error %s, want \"failed\"", bodies[i],
			      jstr(j, "error") ? jstr(j, "error") : "(not a string)");
		cJSON_Delete(j);
		free(id);
	}
	stop_ok(&d);
}
END_TEST

/* ---- cancel ---- */

START_TEST(jobs_cancel_queued_job)
{
	struct jobqd d;
	struct resp r;
	char *blocker, *queued, *later;
	long n;
	cJSON *j;

	harness_start(&d, ARGS("--workers", "1"));
	blocker = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, blocker, "running"));
	queued = submit(&d, "{\"type\":\"echo\",\"payload\":1}");
	j = get_job(&d, queued, NULL);
	ck_assert_msg(strcmp(jstr(j, "state"), "queued") == 0,
		      "second job not queued behind the single worker: %s",
		      jstr(j, "state"));
	cJSON_Delete(j);

	j = cancel_ok(&d, queued);
	ck_assert_msg(jstr(j, "error") != NULL, "canceled job has no error string");
	ck_assert_msg(jnull(j, "started_at"), "never-started job has started_at");
	ck_assert_msg(jnull(j, "result"), "canceled job has a result");
	ck_assert_msg(jint(j, "attempts", &n) && n == 0, "attempts %ld, want 0", n);
	cJSON_Delete(j);

	cancel(&d, queued, &r);
	assert_problem(&r, 409, "job_finished", NULL);
	harness_resp_free(&r);

	/* free the worker; the canceled job must never run */
	cJSON_Delete(cancel_ok(&d, blocker));
	later = submit(&d, "{\"type\":\"echo\",\"payload\":2}");
	j = wait_terminal(&d, later);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);
	j = get_job(&d, queued, NULL);
	ck_assert_str_eq(jstr(j, "state"), "canceled");
	ck_assert_msg(jint(j, "attempts", &n) && n == 0,
		      "canceled job was claimed later (attempts %ld)", n);
	cJSON_Delete(j);
	free(blocker);
	free(queued);
	free(later);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_cancel_running_sleep_job)
{
	struct jobqd d;
	struct resp r;
	char *id;
	long long started, finished;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	j = cancel_ok(&d, id);
	ck_assert_msg(jstr(j, "error") != NULL, "canceled job has no error string");
	ck_assert_msg(jnull(j, "result"), "canceled job has a result");
	started = ts_ms(jstr(j, "started_at"));
	finished = ts_ms(jstr(j, "finished_at"));
	ck_assert_msg(started > 0 && finished > 0,
		      "canceled running job lacks started_at/finished_at");
	ck_assert_msg(finished - started < 2000,
		      "30 s sleep ran %lld ms before the cancel took effect",
		      finished - started);
	cJSON_Delete(j);

	j = get_job(&d, id, NULL);
	ck_assert_str_eq(jstr(j, "state"), "canceled");
	cJSON_Delete(j);

	cancel(&d, id, &r);
	assert_problem(&r, 409, "job_finished", NULL);
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_cancel_finished_job_conflicts)
{
	struct jobqd d;
	struct resp r;
	char *ok, *bad;
	cJSON *j;

	harness_start(&d, NULL);
	ok = submit(&d, "{\"type\":\"echo\"}");
	bad = submit(&d, "{\"type\":\"fail\",\"max_attempts\":1}");
	cJSON_Delete(wait_terminal(&d, ok));
	cJSON_Delete(wait_terminal(&d, bad));
	cancel(&d, ok, &r);
	assert_problem(&r, 409, "job_finished", NULL);
	harness_resp_free(&r);
	cancel(&d, bad, &r);
	assert_problem(&r, 409, "job_finished", NULL);
	harness_resp_free(&r);
	j = get_job(&d, ok, NULL);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);
	j = get_job(&d, bad, NULL);
	ck_assert_str_eq(jstr(j, "state"), "failed");
	cJSON_Delete(j);
	free(ok);
	free(bad);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_cancel_unknown_id_not_found)
{
	struct jobqd d;
	struct resp r;

	harness_start(&d, NULL);
	cancel(&d, UNKNOWN_ID, &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
	cancel(&d, "not-a-uuid", &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- list ---- */

START_TEST(jobs_list_newest_first_with_filters)
{
	static const char *const bodies[] = {
		"{\"type\":\"echo\",\"payload\":{\"i\":0}}",                  /* A */
		"{\"type\":\"echo\",\"queue\":\"q1\"}",                        /* B */
		"{\"type\":\"fail\",\"max_attempts\":1}",                  /* C */
		"{\"type\":\"sleep\",\"queue\":\"q1\",\"payload\":{\"seconds\":0}}", /* D */
		"{\"type\":\"echo\",\"queue\":\"q2\",\"priority\":5}",         /* E */
	};
	struct jobqd d;
	char *id[5];
	cJSON *l;
	int i;

	harness_start(&d, NULL);
	for (i = 0; i < 5; i++)
		id[i] = submit(&d, bodies[i]);
	for (i = 0; i < 5; i++)
		cJSON_Delete(wait_terminal(&d, id[i]));

	l = list(&d, "/v1/jobs");
	assert_list_ids(l, (char *[]){ id[4], id[3], id[2], id[1], id[0] }, 5,
			"all");
	ck_assert_msg(jnull(l, "next_cursor"), "next_cursor not null at the end");
	cJSON_Delete(l);

	l = list(&d, "/v1/jobs?type=echo");
	assert_list_ids(l, (char *[]){ id[4], id[1], id[0] }, 3, "type=echo");
	ck_assert_msg(jnull(l, "next_cursor"), "next_cursor not null");
	cJSON_Delete(l);

	l = list(&d, "/v1/jobs?queue=q1");
	assert_list_ids(l, (char *[]){ id[3], id[1] }, 2, "queue=q1");
	cJSON_Delete(l);

	l = list(&d, "/v1/jobs?state=failed");
	assert_list_ids(l, (char *[]){ id[2] }, 1, "state=failed");
	cJSON_Delete(l);

	l = list(&d, "/v1/jobs?state=succeeded");
	assert_list_ids(l, (char *[]){ id[4], id[3], id[1], id[0] }, 4,
			"state=succeeded");
	cJSON_Delete(l);

	l = list(&d, "/v1/jobs?queue=q1&type=echo");
	assert_list_ids(l, (char *[]){ id[1] }, 1, "queue=q1&type=echo");
	cJSON_Delete(l);

	l = list(&d, "/v1/jobs?state=canceled");
	assert_list_ids(l, NULL, 0, "state=canceled");
	ck_assert_msg(jnull(l, "next_cursor"), "next_cursor not null on empty list");
	cJSON_Delete(l);

	l = list(&d, "/v1/jobs?type=nope&state=queued");
	assert_list_ids(l, NULL, 0, "type=nope");
	cJSON_Delete(l);

	for (i = 0; i < 5; i++)
		free(id[i]);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_list_cursor_pagination_walks_all_jobs_once)
{
	struct jobqd d;
	char *id[8], body[64], path[512], cursor[256];
	const char *seen[16];
	int nseen = 0, i, k, page = 0;
	const cJSON *it, *nc;
	cJSON *l;

	harness_start(&d, NULL);
	for (i = 0; i < 7; i++) {
		snprintf(body, sizeof body, "{\"type\":\"echo\",\"payload\":%d}", i);
		id[i] = submit(&d, body);
	}

	/* exactly as many jobs as the limit: no further page */
	l = list(&d, "/v1/jobs?limit=7");
	assert_list_ids(l, (char *[]){ id[6], id[5], id[4], id[3], id[2], id[1],
				       id[0] }, 7, "limit=7");
	ck_assert_msg(jnull(l, "next_cursor"),
		      "next_cursor not null when limit == number of jobs");
	cJSON_Delete(l);

	/* walk with limit=3; a job submitted mid-walk must not disturb it */
	snprintf(path, sizeof path, "/v1/jobs?limit=3");
	cJSON *pages[4] = { NULL, NULL, NULL, NULL };
	for (;;) {
		ck_assert_msg(page < 4, "pagination did not end after 4 pages");
		l = list(&d, path);
		pages[page++] = l;
		ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) <= 3,
			      "page larger than limit=3");
		cJSON_ArrayForEach(it, jget(l, "jobs")) {
			ck_assert_msg(nseen < 16, "too many jobs seen");
			seen[nseen++] = jstr(it, "id");
		}
		if (page == 1)
			id[7] = submit(&d, "{\"type\":\"echo\",\"payload\":7}");
		nc = jget(l, "next_cursor");
		if (cJSON_IsNull(nc))
			break;
		ck_assert_msg(cJSON_IsString(nc) && nc->valuestring[0] != '\0',
			      "next_cursor neither null nor a non-empty string");
		snprintf(cursor, sizeof cursor, "%s", nc->valuestring);
		{
			char *esc = curl_easy_escape(NULL, cursor, 0);

			snprintf(path, sizeof path, "/v1/jobs?limit=3&cursor=%s", esc);
			curl_free(esc);
		}
	}
	ck_assert_msg(page == 3, "walk took %d pages, want 3 (3+3+1)", page);
	ck_assert_msg(nseen == 7, "walk saw %d jobs, want the 7 present at start",
		      nseen);
	for (i = 0; i < 7; i++) {
		ck_assert_msg(strcmp(seen[i], id[6 - i]) == 0,
			      "walk position %d is %s, want %s", i, seen[i],
			      id[6 - i]);
		for (k = 0; k < i; k++)
			ck_assert_msg(strcmp(seen[i], seen[k]) != 0,
				      "job %s seen twice", seen[i]);
	}
	for (i = 0; i < 4; i++)
		cJSON_Delete(pages[i]);

	l = list(&d, "/v1/jobs");
	assert_list_ids(l, (char *[]){ id[7], id[6], id[5], id[4], id[3], id[2],
				       id[1], id[0] }, 8, "after walk");
	cJSON_Delete(l);
	for (i = 0; i < 8; i++)
		free(id[i]);
	stop_ok(&d);
}
END_TEST

/* ---- waiting for many: lists by batch and ids, a batch's jobs ---- */

/* POSTs a batch (with extra_header, e.g. an Idempotency-Key) expecting
 * status; fills batch and ids[0..n) from a 201 or 200 answer. */
static void post_batch(const struct jobqd *d, const char *body, const char *extra_header,
		       long status, char *batch, char (*ids)[64], int n)
{
	struct resp r;
	const cJSON *list;
	char loc[256], want[256];
	int i;

	harness_request(d, "POST", "/v1/batches", "application/json", body, extra_header, &r);
	assert_status(&r, status);
	list = jget(r.json, "job_ids");
	ck_assert_msg(is_uuidv7(jstr(r.json, "id")) && jlong(r.json, "total") == n &&
		      cJSON_GetArraySize(list) == n, "batch answer: %.800s", r.body);
	snprintf(batch, 64, "%s", jstr(r.json, "id"));
	for (i = 0; i < n; i++)
		snprintf(ids[i], 64, "%s", cJSON_GetArrayItem(list, i)->valuestring);
	snprintf(want, sizeof want, "/v1/batches/%s", batch);
	ck_assert_msg(harness_header(&r, "Location", loc, sizeof loc) && strcmp(loc, want) == 0,
		      "Location %s, want %s", loc, want);
	harness_resp_free(&r);
}

/* Asserts every job of list l has batch_id batch. */
static void assert_list_batch(const cJSON *l, const char *batch)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, jget(l, "jobs"))
		ck_assert_msg(str_eq(jstr(it, "batch_id"), batch), "job %s has batch_id %s, want %s",
			      jstr_or(it, "id"), jstr_or(it, "batch_id"), batch);
}

START_TEST(jobs_list_filters_by_batch_and_ids)
{
	struct jobqd d;
	char *x, batch[64], b[3][64], path[512];
	cJSON *l;
	int i;

	harness_start(&d, NULL);
	x = submit(&d, "{\"type\":\"echo\",\"queue\":\"q2\"}");
	post_batch(&d, "{\"jobs\":[{\"type\":\"echo\",\"payload\":0},"
		   "{\"type\":\"echo\",\"queue\":\"q2\",\"payload\":1},"
		   "{\"type\":\"fail\",\"max_attempts\":1}]}", NULL, 201, batch, b, 3);
	cJSON_Delete(wait_terminal(&d, x));
	for (i = 0; i < 3; i++)
		cJSON_Delete(wait_terminal(&d, b[i]));

	snprintf(path, sizeof path, "/v1/jobs?batch_id=%s", batch);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[2], b[1], b[0] }, 3, "batch_id");
	assert_list_batch(l, batch);
	ck_assert_msg(jnull(l, "next_cursor"), "next_cursor not null");
	cJSON_Delete(l);

	snprintf(path, sizeof path, "/v1/jobs?batch_id=%s&queue=q2", batch);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[1] }, 1, "batch_id&queue=q2");
	cJSON_Delete(l);

	snprintf(path, sizeof path, "/v1/jobs?batch_id=%s&state=failed", batch);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[2] }, 1, "batch_id&state=failed");
	cJSON_Delete(l);

	/* pages of a batch, with the cursor */
	snprintf(path, sizeof path, "/v1/jobs?batch_id=%s&limit=2", batch);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[2], b[1] }, 2, "batch_id page 1");
	ck_assert_msg(jstr(l, "next_cursor") != NULL, "no next_cursor after page 1");
	snprintf(path, sizeof path, "/v1/jobs?batch_id=%s&limit=2&cursor=%s", batch,
		 jstr(l, "next_cursor"));
	cJSON_Delete(l);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[0] }, 1, "batch_id page 2");
	ck_assert_msg(jnull(l, "next_cursor"), "next_cursor not null after the last page");
	cJSON_Delete(l);

	snprintf(path, sizeof path, "/v1/jobs?batch_id=%s", UNKNOWN_ID);
	l = list(&d, path);
	assert_list_ids(l, NULL, 0, "unknown batch_id");
	cJSON_Delete(l);

	/* ids: newest first, each once, unknown ones skipped */
	snprintf(path, sizeof path, "/v1/jobs?ids=%s,%s,%s,%s", x, b[1], UNKNOWN_ID, x);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[1], x }, 2, "ids");
	cJSON_Delete(l);

	snprintf(path, sizeof path, "/v1/jobs?ids=%s,%s,%s&state=succeeded", x, b[0], b[2]);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[0], x }, 2, "ids&state=succeeded");
	cJSON_Delete(l);

	snprintf(path, sizeof path, "/v1/jobs?ids=%s,%s&batch_id=%s", x, b[0], batch);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[0] }, 1, "ids&batch_id");
	cJSON_Delete(l);

	snprintf(path, sizeof path, "/v1/jobs?ids=%s,%s,%s&limit=2", x, b[0], b[2]);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[2], b[0] }, 2, "ids page 1");
	ck_assert_msg(jstr(l, "next_cursor") != NULL, "no next_cursor after ids page 1");
	snprintf(path, sizeof path, "/v1/jobs?ids=%s,%s,%s&limit=2&cursor=%s", x, b[0], b[2],
		 jstr(l, "next_cursor"));
	cJSON_Delete(l);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ x }, 1, "ids page 2");
	ck_assert_msg(jnull(l, "next_cursor"), "next_cursor not null after the last ids page");
	cJSON_Delete(l);

	free(x);
	stop_ok(&d);
}
END_TEST

static const struct {
	const char *query, *field;
} bad_many[] = {
	{ "ids=", "ids" },
	{ "ids=nope", "ids" },
	{ "ids=" UNKNOWN_ID ",", "ids" },
	{ "ids=" UNKNOWN_ID ",,", "ids" },
	{ "ids=01890000-0000-7000-8000-00000000000", "ids" },
	{ "ids=01890000-0000-7000-8000-0000000000000", "ids" },
	{ "ids=01890000x0000-7000-8000-000000000000", "ids" },
	{ "batch_id=", "batch_id" },
	{ "batch_id=nope", "batch_id" },
	{ "batch_id=" UNKNOWN_ID "&limit=0", "limit" },
	{ "ids=" UNKNOWN_ID "&cursor=x", "cursor" },
};

static size_t long_get_body(char *data, size_t size, size_t nmemb, void *ud)
{
	char *buf = ud;
	size_t have = strlen(buf), n = size * nmemb;

	if (have + n < 4096) {
		memcpy(buf + have, data, n);
		buf[have + n] = '\0';
	}
	return n;
}

/* A GET of a path longer than the harness takes (bounded at 10 s): the
 * status, and the body in body[4096]. */
static long long_get(const struct jobqd *d, const char *path, char *body)
{
	CURL *c = curl_easy_init();
	char *url = malloc(strlen(d->base) + strlen(path) + 1);
	long status = 0;

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(url);
	strcpy(url, d->base);
	strcat(url, path);
	body[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, long_get_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	free(url);
	return status;
}

START_TEST(jobs_list_bad_batch_or_ids_is_400)
{
	struct jobqd d;
	struct resp r;
	char path[256], *many, body[4096];
	size_t i;

	harness_start(&d, NULL);
	snprintf(path, sizeof path, "/v1/jobs?%s", bad_many[_i].query);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_problem(&r, 400, "invalid_query", bad_many[_i].field);
	harness_resp_free(&r);

	/* 1,001 ids (empty ones): refused for their number */
	many = malloc(32 + 1001);
	ck_assert_ptr_nonnull(many);
	snprintf(many, 32, "/v1/jobs?ids=");
	for (i = strlen(many); i < strlen("/v1/jobs?ids=") + 1000; i++)
		many[i] = ',';
	many[i] = '\0';
	ck_assert_int_eq(long_get(&d, many, body), 400);
	ck_assert_msg(strstr(body, "\"field\":\"ids\"") != NULL &&
		      strstr(body, "\"code\":\"invalid_query\"") != NULL &&
		      strstr(body, "1001") != NULL, "1,001 ids: %s", body);
	free(many);
	stop_ok(&d);
}
END_TEST

/* GET the batch path; asserts 200 and returns the answer. */
static cJSON *get_batch(const struct jobqd *d, const char *path)
{
	struct resp r;
	cJSON *j;

	harness_request(d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(cJSON_IsObject(r.json), "batch answer not an object: %.800s", r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

START_TEST(batches_get_include_jobs_pages_and_waits)
{
	struct jobqd d;
	char batch[64], b[5][64], path[512], *cursor;
	const cJSON *it;
	cJSON *j;
	int i, nterm = 0;

	harness_start(&d, NULL);
	post_batch(&d, "{\"jobs\":[{\"type\":\"sleep\",\"payload\":{\"seconds\":0.3}},"
		   "{\"type\":\"echo\"},{\"type\":\"echo\"},{\"type\":\"echo\"},"
		   "{\"type\":\"fail\",\"max_attempts\":1}]}", NULL, 201, batch, b, 5);

	/* waiting: the jobs are read once the batch is done */
	snprintf(path, sizeof path, "/v1/batches/%s?wait=20&include=jobs", batch);
	j = get_batch(&d, path);
	ck_assert_msg(cJSON_IsTrue(jget(j, "done")), "batch not done after the wait");
	ck_assert_msg(jlong(jget(j, "counts"), "succeeded") == 4 &&
		      jlong(jget(j, "counts"), "failed") == 1, "counts wrong");
	ck_assert_msg(str_eq(jstr(j, "id"), batch) && jlong(j, "total") == 5, "id or total wrong");
	assert_list_ids(j, (char *[]){ b[4], b[3], b[2], b[1], b[0] }, 5, "include=jobs");
	cJSON_ArrayForEach(it, jget(j, "jobs")) {
		assert_job_shape(it, "include=jobs");
		nterm += is_terminal(jstr(it, "state"));
	}
	ck_assert_msg(nterm == 5, "%d of 5 jobs ended in the answer of a done batch", nterm);
	ck_assert_msg(str_eq(jstr(cJSON_GetArrayItem(jget(j, "jobs"), 0), "state"), "failed") &&
		      str_eq(jstr(cJSON_GetArrayItem(jget(j, "jobs"), 4), "state"), "succeeded"),
		      "states of the fail and sleep jobs wrong");
	ck_assert_msg(jnull(j, "next_cursor"), "next_cursor not null with every job");
	cJSON_Delete(j);

	/* without include: the answer as before, no jobs */
	snprintf(path, sizeof path, "/v1/batches/%s", batch);
	j = get_batch(&d, path);
	ck_assert_msg(jget(j, "jobs") == NULL && jget(j, "next_cursor") == NULL,
		      "jobs without include=jobs");
	ck_assert_msg(jlong(jget(j, "counts"), "succeeded") == 4, "counts wrong without include");
	cJSON_Delete(j);

	/* pages */
	snprintf(path, sizeof path, "/v1/batches/%s?include=jobs&limit=2", batch);
	j = get_batch(&d, path);
	assert_list_ids(j, (char *[]){ b[4], b[3] }, 2, "page 1");
	ck_assert_msg(jstr(j, "next_cursor") != NULL, "no next_cursor on page 1");
	ck_assert_msg(jlong(j, "total") == 5, "page 1 lacks the batch's fields");
	for (i = 2; i <= 3; i++) {
		cursor = strdup(jstr(j, "next_cursor"));
		cJSON_Delete(j);
		snprintf(path, sizeof path, "/v1/batches/%s?include=jobs&limit=2&cursor=%s", batch,
			 cursor);
		free(cursor);
		j = get_batch(&d, path);
		if (i == 2) {
			assert_list_ids(j, (char *[]){ b[2], b[1] }, 2, "page 2");
			ck_assert_msg(jstr(j, "next_cursor") != NULL, "no next_cursor on page 2");
		} else {
			assert_list_ids(j, (char *[]){ b[0] }, 1, "page 3");
			ck_assert_msg(jnull(j, "next_cursor"), "next_cursor not null on page 3");
		}
	}
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

static const struct {
	const char *query, *field;
} bad_include[] = {
	{ "include=job", "include" },
	{ "include=", "include" },
	{ "include=jobs&limit=0", "limit" },
	{ "include=jobs&limit=1001", "limit" },
	{ "include=jobs&limit=x", "limit" },
	{ "include=jobs&cursor=x", "cursor" },
	{ "include=jobs&cursor=0", "cursor" },
};

START_TEST(batches_get_bad_include_is_400)
{
	struct jobqd d;
	struct resp r;
	char batch[64], b[1][64], path[256];

	harness_start(&d, NULL);
	post_batch(&d, "{\"jobs\":[{\"type\":\"echo\"}]}", NULL, 201, batch, b, 1);
	snprintf(path, sizeof path, "/v1/batches/%s?%s", batch, bad_include[_i].query);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_problem(&r, 400, "invalid_query", bad_include[_i].field);
	harness_resp_free(&r);
	snprintf(path, sizeof path, "/v1/batches/%s?include=jobs", UNKNOWN_ID);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_problem(&r, 404, "batch_not_found", NULL);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(batches_idempotency_key_replays_or_conflicts)
{
	static const char body[] = "{\"jobs\":[{\"type\":\"echo\",\"payload\":1},"
				   "{\"type\":\"echo\",\"payload\":2}]}";
	struct jobqd d;
	struct resp r;
	char batch[64], again[64], other[64], b[2][64], b2[2][64], path[256];
	cJSON *l;

	harness_start(&d, NULL);
	post_batch(&d, body, "Idempotency-Key: batch-7", 201, batch, b, 2);
	post_batch(&d, body, "Idempotency-Key: batch-7", 200, again, b2, 2);
	ck_assert_msg(strcmp(batch, again) == 0, "replay made batch %s, want %s", again, batch);
	ck_assert_msg(strcmp(b[0], b2[0]) == 0 && strcmp(b[1], b2[1]) == 0,
		      "replay answered other job ids, or in another order");

	/* after the batch ran, the replay still answers it */
	cJSON_Delete(wait_terminal(&d, b[0]));
	cJSON_Delete(wait_terminal(&d, b[1]));
	post_batch(&d, body, "Idempotency-Key: batch-7", 200, again, b2, 2);
	ck_assert_msg(strcmp(batch, again) == 0 && strcmp(b[0], b2[0]) == 0 &&
		      strcmp(b[1], b2[1]) == 0, "late replay answered another batch");

	/* nothing was inserted twice */
	l = list(&d, "/v1/jobs");
	assert_list_ids(l, (char *[]){ b[1], b[0] }, 2, "every job after replays");
	cJSON_Delete(l);

	/* another body under the same key */
	harness_request(&d, "POST", "/v1/batches", "application/json",
			"{\"jobs\":[{\"type\":\"echo\",\"payload\":3}]}", "Idempotency-Key: batch-7", &r);
	assert_problem(&r, 409, "idempotency_conflict", "Idempotency-Key");
	harness_resp_free(&r);

	/* a bad key */
	harness_request(&d, "POST", "/v1/batches", "application/json", body, "Idempotency-Key: \x01x", &r);
	assert_problem(&r, 400, "invalid_field", "Idempotency-Key");
	harness_resp_free(&r);

	/* batch keys and job keys are separate: the same key makes a job */
	harness_request(&d, "POST", "/v1/jobs", "application/json", "{\"type\":\"echo\"}",
			"Idempotency-Key: batch-7", &r);
	assert_status(&r, 201);
	harness_resp_free(&r);

	/* another key: another batch */
	post_batch(&d, body, "Idempotency-Key: batch-8", 201, other, b2, 2);
	ck_assert_msg(strcmp(other, batch) != 0, "key batch-8 answered the batch-7 batch");
	snprintf(path, sizeof path, "/v1/jobs?batch_id=%s", batch);
	l = list(&d, path);
	assert_list_ids(l, (char *[]){ b[1], b[0] }, 2, "the first batch's jobs");
	cJSON_Delete(l);
	stop_ok(&d);
}
END_TEST

/* ---- priority ---- */

START_TEST(jobs_higher_priority_runs_first)
{
	struct jobqd d;
	char *blocker, *low, *mid, *high;
	long long tl, tm, th;
	cJSON *jl, *jm, *jh;

	harness_start(&d, ARGS("--workers", "1"));
	blocker = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, blocker, "running"));
	low = submit(&d, "{\"type\":\"sleep\",\"priority\":-5,"
			 "\"payload\":{\"seconds\":0.05}}");
	mid = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.05}}");
	high = submit(&d, "{\"type\":\"sleep\",\"priority\":10,"
			  "\"payload\":{\"seconds\":0.05}}");
	cJSON_Delete(cancel_ok(&d, blocker));
	jl = wait_terminal(&d, low);
	jm = wait_terminal(&d, mid);
	jh = wait_terminal(&d, high);
	ck_assert_str_eq(jstr(jl, "state"), "succeeded");
	ck_assert_str_eq(jstr(jm, "state"), "succeeded");
	ck_assert_str_eq(jstr(jh, "state"), "succeeded");
	tl = ts_ms(jstr(jl, "started_at"));
	tm = ts_ms(jstr(jm, "started_at"));
	th = ts_ms(jstr(jh, "started_at"));
	ck_assert_msg(th < tm && tm < tl,
		      "start order not by priority: high %s, mid %s, low %s",
		      jstr(jh, "started_at"), jstr(jm, "started_at"),
		      jstr(jl, "started_at"));
	cJSON_Delete(jl);
	cJSON_Delete(jm);
	cJSON_Delete(jh);
	free(blocker);
	free(low);
	free(mid);
	free(high);
	stop_ok(&d);
}
END_TEST

/* ---- durability ---- */

START_TEST(jobs_survive_kill9_right_after_201)
{
	struct jobqd d;
	char *echo, *slp;
	cJSON *j;

	harness_start(&d, NULL);
	echo = submit(&d, "{\"type\":\"echo\",\"payload\":{\"k\":9}}");
	slp = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.3}}");
	harness_kill9(&d);
	harness_restart(&d, NULL);

	j = wait_terminal(&d, echo);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_msg(json_equal_text(jget(j, "result"), "{\"k\":9}"),
		      "echo result lost");
	cJSON_Delete(j);
	j = wait_terminal(&d, slp);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_msg(json_equal_text(jget(j, "result"), "{\"slept\":0.3}"),
		      "sleep result wrong");
	cJSON_Delete(j);
	free(echo);
	free(slp);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_running_job_reruns_after_kill9)
{
	struct jobqd d;
	char *id;
	long n;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":1}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	harness_kill9(&d);
	harness_restart(&d, NULL);
	j = wait_terminal(&d, id);
	ck_assert_msg(strcmp(jstr(j, "state"), "succeeded") == 0,
		      "job running at kill -9 ended %s (error %s)", jstr(j, "state"),
		      jstr(j, "error") ? jstr(j, "error") : "null");
	ck_assert_msg(jint(j, "attempts", &n) && n == 2,
		      "attempts %ld, want 2 (claimed before and after the crash)", n);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_persist_across_graceful_restart)
{
	struct jobqd d;
	char *id;
	int st;
	cJSON *j, *l;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"echo\",\"queue\":\"keep\",\"payload\":[1,2]}");
	cJSON_Delete(wait_terminal(&d, id));
	st = harness_stop_keep(&d);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "SIGTERM exit status %d", st);
	harness_restart(&d, NULL);
	j = get_job(&d, id, NULL);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_str_eq(jstr(j, "queue"), "keep");
	ck_assert_msg(json_equal_text(jget(j, "result"), "[1,2]"), "result lost");
	cJSON_Delete(j);
	l = list(&d, "/v1/jobs");
	assert_list_ids(l, &id, 1, "after restart");
	cJSON_Delete(l);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- service endpoints ---- */

START_TEST(service_healthz_readyz_and_openapi)
{
	struct jobqd d;
	struct resp r;
	char ct[256];

	harness_start(&d, NULL);
	harness_request(&d, "GET", "/healthz", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(harness_header(&r, "Content-Type", ct, sizeof ct) &&
		      strncmp(ct, "application/json", 16) == 0,
		      "healthz Content-Type '%s'", ct);
	ck_assert_msg(json_equal_text(r.json, "{\"status\":\"ok\"}"), "healthz: %s",
		      r.body);
	harness_resp_free(&r);

	harness_request(&d, "GET", "/readyz", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(json_equal_text(r.json, "{\"status\":\"ready\"}"),
		      "readyz: %s", r.body);
	harness_resp_free(&r);

	harness_request(&d, "GET", "/openapi.yaml", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(harness_header(&r, "Content-Type", ct, sizeof ct) &&
		      strncmp(ct, "application/yaml", 16) == 0,
		      "openapi Content-Type '%s'", ct);
	ck_assert_msg(strncmp(r.body, "openapi: 3.1", 12) == 0,
		      "openapi.yaml starts with: %.80s", r.body);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* The dashboard's files: the bytes of web/, exact types, no-cache with a
 * strong ETag, and 304 when If-None-Match holds it. */
START_TEST(dashboard_files_served_with_etag_and_revalidated)
{
	static const struct { const char *path, *file, *type; } files[] = {
		{ "/", "web/index.html", "text/html; charset=utf-8" },
		{ "/app.js", "web/app.js", "text/javascript; charset=utf-8" },
		{ "/style.css", "web/style.css", "text/css; charset=utf-8" },
	};
	struct jobqd d;
	struct resp r;
	char ct[256], cc[256], etag[3][64], again[64], hdr[256], csp[512];

	harness_start(&d, NULL);
	for (int i = 0; i < 3; i++) {
		char *want = harness_read_file(files[i].file);
		ck_assert_msg(strlen(want) > 100, "%s is missing or tiny", files[i].file);
		harness_request(&d, "GET", files[i].path, NULL, NULL, NULL, &r);
		assert_status(&r, 200);
		ck_assert_msg(harness_header(&r, "Content-Type", ct, sizeof ct) &&
			      strcmp(ct, files[i].type) == 0, "%s Content-Type '%s'", files[i].path, ct);
		ck_assert_msg(harness_header(&r, "Cache-Control", cc, sizeof cc) &&
			      strcmp(cc, "no-cache") == 0, "%s Cache-Control '%s'", files[i].path, cc);
		ck_assert_msg(harness_header(&r, "ETag", etag[i], sizeof etag[i]) &&
			      strlen(etag[i]) == 18 && etag[i][0] == '"' && etag[i][17] == '"',
			      "%s ETag '%s'", files[i].path, etag[i]);
		ck_assert_msg(r.body_len == strlen(want) && memcmp(r.body, want, r.body_len) == 0,
			      "%s is not the bytes of %s", files[i].path, files[i].file);
		ck_assert_int_eq(harness_header(&r, "Content-Security-Policy", csp, sizeof csp), i == 0);
		if (i == 0)
			ck_assert_msg(strstr(csp, "default-src 'self'") && strstr(csp, "object-src 'none'"),
				      "index CSP: %s", csp);
		free(want);
		harness_resp_free(&r);

		snprintf(hdr, sizeof hdr, "If-None-Match: %s", etag[i]);
		harness_request(&d, "GET", files[i].path, NULL, NULL, hdr, &r);
		assert_status(&r, 304);
		ck_assert_msg(r.body_len == 0, "304 with a body: %s", r.body);
		ck_assert_msg(harness_header(&r, "ETag", again, sizeof again) && strcmp(again, etag[i]) == 0,
			      "304 ETag '%s', want %s", again, etag[i]);
		harness_resp_free(&r);

		snprintf(hdr, sizeof hdr, "If-None-Match: \"0000\", W/%s", etag[i]);
		harness_request(&d, "GET", files[i].path, NULL, NULL, hdr, &r);
		assert_status(&r, 304);
		harness_resp_free(&r);
	}
	ck_assert_str_ne(etag[0], etag[1]);
	ck_assert_str_ne(etag[1], etag[2]);

	harness_request(&d, "GET", "/", NULL, NULL, "If-None-Match: \"0123456789abcdef\"", &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	harness_request(&d, "GET", "/app.js", NULL, NULL, "If-None-Match: *", &r);
	assert_status(&r, 304);
	harness_resp_free(&r);
	harness_request(&d, "POST", "/", "application/json", "{}", NULL, &r);
	assert_problem(&r, 405, "method_not_allowed", NULL);
	ck_assert_msg(harness_header(&r, "Allow", hdr, sizeof hdr) && strcmp(hdr, "GET") == 0, "Allow '%s'", hdr);
	harness_resp_free(&r);
	harness_request(&d, "GET", "/index.html", NULL, NULL, NULL, &r);
	assert_problem(&r, 404, "not_found", NULL);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- payloads are kept as sent ---- */

/* Pretty-printed on the way in; kept byte for byte but the white space. */
#define EXACT_PAYLOAD_SENT "{ \"s\": \"a\\u0000b\", \"big\": 12345678901234567890,\n" \
	"  \"huge\": 1e400, \"neg0\": -0, \"f\": 1.10, \"e\": \"\\u00e9\\/\" }"
#define EXACT_PAYLOAD_KEPT "{\"s\":\"a\\u0000b\",\"big\":12345678901234567890," \
	"\"huge\":1e400,\"neg0\":-0,\"f\":1.10,\"e\":\"\\u00e9\\/\"}"

START_TEST(jobs_payload_comes_back_exactly_as_sent)
{
	struct jobqd d;
	struct resp r;
	char path[128];
	char *id;

	harness_start(&d, NULL);
	harness_request(&d, "POST", "/v1/jobs", "application/json",
			"{\"type\":\"echo\",\"payload\":" EXACT_PAYLOAD_SENT "}", NULL, &r);
	assert_status(&r, 201);
	ck_assert_msg(strstr(r.body, "\"payload\":" EXACT_PAYLOAD_KEPT ",") != NULL,
		      "201 body: %.800s", r.body);
	id = strdup(jstr(r.json, "id"));
	harness_resp_free(&r);
	cJSON_Delete(wait_terminal(&d, id));

	/* GET: the payload, and echo's result, unchanged */
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(str_eq(jstr(r.json, "state"), "succeeded"), "job: %.800s", r.body);
	ck_assert_msg(strstr(r.body, "\"payload\":" EXACT_PAYLOAD_KEPT ",") != NULL,
		      "GET payload: %.800s", r.body);
	ck_assert_msg(strstr(r.body, "\"result\":" EXACT_PAYLOAD_KEPT ",") != NULL,
		      "GET result: %.800s", r.body);
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- bad input ---- */


#define JSON "application/json"
#define POST_JOB(body, st, code, field) \
	{ "POST", "/v1/jobs", JSON, body, st, code, field, NULL }

static const struct harness_bad_case bad_cases[] = {
	/* malformed JSON */
	POST_JOB("{\"type\":\"echo\"", 400, "malformed_json", NULL),
	POST_JOB("{\"type\":\"echo\"} x", 400, "malformed_json", NULL),
	POST_JOB("{\"type\":\"echo\"}{\"type\":\"echo\"}", 400, "malformed_json", NULL),
	POST_JOB("", 400, "malformed_json", NULL),
	POST_JOB("[]", 400, "malformed_json", NULL),
	POST_JOB("[{\"type\":\"echo\"}]", 400, "malformed_json", NULL),
	POST_JOB("\"echo\"", 400, "malformed_json", NULL),
	POST_JOB("42", 400, "malformed_json", NULL),
	POST_JOB("null", 400, "malformed_json", NULL),
	POST_JOB("{type:\"echo\"}", 400, "malformed_json", NULL),
	/* invalid UTF-8 inside strings is not JSON */
	POST_JOB("{\"type\":\"echo\",\"payload\":\"\xff\xfe\"}", 400, "malformed_json", NULL),
	POST_JOB("{\"type\":\"ec\xc3\"}", 400, "malformed_json", NULL),
	POST_JOB("{\"type\":\"echo\",\"payload\":\"\xc0\xaf\"}", 400, "malformed_json", NULL),
	/* type */
	POST_JOB("{}", 400, "invalid_field", "type"),
	POST_JOB("{\"payload\":1}", 400, "invalid_field", "type"),
	POST_JOB("{\"type\":42}", 400, "invalid_field", "type"),
	POST_JOB("{\"type\":[\"echo\"]}", 400, "invalid_field", "type"),
	POST_JOB("{\"type\":\"nope\"}", 422, "unknown_job_type", "type"),
	POST_JOB("{\"type\":\"ECHO\"}", 422, "unknown_job_type", "type"),
	/* unknown keys */
	POST_JOB("{\"type\":\"echo\",\"foo\":1}", 400, "invalid_field", "foo"),
	POST_JOB("{\"type\":\"echo\",\"Queue\":\"a\"}", 400, "invalid_field", "Queue"),
	/* queue */
	POST_JOB("{\"type\":\"echo\",\"queue\":5}", 400, "invalid_field", "queue"),
	POST_JOB("{\"type\":\"echo\",\"queue\":\"\"}", 400, "invalid_field", "queue"),
	POST_JOB("{\"type\":\"echo\",\"queue\":"
		 "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		 400, "invalid_field", "queue"),
	POST_JOB("{\"type\":\"echo\",\"queue\":\"a b\"}", 400, "invalid_field", "queue"),
	POST_JOB("{\"type\":\"echo\",\"queue\":\"a/b\"}", 400, "invalid_field", "queue"),
	POST_JOB("{\"type\":\"echo\",\"queue\":\"caf\xc3\xa9\"}", 400, "invalid_field", "queue"),
	/* priority */
	POST_JOB("{\"type\":\"echo\",\"priority\":1.5}", 400, "invalid_field", "priority"),
	POST_JOB("{\"type\":\"echo\",\"priority\":\"1\"}", 400, "invalid_field", "priority"),
	POST_JOB("{\"type\":\"echo\",\"priority\":true}", 400, "invalid_field", "priority"),
	POST_JOB("{\"type\":\"echo\",\"priority\":1000001}", 400, "invalid_field", "priority"),
	POST_JOB("{\"type\":\"echo\",\"priority\":-1000001}", 400, "invalid_field", "priority"),
	POST_JOB("{\"type\":\"echo\",\"priority\":1e300}", 400, "invalid_field", "priority"),
	/* what cJSON alone would have changed without a word */
	POST_JOB("{\"type\":\"echo\",\"priority\":1,\"priority\":\"x\"}", 400, "invalid_field", "priority"),
	POST_JOB("{\"type\":\"echo\",\"payload\":1,\"payload\":2}", 400, "invalid_field", "payload"),
	POST_JOB("{\"type\":\"echo\\u0000evil\",\"payload\":\"a\\u0000b\"}", 400, "invalid_field", "type"),
	POST_JOB("{\"type\\u0000\":\"echo\"}", 400, "invalid_field", "type"),
	POST_JOB("{\"type\":\"echo\",\"queue\":\"q\\u0000x\"}", 400, "invalid_field", "queue"),
	POST_JOB("{\"type\":\"echo\",\"priority\":1e400}", 400, "invalid_field", "priority"),
	POST_JOB("{\"type\":\"echo\",\"delay_s\":1e-400}", 400, "invalid_field", "delay_s"),
	POST_JOB("{\"type\":\"echo\",\"payload\":01}", 400, "malformed_json", NULL),
	POST_JOB("{\"type\":\"echo\",\"payload\":1.}", 400, "malformed_json", NULL),
	POST_JOB("{\"type\":\"echo\",\"payload\":\"\\udc00\"}", 400, "malformed_json", NULL),
	POST_JOB("{\"type\":\"fail\",\"payload\":{\"message\":\"a\\u0000b\"}}", 422, "invalid_payload", "payload.message"),
	/* payloads of known types */
	POST_JOB("{\"type\":\"sleep\",\"payload\":{}}", 422, "invalid_payload", "payload.seconds"),
	POST_JOB("{\"type\":\"sleep\",\"payload\":{\"seconds\":-1}}", 422, "invalid_payload", "payload.seconds"),
	POST_JOB("{\"type\":\"sleep\",\"payload\":{\"seconds\":\"5\"}}", 422, "invalid_payload", "payload.seconds"),
	POST_JOB("{\"type\":\"sleep\",\"payload\":{\"seconds\":86401}}", 422, "invalid_payload", "payload.seconds"),
	POST_JOB("{\"type\":\"sleep\",\"payload\":{\"seconds\":true}}", 422, "invalid_payload", "payload.seconds"),
	POST_JOB("{\"type\":\"fail\",\"payload\":{\"message\":5}}", 422, "invalid_payload", "payload.message"),
	POST_JOB("{\"type\":\"fail\",\"payload\":{\"message\":{}}}", 422, "invalid_payload", "payload.message"),
	/* media type */
	{ "POST", "/v1/jobs", "text/plain", "{\"type\":\"echo\"}", 415,
	  "unsupported_media_type", "Content-Type", NULL },
	{ "POST", "/v1/jobs", HARNESS_NO_CTYPE, "{\"type\":\"echo\"}", 415,
	  "unsupported_media_type", "Content-Type", NULL },
	{ "POST", "/v1/jobs", "application/x-www-form-urlencoded",
	  "{\"type\":\"echo\"}", 415, "unsupported_media_type", "Content-Type", NULL },
	/* routes and methods */
	{ "GET", "/nope", NULL, NULL, 404, "not_found", NULL, NULL },
	{ "POST", "/v1/jobsx", JSON, "{\"type\":\"echo\"}", 404, "not_found", NULL, NULL },
	{ "GET", "/v1/jobs/{id}/cancel/x", NULL, NULL, 404, "not_found", NULL, NULL },
	{ "DELETE", "/v1/jobs", NULL, NULL, 405, "method_not_allowed", NULL, "GET, POST" },
	{ "PUT", "/v1/jobs/{id}", NULL, NULL, 405, "method_not_allowed", NULL, "GET, DELETE" },
	{ "PATCH", "/v1/jobs/{id}", NULL, NULL, 405, "method_not_allowed", NULL, "GET, DELETE" },
	{ "GET", "/v1/jobs/{id}/cancel", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
	{ "POST", "/healthz", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	{ "POST", "/openapi.yaml", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	{ "HEAD", "/readyz", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	/* job ids */
	{ "GET", "/v1/jobs/" UNKNOWN_ID, NULL, NULL, 404, "job_not_found", NULL, NULL },
	{ "GET", "/v1/jobs/not-a-uuid", NULL, NULL, 404, "job_not_found", NULL, NULL },
	{ "POST", "/v1/jobs/not-a-uuid/cancel", NULL, NULL, 404, "job_not_found", NULL, NULL },
	/* query parameters */
	{ "GET", "/v1/jobs/{id}?wait=-1", NULL, NULL, 400, "invalid_query", "wait", NULL },
	{ "GET", "/v1/jobs/{id}?wait=abc", NULL, NULL, 400, "invalid_query", "wait", NULL },
	{ "GET", "/v1/jobs/{id}?wait=5s", NULL, NULL, 400, "invalid_query", "wait", NULL },
	{ "GET", "/v1/jobs?limit=0", NULL, NULL, 400, "invalid_query", "limit", NULL },
	{ "GET", "/v1/jobs?limit=1001", NULL, NULL, 400, "invalid_query", "limit", NULL },
	{ "GET", "/v1/jobs?limit=abc", NULL, NULL, 400, "invalid_query", "limit", NULL },
	{ "GET", "/v1/jobs?limit=1.5", NULL, NULL, 400, "invalid_query", "limit", NULL },
	{ "GET", "/v1/jobs?limit=-1", NULL, NULL, 400, "invalid_query", "limit", NULL },
	{ "GET", "/v1/jobs?state=bogus", NULL, NULL, 400, "invalid_query", "state", NULL },
	{ "GET", "/v1/jobs?cursor=garbage", NULL, NULL, 400, "invalid_query", "cursor", NULL },
	{ "GET", "/v1/jobs?cursor=%21%21%21", NULL, NULL, 400, "invalid_query", "cursor", NULL },
	/* %00 would cut the value every reader sees: default%00evil is not default */
	{ "GET", "/v1/jobs?queue=default%00evil", NULL, NULL, 400, "invalid_query", "queue", NULL },
	{ "GET", "/v1/jobs?type=echo%00", NULL, NULL, 400, "invalid_query", "type", NULL },
};

START_TEST(api_rejects_bad_input_with_exact_problems)
{
	struct jobqd d;
	struct resp r;
	char *id;
	cJSON *l;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"echo\",\"payload\":\"only valid job\"}");
	cJSON_Delete(wait_terminal(&d, id));
	harness_bad_cases(&d, bad_cases, sizeof bad_cases / sizeof bad_cases[0], id);

	harness_request(&d, "GET", "/healthz", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	l = list(&d, "/v1/jobs?limit=1000");
	assert_list_ids(l, &id, 1, "jobs after bad input (only the valid one)");
	cJSON_Delete(l);
	free(id);
	stop_ok(&d);
}
END_TEST

/* Body of exactly len bytes: a valid echo job padded in the payload. */
static char *padded_job(size_t len)
{
	static const char head[] = "{\"type\":\"echo\",\"payload\":\"";
	char *b = malloc(len + 1);
	size_t h = sizeof head - 1;

	ck_assert(b != NULL && len > h + 2);
	memcpy(b, head, h);
	memset(b + h, 'a', len - h - 2);
	memcpy(b + len - 2, "\"}", 2);
	b[len] = '\0';
	return b;
}

static void post_bytes(const struct jobqd *d, const char *body, int chunked,
		       struct resp *r)
{
	harness_request_raw(d, "POST", "/v1/jobs",
			    ARGS("Content-Type: application/json"), body,
			    strlen(body), chunked, r);
}

START_TEST(jobs_submit_over_max_body_is_413)
{
	struct jobqd d;
	struct resp r;
	char *big = padded_job(2048), *small = padded_job(1000);
	cJSON *l;
	char *id;

	harness_start(&d, ARGS("--max-body", "1024"));
	post_bytes(&d, big, 0, &r);
	assert_problem(&r, 413, "body_too_large", NULL);
	harness_resp_free(&r);
	post_bytes(&d, big, 1, &r);
	assert_problem(&r, 413, "body_too_large", NULL);
	harness_resp_free(&r);

	/* under the limit, in both framings */
	post_bytes(&d, small, 1, &r);
	assert_status(&r, 201);
	harness_resp_free(&r);
	post_bytes(&d, small, 0, &r);
	assert_status(&r, 201);
	assert_job_shape(r.json, r.body);
	id = strdup(jstr(r.json, "id"));
	harness_resp_free(&r);

	harness_request(&d, "GET", "/healthz", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	l = list(&d, "/v1/jobs");
	ck_assert_int_eq(cJSON_GetArraySize(jget(l, "jobs")), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(jget(l, "jobs"), 0), "id"), id);
	cJSON_Delete(l);
	free(id);
	free(big);
	free(small);
	stop_ok(&d);
}
END_TEST

/* ---- command line ---- */

static int count_char(const char *s, char c)
{
	int n = 0;

	for (; *s; s++)
		n += *s == c;
	return n;
}

START_TEST(cli_help_exits_zero_with_usage)
{
	struct cli_result res;
	char *all;
	size_t n;

	harness_run_cli(ARGS("--help"), NULL, &res);
	n = strlen(res.out) + strlen(res.err) + 1;
	all = malloc(n);
	ck_assert(all != NULL);
	snprintf(all, n, "%s%s", res.out, res.err);
	ck_assert_msg(res.status == 0, "--help exit %d%s; output: %s", res.status,
		      res.timed_out ? " (killed after 10 s)" : "", all);
	ck_assert_msg(strcasestr(all, "usage") != NULL &&
		      strstr(all, "--listen") != NULL,
		      "--help output lacks usage / --listen: %s", all);
	free(all);
	harness_cli_result_free(&res);
}
END_TEST

START_TEST(cli_version_exits_zero)
{
	struct cli_result res;

	harness_run_cli(ARGS("--version"), NULL, &res);
	ck_assert_msg(res.status == 0, "--version exit %d%s; stderr: %s",
		      res.status, res.timed_out ? " (killed after 10 s)" : "",
		      res.err);
	ck_assert_msg(res.out[0] != '\0' || res.err[0] != '\0',
		      "--version printed nothing");
	harness_cli_result_free(&res);
}
END_TEST

struct cli_case {
	const char *const *args;
	const char *const *env;
};

static const struct cli_case bad_cli[] = {
	{ ARGS("--listen", "127.0.0.1:0", "--bogus"), NULL },
	{ ARGS("--listen", "127.0.0.1:0", "--workers", "0"), NULL },
	{ ARGS("--listen", "127.0.0.1:0", "--workers", "x"), NULL },
	{ ARGS("--listen", "127.0.0.1:0", "--sync", "maybe"), NULL },
	{ ARGS("--listen", "nope"), NULL },
	{ ARGS("--listen", "127.0.0.1:0", "--max-body", "abc"), NULL },
	{ ARGS("--listen", "127.0.0.1:0", "--log-level", "loud"), NULL },
	{ ARGS("--listen", "127.0.0.1:0", "--workers"), NULL },
	{ ARGS("--listen", "127.0.0.1:0"), ARGS("JOBQ_WORKERS=abc") },
	{ ARGS("--listen", "127.0.0.1:0"), ARGS("JOBQ_SYNC=maybe") },
	{ ARGS("--workers", "1"), ARGS("JOBQ_LISTEN=nope") },
};

#define N_BAD_CLI ((int)(sizeof bad_cli / sizeof bad_cli[0]))

static void describe_cli(const struct cli_case *c, char *out, size_t n)
{
	size_t i, len;

	out[0] = '\0';
	for (i = 0; c->env != NULL && c->env[i] != NULL; i++) {
		len = strlen(out);
		snprintf(out + len, n - len, "%s ", c->env[i]);
	}
	len = strlen(out);
	snprintf(out + len, n - len, "jobqd");
	for (i = 0; c->args[i] != NULL; i++) {
		len = strlen(out);
		snprintf(out + len, n - len, " %s", c->args[i]);
	}
}

START_TEST(cli_bad_flag_or_env_exits_2_with_one_line)
{
	const struct cli_case *c = &bad_cli[_i];
	struct cli_result res;
	char what[256];
	size_t n;

	describe_cli(c, what, sizeof what);
	harness_run_cli(c->args, c->env, &res);
	ck_assert_msg(res.status == 2, "%s: exit %d%s, want 2; stderr: %s", what,
		      res.status, res.timed_out ? " (still running after 10 s)" : "",
		      res.err);
	n = strlen(res.err);
	ck_assert_msg(n > 1 && count_char(res.err, '\n') == 1 &&
		      res.err[n - 1] == '\n',
		      "%s: stderr is not exactly one line: [%s]", what, res.err);
	harness_cli_result_free(&res);
}
END_TEST

START_TEST(cli_flags_win_over_env)
{
	struct jobqd d;
	struct resp r;

	/* the harness passes --listen 127.0.0.1:0 and --db <tmp>/jobq.db */
	harness_start_env(&d, NULL,
			  ARGS("JOBQ_LISTEN=nope", "JOBQ_DB=/nonexistent/dir/x.db"));
	harness_request(&d, "GET", "/readyz", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(cli_env_max_body_applies_and_flag_wins)
{
	struct jobqd d;
	struct resp r;
	char *big = padded_job(2048);

	harness_start_env(&d, NULL, ARGS("JOBQ_MAX_BODY=1024"));
	post_bytes(&d, big, 0, &r);
	assert_problem(&r, 413, "body_too_large", NULL);
	harness_resp_free(&r);
	stop_ok(&d);

	harness_start_env(&d, ARGS("--max-body", "4096"), ARGS("JOBQ_MAX_BODY=1024"));
	post_bytes(&d, big, 0, &r);
	assert_status(&r, 201);
	harness_resp_free(&r);
	stop_ok(&d);
	free(big);
}
END_TEST

/* ---- unknown query parameters (issue 16) ---- */

/* Every route that is not public refuses a query parameter it does not
 * take, naming it; {id} is a finished job. want_detail, when set, must be
 * in the problem's detail. status 200/204 rows check that what a route
 * takes (or ignores on purpose) still passes. */
struct query_case {
	const char *method, *path;
	long status;
	const char *field, *want_detail;
};

static const struct query_case query_cases[] = {
	{ "GET", "/v1/jobs?status=failed", 400, "status", "did you mean state?" },
	{ "GET", "/v1/jobs?State=failed", 400, "State", "did you mean state?" },
	{ "GET", "/v1/jobs?%ff%0a=1", 400, "%FF%0A", "%FF%0A is not a query parameter" },
	{ "GET", "/v1/jobs?page_size=5", 400, "page_size", "did you mean limit?" },
	{ "GET", "/v1/jobs?limit=5&offset=10", 400, "offset", "did you mean cursor?" },
	{ "GET", "/v1/jobs?state=failed&state=queued", 400, "state", "more than once" },
	{ "GET", "/v1/jobs?wait=5", 400, "wait", "it takes state, queue, type, batch_id, ids, limit and cursor" },
	{ "GET", "/v1/jobs/{id}?wait=0&verbose=1", 400, "verbose", "it takes wait" },
	{ "GET", "/v1/jobs/{id}?timeout=5", 400, "timeout", "did you mean wait?" },
	{ "DELETE", "/v1/jobs/{id}?force=1", 400, "force", "takes none" },
	{ "POST", "/v1/jobs/{id}/cancel?reason=x", 400, "reason", "takes none" },
	{ "POST", "/v1/jobs/{id}/retry?now=1", 400, "now", "takes none" },
	{ "GET", "/v1/jobs/{id}/events?since=1", 400, "since", "takes none" },
	{ "POST", "/v1/jobs/{id}/heartbeat?x=1", 400, "x", "takes none" },
	{ "POST", "/v1/jobs/{id}/complete?x=1", 400, "x", "takes none" },
	{ "POST", "/v1/jobs/{id}/fail?x=1", 400, "x", "takes none" },
	{ "POST", "/v1/jobs/{id}/release?x=1", 400, "x", "takes none" },
	{ "POST", "/v1/jobs?wait=5", 400, "wait", "takes none" },
	{ "POST", "/v1/batches?x=1", 400, "x", "takes none" },
	{ "POST", "/v1/leases?queue=q", 400, "queue", "takes none" },
	{ "GET", "/v1/batches/" UNKNOWN_ID "?include=jobs&expand=jobs", 400, "expand", "did you mean include?" },
	{ "GET", "/v1/events?status=failed", 400, "status", "it takes queue, type, ids and batch_id" },
	{ "GET", "/v1/events?batch=" UNKNOWN_ID, 400, "batch", "did you mean batch_id?" },
	{ "GET", "/v1/queues?page=2", 400, "page", "did you mean cursor?" },
	{ "GET", "/v1/queues/default?x=1", 400, "x", "takes none" },
	{ "POST", "/v1/queues/default/pause?x=1", 400, "x", "takes none" },
	{ "POST", "/v1/queues/default/resume?x=1", 400, "x", "takes none" },
	{ "GET", "/v1/info?verbose", 400, "verbose", "takes none" },
	{ "GET", "/v1/cluster?x=1", 400, "x", "takes none" },
	{ "GET", "/metrics?name[]=jobq_waiters", 400, "name[]", "takes none" },
	/* a refused value lists what is taken: every state */
	{ "GET", "/v1/jobs?state=bogus", 400, "state", "queued, running, succeeded, failed, canceled, scheduled" },
	/* taken, or ignored on purpose */
	{ "GET", "/v1/jobs?&limit=5&", 200, NULL, NULL },
	{ "GET", "/v1/jobs?state=succeeded&queue=default&type=echo&limit=5", 200, NULL, NULL },
	{ "GET", "/v1/jobs/{id}?wait=0", 200, NULL, NULL },
	{ "GET", "/v1/queues?limit=5", 200, NULL, NULL },
	{ "GET", "/healthz?probe=lb", 200, NULL, NULL },
	{ "GET", "/readyz?probe=lb", 200, NULL, NULL },
	{ "GET", "/openapi.yaml?v=3", 200, NULL, NULL },
	{ "GET", "/?v=3", 200, NULL, NULL },
	{ "GET", "/app.js?v=3", 200, NULL, NULL },
	{ "GET", "/style.css?v=3", 200, NULL, NULL },
};

#define N_QUERY_CASES ((int)(sizeof query_cases / sizeof query_cases[0]))

START_TEST(api_refuses_unknown_query_parameters_naming_them)
{
	struct jobqd d;
	size_t cap = 64 * 1024;
	char *report = calloc(1, cap);
	int nbad = 0;

	ck_assert(report != NULL);
	harness_start(&d, NULL);
	char *id = submit(&d, "{\"type\":\"echo\"}");
	cJSON_Delete(wait_terminal(&d, id));
	for (int i = 0; i < N_QUERY_CASES; i++) {
		const struct query_case *c = &query_cases[i];
		char path[256], why[2048] = "";
		struct resp r;
		int bad;
		expand_id(path, sizeof path, c->path, id);
		int body = strcmp(c->method, "POST") == 0;
		harness_request(&d, c->method, path, body ? JSON : NULL, body ? "{}" : NULL, NULL, &r);
		if (c->status != 400) {
			bad = r.status != c->status;
			if (bad)
				snprintf(why, sizeof why, "status %ld, want %ld: %.200s", r.status, c->status,
				         r.body ? r.body : "");
		} else {
			bad = harness_problem_mismatch(&r, 400, "invalid_query", c->field, why, sizeof why);
			const char *detail = r.json ? jstr(r.json, "detail") : NULL;
			if (!bad && c->want_detail && (!detail || !strstr(detail, c->want_detail))) {
				snprintf(why, sizeof why, "detail '%s' lacks '%s'", detail ? detail : "-", c->want_detail);
				bad = 1;
			}
		}
		if (bad) {
			size_t len = strlen(report);
			snprintf(report + len, cap - len, "  %s %s: %s\n", c->method, path, why);
			nbad++;
		}
		harness_resp_free(&r);
	}
	ck_assert_msg(nbad == 0, "%d of %d query cases mismatched:\n%s", nbad, N_QUERY_CASES, report);
	/* Nothing changed on the way: the one job is still the only one, and
	 * the queue was not paused by the refused pause. */
	cJSON *l = list(&d, "/v1/jobs?limit=1000");
	assert_list_ids(l, &id, 1, "jobs after refused queries");
	cJSON_Delete(l);
	struct resp q;
	harness_request(&d, "GET", "/v1/queues/default", NULL, NULL, NULL, &q);
	ck_assert_int_eq(q.status, 200);
	ck_assert_msg(q.json && cJSON_IsFalse(jget(q.json, "paused")), "queue paused: %s", q.body);
	harness_resp_free(&q);
	free(report);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- suite ---- */

static Suite *api_suite(void)
{
	Suite *s = suite_create("jobq_api");
	TCase *tc;

	tc = tcase(s, "submit_get");
	tcase_add_test(tc, jobs_submit_echo_returns_201_location_and_queued_job);
	tcase_add_test(tc, jobs_submit_accepts_charset_and_boundary_values);
	tcase_add_test(tc, jobs_get_with_prefer_wait_header_applies_preference);
	tcase_add_test(tc, jobs_wait_wakes_when_short_sleep_completes);
	tcase_add_test(tc, jobs_wait_many_waiters_get_identical_body_and_etag);
	tcase_add_test(tc, jobs_wait_expires_with_running_state_and_progress);
	tcase_add_test(tc, jobs_get_wait_accepts_zero_fraction_and_clamps_large);
	tcase_add_test(tc, jobs_fail_job_reports_its_message);
	tcase_add_test(tc, jobs_payload_comes_back_exactly_as_sent);
	tcase_add_test(tc, jobs_fail_job_default_message_is_failed);

	tc = tcase(s, "cancel");
	tcase_add_test(tc, jobs_cancel_queued_job);
	tcase_add_test(tc, jobs_cancel_running_sleep_job);
	tcase_add_test(tc, jobs_cancel_finished_job_conflicts);
	tcase_add_test(tc, jobs_cancel_unknown_id_not_found);

	tc = tcase(s, "list");
	tcase_add_test(tc, jobs_list_newest_first_with_filters);
	tcase_add_test(tc, jobs_list_cursor_pagination_walks_all_jobs_once);
	tcase_add_test(tc, jobs_list_filters_by_batch_and_ids);
	tcase_add_loop_test(tc, jobs_list_bad_batch_or_ids_is_400, 0, (int)(sizeof bad_many / sizeof bad_many[0]));
	tcase_add_test(tc, batches_get_include_jobs_pages_and_waits);
	tcase_add_loop_test(tc, batches_get_bad_include_is_400, 0,
			    (int)(sizeof bad_include / sizeof bad_include[0]));
	tcase_add_test(tc, batches_idempotency_key_replays_or_conflicts);

	tc = tcase(s, "scheduling_durability");
	tcase_add_test(tc, jobs_higher_priority_runs_first);
	tcase_add_test(tc, jobs_survive_kill9_right_after_201);
	tcase_add_test(tc, jobs_running_job_reruns_after_kill9);
	tcase_add_test(tc, jobs_persist_across_graceful_restart);

	tc = tcase(s, "service");
	tcase_add_test(tc, service_healthz_readyz_and_openapi);
	tcase_add_test(tc, dashboard_files_served_with_etag_and_revalidated);

	tc = tcase(s, "bad_input");
	tcase_add_test(tc, api_rejects_bad_input_with_exact_problems);
	tcase_add_test(tc, jobs_submit_over_max_body_is_413);

	tc = tcase(s, "cli");
	tcase_add_test(tc, cli_help_exits_zero_with_usage);
	tcase_add_test(tc, cli_version_exits_zero);
	tcase_add_loop_test(tc, cli_bad_flag_or_env_exits_2_with_one_line, 0,
			    N_BAD_CLI);
	tcase_add_test(tc, cli_flags_win_over_env);
	tcase_add_test(tc, cli_env_max_body_applies_and_flag_wins);

	tc = tcase(s, "query_parameters");
	tcase_add_test(tc, api_refuses_unknown_query_parameters_naming_them);
	return s;
}

int main(void)
{
	harness_set_job_check(check_job);
	return harness_run(api_suite());
}
