/* Black-box API tests for the issue-3 contract: retries with backoff and
 * attempt history, timeouts, scheduling, queues (limits, pause, stats),
 * crash recovery, graceful shutdown, retry/delete and retention. Each test
 * starts its own jobqd (or the test build, env JOBQD_TEST, with the `crash`
 * and `tally` job types) on port 0 with a fresh temp DB via tests/harness.c.
 * Waits are bounded polls; the only timings asserted are the loose ones the
 * contract makes (e.g. a 30 s job stopped by a 0.3 s timeout). */
#include <math.h>
#include <pthread.h>
#include <signal.h>
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
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define TALLY_FILE "tally.log" /* relative: the test build runs in its temp dir */
#define INTERRUPTED_NO_ATTEMPTS \
	"interrupted: jobqd stopped while the job ran and no attempts are left"

/* ---- small JSON, time and format helpers ---- */

static int jnum(const cJSON *o, const char *k, double *out)
{
	const cJSON *v = jget(o, k);

	if (!cJSON_IsNumber(v))
		return 0;
	*out = v->valuedouble;
	return 1;
}

static int jnum_is(const cJSON *o, const char *k, double want)
{
	double v;

	return jnum(o, k, &v) && fabs(v - want) < 1e-9;
}

/* Formats t (ms since the epoch) as RFC 3339 in the zone offset_min minutes
 * east of UTC ("Z" for 0 unless force_offset), with or without ".mmm". */
static void fmt_time(char *out, size_t n, long long t, int offset_min,
		     int fraction)
{
	time_t secs = (time_t)((t + (long long)offset_min * 60000) / 1000);
	int ms = (int)(t % 1000);
	struct tm tm;
	char base[32], frac[8] = "", zone[16];

	gmtime_r(&secs, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	if (fraction)
		snprintf(frac, sizeof frac, ".%03d", ms);
	if (offset_min == 0)
		snprintf(zone, sizeof zone, "Z");
	else
		snprintf(zone, sizeof zone, "%c%02d:%02d",
			 offset_min < 0 ? '-' : '+', abs(offset_min) / 60,
			 abs(offset_min) % 60);
	snprintf(out, n, "%s%s%s", base, frac, zone);
}

static const char *const job_states[] = { "scheduled", "queued", "running",
	"succeeded", "failed", "canceled", NULL };
static const char *const outcomes[] = { "succeeded", "failed", "timeout",
	"canceled", "interrupted", NULL };

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;
	const char *p = text;

	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p += strlen(needle);
	}
	return n;
}

/* ---- assertions ---- */

#define assert_status(r, st)                                                   \
	ck_assert_msg((r)->status == (long)(st),                               \
		      "status %ld, want %ld %s; body: %.800s", (r)->status,    \
		      (long)(st), (r)->error, (r)->body)

static void assert_history_entry(const cJSON *e, const char *body)
{
	const char *outcome = jstr(e, "outcome");
	long n;

	ck_assert_msg(cJSON_IsObject(e), "history entry not an object: %.1500s",
		      body);
	ck_assert_msg(jint(e, "attempt", &n) && n >= 1,
		      "history attempt not an integer >= 1: %.1500s", body);
	ck_assert_msg(in_list(outcome, outcomes), "history outcome bad: %.1500s",
		      body);
	ck_assert_msg(is_rfc3339_ms(jstr(e, "started_at")),
		      "history started_at not RFC 3339: %.1500s", body);
	/* an interrupted attempt has no known end; all others ended */
	ck_assert_msg(is_rfc3339_ms(jstr(e, "finished_at")) ||
		      (str_eq(outcome, "interrupted") && jnull(e, "finished_at")),
		      "history finished_at not RFC 3339: %.1500s", body);
	ck_assert_msg(jnull(e, "error") || jstr(e, "error") != NULL,
		      "history error neither null nor string: %.1500s", body);
}

/* Every key of the issue-2 and issue-3 job object with the right type;
 * attempt_history too when with_history (single-job GET). */
static void assert_job_shape(const cJSON *j, const char *body, int with_history)
{
	static const char *const keys[] = { "id", "type", "queue", "priority",
		"state", "payload", "result", "error", "progress", "attempts",
		"created_at", "started_at", "finished_at", "max_attempts",
		"backoff_s", "max_backoff_s", "timeout_s", "retention_s",
		"run_at", NULL };
	const cJSON *h, *e;
	double x;
	long n;
	size_t i;

	ck_assert_msg(cJSON_IsObject(j), "job is not a JSON object: %.800s", body);
	for (i = 0; keys[i] != NULL; i++)
		ck_assert_msg(jget(j, keys[i]) != NULL, "job lacks key \"%s\": %.800s",
			      keys[i], body);
	ck_assert_msg(is_uuidv7(jstr(j, "id")), "id not a UUIDv7: %.800s", body);
	ck_assert_msg(in_list(jstr(j, "state"), job_states), "bad state: %.800s",
		      body);
	ck_assert_msg(jint(j, "attempts", &n) && n >= 0,
		      "attempts not an integer >= 0: %.800s", body);
	ck_assert_msg(jint(j, "max_attempts", &n) && n >= 1 && n <= 100,
		      "max_attempts not an integer 1..100: %.800s", body);
	ck_assert_msg(jnum(j, "backoff_s", &x) && x > 0,
		      "backoff_s not a number > 0: %.800s", body);
	ck_assert_msg(jnum(j, "max_backoff_s", &x) && x > 0,
		      "max_backoff_s not a number > 0: %.800s", body);
	ck_assert_msg(jnum(j, "timeout_s", &x) && x > 0,
		      "timeout_s not a number > 0: %.800s", body);
	ck_assert_msg(jnum(j, "retention_s", &x) && x >= 0,
		      "retention_s not a number >= 0: %.800s", body);
	ck_assert_msg(is_rfc3339_ms(jstr(j, "run_at")),
		      "run_at not RFC 3339 with ms: %.800s", body);
	ck_assert_msg(is_rfc3339_ms(jstr(j, "created_at")),
		      "created_at not RFC 3339 with ms: %.800s", body);
	ck_assert_msg(jnull(j, "started_at") || is_rfc3339_ms(jstr(j, "started_at")),
		      "started_at neither null nor RFC 3339: %.800s", body);
	ck_assert_msg(jnull(j, "finished_at") ||
		      is_rfc3339_ms(jstr(j, "finished_at")),
		      "finished_at neither null nor RFC 3339: %.800s", body);
	ck_assert_msg(jnull(j, "error") || jstr(j, "error") != NULL,
		      "error neither null nor string: %.800s", body);
	if (!with_history)
		return;
	h = jget(j, "attempt_history");
	ck_assert_msg(cJSON_IsArray(h), "attempt_history not an array: %.1500s",
		      body);
	cJSON_ArrayForEach(e, h)
		assert_history_entry(e, body);
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

/* Ends a test: SIGTERM must give exit code 0 (graceful stop). Every test
 * cancels its long-running jobs first, so the grace period is not used. */
static void stop_ok(struct jobqd *d)
{
	assert_exit_0(d, harness_stop_keep(d), "stop after SIGTERM");
	harness_cleanup(d);
}

/* Every job the harness reads has the job shape, with attempt_history
 * when it is a GET of one job (its JSON in messages). */
static void check_job(const cJSON *j, const char *text, int from_get)
{
	assert_job_shape(j, text, from_get);
}

#define submit_json(d, body) harness_submit_json((d), (body), NULL)
#define submit_state harness_submit_state
#define submit(d, body) harness_submit_state((d), (body), "queued")
#define get_job harness_get_job
#define wait_terminal(d, id) harness_wait_terminal((d), (id), NULL)
#define wait_state(d, id, state) harness_wait_state((d), (id), (state), NULL)

static cJSON *cancel_ok(const struct jobqd *d, const char *id)
{
	struct resp r;
	cJSON *j;

	job_action(d, id, "cancel", &r);
	assert_status(&r, 200);
	assert_job_shape(r.json, r.body, 0);
	ck_assert_msg(str_eq(jstr(r.json, "state"), "canceled"),
		      "cancel reply not canceled: %.800s", r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

static cJSON *retry_ok(const struct jobqd *d, const char *id)
{
	struct resp r;
	cJSON *j;

	job_action(d, id, "retry", &r);
	assert_status(&r, 200);
	assert_job_shape(r.json, r.body, 0);
	ck_assert_msg(str_eq(jstr(r.json, "state"), "queued"),
		      "retry reply not queued: %.800s", r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

static void delete_job(const struct jobqd *d, const char *id, struct resp *r)
{
	char path[256];

	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	harness_request(d, "DELETE", path, NULL, NULL, NULL, r);
}

static void assert_job_gone(const struct jobqd *d, const char *id)
{
	char path[256];
	struct resp r;

	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	harness_request(d, "GET", path, NULL, NULL, NULL, &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
}

/* Polls GET every 50 ms until it answers 404 job_not_found, at most
 * bound_ms; fails the test if the job is still there. */
static void wait_gone(const struct jobqd *d, const char *id, double bound_ms,
		      const char *what)
{
	double end = mono_ms() + bound_ms;
	char path[256];
	struct resp r;

	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	for (;;) {
		harness_request(d, "GET", path, NULL, NULL, NULL, &r);
		if (r.status == 404)
			break;
		ck_assert_msg(r.status == 200 && mono_ms() < end,
			      "%s: job %s still answers %ld after %.0f ms: %.800s",
			      what, id, r.status, bound_ms, r.body);
		harness_resp_free(&r);
		nap_ms(50);
	}
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
}

/* The attempt_history array of a single-job GET and its length. */
static const cJSON *history(const cJSON *j)
{
	return jget(j, "attempt_history");
}

static int history_len(const cJSON *j)
{
	return cJSON_GetArraySize(history(j));
}

static char *dump(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);

	ck_assert(s != NULL);
	return s;
}

/* GET a list path; asserts 200 and the list shape. */
static cJSON *list(const struct jobqd *d, const char *path)
{
	struct resp r;
	const cJSON *it;
	cJSON *j;

	harness_request(d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(cJSON_IsArray(jget(r.json, "jobs")),
		      "jobs not an array: %.800s", r.body);
	cJSON_ArrayForEach(it, jget(r.json, "jobs"))
		assert_job_shape(it, r.body, 0);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

static int list_has(const cJSON *l, const char *id)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, jget(l, "jobs"))
		if (str_eq(jstr(it, "id"), id))
			return 1;
	return 0;
}

/* ---- queues ---- */

static const char *const count_keys[] = { "scheduled", "queued", "running",
	"succeeded", "failed", "canceled", NULL };

static void assert_queue_shape(const cJSON *q, const char *body)
{
	const cJSON *c, *v;
	long n;
	size_t i;

	ck_assert_msg(cJSON_IsObject(q), "queue not an object: %.800s", body);
	ck_assert_msg(jstr(q, "name") != NULL, "queue name not a string: %.800s",
		      body);
	ck_assert_msg(cJSON_IsBool(jget(q, "paused")),
		      "queue paused not a boolean: %.800s", body);
	v = jget(q, "concurrency");
	ck_assert_msg(cJSON_IsNull(v) || (jint(q, "concurrency", &n) && n >= 1),
		      "queue concurrency neither null nor integer: %.800s", body);
	c = jget(q, "counts");
	ck_assert_msg(cJSON_IsObject(c), "queue counts not an object: %.800s",
		      body);
	for (i = 0; count_keys[i] != NULL; i++)
		ck_assert_msg(jint(c, count_keys[i], &n) && n >= 0,
			      "counts.%s not an integer >= 0: %.800s",
			      count_keys[i], body);
	v = jget(q, "oldest_queued_age_s");
	ck_assert_msg(cJSON_IsNull(v) || cJSON_IsNumber(v),
		      "oldest_queued_age_s neither null nor number: %.800s", body);
	ck_assert_msg(jint(q, "finished_last_minute", &n) && n >= 0,
		      "finished_last_minute not an integer >= 0: %.800s", body);
}

static cJSON *get_queue(const struct jobqd *d, const char *name)
{
	char path[256];
	struct resp r;
	cJSON *j;

	snprintf(path, sizeof path, "/v1/queues/%s", name);
	harness_request(d, "GET", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_queue_shape(r.json, r.body);
	ck_assert_msg(str_eq(jstr(r.json, "name"), name),
		      "GET %s answered %.800s", path, r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

/* POST /v1/queues/{name}/pause or /resume; asserts 200 and paused flag. */
static cJSON *queue_action(const struct jobqd *d, const char *name,
			   const char *action)
{
	char path[256];
	struct resp r;
	cJSON *j;
	int want = strcmp(action, "pause") == 0;

	snprintf(path, sizeof path, "/v1/queues/%s/%s", name, action);
	harness_request(d, "POST", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_queue_shape(r.json, r.body);
	ck_assert_msg(str_eq(jstr(r.json, "name"), name) &&
		      cJSON_IsBool(jget(r.json, "paused")) &&
		      cJSON_IsTrue(jget(r.json, "paused")) == want,
		      "POST %s: %.800s", path, r.body);
	j = take_json(&r);
	harness_resp_free(&r);
	return j;
}

static long qcount(const cJSON *q, const char *state)
{
	return jlong(jget(q, "counts"), state);
}

/* Asserts the six counts of q are exactly want (in count_keys order). */
static void assert_counts(const cJSON *q, const long want[6])
{
	char *s = dump(q);
	size_t i;

	for (i = 0; count_keys[i] != NULL; i++)
		ck_assert_msg(qcount(q, count_keys[i]) == want[i],
			      "queue %s: counts.%s %ld, want %ld: %s",
			      jstr_or(q, "name"), count_keys[i],
			      qcount(q, count_keys[i]), want[i], s);
	free(s);
}

/* ---- the test build (crash, tally) ---- */

static void start_test_build(struct jobqd *d, const char *const *args)
{
	harness_start_bin(d, "JOBQD_TEST", "build/jobqd-test", args,
			  ARGS("JOBQ_TEST_TALLY=" TALLY_FILE));
}

static char *read_tally(const struct jobqd *d)
{
	char path[HARNESS_PATH_MAX + 16];

	snprintf(path, sizeof path, "%s/%s", d->dir, TALLY_FILE);
	return harness_read_file(path);
}

/* Polls (at most 10 s) until the tally file has n lines "<id> ...". */
static void wait_tally_lines(const struct jobqd *d, const char *id, int n)
{
	double end = mono_ms() + 10000.0;
	char needle[64];
	char *t;

	snprintf(needle, sizeof needle, "%s ", id);
	for (;;) {
		t = read_tally(d);
		if (count_lines_with(t, needle) >= n)
			break;
		ck_assert_msg(mono_ms() < end,
			      "tally file has not %d lines for %s after 10 s: [%s]",
			      n, id, t);
		free(t);
		nap_ms(10);
	}
	free(t);
}

/* ---- retries ---- */

START_TEST(retries_fail_job_exhausts_attempts_with_history)
{
	struct jobqd d;
	const cJSON *e;
	char *id, *s;
	long long prev_end = 0;
	int i;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"fail\",\"payload\":{\"message\":\"boom 3\"},"
			"\"max_attempts\":3,\"backoff_s\":0.05}");
	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed"), "state: %s", s);
	ck_assert_msg(jlong(j, "attempts") == 3, "attempts not 3: %s", s);
	ck_assert_msg(jlong(j, "max_attempts") == 3, "max_attempts: %s", s);
	ck_assert_msg(jnum_is(j, "backoff_s", 0.05), "backoff_s: %s", s);
	ck_assert_msg(str_eq(jstr(j, "error"), "boom 3"), "error: %s", s);
	ck_assert_msg(history_len(j) == 3, "attempt_history has %d entries, want 3: %s",
		      history_len(j), s);
	for (i = 0; i < 3; i++) {
		e = history_at(j, i);
		ck_assert_msg(jlong(e, "attempt") == i + 1,
			      "history[%d].attempt not %d: %s", i, i + 1, s);
		ck_assert_msg(str_eq(jstr(e, "outcome"), "failed"),
			      "history[%d].outcome not failed: %s", i, s);
		ck_assert_msg(str_eq(jstr(e, "error"), "boom 3"),
			      "history[%d].error not \"boom 3\": %s", i, s);
		ck_assert_msg(jts(e, "started_at") >= prev_end,
			      "history[%d] started before the previous attempt "
			      "finished: %s", i, s);
		ck_assert_msg(jts(e, "finished_at") >= jts(e, "started_at"),
			      "history[%d] finished before it started: %s", i, s);
		prev_end = jts(e, "finished_at");
	}
	free(s);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

/* A long base backoff (full jitter in [0, 3600 s]) so that the wait
 * between attempts is caught; the job is canceled afterwards. */
START_TEST(retries_waiting_job_is_scheduled_with_future_run_at)
{
	struct jobqd d;
	double end;
	long long finished, now;
	char *id, *s;
	cJSON *j, *l;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"fail\",\"payload\":{\"message\":\"first\"},"
			"\"max_attempts\":2,\"backoff_s\":3600,"
			"\"max_backoff_s\":3600}");
	end = mono_ms() + 10000.0;
	for (;;) {
		j = get_job(&d, id, NULL);
		if (!str_eq(jstr(j, "state"), "queued") &&
		    !str_eq(jstr(j, "state"), "running"))
			break;
		ck_assert_msg(mono_ms() < end, "first attempt not over after 10 s");
		cJSON_Delete(j);
		nap_ms(10);
	}
	now = wall_ms();
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "scheduled"),
		      "after a failed first attempt of 2 the job is not scheduled: %s",
		      s);
	ck_assert_msg(jlong(j, "attempts") == 1, "attempts not 1: %s", s);
	ck_assert_msg(str_eq(jstr(j, "error"), "first"),
		      "error does not hold the last error: %s", s);
	ck_assert_msg(history_len(j) == 1 &&
		      str_eq(jstr(history_at(j, 0), "outcome"), "failed"),
		      "history is not one failed attempt: %s", s);
	finished = jts(history_at(j, 0), "finished_at");
	ck_assert_msg(jts(j, "run_at") >= finished,
		      "run_at before the failure: %s", s);
	ck_assert_msg(jts(j, "run_at") > now, "run_at not in the future (now %lld): %s",
		      now, s);
	ck_assert_msg(jts(j, "run_at") <= finished + 3600 * 1000LL,
		      "run_at beyond the backoff cap: %s", s);
	free(s);
	cJSON_Delete(j);

	l = list(&d, "/v1/jobs?state=scheduled");
	ck_assert_msg(list_has(l, id), "?state=scheduled lacks the waiting retry");
	cJSON_Delete(l);
	j = cancel_ok(&d, id);
	ck_assert_msg(jlong(j, "attempts") == 1, "cancel changed attempts");
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(retries_non_retryable_fail_stops_after_one_attempt)
{
	struct jobqd d;
	char *id, *again, *s;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"fail\",\"payload\":{\"message\":\"fatal\","
			"\"retryable\":false},\"max_attempts\":5,\"backoff_s\":0.05}");
	again = submit(&d, "{\"type\":\"fail\",\"payload\":{\"retryable\":true},"
			   "\"max_attempts\":2,\"backoff_s\":0.05}");
	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed"), "state: %s", s);
	ck_assert_msg(jlong(j, "attempts") == 1,
		      "non-retryable failure ran more than once: %s", s);
	ck_assert_msg(str_eq(jstr(j, "error"), "fatal"), "error: %s", s);
	ck_assert_msg(history_len(j) == 1 &&
		      str_eq(jstr(history_at(j, 0), "outcome"), "failed"),
		      "history: %s", s);
	free(s);
	cJSON_Delete(j);

	j = wait_terminal(&d, again);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed") &&
		      jlong(j, "attempts") == 2 && history_len(j) == 2,
		      "retryable:true did not use both attempts: %s", s);
	free(s);
	cJSON_Delete(j);
	free(id);
	free(again);
	stop_ok(&d);
}
END_TEST

/* Each attempt really runs the job again (test build: tally appends one line
 * per run with the attempt number, and reports it in its result). */
START_TEST(retries_each_attempt_runs_the_job_again)
{
	struct jobqd d;
	char *id, *ok, *t, *s, want[256];
	cJSON *j;

	start_test_build(&d, NULL);
	id = submit(&d, "{\"type\":\"tally\",\"payload\":{\"fail\":true},"
			"\"max_attempts\":3,\"backoff_s\":0.05}");
	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed") &&
		      jlong(j, "attempts") == 3 && history_len(j) == 3,
		      "tally fail:true with 3 attempts: %s", s);
	free(s);
	cJSON_Delete(j);
	t = read_tally(&d);
	snprintf(want, sizeof want, "%s 1\n%s 2\n%s 3\n", id, id, id);
	ck_assert_msg(strcmp(t, want) == 0, "tally file:\n[%s]\nwant:\n[%s]", t,
		      want);
	free(t);

	ok = submit(&d, "{\"type\":\"tally\",\"payload\":{}}");
	j = wait_terminal(&d, ok);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") &&
		      json_equal_text(jget(j, "result"), "{\"attempt\":1}"),
		      "tally result: %s", s);
	free(s);
	cJSON_Delete(j);
	free(id);
	free(ok);
	stop_ok(&d);
}
END_TEST

/* ---- defaults and flags ---- */

static void assert_defaults(const cJSON *j, long max_attempts, double backoff,
			    double max_backoff, double timeout, double retention)
{
	char *s = dump(j);

	ck_assert_msg(jlong(j, "max_attempts") == max_attempts,
		      "max_attempts, want %ld: %s", max_attempts, s);
	ck_assert_msg(jnum_is(j, "backoff_s", backoff), "backoff_s, want %g: %s",
		      backoff, s);
	ck_assert_msg(jnum_is(j, "max_backoff_s", max_backoff),
		      "max_backoff_s, want %g: %s", max_backoff, s);
	ck_assert_msg(jnum_is(j, "timeout_s", timeout), "timeout_s, want %g: %s",
		      timeout, s);
	ck_assert_msg(jnum_is(j, "retention_s", retention),
		      "retention_s, want %g: %s", retention, s);
	free(s);
}

START_TEST(defaults_job_shows_contract_defaults)
{
	struct jobqd d;
	char *id, *s;
	cJSON *j, *l;

	harness_start(&d, NULL);
	j = submit_json(&d, "{\"type\":\"echo\",\"payload\":1}");
	ck_assert_str_eq(jstr(j, "state"), "queued");
	assert_defaults(j, 3, 1, 300, 3600, 604800);
	ck_assert_msg(str_eq(jstr(j, "run_at"), jstr(j, "created_at")),
		      "run_at %s != created_at %s for an immediate job",
		      jstr_or(j, "run_at"), jstr_or(j, "created_at"));
	id = strdup(jstr(j, "id"));
	cJSON_Delete(j);

	j = wait_terminal(&d, id);
	s = dump(j);
	assert_defaults(j, 3, 1, 300, 3600, 604800);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && history_len(j) == 1,
		      "echo: %s", s);
	ck_assert_msg(jlong(history_at(j, 0), "attempt") == 1 &&
		      str_eq(jstr(history_at(j, 0), "outcome"), "succeeded") &&
		      jnull(history_at(j, 0), "error"),
		      "history of a succeeded echo: %s", s);
	ck_assert_msg(str_eq(jstr(history_at(j, 0), "started_at"),
			     jstr(j, "started_at")) &&
		      str_eq(jstr(history_at(j, 0), "finished_at"),
			     jstr(j, "finished_at")),
		      "history times differ from the job's: %s", s);
	free(s);
	cJSON_Delete(j);

	/* the list carries the new keys too (checked by list()) */
	l = list(&d, "/v1/jobs");
	ck_assert_msg(list_has(l, id), "job not listed");
	cJSON_Delete(l);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(defaults_server_flags_change_job_defaults)
{
	struct jobqd d;
	char *fail_id, *slp, *s;
	const cJSON *e;
	int i;
	cJSON *j;

	harness_start(&d, ARGS("--max-attempts", "2", "--backoff", "0.05",
			       "--max-backoff", "0.1", "--timeout", "0.3",
			       "--retention", "120"));
	j = submit_json(&d, "{\"type\":\"echo\",\"delay_s\":60}");
	assert_defaults(j, 2, 0.05, 0.1, 0.3, 120);
	cJSON_Delete(cancel_ok(&d, jstr(j, "id")));
	cJSON_Delete(j);
	/* per-job fields still win */
	j = submit_json(&d, "{\"type\":\"echo\",\"delay_s\":60,\"max_attempts\":7,"
			    "\"backoff_s\":2,\"max_backoff_s\":20,\"timeout_s\":9,"
			    "\"retention_s\":11}");
	assert_defaults(j, 7, 2, 20, 9, 11);
	cJSON_Delete(cancel_ok(&d, jstr(j, "id")));
	cJSON_Delete(j);

	/* and the defaults act: 2 attempts, a 0.3 s timeout */
	fail_id = submit(&d, "{\"type\":\"fail\"}");
	slp = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	j = wait_terminal(&d, fail_id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed") &&
		      jlong(j, "attempts") == 2 && history_len(j) == 2,
		      "--max-attempts 2 not applied: %s", s);
	free(s);
	cJSON_Delete(j);
	j = wait_terminal(&d, slp);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed") &&
		      jlong(j, "attempts") == 2 && history_len(j) == 2,
		      "--timeout 0.3 with --max-attempts 2 on a 30 s sleep: %s", s);
	for (i = 0; i < 2; i++) {
		e = history_at(j, i);
		ck_assert_msg(str_eq(jstr(e, "outcome"), "timeout"),
			      "history[%d] not timeout: %s", i, s);
	}
	free(s);
	cJSON_Delete(j);
	free(fail_id);
	free(slp);
	stop_ok(&d);
}
END_TEST

START_TEST(defaults_env_vars_apply_and_flags_win)
{
	struct jobqd d;
	cJSON *j, *q;

	harness_start_env(&d, ARGS("--timeout", "8"),
			  ARGS("JOBQ_MAX_ATTEMPTS=7", "JOBQ_BACKOFF=2",
			       "JOBQ_MAX_BACKOFF=20", "JOBQ_TIMEOUT=30",
			       "JOBQ_RETENTION=99", "JOBQ_QUEUE=ea=1,eb=2"));
	j = submit_json(&d, "{\"type\":\"echo\",\"delay_s\":60}");
	assert_defaults(j, 7, 2, 20, 8, 99);
	cJSON_Delete(cancel_ok(&d, jstr(j, "id")));
	cJSON_Delete(j);
	q = get_queue(&d, "ea");
	ck_assert_msg(jlong(q, "concurrency") == 1, "JOBQ_QUEUE ea=1 not applied");
	cJSON_Delete(q);
	q = get_queue(&d, "eb");
	ck_assert_msg(jlong(q, "concurrency") == 2, "JOBQ_QUEUE eb=2 not applied");
	cJSON_Delete(q);
	stop_ok(&d);
}
END_TEST

/* A new flag (name "--x") or env var (name "JOBQ_X"): jobqd starts with
 * the good value (so the flag exists) and exits 2 with one line with the
 * bad one (bad NULL: the flag without a value). */
struct cli_case {
	const char *name;
	const char *bad;
	const char *good;
};

static const struct cli_case bad_cli[] = {
	{ "--max-attempts", "0", "1" },
	{ "--max-attempts", "101", "100" },
	{ "--max-attempts", "1.5", "2" },
	{ "--max-attempts", "x", "3" },
	{ "--backoff", "abc", "0.5" },
	{ "--backoff", "-1", "2" },
	{ "--max-backoff", "abc", "600" },
	{ "--timeout", "abc", "0.5" },
	{ "--timeout", "-1", "10" },
	{ "--retention", "abc", "0.5" },
	{ "--retention", "-1", "10" },
	{ "--shutdown-grace", "abc", "1" },
	{ "--shutdown-grace", "-1", "0.5" },
	{ "--queue", "noequals", "a=1" },
	{ "--queue", "a=0", "a=1" },
	{ "--queue", "a=1025", "a=1024" },
	{ "--queue", "a=x", "a=2" },
	{ "--queue", "=1", "a.b:c-d_e=3" },
	{ "--queue", "a b=1", "ab=1" },
	{ "--queue", NULL, "a=1" },
	{ "JOBQ_MAX_ATTEMPTS", "0", "5" },
	{ "JOBQ_BACKOFF", "abc", "5" },
	{ "JOBQ_MAX_BACKOFF", "abc", "5" },
	{ "JOBQ_TIMEOUT", "abc", "5" },
	{ "JOBQ_RETENTION", "abc", "5" },
	{ "JOBQ_SHUTDOWN_GRACE", "abc", "5" },
	{ "JOBQ_QUEUE", "a=x", "a=1,b=2" },
};

#define N_BAD_CLI ((int)(sizeof bad_cli / sizeof bad_cli[0]))

START_TEST(cli_bad_new_flag_or_env_exits_2_with_one_line)
{
	const struct cli_case *c = &bad_cli[_i];
	int is_flag = strncmp(c->name, "--", 2) == 0;
	struct cli_result res;
	struct jobqd d;
	char what[256], env[128];
	const char *p;
	int lines = 0;
	size_t n;

	/* the good value is accepted: the flag or variable exists */
	if (is_flag) {
		harness_start(&d, ARGS(c->name, c->good));
	} else {
		snprintf(env, sizeof env, "%s=%s", c->name, c->good);
		harness_start_env(&d, NULL, ARGS(env));
	}
	stop_ok(&d);

	if (is_flag) {
		snprintf(what, sizeof what, "jobqd %s %s", c->name,
			 c->bad ? c->bad : "(no value)");
		if (c->bad != NULL)
			harness_run_cli(ARGS("--listen", "127.0.0.1:0", c->name,
					     c->bad), NULL, &res);
		else
			harness_run_cli(ARGS("--listen", "127.0.0.1:0", c->name),
					NULL, &res);
	} else {
		snprintf(env, sizeof env, "%s=%s", c->name, c->bad);
		snprintf(what, sizeof what, "%s jobqd", env);
		harness_run_cli(ARGS("--listen", "127.0.0.1:0"), ARGS(env), &res);
	}
	ck_assert_msg(res.status == 2, "%s: exit %d%s, want 2; stderr: %s", what,
		      res.status, res.timed_out ? " (still running after 10 s)" : "",
		      res.err);
	for (p = res.err; *p; p++)
		lines += *p == '\n';
	n = strlen(res.err);
	ck_assert_msg(n > 1 && lines == 1 && res.err[n - 1] == '\n',
		      "%s: stderr is not exactly one line: [%s]", what, res.err);
	harness_cli_result_free(&res);
}
END_TEST

/* ---- timeouts ---- */

START_TEST(timeout_sleep_job_times_out_each_attempt)
{
	struct jobqd d;
	const cJSON *e;
	char *id, *s;
	int i;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30},"
			"\"timeout_s\":0.3,\"max_attempts\":2,\"backoff_s\":0.05}");
	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed"), "state: %s", s);
	ck_assert_msg(jlong(j, "attempts") == 2, "attempts not 2: %s", s);
	ck_assert_msg(jnum_is(j, "timeout_s", 0.3), "timeout_s: %s", s);
	ck_assert_msg(jstr(j, "error") != NULL &&
		      strncmp(jstr(j, "error"), "timeout", 7) == 0,
		      "error does not start with \"timeout\": %s", s);
	ck_assert_msg(jnull(j, "result"), "result not null: %s", s);
	ck_assert_msg(history_len(j) == 2, "history length not 2: %s", s);
	for (i = 0; i < 2; i++) {
		e = history_at(j, i);
		ck_assert_msg(jlong(e, "attempt") == i + 1 &&
			      str_eq(jstr(e, "outcome"), "timeout") &&
			      jstr(e, "error") != NULL &&
			      strncmp(jstr(e, "error"), "timeout", 7) == 0,
			      "history[%d] not a timeout: %s", i, s);
	}
	/* loose: a 30 s sleep stopped by a 0.3 s timeout twice */
	ck_assert_msg(jts(j, "finished_at") - jts(j, "created_at") < 10000,
		      "timed-out job took >= 10 s: %s", s);
	free(s);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- scheduling ---- */

START_TEST(schedule_delay_s_waits_for_run_at_then_runs)
{
	struct jobqd d;
	long long created, run_at, started;
	char *id, *s;
	cJSON *j, *l;

	harness_start(&d, NULL);
	j = submit_json(&d, "{\"type\":\"echo\",\"payload\":\"later\",\"delay_s\":1}");
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "scheduled"),
		      "delayed job not scheduled at submit: %s", s);
	created = jts(j, "created_at");
	run_at = jts(j, "run_at");
	ck_assert_msg(run_at - created >= 950 && run_at - created <= 1500,
		      "run_at - created_at = %lld ms, want about 1000: %s",
		      run_at - created, s);
	ck_assert_msg(jlong(j, "attempts") == 0 && jnull(j, "started_at"),
		      "scheduled job already claimed: %s", s);
	id = strdup(jstr(j, "id"));
	free(s);
	cJSON_Delete(j);

	j = get_job(&d, id, NULL);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "scheduled"),
		      "delayed job not scheduled right after submit: %s", s);
	ck_assert_msg(history_len(j) == 0, "history not [] before any attempt: %s",
		      s);
	free(s);
	cJSON_Delete(j);
	l = list(&d, "/v1/jobs?state=scheduled");
	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 1 && list_has(l, id),
		      "?state=scheduled does not list exactly the delayed job");
	cJSON_Delete(l);
	l = list(&d, "/v1/jobs?state=queued");
	ck_assert_msg(!list_has(l, id), "scheduled job listed as queued");
	cJSON_Delete(l);

	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") &&
		      str_eq(jstr(j, "result"), "later"), "delayed job: %s", s);
	started = jts(j, "started_at");
	ck_assert_msg(started >= run_at, "started before run_at: %s", s);
	ck_assert_msg(started - run_at < 1000,
		      "started %lld ms after run_at (contract: within 50 ms): %s",
		      started - run_at, s);
	ck_assert_msg(jts(j, "run_at") == run_at, "run_at changed: %s", s);
	free(s);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(schedule_run_at_accepts_rfc3339_forms)
{
	struct {
		int offset_min, fraction;
		long long ahead_ms;
	} forms[] = {
		{ 0, 1, 1200 },     /* 2026-...T..:..:..123Z */
		{ 120, 1, 1300 },   /* ...+02:00 with fraction */
		{ -330, 0, 1000 },  /* ...-05:30, whole seconds */
		{ 0, 0, 1000 },     /* ...Z, whole seconds */
	};
	struct jobqd d;
	char body[256], when[64], *ids[4], *s;
	long long want[4], base, run_at, started;
	int i;
	cJSON *j;

	harness_start(&d, NULL);
	base = wall_ms();
	for (i = 0; i < 4; i++) {
		want[i] = base + forms[i].ahead_ms;
		if (!forms[i].fraction)
			want[i] = (want[i] / 1000 + 1) * 1000;
		fmt_time(when, sizeof when, want[i], forms[i].offset_min,
			 forms[i].fraction);
		snprintf(body, sizeof body,
			 "{\"type\":\"echo\",\"payload\":%d,\"run_at\":\"%s\"}", i,
			 when);
		j = submit_json(&d, body);
		s = dump(j);
		ck_assert_msg(str_eq(jstr(j, "state"), "scheduled"),
			      "run_at %s: not scheduled: %s", when, s);
		ck_assert_msg(jts(j, "run_at") == want[i],
			      "run_at %s reads back as %s: %s", when,
			      jstr_or(j, "run_at"), s);
		ids[i] = strdup(jstr(j, "id"));
		free(s);
		cJSON_Delete(j);
	}
	for (i = 0; i < 4; i++) {
		j = wait_terminal(&d, ids[i]);
		s = dump(j);
		run_at = jts(j, "run_at");
		started = jts(j, "started_at");
		ck_assert_msg(str_eq(jstr(j, "state"), "succeeded"), "job %d: %s", i,
			      s);
		ck_assert_msg(started >= run_at && started >= want[i],
			      "job %d started before its run_at: %s", i, s);
		ck_assert_msg(started - run_at < 1000,
			      "job %d started %lld ms after run_at: %s", i,
			      started - run_at, s);
		free(s);
		cJSON_Delete(j);
		free(ids[i]);
	}
	stop_ok(&d);
}
END_TEST

START_TEST(schedule_run_at_in_past_runs_at_once)
{
	struct jobqd d;
	char *id, *s;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit_state(&d, "{\"type\":\"echo\",\"payload\":\"now\","
			      "\"run_at\":\"2020-01-01T00:00:00Z\"}", "queued");
	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded"), "past run_at: %s", s);
	ck_assert_msg(jts(j, "started_at") - jts(j, "created_at") < 1000,
		      "a past run_at did not run at once: %s", s);
	free(s);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(schedule_cancel_scheduled_job)
{
	struct jobqd d;
	struct resp r;
	char *id, *s;
	cJSON *j, *l;

	harness_start(&d, NULL);
	id = submit_state(&d, "{\"type\":\"echo\",\"delay_s\":60}", "scheduled");
	j = cancel_ok(&d, id);
	s = dump(j);
	ck_assert_msg(jlong(j, "attempts") == 0 && jnull(j, "started_at") &&
		      jstr(j, "error") != NULL && is_rfc3339_ms(jstr(j, "finished_at")),
		      "canceled scheduled job: %s", s);
	free(s);
	cJSON_Delete(j);
	j = get_job(&d, id, NULL);
	ck_assert_str_eq(jstr(j, "state"), "canceled");
	cJSON_Delete(j);
	job_action(&d, id, "cancel", &r);
	assert_problem(&r, 409, "job_finished", NULL);
	harness_resp_free(&r);
	l = list(&d, "/v1/jobs?state=scheduled");
	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 0,
		      "canceled job still listed as scheduled");
	cJSON_Delete(l);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- priorities and sharing ---- */

START_TEST(priority_higher_first_then_submission_order_within_queue)
{
	struct jobqd d;
	char *blocker, *ids[4];
	const char *names[4] = { "high", "mid1", "mid2", "low" };
	long long t[4];
	cJSON *j;
	int i;

	harness_start(&d, ARGS("--workers", "1"));
	blocker = submit(&d, "{\"type\":\"sleep\",\"queue\":\"p\","
			     "\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, blocker, "running"));
	ids[3] = submit(&d, "{\"type\":\"sleep\",\"queue\":\"p\",\"priority\":-5,"
			    "\"payload\":{\"seconds\":0.05}}");
	ids[1] = submit(&d, "{\"type\":\"sleep\",\"queue\":\"p\","
			    "\"payload\":{\"seconds\":0.05}}");
	ids[0] = submit(&d, "{\"type\":\"sleep\",\"queue\":\"p\",\"priority\":10,"
			    "\"payload\":{\"seconds\":0.05}}");
	ids[2] = submit(&d, "{\"type\":\"sleep\",\"queue\":\"p\",\"priority\":0,"
			    "\"payload\":{\"seconds\":0.05}}");
	cJSON_Delete(cancel_ok(&d, blocker));
	for (i = 0; i < 4; i++) {
		j = wait_terminal(&d, ids[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		t[i] = jts(j, "started_at");
		cJSON_Delete(j);
	}
	for (i = 1; i < 4; i++)
		ck_assert_msg(t[i - 1] < t[i],
			      "%s started at %lld, not before %s at %lld", names[i - 1],
			      t[i - 1], names[i], t[i]);
	for (i = 0; i < 4; i++)
		free(ids[i]);
	free(blocker);
	stop_ok(&d);
}
END_TEST

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

START_TEST(queues_free_workers_shared_round_robin)
{
	struct jobqd d;
	char *blocker, *ids[6], body[160];
	long long key[6]; /* started_at * 8 + index: sorts by start */
	int i, k, prev = -1;
	cJSON *j;

	harness_start(&d, ARGS("--workers", "1"));
	blocker = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, blocker, "running"));
	/* qa first and with higher priority: priority does not cross queues */
	for (i = 0; i < 6; i++) {
		snprintf(body, sizeof body,
			 "{\"type\":\"sleep\",\"queue\":\"%s\",\"priority\":%d,"
			 "\"payload\":{\"seconds\":0.05}}",
			 i < 3 ? "qa" : "qb", i < 3 ? 100 : 0);
		ids[i] = submit(&d, body);
	}
	cJSON_Delete(cancel_ok(&d, blocker));
	for (i = 0; i < 6; i++) {
		j = wait_terminal(&d, ids[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		key[i] = jts(j, "started_at") * 8 + i;
		cJSON_Delete(j);
	}
	qsort(key, 6, sizeof key[0], cmp_ll);
	for (i = 0; i < 6; i++) {
		k = (int)(key[i] % 8);
		ck_assert_msg(prev < 0 || (k < 3) != (prev < 3),
			      "start order %d: job %d of %s follows job %d of the "
			      "same queue (want qa/qb alternating)",
			      i, k, k < 3 ? "qa" : "qb", prev);
		prev = k;
	}
	for (i = 0; i < 6; i++)
		free(ids[i]);
	free(blocker);
	stop_ok(&d);
}
END_TEST

/* ---- queues ---- */

START_TEST(queues_concurrency_limit_caps_running_jobs)
{
	struct jobqd d;
	char *lim[3], *other;
	long long st[3], fin[3], ost;
	long running, max_running = 0;
	double end;
	int i, k;
	cJSON *j, *q;

	harness_start(&d, ARGS("--workers", "4", "--queue", "limited=1"));
	for (i = 0; i < 3; i++)
		lim[i] = submit(&d, "{\"type\":\"sleep\",\"queue\":\"limited\","
				    "\"payload\":{\"seconds\":0.5}}");
	other = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.5}}");
	end = mono_ms() + 15000.0;
	for (;;) {
		q = get_queue(&d, "limited");
		ck_assert_msg(jlong(q, "concurrency") == 1, "concurrency not 1");
		running = qcount(q, "running");
		ck_assert_msg(running <= 1,
			      "%ld jobs of queue limited=1 running at once", running);
		if (running > max_running)
			max_running = running;
		if (qcount(q, "succeeded") == 3) {
			cJSON_Delete(q);
			break;
		}
		ck_assert_msg(mono_ms() < end, "limited jobs not done after 15 s");
		cJSON_Delete(q);
		nap_ms(20);
	}
	ck_assert_msg(max_running == 1, "never saw a limited job running");
	for (i = 0; i < 3; i++) {
		j = wait_terminal(&d, lim[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		st[i] = jts(j, "started_at");
		fin[i] = jts(j, "finished_at");
		cJSON_Delete(j);
	}
	for (i = 0; i < 3; i++)
		for (k = 0; k < 3; k++)
			ck_assert_msg(i == k || fin[i] <= st[k] || fin[k] <= st[i],
				      "limited jobs %d [%lld, %lld] and %d [%lld, %lld] "
				      "overlap", i, st[i], fin[i], k, st[k], fin[k]);
	/* the other workers were free for another queue meanwhile */
	j = wait_terminal(&d, other);
	ost = jts(j, "started_at");
	cJSON_Delete(j);
	qsort(st, 3, sizeof st[0], cmp_ll);
	ck_assert_msg(ost < st[1],
		      "a default-queue job waited behind the limited queue");
	for (i = 0; i < 3; i++)
		free(lim[i]);
	free(other);
	stop_ok(&d);
}
END_TEST

START_TEST(queues_pause_holds_jobs_and_resume_runs_them)
{
	struct jobqd d;
	char *held, *other, *slow, *s;
	double age;
	cJSON *j, *q;

	harness_start(&d, NULL);
	/* a running job of a queue that gets paused still finishes */
	slow = submit(&d, "{\"type\":\"sleep\",\"queue\":\"p\","
			  "\"payload\":{\"seconds\":0.3}}");
	cJSON_Delete(wait_state(&d, slow, "running"));
	q = queue_action(&d, "p", "pause");
	ck_assert_msg(jnull(q, "concurrency"), "concurrency not null");
	cJSON_Delete(q);
	cJSON_Delete(queue_action(&d, "p", "pause")); /* idempotent */
	held = submit(&d, "{\"type\":\"echo\",\"queue\":\"p\",\"payload\":\"held\"}");
	j = wait_terminal(&d, slow);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded"),
		      "running job of a paused queue did not finish");
	cJSON_Delete(j);

	/* another queue runs; the paused one does not */
	other = submit(&d, "{\"type\":\"echo\",\"queue\":\"o\"}");
	cJSON_Delete(wait_terminal(&d, other));
	nap_ms(200);
	j = get_job(&d, held, NULL);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "queued") &&
		      jlong(j, "attempts") == 0,
		      "job of a paused queue did not stay queued: %s", s);
	free(s);
	cJSON_Delete(j);
	q = get_queue(&d, "p");
	s = dump(q);
	ck_assert_msg(cJSON_IsTrue(jget(q, "paused")), "not paused: %s", s);
	ck_assert_msg(qcount(q, "queued") == 1 && qcount(q, "succeeded") == 1,
		      "counts: %s", s);
	ck_assert_msg(jnum(q, "oldest_queued_age_s", &age) && age > 0,
		      "oldest_queued_age_s not > 0 with a job waiting: %s", s);
	free(s);
	cJSON_Delete(q);

	cJSON_Delete(queue_action(&d, "p", "resume"));
	j = wait_terminal(&d, held);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") &&
		      str_eq(jstr(j, "result"), "held"),
		      "resumed job did not run");
	cJSON_Delete(j);
	cJSON_Delete(queue_action(&d, "p", "resume")); /* idempotent */
	q = get_queue(&d, "p");
	ck_assert_msg(cJSON_IsFalse(jget(q, "paused")) &&
		      jnull(q, "oldest_queued_age_s") && qcount(q, "queued") == 0,
		      "queue after resume and run");
	cJSON_Delete(q);
	free(held);
	free(other);
	free(slow);
	stop_ok(&d);
}
END_TEST

START_TEST(queues_pause_persists_across_graceful_restart)
{
	struct jobqd d;
	char *held, *other;
	cJSON *j, *q;

	harness_start(&d, NULL);
	cJSON_Delete(queue_action(&d, "keep", "pause"));
	held = submit(&d, "{\"type\":\"echo\",\"queue\":\"keep\"}");
	assert_exit_0(&d, harness_stop_keep(&d), "graceful stop");
	harness_restart(&d, NULL);
	q = get_queue(&d, "keep");
	ck_assert_msg(cJSON_IsTrue(jget(q, "paused")),
		      "pause of queue keep lost across restart");
	cJSON_Delete(q);
	other = submit(&d, "{\"type\":\"echo\"}");
	cJSON_Delete(wait_terminal(&d, other));
	j = get_job(&d, held, NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), "queued"),
		      "job of the paused queue ran after restart: %s",
		      jstr_or(j, "state"));
	cJSON_Delete(j);
	cJSON_Delete(queue_action(&d, "keep", "resume"));
	j = wait_terminal(&d, held);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);
	free(held);
	free(other);
	stop_ok(&d);
}
END_TEST

static const cJSON *find_queue(const cJSON *qs, const char *name)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, qs)
		if (str_eq(jstr(it, "name"), name))
			return it;
	return NULL;
}

START_TEST(queues_list_sorted_with_counts_per_state)
{
	static const long want_a[6] = { 0, 0, 1, 0, 1, 0 };
	static const long want_b[6] = { 1, 0, 0, 1, 0, 1 };
	static const long want_c[6] = { 0, 1, 0, 0, 0, 0 };
	static const long want_z[6] = { 0, 0, 0, 0, 0, 0 };
	struct jobqd d;
	struct resp r;
	char *run_a, *fail_a, *ok_b, *sched_b, *canc_b, *held_c;
	const cJSON *qs, *it, *prev = NULL;
	cJSON *one;

	harness_start(&d, ARGS("--workers", "4", "--queue", "zeta=2"));
	run_a = submit(&d, "{\"type\":\"sleep\",\"queue\":\"a\","
			   "\"payload\":{\"seconds\":30}}");
	fail_a = submit(&d, "{\"type\":\"fail\",\"queue\":\"a\",\"max_attempts\":1}");
	ok_b = submit(&d, "{\"type\":\"echo\",\"queue\":\"b\"}");
	sched_b = submit_state(&d, "{\"type\":\"echo\",\"queue\":\"b\","
				   "\"delay_s\":60}", "scheduled");
	canc_b = submit_state(&d, "{\"type\":\"echo\",\"queue\":\"b\","
				  "\"delay_s\":60}", "scheduled");
	cJSON_Delete(cancel_ok(&d, canc_b));
	cJSON_Delete(queue_action(&d, "c", "pause"));
	held_c = submit(&d, "{\"type\":\"echo\",\"queue\":\"c\"}");
	cJSON_Delete(wait_state(&d, run_a, "running"));
	cJSON_Delete(wait_terminal(&d, fail_a));
	cJSON_Delete(wait_terminal(&d, ok_b));

	harness_request(&d, "GET", "/v1/queues", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	qs = jget(r.json, "queues");
	ck_assert_msg(cJSON_IsArray(qs), "queues not an array: %s", r.body);
	cJSON_ArrayForEach(it, qs) {
		assert_queue_shape(it, r.body);
		ck_assert_msg(prev == NULL ||
			      strcmp(jstr(prev, "name"), jstr(it, "name")) < 0,
			      "queues not sorted by name: %s", r.body);
		prev = it;
	}
	ck_assert_msg(find_queue(qs, "a") && find_queue(qs, "b") &&
		      find_queue(qs, "c") && find_queue(qs, "zeta"),
		      "queues a, b, c (paused), zeta (configured) not all listed: %s",
		      r.body);
	assert_counts(find_queue(qs, "a"), want_a);
	assert_counts(find_queue(qs, "b"), want_b);
	assert_counts(find_queue(qs, "c"), want_c);
	assert_counts(find_queue(qs, "zeta"), want_z);
	ck_assert_msg(cJSON_IsTrue(jget(find_queue(qs, "c"), "paused")) &&
		      cJSON_IsFalse(jget(find_queue(qs, "a"), "paused")),
		      "paused flags: %s", r.body);
	ck_assert_msg(jlong(find_queue(qs, "zeta"), "concurrency") == 2 &&
		      jnull(find_queue(qs, "a"), "concurrency"),
		      "concurrency: %s", r.body);
	harness_resp_free(&r);

	one = get_queue(&d, "b");
	assert_counts(one, want_b);
	cJSON_Delete(one);
	one = get_queue(&d, "zeta");
	assert_counts(one, want_z);
	ck_assert_msg(jlong(one, "concurrency") == 2, "zeta concurrency");
	cJSON_Delete(one);

	cJSON_Delete(cancel_ok(&d, run_a));
	free(run_a);
	free(fail_a);
	free(ok_b);
	free(sched_b);
	free(canc_b);
	free(held_c);
	stop_ok(&d);
}
END_TEST

START_TEST(queues_get_one_reports_age_and_finished_last_minute)
{
	static const long zeros[6] = { 0, 0, 0, 0, 0, 0 };
	struct jobqd d;
	char *e1, *f1, *held, *s;
	double age, t_end;
	cJSON *q;

	harness_start(&d, NULL);
	q = get_queue(&d, "empty");
	s = dump(q);
	assert_counts(q, zeros);
	ck_assert_msg(cJSON_IsFalse(jget(q, "paused")) && jnull(q, "concurrency") &&
		      jnull(q, "oldest_queued_age_s") &&
		      jlong(q, "finished_last_minute") == 0,
		      "queue with no jobs: %s", s);
	free(s);
	cJSON_Delete(q);

	q = get_queue(&d, "fl");
	ck_assert_msg(jlong(q, "finished_last_minute") == 0, "fl not 0 at start");
	cJSON_Delete(q);
	e1 = submit(&d, "{\"type\":\"echo\",\"queue\":\"fl\"}");
	cJSON_Delete(wait_terminal(&d, e1));
	q = get_queue(&d, "fl");
	ck_assert_msg(jlong(q, "finished_last_minute") == 1,
		      "finished_last_minute not 1 after one job");
	cJSON_Delete(q);
	f1 = submit(&d, "{\"type\":\"fail\",\"queue\":\"fl\",\"max_attempts\":1}");
	cJSON_Delete(wait_terminal(&d, f1));
	q = get_queue(&d, "fl");
	s = dump(q);
	ck_assert_msg(jlong(q, "finished_last_minute") == 2 &&
		      qcount(q, "succeeded") == 1 && qcount(q, "failed") == 1 &&
		      jnull(q, "oldest_queued_age_s"),
		      "after a success and a failure: %s", s);
	free(s);
	cJSON_Delete(q);

	cJSON_Delete(queue_action(&d, "w", "pause"));
	held = submit(&d, "{\"type\":\"echo\",\"queue\":\"w\"}");
	/* the age grows from 0 as the clock moves: poll (bounded) until it shows */
	t_end = mono_ms() + 10000.0;
	for (;;) {
		q = get_queue(&d, "w");
		if ((jnum(q, "oldest_queued_age_s", &age) && age > 0) || mono_ms() > t_end)
			break;
		cJSON_Delete(q);
		nap_ms(10);
	}
	s = dump(q);
	ck_assert_msg(jnum(q, "oldest_queued_age_s", &age) && age > 0 && age < 30,
		      "oldest_queued_age_s of a waiting job: %s", s);
	ck_assert_msg(qcount(q, "queued") == 1 &&
		      jlong(q, "finished_last_minute") == 0, "w: %s", s);
	free(s);
	cJSON_Delete(q);
	free(e1);
	free(f1);
	free(held);
	stop_ok(&d);
}
END_TEST

/* throughput: 15 whole minutes, oldest first, one minute apart, the last
 * the current one; the finished jobs appear in it (or, at a minute's
 * edge, in the one before). */
START_TEST(queues_throughput_counts_finished_jobs_per_minute)
{
	struct jobqd d;
	char *ids[3], *s;
	cJSON *q;

	harness_start(&d, NULL);
	q = get_queue(&d, "tp");
	s = dump(q);
	const cJSON *tp = jget(q, "throughput");
	ck_assert_msg(cJSON_IsArray(tp) && cJSON_GetArraySize(tp) == 15, "throughput: %s", s);
	for (int i = 0; i < 15; i++)
		ck_assert_msg(jlong(cJSON_GetArrayItem(tp, i), "finished") == 0, "no job yet: %s", s);
	free(s);
	cJSON_Delete(q);

	long long before = (long long)time(NULL) * 1000;
	ids[0] = submit(&d, "{\"type\":\"echo\",\"queue\":\"tp\"}");
	ids[1] = submit(&d, "{\"type\":\"echo\",\"queue\":\"tp\"}");
	ids[2] = submit(&d, "{\"type\":\"fail\",\"queue\":\"tp\",\"max_attempts\":1}");
	for (int i = 0; i < 3; i++)
		cJSON_Delete(wait_terminal(&d, ids[i]));
	q = get_queue(&d, "tp");
	long long after = (long long)time(NULL) * 1000 + 1000;
	s = dump(q);
	tp = jget(q, "throughput");
	ck_assert_msg(cJSON_IsArray(tp) && cJSON_GetArraySize(tp) == 15, "throughput: %s", s);
	long long prev = -1, sum = 0, last_minute = -1;
	for (int i = 0; i < 15; i++) {
		const cJSON *m = cJSON_GetArrayItem(tp, i);
		long long at = jts(m, "minute");
		ck_assert_msg(at > 0 && at % 60000 == 0, "minute %d is not a whole minute: %s", i, s);
		ck_assert_msg(prev < 0 || at == prev + 60000, "minute %d does not follow the one before: %s", i, s);
		long n = jlong(m, "finished");
		ck_assert_msg(n >= 0, "finished %d: %s", i, s);
		if (n > 0)
			ck_assert_msg(i >= 13, "jobs counted %d minutes ago: %s", 14 - i, s);
		sum += n;
		prev = last_minute = at;
	}
	ck_assert_msg(sum == 3, "three finished jobs, throughput sums to %lld: %s", sum, s);
	ck_assert_msg(last_minute <= after && last_minute > before - 60000,
		      "the last entry is not the current minute: %s", s);
	free(s);
	cJSON_Delete(q);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
	stop_ok(&d);
}
END_TEST

/* ---- crash recovery (test build) ---- */

/* Waits for the daemon to die by SIGABRT (the crash job). */
static void expect_abort(struct jobqd *d, const char *what)
{
	int st = 0;
	char *log;

	if (!harness_wait_exit(d, 10000.0, &st)) {
		log = harness_read_file(d->log);
		ck_abort_msg("%s: jobqd still runs 10 s after the crash job; log:\n%s",
			     what, log);
	}
	ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
		      "%s: jobqd ended by %s %d, want signal SIGABRT", what,
		      WIFEXITED(st) ? "exit" : "signal",
		      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

START_TEST(recovery_crash_job_fails_after_max_attempts_interrupted)
{
	struct jobqd d;
	struct resp r;
	char *id, *s;
	int i;
	cJSON *j;

	start_test_build(&d, NULL);
	/* delayed, so the 201 is out before the process aborts */
	id = submit_state(&d, "{\"type\":\"crash\",\"max_attempts\":2,"
			      "\"delay_s\":0.3}", "scheduled");
	expect_abort(&d, "first run");
	harness_respawn(&d, NULL);
	expect_abort(&d, "after the first restart");
	harness_restart(&d, NULL);

	j = get_job(&d, id, NULL);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed"),
		      "crash job not failed after 2 interrupted attempts: %s", s);
	ck_assert_msg(jlong(j, "attempts") == 2, "attempts not 2: %s", s);
	ck_assert_msg(str_eq(jstr(j, "error"), INTERRUPTED_NO_ATTEMPTS),
		      "error: %s", s);
	ck_assert_msg(history_len(j) == 2, "history length not 2: %s", s);
	for (i = 0; i < 2; i++)
		ck_assert_msg(jlong(history_at(j, i), "attempt") == i + 1 &&
			      str_eq(jstr(history_at(j, i), "outcome"),
				     "interrupted"),
			      "history[%d] not interrupted attempt %d: %s", i, i + 1,
			      s);
	free(s);
	cJSON_Delete(j);
	/* and jobqd stays up */
	nap_ms(300);
	harness_request(&d, "GET", "/healthz", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(recovery_killed_job_requeued_at_once_and_counted)
{
	struct jobqd d;
	char *id, *t, *s, want[256];
	cJSON *j;

	start_test_build(&d, NULL);
	id = submit(&d, "{\"type\":\"tally\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	wait_tally_lines(&d, id, 1);
	harness_kill9(&d);
	harness_restart(&d, NULL);

	/* at once: no lease has to expire */
	j = get_job(&d, id, NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), "queued") ||
		      str_eq(jstr(j, "state"), "running"),
		      "job running at kill -9 is %s right after restart",
		      jstr_or(j, "state"));
	cJSON_Delete(j);
	j = wait_state(&d, id, "running");
	cJSON_Delete(j);
	wait_tally_lines(&d, id, 2);
	j = get_job(&d, id, NULL);
	s = dump(j);
	ck_assert_msg(jlong(j, "attempts") == 2, "attempts after the rerun: %s", s);
	ck_assert_msg(history_len(j) == 1 &&
		      jlong(history_at(j, 0), "attempt") == 1 &&
		      str_eq(jstr(history_at(j, 0), "outcome"), "interrupted"),
		      "history is not one interrupted attempt: %s", s);
	free(s);
	cJSON_Delete(j);
	t = read_tally(&d);
	snprintf(want, sizeof want, "%s 1\n%s 2\n", id, id);
	ck_assert_msg(strcmp(t, want) == 0, "tally file:\n[%s]\nwant:\n[%s]", t,
		      want);
	free(t);
	cJSON_Delete(cancel_ok(&d, id));
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(testbuild_job_types_absent_from_jobqd)
{
	struct jobqd d;
	struct resp r;

	harness_start(&d, NULL);
	harness_request(&d, "POST", "/v1/jobs", "application/json",
			"{\"type\":\"crash\"}", NULL, &r);
	assert_problem(&r, 422, "unknown_job_type", "type");
	harness_resp_free(&r);
	harness_request(&d, "POST", "/v1/jobs", "application/json",
			"{\"type\":\"tally\"}", NULL, &r);
	assert_problem(&r, 422, "unknown_job_type", "type");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- graceful shutdown ---- */

START_TEST(shutdown_running_job_finishes_within_grace)
{
	struct jobqd d;
	char *id, *s, *log;
	cJSON *j;

	harness_start(&d, ARGS("--shutdown-grace", "5"));
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.5}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	assert_exit_0(&d, harness_stop_keep(&d), "SIGTERM with a 0.5 s job running");
	log = harness_read_file(d.log); /* harness_restart truncates it */
	harness_restart(&d, NULL);
	j = get_job(&d, id, NULL);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") &&
		      jlong(j, "attempts") == 1 && history_len(j) == 1 &&
		      str_eq(jstr(history_at(j, 0), "outcome"), "succeeded"),
		      "job running at SIGTERM did not finish in the grace: %s\n"
		      "log of the stopped jobqd:\n%s", s, log);
	free(log);
	free(s);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(shutdown_past_grace_requeues_job_without_counting)
{
	struct jobqd d;
	char *id, *s;
	double t0;
	cJSON *j;

	harness_start(&d, ARGS("--shutdown-grace", "0.2"));
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	t0 = mono_ms();
	assert_exit_0(&d, harness_stop_keep(&d), "SIGTERM with a 30 s job running");
	ck_assert_msg(mono_ms() - t0 < 8000.0,
		      "stop with --shutdown-grace 0.2 took %.0f ms", mono_ms() - t0);
	harness_restart(&d, NULL);
	j = get_job(&d, id, NULL);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "queued") ||
		      str_eq(jstr(j, "state"), "running"),
		      "job stopped by shutdown not put back: %s", s);
	ck_assert_msg(history_len(j) == 0,
		      "the stopped run was recorded in the history: %s", s);
	free(s);
	cJSON_Delete(j);
	j = wait_state(&d, id, "running");
	s = dump(j);
	ck_assert_msg(jlong(j, "attempts") == 1,
		      "attempts %ld on the rerun, want 1 (the stopped run is not "
		      "counted): %s", jlong(j, "attempts"), s);
	ck_assert_msg(history_len(j) == 0, "history not []: %s", s);
	free(s);
	cJSON_Delete(j);
	cJSON_Delete(cancel_ok(&d, id));
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(shutdown_submit_gets_503_and_gets_keep_working)
{
	struct jobqd d;
	struct resp r;
	char ra[64], *id, *s;
	double end;
	int st = 0, accepted = 0;
	cJSON *j, *l;

	harness_start(&d, ARGS("--shutdown-grace", "10"));
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":2}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	harness_sigterm(&d);
	/* the signal may take a moment to be seen: poll until refused */
	end = mono_ms() + 1500.0;
	for (;;) {
		harness_request(&d, "POST", "/v1/jobs", "application/json",
				"{\"type\":\"echo\"}", NULL, &r);
		if (r.status != 201)
			break;
		accepted++;
		harness_resp_free(&r);
		ck_assert_msg(mono_ms() < end, "submits still 201 1.5 s after SIGTERM");
		nap_ms(10);
	}
	assert_problem(&r, 503, "shutting_down", NULL);
	ck_assert_msg(harness_header(&r, "Retry-After", ra, sizeof ra) &&
		      ra[0] != '\0' && strspn(ra, "0123456789") == strlen(ra),
		      "503 shutting_down without a Retry-After in seconds: '%s'", ra);
	harness_resp_free(&r);
	j = get_job(&d, id, NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), "running"),
		      "GET during shutdown: %s", jstr_or(j, "state"));
	cJSON_Delete(j);
	ck_assert_msg(harness_wait_exit(&d, 10000.0, &st),
		      "jobqd did not exit after its 2 s job finished");
	assert_exit_0(&d, st, "SIGTERM during a 2 s job");
	harness_restart(&d, NULL);
	j = get_job(&d, id, NULL);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") &&
		      jlong(j, "attempts") == 1, "job after restart: %s", s);
	free(s);
	cJSON_Delete(j);
	l = list(&d, "/v1/jobs");
	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 1 + accepted,
		      "a refused submit left a job behind");
	cJSON_Delete(l);
	free(id);
	stop_ok(&d);
}
END_TEST

struct poll_arg {
	const struct jobqd *d;
	char path[256];
	struct resp r;
};

static void *long_poll(void *p)
{
	struct poll_arg *a = p;

	harness_request(a->d, "GET", a->path, NULL, NULL, NULL, &a->r);
	return NULL;
}

START_TEST(shutdown_answers_waiting_long_poll_with_current_state)
{
	struct jobqd d;
	struct poll_arg a;
	pthread_t th;
	char *id;
	int st = 0;

	harness_start(&d, ARGS("--shutdown-grace", "0.2"));
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, id, "running"));
	memset(&a, 0, sizeof a);
	a.d = &d;
	snprintf(a.path, sizeof a.path, "/v1/jobs/%s?wait=30", id);
	ck_assert(pthread_create(&th, NULL, long_poll, &a) == 0);
	/* the long-poll has reached jobqd once it counts as a waiter */
	harness_wait_metric(&d, "jobq_waiters", 1, 10000.0);
	harness_sigterm(&d);
	pthread_join(th, NULL);
	assert_status(&a.r, 200);
	assert_job_shape(a.r.json, a.r.body, 1);
	ck_assert_msg(str_eq(jstr(a.r.json, "id"), id) &&
		      (str_eq(jstr(a.r.json, "state"), "running") ||
		       str_eq(jstr(a.r.json, "state"), "queued")),
		      "long-poll answer at shutdown: %s", a.r.body);
	ck_assert_msg(a.r.ms < 10000.0,
		      "wait=30 long-poll answered after %.0f ms, not at shutdown",
		      a.r.ms);
	harness_resp_free(&a.r);
	ck_assert_msg(harness_wait_exit(&d, 10000.0, &st), "jobqd did not exit");
	assert_exit_0(&d, st, "SIGTERM with a long-poll waiting");
	harness_cleanup(&d);
	free(id);
}
END_TEST

/* ---- operator actions: retry ---- */

START_TEST(retry_failed_job_runs_again_with_one_more_attempt)
{
	struct jobqd d;
	char *id, *nr, *s;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"fail\",\"payload\":{\"message\":\"x\"},"
			"\"max_attempts\":1}");
	cJSON_Delete(wait_terminal(&d, id));
	j = retry_ok(&d, id);
	s = dump(j);
	ck_assert_msg(jlong(j, "attempts") == 1 && jlong(j, "max_attempts") == 2,
		      "retry of an exhausted job: want attempts 1, max_attempts 2: %s",
		      s);
	ck_assert_msg(jnull(j, "error") && jnull(j, "result") &&
		      jnull(j, "finished_at"),
		      "retry did not clear error/result/finished_at: %s", s);
	free(s);
	cJSON_Delete(j);
	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed") &&
		      jlong(j, "attempts") == 2 && history_len(j) == 2 &&
		      jlong(history_at(j, 0), "attempt") == 1 &&
		      jlong(history_at(j, 1), "attempt") == 2,
		      "retried job did not run once more keeping history: %s", s);
	free(s);
	cJSON_Delete(j);

	/* attempts left: max_attempts unchanged */
	nr = submit(&d, "{\"type\":\"fail\",\"payload\":{\"retryable\":false},"
			"\"max_attempts\":3}");
	cJSON_Delete(wait_terminal(&d, nr));
	j = retry_ok(&d, nr);
	ck_assert_msg(jlong(j, "max_attempts") == 3 && jlong(j, "attempts") == 1,
		      "retry with attempts left changed max_attempts");
	cJSON_Delete(j);
	j = wait_terminal(&d, nr);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "failed") &&
		      jlong(j, "attempts") == 2 && history_len(j) == 2,
		      "second run: %s", s);
	free(s);
	cJSON_Delete(j);
	free(id);
	free(nr);
	stop_ok(&d);
}
END_TEST

/* Long-polls woken by one finish share one read of the job; a long-poll
 * woken by a later finish (after a retry) must read it again. */
START_TEST(retry_then_long_poll_sees_the_new_outcome)
{
	struct jobqd d;
	char *id, *s;
	cJSON *j;
	int round;

	harness_start(&d, NULL);
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30},"
		    "\"timeout_s\":0.4,\"max_attempts\":1}");
	for (round = 1; round <= 2; round++) {
		if (round == 2)
			cJSON_Delete(retry_ok(&d, id));
		j = get_job(&d, id, "wait=20");
		s = dump(j);
		ck_assert_msg(str_eq(jstr(j, "state"), "failed") &&
			      jlong(j, "attempts") == round && history_len(j) == round,
			      "long-poll %d: want failed after attempt %d: %s", round, round, s);
		free(s);
		cJSON_Delete(j);
	}
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(retry_canceled_job_is_queued_and_runs)
{
	struct jobqd d;
	char *id, *s;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit_state(&d, "{\"type\":\"echo\",\"payload\":\"again\","
			      "\"delay_s\":60}", "scheduled");
	cJSON_Delete(cancel_ok(&d, id));
	cJSON_Delete(retry_ok(&d, id));
	j = wait_terminal(&d, id);
	s = dump(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") &&
		      str_eq(jstr(j, "result"), "again") &&
		      jlong(j, "attempts") == 1 && jnull(j, "error"),
		      "retried canceled job: %s", s);
	free(s);
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(retry_other_states_conflict_and_unknown_is_404)
{
	struct jobqd d;
	struct resp r;
	char *done, *run, *queued, *sched;
	const char *const *idp;
	cJSON *j;

	harness_start(&d, ARGS("--workers", "1"));
	done = submit(&d, "{\"type\":\"echo\"}");
	cJSON_Delete(wait_terminal(&d, done));
	run = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, run, "running"));
	queued = submit(&d, "{\"type\":\"echo\"}");
	sched = submit_state(&d, "{\"type\":\"echo\",\"delay_s\":60}", "scheduled");
	for (idp = (const char *const[]){ done, run, queued, sched, NULL }; *idp;
	     idp++) {
		job_action(&d, *idp, "retry", &r);
		assert_problem(&r, 409, "job_not_retryable", NULL);
		harness_resp_free(&r);
	}
	j = get_job(&d, done, NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") &&
		      jlong(j, "attempts") == 1, "refused retry changed the job");
	cJSON_Delete(j);
	job_action(&d, UNKNOWN_ID, "retry", &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
	job_action(&d, "not-a-uuid", "retry", &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
	cJSON_Delete(cancel_ok(&d, run));
	free(done);
	free(run);
	free(queued);
	free(sched);
	stop_ok(&d);
}
END_TEST

/* ---- operator actions: delete ---- */

START_TEST(delete_finished_jobs_then_404)
{
	struct jobqd d;
	struct resp r;
	char *ids[3];
	cJSON *l;
	int i;

	harness_start(&d, NULL);
	ids[0] = submit(&d, "{\"type\":\"echo\"}");
	ids[1] = submit(&d, "{\"type\":\"fail\",\"max_attempts\":1}");
	ids[2] = submit_state(&d, "{\"type\":\"echo\",\"delay_s\":60}", "scheduled");
	cJSON_Delete(wait_terminal(&d, ids[0]));
	cJSON_Delete(wait_terminal(&d, ids[1]));
	cJSON_Delete(cancel_ok(&d, ids[2]));
	for (i = 0; i < 3; i++) {
		delete_job(&d, ids[i], &r);
		assert_status(&r, 204);
		ck_assert_msg(r.body_len == 0, "204 with a body: %s", r.body);
		harness_resp_free(&r);
		assert_job_gone(&d, ids[i]);
		delete_job(&d, ids[i], &r);
		assert_problem(&r, 404, "job_not_found", NULL);
		harness_resp_free(&r);
	}
	l = list(&d, "/v1/jobs");
	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 0,
		      "deleted jobs still listed");
	cJSON_Delete(l);
	for (i = 0; i < 3; i++)
		free(ids[i]);
	stop_ok(&d);
}
END_TEST

START_TEST(delete_unfinished_job_conflicts)
{
	struct jobqd d;
	struct resp r;
	char *run, *queued, *sched;
	const char *const *idp;
	cJSON *j;

	harness_start(&d, ARGS("--workers", "1"));
	run = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(wait_state(&d, run, "running"));
	queued = submit(&d, "{\"type\":\"echo\"}");
	sched = submit_state(&d, "{\"type\":\"echo\",\"delay_s\":60}", "scheduled");
	for (idp = (const char *const[]){ run, queued, sched, NULL }; *idp; idp++) {
		delete_job(&d, *idp, &r);
		assert_problem(&r, 409, "job_not_finished", NULL);
		harness_resp_free(&r);
		j = get_job(&d, *idp, NULL);
		cJSON_Delete(j);
	}
	delete_job(&d, UNKNOWN_ID, &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
	delete_job(&d, "not-a-uuid", &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	harness_resp_free(&r);
	cJSON_Delete(cancel_ok(&d, run));
	free(run);
	free(queued);
	free(sched);
	stop_ok(&d);
}
END_TEST

/* ---- retention ---- */

START_TEST(retention_server_default_deletes_finished_jobs)
{
	struct jobqd d;
	char *gone, *kept;
	cJSON *j;

	harness_start(&d, ARGS("--retention", "1"));
	j = submit_json(&d, "{\"type\":\"echo\"}");
	ck_assert_msg(jnum_is(j, "retention_s", 1), "retention_s not 1");
	gone = strdup(jstr(j, "id"));
	cJSON_Delete(j);
	kept = submit(&d, "{\"type\":\"echo\",\"retention_s\":3600}");
	cJSON_Delete(wait_terminal(&d, gone));
	cJSON_Delete(wait_terminal(&d, kept));
	wait_gone(&d, gone, 10000.0, "--retention 1");
	j = get_job(&d, kept, NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded"),
		      "job with retention_s 3600 changed");
	cJSON_Delete(j);
	free(gone);
	free(kept);
	stop_ok(&d);
}
END_TEST

START_TEST(retention_per_job_deletes_only_finished_jobs)
{
	struct jobqd d;
	char *half, *zero, *plain, *sched;
	cJSON *j;

	harness_start(&d, NULL);
	half = submit(&d, "{\"type\":\"echo\",\"retention_s\":0.5}");
	zero = submit(&d, "{\"type\":\"echo\",\"retention_s\":0}");
	plain = submit(&d, "{\"type\":\"echo\"}");
	sched = submit_state(&d, "{\"type\":\"echo\",\"delay_s\":60,"
				 "\"retention_s\":0}", "scheduled");
	cJSON_Delete(wait_terminal(&d, plain));
	wait_gone(&d, half, 10000.0, "retention_s 0.5");
	wait_gone(&d, zero, 10000.0, "retention_s 0");
	j = get_job(&d, plain, NULL);
	ck_assert_msg(jnum_is(j, "retention_s", 604800), "default retention_s");
	cJSON_Delete(j);
	j = get_job(&d, sched, NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), "scheduled"),
		      "unfinished job with retention_s 0 was touched");
	cJSON_Delete(j);
	cJSON_Delete(cancel_ok(&d, sched));
	wait_gone(&d, sched, 10000.0, "canceled job with retention_s 0");
	free(half);
	free(zero);
	free(plain);
	free(sched);
	stop_ok(&d);
}
END_TEST

/* ---- bad input ---- */


#define POST_JOB(body, st, code, field) \
	{ "POST", "/v1/jobs", NULL, body, st, code, field, NULL }
#define BAD_FIELD(body, field) POST_JOB(body, 400, "invalid_field", field)
#define ECHO "{\"type\":\"echo\","

static const struct harness_bad_case bad_cases[] = {
	/* max_attempts: integer 1..100 */
	BAD_FIELD(ECHO "\"max_attempts\":0}", "max_attempts"),
	BAD_FIELD(ECHO "\"max_attempts\":101}", "max_attempts"),
	BAD_FIELD(ECHO "\"max_attempts\":-1}", "max_attempts"),
	BAD_FIELD(ECHO "\"max_attempts\":1.5}", "max_attempts"),
	BAD_FIELD(ECHO "\"max_attempts\":\"3\"}", "max_attempts"),
	BAD_FIELD(ECHO "\"max_attempts\":true}", "max_attempts"),
	BAD_FIELD(ECHO "\"max_attempts\":[3]}", "max_attempts"),
	BAD_FIELD(ECHO "\"max_attempts\":1e300}", "max_attempts"),
	/* backoff_s: number > 0, <= 86400 */
	BAD_FIELD(ECHO "\"backoff_s\":0}", "backoff_s"),
	BAD_FIELD(ECHO "\"backoff_s\":-1}", "backoff_s"),
	BAD_FIELD(ECHO "\"backoff_s\":86400.5}", "backoff_s"),
	BAD_FIELD(ECHO "\"backoff_s\":\"1\"}", "backoff_s"),
	BAD_FIELD(ECHO "\"backoff_s\":false}", "backoff_s"),
	/* max_backoff_s: number > 0, <= 604800, >= effective backoff_s */
	BAD_FIELD(ECHO "\"max_backoff_s\":0}", "max_backoff_s"),
	BAD_FIELD(ECHO "\"max_backoff_s\":-5}", "max_backoff_s"),
	BAD_FIELD(ECHO "\"max_backoff_s\":604801}", "max_backoff_s"),
	BAD_FIELD(ECHO "\"max_backoff_s\":\"x\"}", "max_backoff_s"),
	BAD_FIELD(ECHO "\"backoff_s\":10,\"max_backoff_s\":5}", "max_backoff_s"),
	BAD_FIELD(ECHO "\"max_backoff_s\":5,\"backoff_s\":10}", "max_backoff_s"),
	BAD_FIELD(ECHO "\"max_backoff_s\":0.5}", "max_backoff_s"), /* default backoff 1 */
	/* timeout_s: number > 0, <= 604800 */
	BAD_FIELD(ECHO "\"timeout_s\":0}", "timeout_s"),
	BAD_FIELD(ECHO "\"timeout_s\":-1}", "timeout_s"),
	BAD_FIELD(ECHO "\"timeout_s\":604801}", "timeout_s"),
	BAD_FIELD(ECHO "\"timeout_s\":\"1\"}", "timeout_s"),
	BAD_FIELD(ECHO "\"timeout_s\":{}}", "timeout_s"),
	/* run_at: RFC 3339 */
	BAD_FIELD(ECHO "\"run_at\":\"tomorrow\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"2026-11-21T13:05:11\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"2026-11-21\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"2026-13-01T00:00:00Z\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"2026-02-30T00:00:00Z\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"2026-11-21T25:00:00Z\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"2026-11-21T13:05:11+2:00\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":\"2026-11-21T13:05:11Zjunk\"}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":1790000000}", "run_at"),
	BAD_FIELD(ECHO "\"run_at\":null}", "run_at"),
	/* delay_s: number 0..31536000, not with run_at */
	BAD_FIELD(ECHO "\"delay_s\":-1}", "delay_s"),
	BAD_FIELD(ECHO "\"delay_s\":31536001}", "delay_s"),
	BAD_FIELD(ECHO "\"delay_s\":\"1\"}", "delay_s"),
	BAD_FIELD(ECHO "\"delay_s\":true}", "delay_s"),
	BAD_FIELD(ECHO "\"delay_s\":1,\"run_at\":\"2030-01-01T00:00:00Z\"}", "delay_s"),
	BAD_FIELD(ECHO "\"run_at\":\"2030-01-01T00:00:00Z\",\"delay_s\":0}", "delay_s"),
	/* retention_s: number 0..315360000 */
	BAD_FIELD(ECHO "\"retention_s\":-1}", "retention_s"),
	BAD_FIELD(ECHO "\"retention_s\":315360001}", "retention_s"),
	BAD_FIELD(ECHO "\"retention_s\":\"1\"}", "retention_s"),
	BAD_FIELD(ECHO "\"retention_s\":[]}", "retention_s"),
	/* fail payload retryable: boolean */
	POST_JOB("{\"type\":\"fail\",\"payload\":{\"retryable\":\"no\"}}", 422,
		 "invalid_payload", "payload.retryable"),
	POST_JOB("{\"type\":\"fail\",\"payload\":{\"retryable\":1}}", 422,
		 "invalid_payload", "payload.retryable"),
	POST_JOB("{\"type\":\"fail\",\"payload\":{\"retryable\":null}}", 422,
		 "invalid_payload", "payload.retryable"),
	/* list filter */
	{ "GET", "/v1/jobs?state=Scheduled", NULL, NULL, 400, "invalid_query", "state", NULL },
	/* operator actions */
	{ "POST", "/v1/jobs/" UNKNOWN_ID "/retry", NULL, NULL, 404, "job_not_found", NULL, NULL },
	{ "DELETE", "/v1/jobs/" UNKNOWN_ID, NULL, NULL, 404, "job_not_found", NULL, NULL },
	/* queue names */
	{ "GET", "/v1/queues/a%20b", NULL, NULL, 404, "queue_not_found", NULL, NULL },
	{ "GET", "/v1/queues/a!b", NULL, NULL, 404, "queue_not_found", NULL, NULL },
	{ "GET", "/v1/queues/caf%C3%A9", NULL, NULL, 404, "queue_not_found", NULL, NULL },
	{ "GET", "/v1/queues/"
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  NULL, NULL, 404, "queue_not_found", NULL, NULL },
	{ "POST", "/v1/queues/a%20b/pause", NULL, NULL, 404, "queue_not_found", NULL, NULL },
	{ "POST", "/v1/queues/a!b/resume", NULL, NULL, 404, "queue_not_found", NULL, NULL },
	/* methods */
	{ "POST", "/v1/queues", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	{ "DELETE", "/v1/queues", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	{ "POST", "/v1/queues/default", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	{ "DELETE", "/v1/queues/default", NULL, NULL, 405, "method_not_allowed", NULL, "GET" },
	{ "GET", "/v1/queues/default/pause", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
	{ "GET", "/v1/queues/default/resume", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
	{ "PUT", "/v1/jobs/{id}", NULL, NULL, 405, "method_not_allowed", NULL, "GET, DELETE" },
	{ "POST", "/v1/jobs/{id}", NULL, NULL, 405, "method_not_allowed", NULL, "GET, DELETE" },
	{ "GET", "/v1/jobs/{id}/retry", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
	{ "DELETE", "/v1/jobs/{id}/retry", NULL, NULL, 405, "method_not_allowed", NULL, "POST" },
};

START_TEST(api_rejects_bad_new_fields_with_exact_problems)
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
	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 1 && list_has(l, id),
		      "bad input created or removed jobs");
	cJSON_Delete(l);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(jobs_submit_accepts_new_field_boundaries)
{
	static const char *const bodies[] = {
		ECHO "\"max_attempts\":1,\"backoff_s\":86400,\"max_backoff_s\":604800,"
		     "\"timeout_s\":604800,\"retention_s\":315360000,\"delay_s\":31536000}",
		ECHO "\"max_attempts\":100,\"backoff_s\":0.001,\"max_backoff_s\":0.001,"
		     "\"timeout_s\":0.001,\"retention_s\":0,\"delay_s\":0}",
		NULL,
	};
	/* fraction lengths other than 3 digits; the instant reads back in ms */
	static const struct {
		const char *suffix;
		int ms;
	} fracs[] = { { ".5+00:00", 500 }, { ".123456Z", 123 }, { ".1-00:00", 100 } };
	struct jobqd d;
	struct resp r;
	char when[64], body[160];
	long long base;
	cJSON *j;
	int i;

	harness_start(&d, NULL);
	for (i = 0; bodies[i] != NULL; i++) {
		j = submit_json(&d, bodies[i]);
		ck_assert_msg(str_eq(jstr(j, "state"), "scheduled") ||
			      str_eq(jstr(j, "state"), "queued"),
			      "%s: state %s", bodies[i], jstr_or(j, "state"));
		if (str_eq(jstr(j, "state"), "scheduled")) {
			job_action(&d, jstr(j, "id"), "cancel", &r);
			assert_status(&r, 200);
			harness_resp_free(&r);
		}
		cJSON_Delete(j);
	}
	base = (wall_ms() / 1000 + 30 * 86400) * 1000; /* 30 days ahead */
	for (i = 0; i < 3; i++) {
		fmt_time(when, sizeof when, base, 0, 0);
		when[strlen(when) - 1] = '\0'; /* drop the Z */
		snprintf(body, sizeof body, ECHO "\"run_at\":\"%s%s\"}", when,
			 fracs[i].suffix);
		j = submit_json(&d, body);
		ck_assert_msg(str_eq(jstr(j, "state"), "scheduled") &&
			      jts(j, "run_at") == base + fracs[i].ms,
			      "%s: state %s run_at %s", body, jstr_or(j, "state"),
			      jstr_or(j, "run_at"));
		cJSON_Delete(cancel_ok(&d, jstr(j, "id")));
		cJSON_Delete(j);
	}
	stop_ok(&d);
}
END_TEST

/* run_at has the same one-year bound as delay_s: within it a job is
 * scheduled, past it the submission is refused and nothing is stored. */
START_TEST(schedule_run_at_is_bounded_like_delay_s)
{
	struct jobqd d;
	struct resp r;
	cJSON *j;
	char body[160], when[40];
	time_t soon = time(NULL) + 300 * 86400;
	struct tm tm;

	harness_start(&d, NULL);
	gmtime_r(&soon, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(body, sizeof body, ECHO "\"run_at\":\"%s\"}", when);
	j = submit_json(&d, body);
	ck_assert_msg(str_eq(jstr(j, "state"), "scheduled"), "run_at in 300 days: %s", jstr_or(j, "state"));
	cJSON_Delete(cancel_ok(&d, jstr(j, "id")));
	cJSON_Delete(j);

	harness_request(&d, "POST", "/v1/jobs", "application/json",
			ECHO "\"run_at\":\"2099-06-01T10:00:00Z\"}", NULL, &r);
	assert_problem(&r, 400, "invalid_field", "run_at");
	harness_resp_free(&r);
	harness_request(&d, "GET", "/v1/jobs?state=scheduled", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_msg(strstr(r.body, "2099") == NULL, "a refused job was stored: %s", r.body);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- suite ---- */

static Suite *semantics_suite(void)
{
	Suite *s = suite_create("jobq_api_semantics");
	TCase *tc;

	tc = tcase(s, "retries");
	tcase_add_test(tc, retries_fail_job_exhausts_attempts_with_history);
	tcase_add_test(tc, retries_waiting_job_is_scheduled_with_future_run_at);
	tcase_add_test(tc, retries_non_retryable_fail_stops_after_one_attempt);
	tcase_add_test(tc, retries_each_attempt_runs_the_job_again);

	tc = tcase(s, "defaults");
	tcase_add_test(tc, defaults_job_shows_contract_defaults);
	tcase_add_test(tc, defaults_server_flags_change_job_defaults);
	tcase_add_test(tc, defaults_env_vars_apply_and_flags_win);
	tcase_add_loop_test(tc, cli_bad_new_flag_or_env_exits_2_with_one_line, 0,
			    N_BAD_CLI);

	tc = tcase(s, "timeout");
	tcase_add_test(tc, timeout_sleep_job_times_out_each_attempt);

	tc = tcase(s, "scheduling");
	tcase_add_test(tc, schedule_delay_s_waits_for_run_at_then_runs);
	tcase_add_test(tc, schedule_run_at_accepts_rfc3339_forms);
	tcase_add_test(tc, schedule_run_at_in_past_runs_at_once);
	tcase_add_test(tc, schedule_cancel_scheduled_job);
	tcase_add_test(tc, priority_higher_first_then_submission_order_within_queue);

	tc = tcase(s, "queues");
	tcase_add_test(tc, queues_free_workers_shared_round_robin);
	tcase_add_test(tc, queues_concurrency_limit_caps_running_jobs);
	tcase_add_test(tc, queues_pause_holds_jobs_and_resume_runs_them);
	tcase_add_test(tc, queues_pause_persists_across_graceful_restart);
	tcase_add_test(tc, queues_list_sorted_with_counts_per_state);
	tcase_add_test(tc, queues_get_one_reports_age_and_finished_last_minute);
	tcase_add_test(tc, queues_throughput_counts_finished_jobs_per_minute);

	tc = tcase(s, "recovery");
	tcase_add_test(tc, recovery_crash_job_fails_after_max_attempts_interrupted);
	tcase_add_test(tc, recovery_killed_job_requeued_at_once_and_counted);
	tcase_add_test(tc, testbuild_job_types_absent_from_jobqd);

	tc = tcase(s, "shutdown");
	tcase_add_test(tc, shutdown_running_job_finishes_within_grace);
	tcase_add_test(tc, shutdown_past_grace_requeues_job_without_counting);
	tcase_add_test(tc, shutdown_submit_gets_503_and_gets_keep_working);
	tcase_add_test(tc, shutdown_answers_waiting_long_poll_with_current_state);

	tc = tcase(s, "operator");
	tcase_add_test(tc, retry_failed_job_runs_again_with_one_more_attempt);
	tcase_add_test(tc, retry_canceled_job_is_queued_and_runs);
	tcase_add_test(tc, retry_then_long_poll_sees_the_new_outcome);
	tcase_add_test(tc, retry_other_states_conflict_and_unknown_is_404);
	tcase_add_test(tc, delete_finished_jobs_then_404);
	tcase_add_test(tc, delete_unfinished_job_conflicts);

	tc = tcase(s, "retention");
	tcase_add_test(tc, retention_server_default_deletes_finished_jobs);
	tcase_add_test(tc, retention_per_job_deletes_only_finished_jobs);

	tc = tcase(s, "bad_input");
	tcase_add_test(tc, api_rejects_bad_new_fields_with_exact_problems);
	tcase_add_test(tc, jobs_submit_accepts_new_field_boundaries);
	tcase_add_test(tc, schedule_run_at_is_bounded_like_delay_s);
	return s;
}

int main(void)
{
	harness_set_job_check(check_job);
	return harness_run(semantics_suite());
}
