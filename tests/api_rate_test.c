/* Black-box API tests for per-queue rate limits: PUT/GET/DELETE of a
 * queue's rate (and that it survives a restart), every validation error
 * naming its field, the measured start rate over several periods within
 * 5% of the limit after a first burst, waiting jobs spending no attempt,
 * leases taking tokens too, and an http job's 429 with Retry-After
 * pausing the bucket only when the queue opts in (a scripted server in
 * the test process, on 127.0.0.1). Every wait is a bounded poll. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define TEST_TIMEOUT_S 90
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)

/* ---- the scripted server: /limited answers 429 with Retry-After: 2 to
 * its first request, then 200; /ok always 200. ---- */

static struct {
	struct MHD_Daemon *d;
	char base[64];
	atomic_int limited_hits;
} srv;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	static int marker;
	(void)cls;
	(void)method;
	(void)version;
	(void)upload;
	if (*con_cls == NULL) {
		*con_cls = &marker;
		return MHD_YES;
	}
	*upload_size = 0;
	bool limited = strcmp(url, "/limited") == 0 && atomic_fetch_add(&srv.limited_hits, 1) == 0;
	const char *body = limited ? "slow down" : "{}";
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (limited)
		MHD_add_response_header(r, "Retry-After", "2");
	enum MHD_Result ret = MHD_queue_response(c, limited ? 429 : 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void srv_start(void)
{
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	atomic_store(&srv.limited_hits, 0);
	srv.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL, 0,
				 NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				 MHD_OPTION_END);
	ck_assert_msg(srv.d != NULL, "cannot start the test HTTP server");
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv.d, MHD_DAEMON_INFO_BIND_PORT);
	ck_assert(info != NULL && info->port != 0);
	snprintf(srv.base, sizeof srv.base, "http://127.0.0.1:%d", info->port);
}

static void srv_stop(void)
{
	if (srv.d)
		MHD_stop_daemon(srv.d);
	srv.d = NULL;
}

/* ---- jobqd helpers ---- */

static void stop(struct jobqd *d)
{
	int st = harness_stop_keep(d);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd did not exit 0 after SIGTERM (0x%x)", st);
	harness_cleanup(d);
}

#define call(d, method, path, body, status) harness_call((d), (method), (path), (body), NULL, (status))

static void put_rate(const struct jobqd *d, const char *queue, const char *body)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/queues/%s/rate", queue);
	cJSON_Delete(call(d, "PUT", path, body, 200));
}

static cJSON *get_queue(const struct jobqd *d, const char *queue)
{
	char path[128];
	snprintf(path, sizeof path, "/v1/queues/%s", queue);
	return call(d, "GET", path, NULL, 200);
}

#define get_job(d, id) harness_get_job((d), (id), NULL)

/* Long-polls until the job is finished (at most 60 s). */
#define wait_done(d, id) harness_wait_terminal_for((d), (id), NULL, 60000.0)

#define metric harness_metric

/* Submits n echo jobs to queue as one batch; ids into ids[n]. */
static void submit_batch(const struct jobqd *d, const char *queue, int n, char **ids)
{
	size_t cap = (size_t)n * 64 + 64;
	char *body = malloc(cap);
	ck_assert_ptr_nonnull(body);
	size_t len = (size_t)snprintf(body, cap, "{\"jobs\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(body + len, cap - len, "%s{\"type\":\"echo\",\"queue\":\"%s\"}", i ? "," : "",
					queue);
	snprintf(body + len, cap - len, "]}");
	cJSON *j = call(d, "POST", "/v1/batches", body, 201);
	const cJSON *jobs = jget(j, "job_ids");
	ck_assert_int_eq(cJSON_GetArraySize(jobs), n);
	for (int i = 0; i < n; i++) {
		const cJSON *item = cJSON_GetArrayItem(jobs, i);
		const char *id = cJSON_IsString(item) ? item->valuestring : jstr(item, "id");
		ck_assert_ptr_nonnull(id);
		ids[i] = strdup(id);
	}
	cJSON_Delete(j);
	free(body);
}

static int ll_order(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* ---- PUT, GET, DELETE ---- */

START_TEST(rate_put_shows_in_the_queue_survives_a_restart_and_delete_removes_it)
{
	struct jobqd d;
	harness_start(&d, NULL);
	cJSON *q = get_queue(&d, "mail");
	ck_assert_msg(jnull(q, "rate"), "a queue without a limit shows rate null");
	cJSON_Delete(q);

	q = call(&d, "PUT", "/v1/queues/mail/rate", "{\"limit\":30,\"period_s\":60}", 200);
	const cJSON *rate = jget(q, "rate");
	ck_assert_str_eq(jstr(q, "name"), "mail");
	ck_assert_int_eq(jlong(rate, "limit"), 30);
	ck_assert_int_eq(jlong(rate, "period_s"), 60);
	ck_assert_int_eq(jlong(rate, "burst"), 30); /* default: the limit */
	ck_assert(cJSON_IsFalse(jget(rate, "retry_after")));
	ck_assert_int_eq(jlong(rate, "tokens"), 30);  /* a new limit starts full */
	ck_assert(jnull(rate, "paused_until"));
	cJSON_Delete(q);

	/* A queue with a limit and no jobs is listed. */
	q = call(&d, "GET", "/v1/queues", NULL, 200);
	const cJSON *item;
	int listed = 0;
	cJSON_ArrayForEach(item, jget(q, "queues"))
		listed += str_eq(jstr(item, "name"), "mail") && cJSON_IsObject(jget(item, "rate"));
	ck_assert_int_eq(listed, 1);
	cJSON_Delete(q);

	/* A replacement takes every field; fractional periods are kept. */
	put_rate(&d, "mail", "{\"limit\":5,\"period_s\":0.5,\"burst\":2,\"retry_after\":true}");
	harness_stop_keep(&d);
	harness_restart(&d, NULL);
	q = get_queue(&d, "mail");
	rate = jget(q, "rate");
	ck_assert_int_eq(jlong(rate, "limit"), 5);
	ck_assert(fabs(jget(rate, "period_s")->valuedouble - 0.5) < 1e-9);
	ck_assert_int_eq(jlong(rate, "burst"), 2);
	ck_assert(cJSON_IsTrue(jget(rate, "retry_after")));
	ck_assert(jget(rate, "tokens")->valuedouble <= 2);
	cJSON_Delete(q);
	ck_assert(metric(&d, "jobq_queue_rate_limit{queue=\"mail\"}") == 10);

	q = call(&d, "DELETE", "/v1/queues/mail/rate", NULL, 200);
	ck_assert(jnull(q, "rate"));
	cJSON_Delete(q);
	q = get_queue(&d, "mail");
	ck_assert(jnull(q, "rate"));
	cJSON_Delete(q);
	/* Deleting again is no error: the queue has no limit either way. */
	cJSON_Delete(call(&d, "DELETE", "/v1/queues/mail/rate", NULL, 200));
	ck_assert(metric(&d, "jobq_queue_rate_limit{queue=\"mail\"}") == -1);
	stop(&d);
}
END_TEST

static const struct {
	const char *body, *field;
} bad_rates[] = {
	{"{\"period_s\":1}", "limit"},
	{"{\"limit\":0,\"period_s\":1}", "limit"},
	{"{\"limit\":1000001,\"period_s\":1}", "limit"},
	{"{\"limit\":1.5,\"period_s\":1}", "limit"},
	{"{\"limit\":\"10\",\"period_s\":1}", "limit"},
	{"{\"limit\":null,\"period_s\":1}", "limit"},
	{"{\"limit\":10}", "period_s"},
	{"{\"limit\":10,\"period_s\":0}", "period_s"},
	{"{\"limit\":10,\"period_s\":-1}", "period_s"},
	{"{\"limit\":10,\"period_s\":86401}", "period_s"},
	{"{\"limit\":10,\"period_s\":\"1\"}", "period_s"},
	{"{\"limit\":10,\"period_s\":1,\"burst\":0}", "burst"},
	{"{\"limit\":10,\"period_s\":1,\"burst\":2.5}", "burst"},
	{"{\"limit\":10,\"period_s\":1,\"burst\":1000001}", "burst"},
	{"{\"limit\":10,\"period_s\":1,\"retry_after\":\"yes\"}", "retry_after"},
	{"{\"limit\":10,\"period_s\":1,\"rate\":5}", "rate"},
};

START_TEST(rate_bad_bodies_get_400_naming_the_field_and_change_nothing)
{
	struct jobqd d;
	harness_start(&d, NULL);
	put_rate(&d, "q", "{\"limit\":7,\"period_s\":3}");
	for (size_t i = 0; i < sizeof bad_rates / sizeof bad_rates[0]; i++) {
		struct resp r;
		harness_request(&d, "PUT", "/v1/queues/q/rate", "application/json", bad_rates[i].body, NULL, &r);
		assert_problem(&r, 400, "invalid_field", bad_rates[i].field);
		harness_resp_free(&r);
	}
	struct resp r;
	harness_request(&d, "PUT", "/v1/queues/q/rate", "application/json", "{\"limit\":", NULL, &r);
	assert_problem(&r, 400, "malformed_json", NULL);
	harness_resp_free(&r);
	harness_request(&d, "PUT", "/v1/queues/q/rate", "application/json", "[10,1]", NULL, &r);
	assert_problem(&r, 400, "malformed_json", NULL);
	harness_resp_free(&r);
	harness_request(&d, "PUT", "/v1/queues/q/rate", "text/plain", "{\"limit\":1,\"period_s\":1}", NULL, &r);
	ck_assert_int_eq(r.status, 415);
	harness_resp_free(&r);
	harness_request(&d, "PUT", "/v1/queues/no%20such/rate", "application/json", "{\"limit\":1,\"period_s\":1}",
			NULL, &r);
	assert_problem(&r, 404, "queue_not_found", NULL);
	harness_resp_free(&r);
	harness_request(&d, "DELETE", "/v1/queues/no%20such/rate", NULL, NULL, NULL, &r);
	assert_problem(&r, 404, "queue_not_found", NULL);
	harness_resp_free(&r);

	cJSON *q = get_queue(&d, "q");
	const cJSON *rate = jget(q, "rate");
	ck_assert_int_eq(jlong(rate, "limit"), 7);
	ck_assert_int_eq(jlong(rate, "period_s"), 3);
	cJSON_Delete(q);
	stop(&d);
}
END_TEST

START_TEST(rate_changes_need_the_admin_role)
{
	struct jobqd d;
	harness_start_env(&d, NULL, ARGS("JOBQ_API_KEYS=submit:sb-key,read:rd-key,admin:ad-key"));
	static const char *const not_admin[] = {"Authorization: Bearer sb-key", "Authorization: Bearer rd-key"};
	const char *body = "{\"limit\":5,\"period_s\":1}";
	for (size_t i = 0; i < 2; i++) {
		struct resp r;
		harness_request(&d, "PUT", "/v1/queues/q/rate", "application/json", body, not_admin[i], &r);
		assert_problem(&r, 403, "forbidden", "Authorization");
		harness_resp_free(&r);
		harness_request(&d, "DELETE", "/v1/queues/q/rate", NULL, NULL, not_admin[i], &r);
		assert_problem(&r, 403, "forbidden", "Authorization");
		harness_resp_free(&r);
	}
	struct resp r;
	harness_request(&d, "PUT", "/v1/queues/q/rate", "application/json", body, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	harness_resp_free(&r);
	harness_request(&d, "PUT", "/v1/queues/q/rate", "application/json", body, "Authorization: Bearer ad-key", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(jlong(jget(r.json, "rate"), "limit"), 5);
	harness_resp_free(&r);
	/* A read key sees it. */
	harness_request(&d, "GET", "/v1/queues/q", NULL, NULL, "Authorization: Bearer rd-key", &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(jlong(jget(r.json, "rate"), "limit"), 5);
	harness_resp_free(&r);
	stop(&d);
}
END_TEST

/* ---- accuracy ---- */

#define ACC_LIMIT 10
#define ACC_PERIOD_MS 500
#define ACC_BURST 4
#define ACC_AFTER 40 /* starts after the burst: 4 periods */

START_TEST(rate_starts_keep_within_5_percent_of_the_limit_after_one_burst)
{
	struct jobqd d;
	harness_start(&d, ARGS("--workers", "4"));
	put_rate(&d, "steady", "{\"limit\":10,\"period_s\":0.5,\"burst\":4}");
	enum { N = ACC_BURST + ACC_AFTER };
	char *ids[N];
	submit_batch(&d, "steady", N, ids);
	long long started[N];
	for (int i = 0; i < N; i++) {
		cJSON *j = wait_done(&d, ids[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		ck_assert_msg(jlong(j, "attempts") == 1, "job %d spent %ld attempts", i, jlong(j, "attempts"));
		started[i] = jts(j, "started_at");
		ck_assert(started[i] > 0);
		cJSON_Delete(j);
		free(ids[i]);
	}
	qsort(started, N, sizeof started[0], ll_order);
	double gap = (double)ACC_PERIOD_MS / ACC_LIMIT; /* 50 ms a token */
	/* The burst starts at once; the next start waits for a token. */
	ck_assert_msg(started[ACC_BURST - 1] - started[0] < gap, "the burst of %d took %lld ms", ACC_BURST,
		      started[ACC_BURST - 1] - started[0]);
	ck_assert_msg(started[ACC_BURST] - started[0] >= gap * 0.9, "start %d came %lld ms after the first",
		      ACC_BURST + 1, started[ACC_BURST] - started[0]);
	/* Over the window the rate is the limit's, within 5%. */
	double window = (double)(started[N - 1] - started[0]);
	double rate = ACC_AFTER / window * ACC_PERIOD_MS;
	ck_assert_msg(fabs(rate - ACC_LIMIT) <= ACC_LIMIT * 0.05, "%.2f starts per period over %.0f ms (limit %d)",
		      rate, window, ACC_LIMIT);
	/* And never more than the bucket allows in any stretch. */
	for (int i = 0; i < N; i++)
		for (int k = i + 1; k < N; k++)
			ck_assert_msg(k - i <= ACC_BURST + (started[k] - started[i]) / gap + 1,
				      "%d starts in %lld ms", k - i + 1, started[k] - started[i]);
	stop(&d);
}
END_TEST

/* ---- waiting spends nothing ---- */

START_TEST(rate_waiting_jobs_stay_queued_without_attempts_and_nothing_spins)
{
	struct jobqd d;
	harness_start(&d, NULL);
	put_rate(&d, "slow", "{\"limit\":1,\"period_s\":3600}");
	char *a = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"slow\"}");
	cJSON *j = wait_done(&d, a);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);
	char *b = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"slow\"}");
	char *c = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"slow\",\"max_attempts\":1}");
	/* For a second (a measurement, not a wait for something): both stay
	 * queued with no attempt, and the claims that find the queue empty of
	 * tokens stay few, where a spinning claim would make thousands. */
	double end = mono_ms() + 1000;
	while (mono_ms() < end) {
		j = get_job(&d, b);
		ck_assert_str_eq(jstr(j, "state"), "queued");
		ck_assert_int_eq(jlong(j, "attempts"), 0);
		cJSON_Delete(j);
		j = get_job(&d, c);
		ck_assert_str_eq(jstr(j, "state"), "queued");
		ck_assert_int_eq(jlong(j, "attempts"), 0);
		cJSON_Delete(j);
		nap_ms(50);
	}
	double limited = metric(&d, "jobq_rate_limited_total{queue=\"slow\"}");
	ck_assert_msg(limited >= 1 && limited < 20, "jobq_rate_limited_total %g", limited);
	ck_assert(metric(&d, "jobq_queue_rate_tokens{queue=\"slow\"}") < 1);
	/* A bigger limit lets them start at once, each on its first attempt. */
	put_rate(&d, "slow", "{\"limit\":100,\"period_s\":1,\"burst\":5}");
	char *ids[] = {b, c};
	for (int i = 0; i < 2; i++) {
		j = wait_done(&d, ids[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		ck_assert_int_eq(jlong(j, "attempts"), 1);
		cJSON_Delete(j);
	}
	free(a);
	free(b);
	free(c);
	stop(&d);
}
END_TEST

START_TEST(rate_leases_take_tokens_and_a_waiting_lease_wakes_for_the_next)
{
	struct jobqd d;
	harness_start(&d, ARGS("--external-queue", "ext"));
	put_rate(&d, "ext", "{\"limit\":5,\"period_s\":1,\"burst\":2}");
	char *ids[3];
	for (int i = 0; i < 3; i++)
		ids[i] = harness_submit(&d, "{\"type\":\"my.fn\",\"queue\":\"ext\"}");
	cJSON *l = call(&d, "POST", "/v1/leases", "{\"queues\":[\"ext\"],\"max\":10}", 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(l, "jobs")), 2); /* the burst */
	cJSON_Delete(l);
	/* The third waits for the next token (200 ms), not for wait_s. */
	double t0 = mono_ms();
	l = call(&d, "POST", "/v1/leases", "{\"queues\":[\"ext\"],\"max\":10,\"wait_s\":20}", 200);
	double took = mono_ms() - t0;
	ck_assert_int_eq(cJSON_GetArraySize(jget(l, "jobs")), 1);
	ck_assert_msg(took < 10000, "the lease waited %.0f ms for a token due in 200 ms", took);
	ck_assert_int_eq(jlong(cJSON_GetArrayItem(jget(l, "jobs"), 0), "attempts"), 1);
	cJSON_Delete(l);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
	stop(&d);
}
END_TEST

/* ---- 429 ---- */

/* An http job to /limited, and a second job of the queue submitted
 * while its bucket is paused. */
static void run_limited(bool opt_in)
{
	struct jobqd d;
	srv_start();
	harness_start(&d, NULL);
	put_rate(&d, "api", opt_in ? "{\"limit\":100,\"period_s\":1,\"retry_after\":true}"
				   : "{\"limit\":100,\"period_s\":1}");
	char body[256];
	snprintf(body, sizeof body,
		 "{\"type\":\"http\",\"queue\":\"api\",\"payload\":{\"url\":\"%s/limited\"},\"max_attempts\":3,"
		 "\"backoff_s\":0.01}", srv.base);
	char *id = harness_submit(&d, body);
	double end = mono_ms() + 10000;
	while (atomic_load(&srv.limited_hits) < 1) {
		ck_assert_msg(mono_ms() < end, "the http job never reached the server");
		nap_ms(5);
	}
	if (opt_in) {
		/* The bucket pauses: the queue shows it, and another job waits. */
		const cJSON *rate = NULL;
		cJSON *q = NULL;
		end = mono_ms() + 10000;
		for (;;) {
			q = get_queue(&d, "api");
			rate = jget(q, "rate");
			if (jstr(rate, "paused_until"))
				break;
			ck_assert_msg(mono_ms() < end, "the bucket never paused");
			cJSON_Delete(q);
			nap_ms(10);
		}
		long long paused_until = jts(rate, "paused_until");
		ck_assert(jget(rate, "tokens")->valuedouble == 0);
		cJSON_Delete(q);
		snprintf(body, sizeof body, "{\"type\":\"http\",\"queue\":\"api\",\"payload\":{\"url\":\"%s/ok\"}}",
			 srv.base);
		char *other = harness_submit(&d, body);
		cJSON *j = wait_done(&d, other);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		ck_assert_msg(jts(j, "started_at") >= paused_until, "a job started %lld ms before the pause ended",
			      paused_until - jts(j, "started_at"));
		cJSON_Delete(j);
		free(other);
	}
	cJSON *j = wait_done(&d, id);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	const cJSON *hist = jget(j, "attempt_history");
	if (opt_in) {
		/* The 429 spent no attempt: one attempt, the one that succeeded. */
		ck_assert_int_eq(jlong(j, "attempts"), 1);
		ck_assert_int_eq(cJSON_GetArraySize(hist), 1);
	} else {
		ck_assert_int_eq(jlong(j, "attempts"), 2);
		ck_assert_int_eq(cJSON_GetArraySize(hist), 2);
		ck_assert_msg(strstr(jstr_or(cJSON_GetArrayItem(hist, 0), "error"), "HTTP 429") != NULL, "%s",
			      jstr_or(cJSON_GetArrayItem(hist, 0), "error"));
		cJSON *q = get_queue(&d, "api");
		ck_assert(jnull(jget(q, "rate"), "paused_until"));
		cJSON_Delete(q);
	}
	ck_assert_int_eq(atomic_load(&srv.limited_hits), 2);
	cJSON_Delete(j);
	free(id);
	stop(&d);
	srv_stop();
}

START_TEST(rate_429_retry_after_pauses_the_bucket_without_spending_the_attempt)
{
	run_limited(true);
}
END_TEST

START_TEST(rate_429_without_opt_in_is_an_ordinary_failed_attempt)
{
	run_limited(false);
}
END_TEST

static Suite *rate_suite(void)
{
	Suite *s = suite_create("jobq_api_rate");
	TCase *tc = tcase(s, "resource");
	tcase_add_test(tc, rate_put_shows_in_the_queue_survives_a_restart_and_delete_removes_it);
	tcase_add_test(tc, rate_bad_bodies_get_400_naming_the_field_and_change_nothing);
	tcase_add_test(tc, rate_changes_need_the_admin_role);
	tc = tcase(s, "limit");
	tcase_add_test(tc, rate_starts_keep_within_5_percent_of_the_limit_after_one_burst);
	tcase_add_test(tc, rate_waiting_jobs_stay_queued_without_attempts_and_nothing_spins);
	tcase_add_test(tc, rate_leases_take_tokens_and_a_waiting_lease_wakes_for_the_next);
	tc = tcase(s, "429");
	tcase_add_test(tc, rate_429_retry_after_pauses_the_bucket_without_spending_the_attempt);
	tcase_add_test(tc, rate_429_without_opt_in_is_an_ordinary_failed_attempt);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return harness_run(rate_suite());
}
