/* Bulk actions, black box: POST /v1/jobs/retry, /cancel and /delete act on
 * the jobs a filter selects, a page per call; a client loops on
 * next_cursor until it is null and every job of the filter has been acted
 * on once. Jobs of a paused queue stay where the action left them, so
 * every count is exact. Every wait is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/harness.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void assert_exit_0(int st)
{
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd did not exit 0");
}

#define call_as(d, auth, method, path, body, want) \
	harness_call((d), (method), (path), (body), (auth), (want))

#define call(d, method, path, body, want) harness_call((d), (method), (path), (body), NULL, (want))

static void refused(const struct jobqd *d, const char *auth, const char *path, const char *body, long status,
		    const char *code, const char *field)
{
	struct resp r;

	harness_request(d, "POST", path, "application/json", body, auth, &r);
	assert_problem(&r, status, code, field);
	harness_resp_free(&r);
}

#define get_job harness_get_job

static char *job_state(const struct jobqd *d, const char *id)
{
	cJSON *j = get_job(d, id, NULL);
	char *s = strdup(jstr_or(j, "state"));

	cJSON_Delete(j);
	return s;
}

/* The count of state in queue's counts. */
static long queue_count(const struct jobqd *d, const char *queue, const char *state)
{
	char path[128];
	cJSON *q;
	long n;

	snprintf(path, sizeof path, "/v1/queues/%s", queue);
	q = call(d, "GET", path, NULL, 200);
	n = jlong(jget(q, "counts"), state);
	cJSON_Delete(q);
	return n;
}

#define pause_queue(d, queue) cJSON_Delete(harness_queue_action((d), (queue), "pause"))

/* Submits n fail jobs (one attempt) to queue and waits until each failed. */
static void failed_jobs(const struct jobqd *d, const char *queue, int n, char **ids)
{
	char body[256];

	for (int i = 0; i < n; i++) {
		snprintf(body, sizeof body,
			 "{\"type\":\"fail\",\"queue\":\"%s\",\"max_attempts\":1,\"payload\":{\"message\":\"no %d\"}}",
			 queue, i);
		ids[i] = harness_submit(d, body);
	}
	for (int i = 0; i < n; i++) {
		cJSON *j = harness_wait_terminal(d, ids[i], get_job);
		ck_assert_str_eq(jstr_or(j, "state"), "failed");
		cJSON_Delete(j);
	}
}

static void free_ids(char **ids, int n)
{
	for (int i = 0; i < n; i++)
		free(ids[i]);
}

/* Calls action with filter (JSON) and limit, following next_cursor to the
 * end; checks each page's counts and returns the sums. */
struct totals {
	long matched, done, skipped, calls;
};

static struct totals loop_as(const struct jobqd *d, const char *auth, const char *action, const char *filter,
			     int limit, int dry_run)
{
	struct totals t = {0, 0, 0, 0};
	char path[64], body[512], cursor[64] = "";

	snprintf(path, sizeof path, "/v1/jobs/%s", action);
	for (;;) {
		if (cursor[0])
			snprintf(body, sizeof body, "{\"filter\":%s,\"limit\":%d,\"dry_run\":%s,\"cursor\":\"%s\"}",
				 filter, limit, dry_run ? "true" : "false", cursor);
		else
			snprintf(body, sizeof body, "{\"filter\":%s,\"limit\":%d,\"dry_run\":%s}", filter, limit,
				 dry_run ? "true" : "false");
		cJSON *j = call_as(d, auth, "POST", path, body, 200);
		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(jstr_or(j, "action"), action);
		ck_assert(cJSON_IsBool(jget(j, "dry_run")) && cJSON_IsTrue(jget(j, "dry_run")) == !!dry_run);
		long m = jlong(j, "matched"), dn = jlong(j, "done"), sk = jlong(j, "skipped");
		ck_assert_msg(m >= 0 && m <= limit && dn >= 0 && sk >= 0, "page counts: %s", cJSON_PrintUnformatted(j));
		ck_assert_msg(dry_run ? dn == 0 && sk == 0 : dn + sk == m, "done + skipped != matched: %s",
			      cJSON_PrintUnformatted(j));
		t.matched += m;
		t.done += dn;
		t.skipped += sk;
		t.calls++;
		ck_assert_msg(t.calls < 100, "next_cursor never ends");
		if (jnull(j, "next_cursor")) {
			cJSON_Delete(j);
			return t;
		}
		ck_assert_ptr_nonnull(jstr(j, "next_cursor"));
		snprintf(cursor, sizeof cursor, "%s", jstr(j, "next_cursor"));
		cJSON_Delete(j);
	}
}

static struct totals loop(const struct jobqd *d, const char *action, const char *filter, int limit, int dry_run)
{
	return loop_as(d, NULL, action, filter, limit, dry_run);
}

START_TEST(retry_failed_jobs_of_one_queue_page_by_page)
{
	struct jobqd d;
	char *ids[25], *other[3];
	harness_start(&d, NULL);
	failed_jobs(&d, "bq", 25, ids);
	failed_jobs(&d, "other", 3, other);
	char *ok = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"bq\"}");
	cJSON_Delete(harness_wait_terminal(&d, ok, get_job));
	pause_queue(&d, "bq"); /* the retried jobs wait, countable */

	struct totals t = loop(&d, "retry", "{\"state\":\"failed\",\"queue\":\"bq\"}", 10, 1);
	ck_assert_int_eq(t.matched, 25);
	ck_assert_int_eq(t.calls, 3); /* 10, 10, 5 */
	ck_assert_int_eq(queue_count(&d, "bq", "failed"), 25); /* a dry run changes nothing */

	t = loop(&d, "retry", "{\"state\":\"failed\",\"queue\":\"bq\"}", 10, 0);
	ck_assert_int_eq(t.matched, 25);
	ck_assert_int_eq(t.done, 25);
	ck_assert_int_eq(t.skipped, 0);
	ck_assert_int_eq(queue_count(&d, "bq", "failed"), 0);
	ck_assert_int_eq(queue_count(&d, "bq", "queued"), 25);
	ck_assert_int_eq(queue_count(&d, "bq", "succeeded"), 1);
	ck_assert_int_eq(queue_count(&d, "other", "failed"), 3);
	for (int i = 0; i < 25; i++) {
		char *s = job_state(&d, ids[i]);
		ck_assert_str_eq(s, "queued");
		free(s);
	}
	/* Nothing left: one call, nothing matched. */
	t = loop(&d, "retry", "{\"state\":\"failed\",\"queue\":\"bq\"}", 1000, 0);
	ck_assert_int_eq(t.calls, 1);
	ck_assert_int_eq(t.matched, 0);

	/* Without a state, retry takes failed and canceled jobs, nothing else. */
	t = loop(&d, "retry", "{}", 2, 0);
	ck_assert_int_eq(t.done, 3);
	ck_assert_int_eq(queue_count(&d, "bq", "queued"), 25);
	free_ids(ids, 25);
	free_ids(other, 3);
	free(ok);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(cancel_walks_every_unfinished_state_of_the_filter)
{
	struct jobqd d;
	char *queued[7], *sched[6], body[256];
	harness_start(&d, NULL);
	pause_queue(&d, "cq");
	for (int i = 0; i < 7; i++)
		queued[i] = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"cq\"}");
	for (int i = 0; i < 6; i++)
		sched[i] = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"cq\",\"delay_s\":3600}");
	char *running = harness_submit(&d, "{\"type\":\"sleep\",\"queue\":\"run\",\"payload\":{\"seconds\":60}}");
	cJSON_Delete(harness_wait_state(&d, running, "running", get_job));
	char *keep = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"keep\",\"delay_s\":3600}");

	/* state named: only the scheduled ones */
	struct totals t = loop(&d, "cancel", "{\"state\":\"scheduled\",\"queue\":\"cq\"}", 4, 0);
	ck_assert_int_eq(t.done, 6);
	ck_assert_int_eq(queue_count(&d, "cq", "queued"), 7);
	ck_assert_int_eq(queue_count(&d, "cq", "canceled"), 6);

	/* a page smaller than a state: the cursor crosses from state to state */
	for (int i = 0; i < 6; i++) {
		snprintf(body, sizeof body, "{\"type\":\"echo\",\"queue\":\"cq\",\"delay_s\":3600}");
		free(sched[i]);
		sched[i] = harness_submit(&d, body);
	}
	t = loop(&d, "cancel", "{\"queue\":\"cq\"}", 5, 1);
	ck_assert_int_eq(t.matched, 13);
	t = loop(&d, "cancel", "{\"queue\":\"cq\"}", 5, 0);
	ck_assert_int_eq(t.matched, 13);
	ck_assert_int_eq(t.done, 13);
	ck_assert_int_eq(queue_count(&d, "cq", "queued"), 0);
	ck_assert_int_eq(queue_count(&d, "cq", "scheduled"), 0);
	ck_assert_int_eq(queue_count(&d, "cq", "canceled"), 19);

	/* a running job is stopped, as by its own cancel */
	t = loop(&d, "cancel", "{\"type\":\"sleep\"}", 1000, 0);
	ck_assert_int_eq(t.done, 1);
	cJSON *j = harness_wait_terminal(&d, running, get_job);
	ck_assert_str_eq(jstr_or(j, "state"), "canceled");
	cJSON_Delete(j);
	char *s = job_state(&d, keep);
	ck_assert_str_eq(s, "scheduled");
	free(s);

	/* a job waiting for its dependencies is unfinished: cancel takes it */
	char *parent = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"bq2\",\"delay_s\":3600}");
	snprintf(body, sizeof body, "{\"type\":\"echo\",\"queue\":\"bq2\",\"depends_on\":[\"%s\"]}", parent);
	char *child = harness_submit(&d, body);
	s = job_state(&d, child);
	ck_assert_str_eq(s, "blocked");
	free(s);
	t = loop(&d, "cancel", "{\"queue\":\"bq2\",\"state\":\"blocked\"}", 1000, 0);
	ck_assert_int_eq(t.done, 1);
	s = job_state(&d, child);
	ck_assert_str_eq(s, "canceled");
	free(s);
	s = job_state(&d, parent);
	ck_assert_str_eq(s, "scheduled");
	free(s);
	free(parent);
	free(child);
	free_ids(queued, 7);
	free_ids(sched, 6);
	free(running);
	free(keep);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(delete_takes_finished_jobs_of_one_batch)
{
	struct jobqd d;
	harness_start(&d, NULL);
	cJSON *b = call(&d, "POST", "/v1/batches",
			"{\"jobs\":[{\"type\":\"echo\",\"queue\":\"dq\"},{\"type\":\"echo\",\"queue\":\"dq\"},"
			"{\"type\":\"echo\",\"queue\":\"dq\",\"delay_s\":3600}]}",
			201);
	char batch[64], filter[128], path[128];
	snprintf(batch, sizeof batch, "%s", jstr_or(b, "id"));
	const cJSON *jids = jget(b, "job_ids");
	ck_assert_int_eq(cJSON_GetArraySize(jids), 3);
	char *ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = strdup(cJSON_GetArrayItem(jids, i)->valuestring);
	cJSON_Delete(b);
	for (int i = 0; i < 2; i++)
		cJSON_Delete(harness_wait_terminal(&d, ids[i], get_job));
	char *outside = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"dq\"}");
	cJSON_Delete(harness_wait_terminal(&d, outside, get_job));

	snprintf(filter, sizeof filter, "{\"batch_id\":\"%s\"}", batch);
	struct totals t = loop(&d, "delete", filter, 1000, 0);
	ck_assert_int_eq(t.matched, 2); /* the scheduled one is not finished */
	ck_assert_int_eq(t.done, 2);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
		cJSON_Delete(call(&d, "GET", path, NULL, i < 2 ? 404 : 200));
	}
	snprintf(path, sizeof path, "/v1/jobs/%s", outside);
	cJSON_Delete(call(&d, "GET", path, NULL, 200));
	free_ids(ids, 3);
	free(outside);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(bad_inputs_name_the_field_and_change_nothing)
{
	struct jobqd d;
	harness_start(&d, NULL);
	char *id[1];
	failed_jobs(&d, "badq", 1, id);
	static const struct {
		const char *path, *body, *code, *field;
		long status;
	} cases[] = {
		{"/v1/jobs/retry", "{", "malformed_json", NULL, 400},
		{"/v1/jobs/retry", "[]", "malformed_json", NULL, 400},
		{"/v1/jobs/retry", "{}", "invalid_field", "filter", 400},
		{"/v1/jobs/retry", "{\"filter\":null}", "invalid_field", "filter", 400},
		{"/v1/jobs/retry", "{\"filter\":[]}", "invalid_field", "filter", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"status\":\"failed\"}", "invalid_field", "status", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"status\":\"failed\"}}", "invalid_field", "filter.status", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"state\":\"broken\"}}", "invalid_field", "filter.state", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"state\":3}}", "invalid_field", "filter.state", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"state\":\"succeeded\"}}", "invalid_field", "filter.state", 400},
		{"/v1/jobs/cancel", "{\"filter\":{\"state\":\"failed\"}}", "invalid_field", "filter.state", 400},
		{"/v1/jobs/delete", "{\"filter\":{\"state\":\"queued\"}}", "invalid_field", "filter.state", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"queue\":\"a b\"}}", "invalid_field", "filter.queue", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"queue\":7}}", "invalid_field", "filter.queue", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"type\":\"\"}}", "invalid_field", "filter.type", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"batch_id\":\"nope\"}}", "invalid_field", "filter.batch_id", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"limit\":0}", "invalid_field", "limit", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"limit\":1001}", "invalid_field", "limit", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"limit\":2.5}", "invalid_field", "limit", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"limit\":\"9\"}", "invalid_field", "limit", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"dry_run\":1}", "invalid_field", "dry_run", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"cursor\":7}", "invalid_field", "cursor", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"cursor\":\"abc\"}", "invalid_field", "cursor", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"cursor\":\"9.0\"}", "invalid_field", "cursor", 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"cursor\":\"0.-1\"}", "invalid_field", "cursor", 400},
		{"/v1/jobs/retry", "{\"filter\":{\"state\":\"failed\"},\"cursor\":\"1.0\"}", "invalid_field", "cursor",
		 400},
		{"/v1/jobs/retry", "{\"filter\":{},\"filter\":{}}", "invalid_field", "filter", 400},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		refused(&d, NULL, cases[i].path, cases[i].body, cases[i].status, cases[i].code, cases[i].field);
	/* a body that is not JSON by its type */
	struct resp r;
	harness_request(&d, "POST", "/v1/jobs/retry", "text/plain", "{\"filter\":{}}", NULL, &r);
	ck_assert_int_eq(r.status, 415);
	harness_resp_free(&r);
	/* other methods: 405 with Allow; GET reads it as a job id */
	harness_request(&d, "PUT", "/v1/jobs/retry", "application/json", "{}", NULL, &r);
	ck_assert_int_eq(r.status, 405);
	harness_resp_free(&r);
	ck_assert_int_eq(queue_count(&d, "badq", "failed"), 1);
	free(id[0]);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(roles_are_those_of_the_single_job_actions)
{
	struct jobqd d;
	harness_start_env(&d, NULL, ARGS("JOBQ_API_KEYS=submit:sb-key,read:rd-key,admin:ad-key"));
	const char *sb = "Authorization: Bearer sb-key", *rd = "Authorization: Bearer rd-key",
		   *ad = "Authorization: Bearer ad-key";
	cJSON_Delete(call_as(&d, ad, "POST", "/v1/queues/rq/pause", NULL, 200)); /* a retried job waits */
	cJSON *j = call_as(&d, sb, "POST", "/v1/jobs", "{\"type\":\"echo\",\"queue\":\"rq\",\"delay_s\":3600}", 201);
	char id[64], path[128];
	snprintf(id, sizeof id, "%s", jstr_or(j, "id"));
	cJSON_Delete(j);
	const char *all = "{\"filter\":{\"queue\":\"rq\"}}";
	refused(&d, NULL, "/v1/jobs/cancel", all, 401, "unauthorized", "Authorization");
	refused(&d, rd, "/v1/jobs/cancel", all, 403, "forbidden", "Authorization");
	refused(&d, rd, "/v1/jobs/retry", all, 403, "forbidden", "Authorization");
	refused(&d, sb, "/v1/jobs/delete", all, 403, "forbidden", "Authorization");
	struct totals t = loop_as(&d, sb, "cancel", "{\"queue\":\"rq\"}", 1000, 0);
	ck_assert_int_eq(t.done, 1);
	t = loop_as(&d, sb, "retry", "{\"queue\":\"rq\"}", 1000, 0);
	ck_assert_int_eq(t.done, 1);
	t = loop_as(&d, ad, "cancel", "{\"queue\":\"rq\"}", 1000, 0);
	ck_assert_int_eq(t.done, 1);
	t = loop_as(&d, ad, "delete", "{\"queue\":\"rq\"}", 1000, 0);
	ck_assert_int_eq(t.done, 1);
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	cJSON_Delete(call_as(&d, ad, "GET", path, NULL, 404));
	assert_exit_0(harness_stop(&d));
}
END_TEST

static Suite *bulk_suite(void)
{
	Suite *s = suite_create("jobq_api_bulk");
	TCase *tc = harness_tcase(s, "bulk", 90);

	tcase_add_test(tc, retry_failed_jobs_of_one_queue_page_by_page);
	tcase_add_test(tc, cancel_walks_every_unfinished_state_of_the_filter);
	tcase_add_test(tc, delete_takes_finished_jobs_of_one_batch);
	tcase_add_test(tc, bad_inputs_name_the_field_and_change_nothing);
	tcase_add_test(tc, roles_are_those_of_the_single_job_actions);
	return s;
}

int main(void)
{
	return harness_run(bulk_suite());
}
