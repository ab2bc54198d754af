/* External queues and the lease API, black box: jobs of external queues
 * take any type name and are never run inside jobqd; external workers
 * lease them, heartbeat, complete, fail or release them, every answer
 * fenced by its lease id; a lease not extended expires into an
 * `interrupted` attempt and the job is leased again; a cancel reaches the
 * worker through its heartbeat; a lease long-poll is woken by a submit;
 * queue limits count leased jobs; the worker role. Every wait is bounded. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/harness.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define EXT ARGS("--external-queue", "py", "--external-queue", "ext.*", "--queue", "lim=1", \
		 "--external-queue", "lim")
#define STALE "0123456789abcdef0123456789abcdef"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

#define call_as(d, auth, method, path, body, want) \
	harness_call((d), (method), (path), (body), (auth), (want))

#define call(d, method, path, body, want) harness_call((d), (method), (path), (body), NULL, (want))

/* A request that must answer the problem status/code/field. */
static void refused(const struct jobqd *d, const char *auth, const char *method, const char *path,
		    const char *body, long status, const char *code, const char *field)
{
	struct resp r;

	harness_request(d, method, path, body ? "application/json" : NULL, body, auth, &r);
	assert_problem(&r, status, code, field);
	harness_resp_free(&r);
}

#define get_job(d, id) harness_get_job((d), (id), NULL)

/* POST /v1/leases; the reply's jobs array must hold want jobs. */
static cJSON *lease(const struct jobqd *d, const char *body, int want)
{
	cJSON *j = call(d, "POST", "/v1/leases", body, 200);
	const cJSON *jobs = jget(j, "jobs");

	ck_assert_msg(cJSON_IsArray(jobs), "no jobs array: %s", cJSON_PrintUnformatted(j));
	ck_assert_int_eq(cJSON_GetArraySize(jobs), want);
	return j;
}

/* The only leased job of a lease reply, with its lease checked. */
static const cJSON *leased(const cJSON *reply)
{
	const cJSON *job = cJSON_GetArrayItem(jget(reply, "jobs"), 0);
	const char *lid = jstr(job, "lease_id");

	ck_assert_str_eq(jstr(job, "state"), "running");
	ck_assert_msg(lid && strlen(lid) == 32 && strspn(lid, "0123456789abcdef") == 32, "lease_id %s",
		      jstr_or(job, "lease_id"));
	ck_assert_msg(jstr(job, "lease_expires_at") != NULL, "no lease_expires_at");
	ck_assert_msg(cJSON_IsNumber(jget(job, "attempt")), "no attempt");
	return job;
}

static cJSON *answer(const struct jobqd *d, const char *id, const char *what, const char *body, long want)
{
	char path[128];

	snprintf(path, sizeof path, "/v1/jobs/%s/%s", id, what);
	return call(d, "POST", path, body, want);
}

static char *with_lease(const char *lease_id, const char *rest)
{
	static char body[1024];

	snprintf(body, sizeof body, "{\"lease_id\":\"%s\"%s%s}", lease_id, rest[0] ? "," : "", rest);
	return body;
}

static void assert_exit_0(int st)
{
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd did not exit 0");
}

START_TEST(external_queue_takes_any_type_and_is_never_run_inside)
{
	struct jobqd d;
	harness_start(&d, EXT);
	cJSON *j = call(&d, "POST", "/v1/jobs", "{\"type\":\"plots.render\",\"queue\":\"py\",\"payload\":{\"n\":1}}", 201);
	ck_assert_str_eq(jstr(j, "type"), "plots.render");
	ck_assert_str_eq(jstr(j, "state"), "queued");
	char *id = strdup(jstr(j, "id"));
	cJSON_Delete(j);
	char *other = harness_submit(&d, "{\"type\":\"mail\",\"queue\":\"ext.fast\"}");
	refused(&d, NULL, "POST", "/v1/jobs", "{\"type\":\"plots.render\",\"queue\":\"default\"}", 422,
		"unknown_job_type", "type");
	refused(&d, NULL, "POST", "/v1/jobs", "{\"type\":\"bad type\",\"queue\":\"py\"}", 400, "invalid_field", "type");
	/* An internal job submitted after them runs to its end; they stay queued. */
	char *echo = harness_submit(&d, "{\"type\":\"echo\",\"payload\":1}");
	j = call(&d, "GET", "/v1/jobs/x", NULL, 404);
	cJSON_Delete(j);
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", echo);
	j = call(&d, "GET", path, NULL, 200);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);
	j = get_job(&d, id);
	ck_assert_str_eq(jstr(j, "state"), "queued");
	ck_assert_int_eq(jget(j, "attempts")->valueint, 0);
	cJSON_Delete(j);
	j = get_job(&d, other);
	ck_assert_str_eq(jstr(j, "state"), "queued");
	cJSON_Delete(j);
	free(id);
	free(other);
	free(echo);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(lease_heartbeat_complete)
{
	struct jobqd d;
	harness_start(&d, EXT);
	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\",\"payload\":{\"x\":2}}");
	cJSON *l = lease(&d, "{\"queues\":[\"py\"],\"worker\":\"host-1\"}", 1);
	const cJSON *job = leased(l);
	ck_assert_str_eq(jstr(job, "id"), id);
	ck_assert_int_eq(jget(job, "attempt")->valueint, 1);
	ck_assert_int_eq(jget(job, "attempts")->valueint, 1);
	ck_assert_msg(json_equal_text(jget(job, "payload"), "{\"x\":2}"), "payload");
	char lid[33];
	snprintf(lid, sizeof lid, "%s", jstr(job, "lease_id"));
	cJSON_Delete(l);

	cJSON *h = answer(&d, id, "heartbeat",
			  with_lease(lid, "\"lease_s\":120,\"progress\":{\"percent\":40,\"message\":\"a third\"}"), 200);
	ck_assert_msg(cJSON_IsFalse(jget(h, "cancel")), "cancel must be false");
	ck_assert_msg(jstr(h, "lease_expires_at") != NULL, "no lease_expires_at");
	cJSON_Delete(h);
	cJSON *j = get_job(&d, id);
	ck_assert_msg(json_equal_text(jget(j, "progress"), "{\"percent\":40,\"message\":\"a third\"}"), "progress");
	cJSON_Delete(j);

	j = answer(&d, id, "complete", with_lease(lid, "\"result\":{\"png\":\"a.png\"}"), 200);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_msg(json_equal_text(jget(j, "result"), "{\"png\":\"a.png\"}"), "result");
	const cJSON *hist = jget(j, "attempt_history");
	ck_assert_int_eq(cJSON_GetArraySize(hist), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(hist, 0), "outcome"), "succeeded");
	cJSON_Delete(j);
	free(id);
	assert_exit_0(harness_stop(&d));
}
END_TEST

/* Prefer: return=minimal: a worker gets 204 and no body for an answer
 * that applied, and the same 409 problem for one that did not. */
START_TEST(answers_may_ask_for_no_body)
{
	static const char *const what[] = {"fail", "complete"};
	static const char *const rest[] = {"\"error\":\"boom\",\"retryable\":false", "\"result\":7"};
	static const char *const state[] = {"failed", "succeeded"};
	struct jobqd d;
	harness_start(&d, EXT);
	for (int k = 0; k < 2; k++) {
		char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\"}");
		cJSON *l = lease(&d, "{\"queues\":[\"py\"]}", 1);
		char lid[33], path[128], applied[64];
		snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
		cJSON_Delete(l);
		snprintf(path, sizeof path, "/v1/jobs/%s/%s", id, what[k]);
		struct resp r;
		harness_request(&d, "POST", path, "application/json", with_lease(lid, rest[k]),
				"Prefer: return=minimal", &r);
		ck_assert_msg(r.status == 204, "%s: status %ld, body %.300s", path, r.status, r.body);
		ck_assert_msg(!r.body || !r.body[0], "a 204 has no body: %.300s", r.body);
		ck_assert_int_eq(harness_header(&r, "Preference-Applied", applied, sizeof applied), 1);
		ck_assert_str_eq(applied, "return=minimal");
		harness_resp_free(&r);
		cJSON *j = get_job(&d, id);
		ck_assert_str_eq(jstr(j, "state"), state[k]);
		ck_assert_int_eq(cJSON_GetArraySize(jget(j, "attempt_history")), 1);
		cJSON_Delete(j);
		harness_request(&d, "POST", path, "application/json", with_lease(lid, rest[k]),
				"Prefer: return=minimal", &r);
		assert_problem(&r, 409, "lease_lost", "lease_id");
		harness_resp_free(&r);
		free(id);
	}
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(fail_retries_per_policy_and_release_spends_no_attempt)
{
	struct jobqd d;
	harness_start(&d, EXT);
	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\",\"max_attempts\":3,\"backoff_s\":0.01}");
	cJSON *l = lease(&d, "{\"queues\":[\"py\"]}", 1);
	char lid[33];
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	cJSON *j = answer(&d, id, "fail", with_lease(lid, "\"error\":\"boom\""), 200);
	ck_assert_msg(strcmp(jstr(j, "state"), "scheduled") == 0 || strcmp(jstr(j, "state"), "queued") == 0,
		      "state %s", jstr_or(j, "state"));
	ck_assert_str_eq(jstr(j, "error"), "boom");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(jget(j, "attempt_history"), 0), "outcome"), "failed");
	cJSON_Delete(j);

	l = lease(&d, "{\"queues\":[\"py\"],\"wait_s\":10}", 1);
	ck_assert_int_eq(jget(leased(l), "attempt")->valueint, 2);
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	j = answer(&d, id, "release", with_lease(lid, ""), 200);
	ck_assert_str_eq(jstr(j, "state"), "queued");
	ck_assert_int_eq(jget(j, "attempts")->valueint, 1);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "attempt_history")), 1);
	cJSON_Delete(j);

	l = lease(&d, "{\"queues\":[\"py\"]}", 1);
	ck_assert_int_eq(jget(leased(l), "attempt")->valueint, 2);
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	j = answer(&d, id, "release", with_lease(lid, "\"delay_s\":600"), 200);
	ck_assert_str_eq(jstr(j, "state"), "scheduled");
	cJSON_Delete(j);
	cJSON_Delete(lease(&d, "{\"queues\":[\"py\"]}", 0));

	char *id2 = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\",\"max_attempts\":3}");
	l = lease(&d, "{\"queues\":[\"py\"]}", 1);
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	j = answer(&d, id2, "fail", with_lease(lid, "\"error\":\"bad input\",\"retryable\":false"), 200);
	ck_assert_str_eq(jstr(j, "state"), "failed");
	cJSON_Delete(j);
	free(id);
	free(id2);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(stale_lease_ids_are_refused_and_change_nothing)
{
	struct jobqd d;
	harness_start(&d, EXT);
	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\"}");
	cJSON *l = lease(&d, "{\"queues\":[\"py\"]}", 1);
	char first[33], second[33], path[128];
	snprintf(first, sizeof first, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	static const char *const what[] = {"heartbeat", "complete", "fail", "release"};
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "/v1/jobs/%s/%s", id, what[i]);
		refused(&d, NULL, "POST", path, with_lease(STALE, ""), 409, "lease_lost", "lease_id");
		refused(&d, NULL, "POST", path, with_lease("not-a-lease", ""), 409, "lease_lost", "lease_id");
	}
	/* Another attempt's lease: released, leased again. */
	cJSON_Delete(answer(&d, id, "release", with_lease(first, ""), 200));
	l = lease(&d, "{\"queues\":[\"py\"]}", 1);
	snprintf(second, sizeof second, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "/v1/jobs/%s/%s", id, what[i]);
		refused(&d, NULL, "POST", path, with_lease(first, ""), 409, "lease_lost", "lease_id");
	}
	cJSON *j = get_job(&d, id);
	ck_assert_str_eq(jstr(j, "state"), "running");
	ck_assert_int_eq(jget(j, "attempts")->valueint, 1);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "attempt_history")), 0);
	cJSON_Delete(j);
	cJSON_Delete(answer(&d, id, "complete", with_lease(second, "\"result\":1"), 200));
	/* The same answer twice: the second finds no lease. */
	snprintf(path, sizeof path, "/v1/jobs/%s/complete", id);
	refused(&d, NULL, "POST", path, with_lease(second, "\"result\":2"), 409, "lease_lost", "lease_id");
	j = get_job(&d, id);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	ck_assert_int_eq(jget(j, "result")->valueint, 1);
	cJSON_Delete(j);
	free(id);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(expired_lease_is_an_interrupted_attempt_and_the_job_is_leased_again)
{
	struct jobqd d;
	harness_start(&d, EXT);
	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\",\"max_attempts\":3,\"backoff_s\":0.01}");
	cJSON *l = lease(&d, "{\"queues\":[\"py\"],\"lease_s\":1}", 1);
	char lid[33];
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	double t0 = now_ms();
	/* lease_s + 1 s, with slack for a loaded machine. */
	cJSON *j = NULL;
	for (;;) {
		j = get_job(&d, id);
		if (cJSON_GetArraySize(jget(j, "attempt_history")) == 1)
			break;
		ck_assert_msg(now_ms() - t0 < 2500, "the lease did not expire within lease_s + 1 s");
		cJSON_Delete(j);
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL); /* a poll's pace, not a synchronisation */
	}
	const cJSON *a = cJSON_GetArrayItem(jget(j, "attempt_history"), 0);
	ck_assert_str_eq(jstr(a, "outcome"), "interrupted");
	ck_assert_msg(strcmp(jstr(j, "state"), "scheduled") == 0 || strcmp(jstr(j, "state"), "queued") == 0,
		      "state %s", jstr_or(j, "state"));
	cJSON_Delete(j);
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s/complete", id);
	refused(&d, NULL, "POST", path, with_lease(lid, ""), 409, "lease_lost", "lease_id");
	l = lease(&d, "{\"queues\":[\"py\"],\"wait_s\":10}", 1);
	ck_assert_int_eq(jget(leased(l), "attempt")->valueint, 2);
	cJSON_Delete(l);
	free(id);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(cancel_reaches_the_worker_at_its_heartbeat)
{
	struct jobqd d;
	harness_start(&d, EXT);
	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\"}");
	cJSON *l = lease(&d, "{\"queues\":[\"py\"]}", 1);
	char lid[33];
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	cJSON *j = answer(&d, id, "cancel", NULL, 200);
	ck_assert_str_eq(jstr(j, "state"), "canceled");
	cJSON_Delete(j);
	j = answer(&d, id, "heartbeat", with_lease(lid, ""), 200);
	ck_assert_msg(cJSON_IsTrue(jget(j, "cancel")), "cancel must be true");
	ck_assert_msg(cJSON_IsNull(jget(j, "lease_expires_at")), "lease_expires_at must be null");
	cJSON_Delete(j);
	char path[128];
	snprintf(path, sizeof path, "/v1/jobs/%s/complete", id);
	refused(&d, NULL, "POST", path, with_lease(lid, "\"result\":1"), 409, "lease_lost", "lease_id");
	snprintf(path, sizeof path, "/v1/jobs/%s/heartbeat", id);
	refused(&d, NULL, "POST", path, with_lease(lid, ""), 409, "lease_lost", "lease_id");
	j = get_job(&d, id);
	ck_assert_str_eq(jstr(j, "state"), "canceled");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(jget(j, "attempt_history"), 0), "outcome"), "canceled");
	cJSON_Delete(j);
	free(id);
	assert_exit_0(harness_stop(&d));
}
END_TEST

struct poller {
	const struct jobqd *d;
	const char *body;
	struct resp r;
	double ms;
};

static void *long_poll(void *arg)
{
	struct poller *p = arg;
	double t0 = now_ms();

	harness_request(p->d, "POST", "/v1/leases", "application/json", p->body, NULL, &p->r);
	p->ms = now_ms() - t0;
	return NULL;
}

START_TEST(lease_long_poll_is_woken_by_a_submit)
{
	struct jobqd d;
	harness_start(&d, EXT);
	struct poller p = {.d = &d, .body = "{\"queues\":[\"ext.a\"],\"wait_s\":30}"};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, long_poll, &p), 0);
	/* the lease request is waiting once jobq_waiters counts it */
	harness_wait_metric(&d, "jobq_waiters", 1, 10000.0);
	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"ext.a\"}");
	pthread_join(t, NULL);
	ck_assert_msg(p.r.status == 200, "status %ld: %s", p.r.status, p.r.body);
	cJSON *j = take_json(&p.r);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "jobs")), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(jget(j, "jobs"), 0), "id"), id);
	ck_assert_msg(p.ms < 15000, "the long poll answered after %.0f ms of its 30 s", p.ms);
	cJSON_Delete(j);
	harness_resp_free(&p.r);
	/* With nothing to lease, it answers an empty list when wait_s runs out. */
	cJSON_Delete(lease(&d, "{\"queues\":[\"ext.a\"],\"wait_s\":0.2}", 0));
	free(id);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(lease_long_poll_skips_a_paused_queue_and_is_woken_by_its_resume)
{
	struct jobqd d;
	harness_start(&d, EXT);
	cJSON_Delete(call(&d, "POST", "/v1/queues/ext.b/pause", NULL, 200));
	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"ext.b\"}");
	cJSON_Delete(lease(&d, "{\"queues\":[\"ext.b\"]}", 0));
	struct poller p = {.d = &d, .body = "{\"queues\":[\"ext.b\"],\"wait_s\":30}"};
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, long_poll, &p), 0);
	/* the lease request is waiting once jobq_waiters counts it */
	harness_wait_metric(&d, "jobq_waiters", 1, 10000.0);
	cJSON_Delete(call(&d, "POST", "/v1/queues/ext.b/resume", NULL, 200));
	pthread_join(t, NULL);
	ck_assert_msg(p.r.status == 200, "status %ld: %s", p.r.status, p.r.body);
	cJSON *j = take_json(&p.r);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "jobs")), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(jget(j, "jobs"), 0), "id"), id);
	ck_assert_msg(p.ms < 15000, "the long poll answered after %.0f ms of its 30 s", p.ms);
	cJSON_Delete(j);
	harness_resp_free(&p.r);
	free(id);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(queue_limit_counts_leased_jobs)
{
	struct jobqd d;
	harness_start(&d, EXT);
	char *a = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"lim\"}");
	char *b = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"lim\"}");
	cJSON *l = lease(&d, "{\"queues\":[\"lim\"],\"max\":2}", 1);
	char lid[33], first[40];
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	snprintf(first, sizeof first, "%s", jstr(leased(l), "id"));
	cJSON_Delete(l);
	cJSON_Delete(lease(&d, "{\"queues\":[\"lim\"],\"max\":2}", 0));
	cJSON_Delete(answer(&d, first, "complete", with_lease(lid, ""), 200));
	l = lease(&d, "{\"queues\":[\"lim\"],\"max\":2}", 1);
	ck_assert_str_eq(jstr(leased(l), "id"), strcmp(first, a) == 0 ? b : a);
	cJSON_Delete(l);
	free(a);
	free(b);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(worker_role_may_lease_and_read_but_not_submit)
{
	struct jobqd d;
	harness_start_env(&d, EXT, ARGS("JOBQ_API_KEYS=worker:wk-key,submit:sb-key,read:rd-key,admin:ad-key"));
	const char *wk = "Authorization: Bearer wk-key", *sb = "Authorization: Bearer sb-key";
	const char *rd = "Authorization: Bearer rd-key", *ad = "Authorization: Bearer ad-key";
	cJSON *j = call_as(&d, sb, "POST", "/v1/jobs", "{\"type\":\"fn\",\"queue\":\"py\"}", 201);
	char id[40], path[128];
	snprintf(id, sizeof id, "%s", jstr(j, "id"));
	cJSON_Delete(j);
	refused(&d, wk, "POST", "/v1/jobs", "{\"type\":\"fn\",\"queue\":\"py\"}", 403, "forbidden", "Authorization");
	refused(&d, wk, "POST", "/v1/queues/py/pause", NULL, 403, "forbidden", "Authorization");
	refused(&d, sb, "POST", "/v1/leases", "{\"queues\":[\"py\"]}", 403, "forbidden", "Authorization");
	refused(&d, rd, "POST", "/v1/leases", "{\"queues\":[\"py\"]}", 403, "forbidden", "Authorization");
	refused(&d, NULL, "POST", "/v1/leases", "{\"queues\":[\"py\"]}", 401, "unauthorized", "Authorization");
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	cJSON_Delete(call_as(&d, wk, "GET", path, NULL, 200));
	j = call_as(&d, wk, "POST", "/v1/leases", "{\"queues\":[\"py\"]}", 200);
	char lid[33];
	snprintf(lid, sizeof lid, "%s", jstr(leased(j), "lease_id"));
	cJSON_Delete(j);
	snprintf(path, sizeof path, "/v1/jobs/%s/heartbeat", id);
	refused(&d, sb, "POST", path, with_lease(lid, ""), 403, "forbidden", "Authorization");
	cJSON_Delete(call_as(&d, ad, "POST", path, with_lease(lid, ""), 200));
	snprintf(path, sizeof path, "/v1/jobs/%s/complete", id);
	cJSON_Delete(call_as(&d, wk, "POST", path, with_lease(lid, ""), 200));
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(bad_inputs_name_the_field)
{
	struct jobqd d;
	harness_start(&d, EXT);
	static const struct {
		const char *body;
		long status;
		const char *code, *field;
	} cases[] = {
		{"{}", 400, "invalid_field", "queues"},
		{"{\"queues\":[]}", 400, "invalid_field", "queues"},
		{"{\"queues\":\"py\"}", 400, "invalid_field", "queues"},
		{"{\"queues\":[\"default\"]}", 422, "queue_not_external", "queues[0]"},
		{"{\"queues\":[\"py\",\"ext\"]}", 422, "queue_not_external", "queues[1]"},
		{"{\"queues\":[\"py\",3]}", 400, "invalid_field", "queues[1]"},
		{"{\"queues\":[\"py\"],\"max\":0}", 400, "invalid_field", "max"},
		{"{\"queues\":[\"py\"],\"max\":101}", 400, "invalid_field", "max"},
		{"{\"queues\":[\"py\"],\"max\":1.5}", 400, "invalid_field", "max"},
		{"{\"queues\":[\"py\"],\"lease_s\":0}", 400, "invalid_field", "lease_s"},
		{"{\"queues\":[\"py\"],\"lease_s\":3601}", 400, "invalid_field", "lease_s"},
		{"{\"queues\":[\"py\"],\"wait_s\":61}", 400, "invalid_field", "wait_s"},
		{"{\"queues\":[\"py\"],\"wait_s\":-1}", 400, "invalid_field", "wait_s"},
		{"{\"queues\":[\"py\"],\"worker\":7}", 400, "invalid_field", "worker"},
		{"[1]", 400, "malformed_json", NULL}, /* as POST /v1/jobs: not the API's shape (issue 16) */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		refused(&d, NULL, "POST", "/v1/leases", cases[i].body, cases[i].status, cases[i].code, cases[i].field);
	refused(&d, NULL, "POST", "/v1/leases", "{\"queues\":", 400, "malformed_json", NULL);

	char *id = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\"}");
	cJSON *l = lease(&d, "{\"queues\":[\"py\"]}", 1);
	char lid[33], path[128];
	snprintf(lid, sizeof lid, "%s", jstr(leased(l), "lease_id"));
	cJSON_Delete(l);
	static const char *const what[] = {"heartbeat", "complete", "fail", "release"};
	for (int i = 0; i < 4; i++) {
		snprintf(path, sizeof path, "/v1/jobs/%s/%s", id, what[i]);
		refused(&d, NULL, "POST", path, "{}", 400, "invalid_field", "lease_id");
		refused(&d, NULL, "POST", path, "{\"lease_id\":5}", 400, "invalid_field", "lease_id");
		snprintf(path, sizeof path, "/v1/jobs/01a236a1-93bb-7008-beca-a95e550fc34c/%s", what[i]);
		refused(&d, NULL, "POST", path, with_lease(lid, ""), 404, "job_not_found", NULL);
	}
	snprintf(path, sizeof path, "/v1/jobs/%s/heartbeat", id);
	refused(&d, NULL, "POST", path, with_lease(lid, "\"lease_s\":0"), 400, "invalid_field", "lease_s");
	refused(&d, NULL, "POST", path, with_lease(lid, "\"progress\":{\"percent\":101}"), 400, "invalid_field",
		"progress.percent");
	snprintf(path, sizeof path, "/v1/jobs/%s/fail", id);
	refused(&d, NULL, "POST", path, with_lease(lid, "\"retryable\":\"yes\""), 400, "invalid_field", "retryable");
	snprintf(path, sizeof path, "/v1/jobs/%s/release", id);
	refused(&d, NULL, "POST", path, with_lease(lid, "\"delay_s\":-1"), 400, "invalid_field", "delay_s");
	/* none of it touched the lease */
	cJSON_Delete(answer(&d, id, "complete", with_lease(lid, ""), 200));
	free(id);
	assert_exit_0(harness_stop(&d));
}
END_TEST

/* GET /v1/leases: the dashboard's view of the jobs external workers hold,
 * each with its lease's expiry, soonest first; the queue resource says
 * which queues are external. */
START_TEST(leases_now_are_listed_with_their_expiry)
{
	struct jobqd d;
	harness_start(&d, EXT);
	char *a = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"py\"}");
	char *b = harness_submit(&d, "{\"type\":\"fn\",\"queue\":\"ext.img\"}");
	cJSON *j = call(&d, "GET", "/v1/leases", NULL, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "leases")), 0);
	cJSON_Delete(j);
	cJSON_Delete(lease(&d, "{\"queues\":[\"py\"],\"lease_s\":600}", 1));
	cJSON *lb = lease(&d, "{\"queues\":[\"ext.img\"],\"lease_s\":60}", 1);
	char lid[33];
	snprintf(lid, sizeof lid, "%s", jstr(leased(lb), "lease_id"));
	long long b_expires = jts(leased(lb), "lease_expires_at");
	cJSON_Delete(lb);

	j = call(&d, "GET", "/v1/leases", NULL, 200);
	const cJSON *ls = jget(j, "leases");
	ck_assert_int_eq(cJSON_GetArraySize(ls), 2);
	const cJSON *first = cJSON_GetArrayItem(ls, 0), *second = cJSON_GetArrayItem(ls, 1);
	ck_assert_str_eq(jstr_or(first, "job_id"), b); /* 60 s before 600 s */
	ck_assert_str_eq(jstr_or(first, "queue"), "ext.img");
	ck_assert_str_eq(jstr_or(first, "type"), "fn");
	ck_assert_int_eq(jlong(first, "attempt"), 1);
	ck_assert(is_rfc3339_ms(jstr(first, "started_at")));
	ck_assert_int_eq(jts(first, "lease_expires_at"), b_expires);
	/* SQLite keeps no node; PostgreSQL names the one that granted it */
	if (harness_db_url())
		ck_assert_msg(jstr(first, "node") && strlen(jstr(first, "node")) == 36, "node %s", jstr_or(first, "node"));
	else
		ck_assert(jnull(first, "node"));
	ck_assert_str_eq(jstr_or(second, "job_id"), a);
	cJSON_Delete(j);

	j = call(&d, "GET", "/v1/leases?queue=py&limit=5", NULL, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "leases")), 1);
	ck_assert_str_eq(jstr_or(cJSON_GetArrayItem(jget(j, "leases"), 0), "job_id"), a);
	cJSON_Delete(j);
	j = call(&d, "GET", "/v1/leases?limit=1", NULL, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "leases")), 1);
	cJSON_Delete(j);
	refused(&d, NULL, "GET", "/v1/leases?limit=0", NULL, 400, "invalid_query", "limit");
	refused(&d, NULL, "GET", "/v1/leases?limit=1001", NULL, 400, "invalid_query", "limit");
	refused(&d, NULL, "GET", "/v1/leases?queue=a%20b", NULL, 400, "invalid_query", "queue");

	/* a completed job's lease is gone */
	cJSON_Delete(answer(&d, b, "complete", with_lease(lid, ""), 200));
	j = call(&d, "GET", "/v1/leases", NULL, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "leases")), 1);
	cJSON_Delete(j);

	j = call(&d, "GET", "/v1/queues/ext.img", NULL, 200);
	ck_assert(cJSON_IsTrue(jget(j, "external")));
	cJSON_Delete(j);
	cJSON_Delete(call(&d, "POST", "/v1/jobs", "{\"type\":\"echo\",\"queue\":\"inside\"}", 201));
	j = call(&d, "GET", "/v1/queues/inside", NULL, 200);
	ck_assert(cJSON_IsFalse(jget(j, "external")));
	cJSON_Delete(j);
	free(a);
	free(b);
	assert_exit_0(harness_stop(&d));
}
END_TEST

static Suite *lease_suite(void)
{
	Suite *s = suite_create("jobq_api_lease");
	TCase *tc = harness_tcase(s, "lease", 60);

	tcase_add_test(tc, external_queue_takes_any_type_and_is_never_run_inside);
	tcase_add_test(tc, lease_heartbeat_complete);
	tcase_add_test(tc, answers_may_ask_for_no_body);
	tcase_add_test(tc, fail_retries_per_policy_and_release_spends_no_attempt);
	tcase_add_test(tc, stale_lease_ids_are_refused_and_change_nothing);
	tcase_add_test(tc, expired_lease_is_an_interrupted_attempt_and_the_job_is_leased_again);
	tcase_add_test(tc, cancel_reaches_the_worker_at_its_heartbeat);
	tcase_add_test(tc, lease_long_poll_is_woken_by_a_submit);
	tcase_add_test(tc, lease_long_poll_skips_a_paused_queue_and_is_woken_by_its_resume);
	tcase_add_test(tc, queue_limit_counts_leased_jobs);
	tcase_add_test(tc, worker_role_may_lease_and_read_but_not_submit);
	tcase_add_test(tc, bad_inputs_name_the_field);
	tcase_add_test(tc, leases_now_are_listed_with_their_expiry);
	return s;
}

int main(void)
{
	return harness_run(lease_suite());
}
