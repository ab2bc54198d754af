/* Black-box API tests for job dependencies (issue 15, part B): depends_on
 * and on_dependency_failure on submit and in batches, the blocked state,
 * chains, fan-out, fan-in, each policy for a failed and a canceled parent,
 * cascades, retries, and every refusal with the field it names. Each test
 * starts its own jobqd through tests/harness.c; waits are bounded polls. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "harness.h"

#define UNKNOWN_ID "01890000-0000-7000-8000-000000000000"
#define HOLD "\"delay_s\":3600" /* a parent that waits, scheduled, until canceled */

#define call(d, method, path, body, want) harness_call((d), (method), (path), (body), NULL, (want))

static void refused(const struct jobqd *d, const char *path, const char *body, long status, const char *code,
		    const char *field)
{
	struct resp r;

	harness_request(d, "POST", path, "application/json", body, NULL, &r);
	assert_problem(&r, status, code, field);
	harness_resp_free(&r);
}

/* Submits body; the reply must be 201 in state want. Returns the id. */
#define submit_in harness_submit_state

/* {"type":"echo","depends_on":["a","b"],<rest>} */
static const char *child_body(const char *const *parents, const char *rest)
{
	static char body[2048];
	size_t n = (size_t)snprintf(body, sizeof body, "{\"type\":\"echo\",\"depends_on\":[");

	for (int i = 0; parents[i]; i++)
		n += (size_t)snprintf(body + n, sizeof body - n, "%s\"%s\"", i ? "," : "", parents[i]);
	snprintf(body + n, sizeof body - n, "]%s%s}", rest[0] ? "," : "", rest);
	return body;
}

#define PARENTS(...) ((const char *const[]){ __VA_ARGS__, NULL })

#define get_job harness_get_job

#define finished(d, id) harness_wait_terminal((d), (id), NULL)

static void assert_state(const struct jobqd *d, const char *id, const char *state)
{
	cJSON *j = get_job(d, id, NULL);

	ck_assert_msg(str_eq(jstr(j, "state"), state), "job %s: state %s, want %s: %s", id, jstr_or(j, "state"),
		      state, cJSON_PrintUnformatted(j));
	cJSON_Delete(j);
}

/* The job ends in state (and with error, when not NULL). */
static void ends(const struct jobqd *d, const char *id, const char *state, const char *error)
{
	cJSON *j = finished(d, id);

	ck_assert_msg(str_eq(jstr(j, "state"), state), "job %s: state %s, want %s", id, jstr_or(j, "state"), state);
	if (error)
		ck_assert_msg(str_eq(jstr(j, "error"), error), "job %s: error %s, want %s", id, jstr_or(j, "error"),
			      error);
	cJSON_Delete(j);
}

/* child started after every parent finished (both succeeded). */
static void ran_after(const struct jobqd *d, const char *child, const char *const *parents)
{
	cJSON *c = finished(d, child);

	ck_assert_str_eq(jstr_or(c, "state"), "succeeded");
	for (int i = 0; parents[i]; i++) {
		cJSON *p = finished(d, parents[i]);
		ck_assert_str_eq(jstr_or(p, "state"), "succeeded");
		ck_assert_msg(jts(c, "started_at") >= jts(p, "finished_at"),
			      "child %s started at %s, before parent %s finished at %s", child,
			      jstr_or(c, "started_at"), parents[i], jstr_or(p, "finished_at"));
		cJSON_Delete(p);
	}
	cJSON_Delete(c);
}

static void pending_is(const struct jobqd *d, const char *id, long want)
{
	cJSON *j = get_job(d, id, NULL);

	ck_assert_msg(str_eq(jstr(j, "state"), "blocked") && jlong(j, "dependencies_pending") == want,
		      "job %s: want blocked with %ld pending: %s", id, want, cJSON_PrintUnformatted(j));
	cJSON_Delete(j);
}

static void action(const struct jobqd *d, const char *id, const char *what, long want)
{
	char path[160];

	snprintf(path, sizeof path, "/v1/jobs/%s/%s", id, what);
	cJSON_Delete(call(d, "POST", path, NULL, want));
}

START_TEST(chain_runs_in_order)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *a = submit_in(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.3}}", "queued");
	char *b = submit_in(&d, child_body(PARENTS(a), ""), "blocked");
	char *c = submit_in(&d, child_body(PARENTS(b), ""), "blocked");

	cJSON *j = get_job(&d, c, NULL);
	const cJSON *deps = jget(j, "depends_on");
	ck_assert_msg(cJSON_GetArraySize(deps) == 1 && str_eq(cJSON_GetArrayItem(deps, 0)->valuestring, b),
		      "depends_on: %s", cJSON_PrintUnformatted(j));
	ck_assert_str_eq(jstr_or(j, "on_dependency_failure"), "cancel");
	ck_assert_int_eq(jlong(j, "dependencies_pending"), 1);
	cJSON_Delete(j);

	ran_after(&d, b, PARENTS(a));
	ran_after(&d, c, PARENTS(b));
	j = get_job(&d, c, NULL);
	ck_assert_int_eq(jlong(j, "dependencies_pending"), 0);
	cJSON_Delete(j);
	free(a);
	free(b);
	free(c);
	harness_stop(&d);
}
END_TEST

START_TEST(fan_out_and_fan_in)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *root = submit_in(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.2}}", "queued");
	char *k[3];
	for (int i = 0; i < 3; i++)
		k[i] = submit_in(&d, child_body(PARENTS(root), ""), "blocked");
	char *join = submit_in(&d, child_body(PARENTS(k[0], k[1], k[2]), ""), "blocked");
	pending_is(&d, join, 3);

	for (int i = 0; i < 3; i++)
		ran_after(&d, k[i], PARENTS(root));
	ran_after(&d, join, PARENTS(k[0], k[1], k[2]));
	for (int i = 0; i < 3; i++)
		free(k[i]);
	free(root);
	free(join);
	harness_stop(&d);
}
END_TEST

START_TEST(failed_parent_applies_each_policy)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *p = submit_in(&d, "{\"type\":\"fail\",\"payload\":{\"retryable\":false},\"delay_s\":0.3}", "scheduled");
	char *cancel = submit_in(&d, child_body(PARENTS(p), ""), "blocked");
	char *run = submit_in(&d, child_body(PARENTS(p), "\"on_dependency_failure\":\"run\""), "blocked");
	char *wait = submit_in(&d, child_body(PARENTS(p), "\"on_dependency_failure\":\"wait\""), "blocked");
	char *grand = submit_in(&d, child_body(PARENTS(cancel), ""), "blocked");

	ends(&d, p, "failed", NULL);
	char why[128];
	snprintf(why, sizeof why, "dependency %s failed", p);
	ends(&d, cancel, "canceled", why);
	snprintf(why, sizeof why, "dependency %s canceled", cancel);
	ends(&d, grand, "canceled", why);
	ends(&d, run, "succeeded", NULL);
	/* The cascade commits with the parent's end: nothing is left to
	 * happen to the waiting child. */
	pending_is(&d, wait, 1);
	free(p);
	free(cancel);
	free(run);
	free(wait);
	free(grand);
	harness_stop(&d);
}
END_TEST

START_TEST(canceled_parent_applies_each_policy_and_wait_runs_after_retry)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *p = submit_in(&d, "{\"type\":\"echo\"," HOLD "}", "scheduled");
	char *cancel = submit_in(&d, child_body(PARENTS(p), ""), "blocked");
	char *run = submit_in(&d, child_body(PARENTS(p), "\"on_dependency_failure\":\"run\""), "blocked");
	char *wait = submit_in(&d, child_body(PARENTS(p), "\"on_dependency_failure\":\"wait\""), "blocked");

	action(&d, p, "cancel", 200);
	char why[128];
	snprintf(why, sizeof why, "dependency %s canceled", p);
	ends(&d, cancel, "canceled", why);
	ends(&d, run, "succeeded", NULL);
	pending_is(&d, wait, 1);

	/* The parent is retried (runs at once now) and succeeds: the waiting
	 * child runs; the canceled one stays canceled. */
	action(&d, p, "retry", 200);
	ran_after(&d, wait, PARENTS(p));
	assert_state(&d, cancel, "canceled");
	free(p);
	free(cancel);
	free(run);
	free(wait);
	harness_stop(&d);
}
END_TEST

START_TEST(cancel_cascades_over_two_levels)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *p = submit_in(&d, "{\"type\":\"echo\"," HOLD "}", "scheduled");
	char *b = submit_in(&d, child_body(PARENTS(p), ""), "blocked");
	char *c = submit_in(&d, child_body(PARENTS(b), ""), "blocked");
	char *other = submit_in(&d, "{\"type\":\"echo\"," HOLD "}", "scheduled");
	char *c2 = submit_in(&d, child_body(PARENTS(c, other), "\"on_dependency_failure\":\"run\""), "blocked");

	/* A blocked job can itself be canceled, which cascades too. */
	action(&d, p, "cancel", 200);
	char why[128];
	snprintf(why, sizeof why, "dependency %s canceled", p);
	ends(&d, b, "canceled", why);
	snprintf(why, sizeof why, "dependency %s canceled", b);
	ends(&d, c, "canceled", why);
	pending_is(&d, c2, 1); /* c resolved under "run"; other still pending */
	action(&d, other, "cancel", 200);
	ends(&d, c2, "succeeded", NULL);
	free(p);
	free(b);
	free(c);
	free(c2);
	free(other);
	harness_stop(&d);
}
END_TEST

START_TEST(blocked_job_cancel_and_retry_of_a_dependency_cancel)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *p = submit_in(&d, "{\"type\":\"echo\"," HOLD "}", "scheduled");
	char *b = submit_in(&d, child_body(PARENTS(p), ""), "blocked");
	cJSON *j = call(&d, "POST", "/v1/jobs/", NULL, 404);
	cJSON_Delete(j);
	char path[160];
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", b);
	j = call(&d, "POST", path, NULL, 200);
	ck_assert_str_eq(jstr_or(j, "state"), "canceled");
	cJSON_Delete(j);

	/* Retried while its parent still waits: blocked again. */
	snprintf(path, sizeof path, "/v1/jobs/%s/retry", b);
	j = call(&d, "POST", path, NULL, 200);
	ck_assert_msg(str_eq(jstr(j, "state"), "blocked") && jlong(j, "dependencies_pending") == 1, "retry: %s",
		      cJSON_PrintUnformatted(j));
	cJSON_Delete(j);

	/* Canceled by its parent, then retried after the parent succeeded:
	 * queued, and it runs. */
	action(&d, p, "cancel", 200);
	ends(&d, b, "canceled", NULL);
	action(&d, p, "retry", 200);
	ends(&d, p, "succeeded", NULL);
	assert_state(&d, b, "canceled");
	j = call(&d, "POST", path, NULL, 200);
	ck_assert_msg(str_eq(jstr(j, "state"), "queued") || str_eq(jstr(j, "state"), "running") ||
			      str_eq(jstr(j, "state"), "succeeded"),
		      "retry: %s", cJSON_PrintUnformatted(j));
	cJSON_Delete(j);
	ends(&d, b, "succeeded", NULL);
	free(p);
	free(b);
	harness_stop(&d);
}
END_TEST

START_TEST(parents_already_finished_at_submit)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *ok = submit_in(&d, "{\"type\":\"echo\"}", "queued");
	char *bad = submit_in(&d, "{\"type\":\"fail\",\"payload\":{\"retryable\":false}}", "queued");
	char *gone = submit_in(&d, "{\"type\":\"echo\"," HOLD "}", "scheduled");
	action(&d, gone, "cancel", 200);
	ends(&d, ok, "succeeded", NULL);
	ends(&d, bad, "failed", NULL);

	char *after_ok = submit_in(&d, child_body(PARENTS(ok), ""), "queued");
	ends(&d, after_ok, "succeeded", NULL);

	/* A failed parent at submit: the policy applies at once. */
	cJSON *j = call(&d, "POST", "/v1/jobs", child_body(PARENTS(ok, bad), ""), 201);
	char why[128];
	snprintf(why, sizeof why, "dependency %s failed", bad);
	ck_assert_msg(str_eq(jstr(j, "state"), "canceled") && str_eq(jstr(j, "error"), why), "%s",
		      cJSON_PrintUnformatted(j));
	ck_assert_msg(jstr(j, "finished_at") != NULL, "no finished_at");
	cJSON_Delete(j);
	char *run = submit_in(&d, child_body(PARENTS(bad), "\"on_dependency_failure\":\"run\""), "queued");
	ends(&d, run, "succeeded", NULL);
	char *wait = submit_in(&d, child_body(PARENTS(ok, bad), "\"on_dependency_failure\":\"wait\""), "blocked");
	pending_is(&d, wait, 1);

	j = call(&d, "POST", "/v1/jobs", child_body(PARENTS(gone), ""), 201);
	snprintf(why, sizeof why, "dependency %s canceled", gone);
	ck_assert_msg(str_eq(jstr(j, "state"), "canceled") && str_eq(jstr(j, "error"), why), "%s",
		      cJSON_PrintUnformatted(j));
	cJSON_Delete(j);
	free(ok);
	free(bad);
	free(gone);
	free(after_ok);
	free(run);
	free(wait);
	harness_stop(&d);
}
END_TEST

START_TEST(batch_index_refs_run_in_order)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *ext = submit_in(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.1}}", "queued");
	char body[512];
	snprintf(body, sizeof body,
		 "{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[1]},{\"type\":\"sleep\",\"payload\":{\"seconds\":0.2}},"
		 "{\"type\":\"echo\",\"depends_on\":[0,1,\"%s\"]}]}", ext);
	cJSON *b = call(&d, "POST", "/v1/batches", body, 201);
	const cJSON *jobs = jget(b, "job_ids");
	ck_assert_msg(cJSON_GetArraySize(jobs) == 3, "batch: %s", cJSON_PrintUnformatted(b));
	char *id[3];
	for (int i = 0; i < 3; i++)
		id[i] = strdup(cJSON_GetArrayItem(jobs, i)->valuestring);
	cJSON *j0 = get_job(&d, id[0], NULL);
	const cJSON *deps = jget(j0, "depends_on");
	ck_assert_msg(cJSON_GetArraySize(deps) == 1 && str_eq(cJSON_GetArrayItem(deps, 0)->valuestring, id[1]),
		      "index 1 stands for jobs[1]'s id: %s", cJSON_PrintUnformatted(j0));
	cJSON_Delete(j0);
	ran_after(&d, id[0], PARENTS(id[1]));
	ran_after(&d, id[2], PARENTS(id[0], id[1], ext));

	char path[160];
	snprintf(path, sizeof path, "/v1/batches/%s", jstr(b, "id"));
	cJSON *done = NULL;
	for (int k = 0; k < 200; k++) {
		cJSON_Delete(done);
		done = call(&d, "GET", path, NULL, 200);
		if (cJSON_IsTrue(jget(done, "done")))
			break;
		nap_ms(20);
	}
	ck_assert_msg(cJSON_IsTrue(jget(done, "done")), "batch not done: %s", cJSON_PrintUnformatted(done));
	cJSON_Delete(done);
	cJSON_Delete(b);
	for (int i = 0; i < 3; i++)
		free(id[i]);
	free(ext);
	harness_stop(&d);
}
END_TEST

START_TEST(batch_with_a_failed_parent_cancels_and_finishes)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *bad = submit_in(&d, "{\"type\":\"fail\",\"payload\":{\"retryable\":false}}", "queued");
	ends(&d, bad, "failed", NULL);
	char body[512];
	snprintf(body, sizeof body,
		 "{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[\"%s\"]},{\"type\":\"echo\",\"depends_on\":[0]}]}", bad);
	cJSON *b = call(&d, "POST", "/v1/batches", body, 201);
	const cJSON *ids = jget(b, "job_ids");
	const char *first = cJSON_GetArrayItem(ids, 0)->valuestring;
	cJSON *j0 = get_job(&d, first, NULL), *j1 = get_job(&d, cJSON_GetArrayItem(ids, 1)->valuestring, NULL);
	char why[128];
	snprintf(why, sizeof why, "dependency %s failed", bad);
	ck_assert_str_eq(jstr_or(j0, "state"), "canceled");
	ck_assert_str_eq(jstr_or(j0, "error"), why);
	snprintf(why, sizeof why, "dependency %s canceled", first);
	ck_assert_str_eq(jstr_or(j1, "state"), "canceled");
	ck_assert_str_eq(jstr_or(j1, "error"), why);
	cJSON_Delete(j0);
	cJSON_Delete(j1);
	char path[160];
	snprintf(path, sizeof path, "/v1/batches/%s", jstr(b, "id"));
	cJSON *got = call(&d, "GET", path, NULL, 200);
	ck_assert_msg(cJSON_IsTrue(jget(got, "done")), "batch: %s", cJSON_PrintUnformatted(got));
	cJSON_Delete(got);
	cJSON_Delete(b);
	free(bad);
	harness_stop(&d);
}
END_TEST

START_TEST(blocked_is_listed_and_counted)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *p = submit_in(&d, "{\"type\":\"echo\",\"queue\":\"dq\"," HOLD "}", "scheduled");
	char *b = submit_in(&d, child_body(PARENTS(p), "\"queue\":\"dq\""), "blocked");
	cJSON *l = call(&d, "GET", "/v1/jobs?state=blocked", NULL, 200);
	const cJSON *jobs = jget(l, "jobs");
	ck_assert_msg(cJSON_GetArraySize(jobs) == 1 && str_eq(jstr(cJSON_GetArrayItem(jobs, 0), "id"), b), "list: %s",
		      cJSON_PrintUnformatted(l));
	cJSON_Delete(l);
	cJSON *q = call(&d, "GET", "/v1/queues/dq", NULL, 200);
	ck_assert_msg(jlong(jget(q, "counts"), "blocked") == 1 && jlong(jget(q, "counts"), "queued") == 0,
		      "queue: %s", cJSON_PrintUnformatted(q));
	cJSON_Delete(q);
	cJSON *m = NULL;
	struct resp r;
	harness_request(&d, "GET", "/metrics", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	cJSON_Delete(m);
	free(p);
	free(b);
	harness_stop(&d);
}
END_TEST

START_TEST(refusals_name_the_field)
{
	struct jobqd d;
	harness_start(&d, NULL);
	refused(&d, "/v1/jobs", "{\"type\":\"echo\",\"depends_on\":[\"" UNKNOWN_ID "\"]}", 422, "invalid_dependency",
		"depends_on[0]");
	char *ok = submit_in(&d, "{\"type\":\"echo\"}", "queued");
	char body[4096];
	snprintf(body, sizeof body, "{\"type\":\"echo\",\"depends_on\":[\"%s\",\"" UNKNOWN_ID "\"]}", ok);
	refused(&d, "/v1/jobs", body, 422, "invalid_dependency", "depends_on[1]");
	refused(&d, "/v1/jobs", "{\"type\":\"echo\",\"depends_on\":[\"nope\"]}", 400, "invalid_field",
		"depends_on[0]");
	size_t n = (size_t)snprintf(body, sizeof body, "{\"type\":\"echo\",\"depends_on\":[");
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(body + n, sizeof body - n, "%s\"01890000-0000-7000-8000-%012d\"", i ? "," : "", i);
	snprintf(body + n, sizeof body - n, "]}");
	refused(&d, "/v1/jobs", body, 400, "invalid_field", "depends_on");
	refused(&d, "/v1/jobs", "{\"type\":\"echo\",\"depends_on\":\"x\"}", 400, "invalid_field", "depends_on");
	refused(&d, "/v1/jobs", "{\"type\":\"echo\",\"depends_on\":[0]}", 400, "invalid_field", "depends_on[0]");
	refused(&d, "/v1/jobs", "{\"type\":\"echo\",\"depends_on\":[true]}", 400, "invalid_field", "depends_on[0]");
	snprintf(body, sizeof body, "{\"type\":\"echo\",\"depends_on\":[\"%s\",\"%s\"]}", ok, ok);
	refused(&d, "/v1/jobs", body, 400, "invalid_field", "depends_on[1]");
	refused(&d, "/v1/jobs", "{\"type\":\"echo\",\"on_dependency_failure\":\"later\"}", 400, "invalid_field",
		"on_dependency_failure");

	/* Batches: cycles (a self reference too), indexes out of range,
	 * unknown ids. */
	refused(&d, "/v1/batches", "{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[0]}]}", 422, "invalid_dependency",
		"jobs[0].depends_on[0]");
	refused(&d, "/v1/batches",
		"{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[1]},{\"type\":\"echo\",\"depends_on\":[2]},"
		"{\"type\":\"echo\",\"depends_on\":[0]}]}",
		422, "invalid_dependency", "jobs[2].depends_on[0]");
	refused(&d, "/v1/batches", "{\"jobs\":[{\"type\":\"echo\"},{\"type\":\"echo\",\"depends_on\":[5]}]}", 422,
		"invalid_dependency", "jobs[1].depends_on[0]");
	refused(&d, "/v1/batches",
		"{\"jobs\":[{\"type\":\"echo\"},{\"type\":\"echo\",\"depends_on\":[0,\"" UNKNOWN_ID "\"]}]}", 422,
		"invalid_dependency", "jobs[1].depends_on[1]");

	struct resp r;
	harness_request(&d, "POST", "/v1/batches", "application/json",
			"{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[1]},{\"type\":\"echo\",\"depends_on\":[0]}]}",
			NULL, &r);
	ck_assert_msg(r.json && strstr(jstr_or(r.json, "detail"), "jobs[0] -> jobs[1] -> jobs[0]"),
		      "the cycle is named: %s", r.body);
	harness_resp_free(&r);

	/* Nothing was written by any refusal: only the one job exists. */
	cJSON *l = call(&d, "GET", "/v1/jobs", NULL, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(l, "jobs")), 1);
	cJSON_Delete(l);
	free(ok);
	harness_stop(&d);
}
END_TEST

/* A parent ended outside the writer: jobqd killed while it ran its last
 * attempt, so the next start (SQLite's recovery, or on PostgreSQL the
 * rescue of the dead node) fails it. Its children still learn of it. */
START_TEST(parent_failed_by_recovery_cancels_its_children)
{
	struct jobqd d;
	const char *const args[] = {"--node-timeout", "2", NULL};
	harness_start(&d, harness_db_url() ? args : NULL);
	char *p = submit_in(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":60},\"max_attempts\":1}", "queued");
	char *c = submit_in(&d, child_body(PARENTS(p), ""), "blocked");
	char *r = submit_in(&d, child_body(PARENTS(p), "\"on_dependency_failure\":\"run\""), "blocked");
	cJSON_Delete(harness_wait_state(&d, p, "running", get_job));
	harness_kill9(&d);
	harness_restart(&d, harness_db_url() ? args : NULL);
	ends(&d, p, "failed", NULL);
	char why[128];
	snprintf(why, sizeof why, "dependency %s failed", p);
	ends(&d, c, "canceled", why);
	ends(&d, r, "succeeded", NULL);
	free(p);
	free(c);
	free(r);
	harness_stop(&d);
}
END_TEST

struct poll_arg {
	const struct jobqd *d;
	char path[160];
	char state[32];
};

static void *long_poll(void *arg)
{
	struct poll_arg *a = arg;
	struct resp r;
	harness_request(a->d, "GET", a->path, NULL, NULL, NULL, &r);
	snprintf(a->state, sizeof a->state, "%s", r.json && jstr(r.json, "state") ? jstr(r.json, "state") : "?");
	harness_resp_free(&r);
	return NULL;
}

/* A long poll on a blocked child is answered as soon as its parent's
 * cancel ends it too, not when its wait runs out (it would then still
 * read blocked). */
START_TEST(cascade_wakes_a_long_poll_on_the_child)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *p = submit_in(&d, "{\"type\":\"echo\"," HOLD "}", "scheduled");
	char *c = submit_in(&d, child_body(PARENTS(p), ""), "blocked");
	struct poll_arg a = {.d = &d};
	snprintf(a.path, sizeof a.path, "/v1/jobs/%s?wait=30", c);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, long_poll, &a), 0);
	/* the long poll has registered once jobq_waiters counts it */
	harness_wait_metric(&d, "jobq_waiters", 1, 10000.0);
	action(&d, p, "cancel", 200);
	pthread_join(t, NULL);
	ck_assert_str_eq(a.state, "canceled");
	free(p);
	free(c);
	harness_stop(&d);
}
END_TEST

static Suite *deps_suite(void)
{
	Suite *s = suite_create("jobq_api_deps");
	TCase *tc = harness_tcase(s, "deps", 60);

	tcase_add_test(tc, chain_runs_in_order);
	tcase_add_test(tc, fan_out_and_fan_in);
	tcase_add_test(tc, failed_parent_applies_each_policy);
	tcase_add_test(tc, canceled_parent_applies_each_policy_and_wait_runs_after_retry);
	tcase_add_test(tc, cancel_cascades_over_two_levels);
	tcase_add_test(tc, blocked_job_cancel_and_retry_of_a_dependency_cancel);
	tcase_add_test(tc, parents_already_finished_at_submit);
	tcase_add_test(tc, batch_index_refs_run_in_order);
	tcase_add_test(tc, batch_with_a_failed_parent_cancels_and_finishes);
	tcase_add_test(tc, blocked_is_listed_and_counted);
	tcase_add_test(tc, refusals_name_the_field);
	tcase_add_test(tc, parent_failed_by_recovery_cancels_its_children);
	tcase_add_test(tc, cascade_wakes_a_long_poll_on_the_child);
	return s;
}

int main(void)
{
	return harness_run(deps_suite());
}
