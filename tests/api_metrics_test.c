/* Black-box API tests for GET /metrics (issue 6): exact job counters and
 * histogram counts after known jobs, HTTP requests under their route
 * pattern, queue and process gauges, waiters and connections, label
 * escaping, and `promtool check metrics` on the real output. Each test
 * starts its own jobqd via tests/harness.c; every wait is bounded. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "core/metrics.h"
#include "harness.h"

#define UNKNOWN_ID "01890000-0000-7000-8000-000000000000"
#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Waits for the job to end in state want; frees id. */
static void expect_end(const struct jobqd *d, char *id, const char *want)
{
	cJSON *j = harness_wait_terminal(d, id, NULL);

	ck_assert_msg(str_eq(jstr(j, "state"), want), "job %s ended %s, want %s", id,
		      jstr_or(j, "state"), want);
	cJSON_Delete(j);
	free(id);
}

/* GET /metrics: asserts 200 and the exact Content-Type; returns the body. */
static char *scrape(const struct jobqd *d)
{
	struct resp r;
	char ctype[128] = "";
	char *body;

	harness_request(d, "GET", "/metrics", NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200, "GET /metrics: %ld %s %s", r.status, r.error, r.body);
	ck_assert(harness_header(&r, "Content-Type", ctype, sizeof ctype));
	ck_assert_str_eq(ctype, CONTENT_TYPE);
	body = r.body;
	r.body = NULL;
	harness_resp_free(&r);
	return body;
}

/* The value of the sample "series value" in text, or -1 when absent. */
static double sample_or(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *line = text;

	while (line && *line) {
		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return -1;
}

/* Asserts that sample series in text is exactly want. */
#define assert_sample(text, series, want)                                          \
	do {                                                                       \
		double got_ = sample_or((text), (series));                         \
		ck_assert_msg(got_ == (double)(want), "%s is %g, want %g", (series), \
			      got_, (double)(want));                               \
	} while (0)

/* "name{queue="q",type="t"" + rest, for the job series. */
static const char *jseries(char *buf, size_t n, const char *name, const char *queue,
			   const char *type, const char *rest)
{
	snprintf(buf, n, "%s{queue=\"%s\",type=\"%s\"%s", name, queue, type, rest);
	return buf;
}

/* Asserts every job counter and histogram count of queue/type. */
static void assert_job_series(const char *text, const char *queue, const char *type,
			      int submitted, int started, int retried, int succeeded,
			      int failed, int canceled, int ran, int waited)
{
	char s[256];

	assert_sample(text, jseries(s, sizeof s, "jobq_jobs_submitted_total", queue, type, "}"), submitted);
	assert_sample(text, jseries(s, sizeof s, "jobq_jobs_started_total", queue, type, "}"), started);
	assert_sample(text, jseries(s, sizeof s, "jobq_jobs_retried_total", queue, type, "}"), retried);
	assert_sample(text, jseries(s, sizeof s, "jobq_jobs_finished_total", queue, type,
				    ",state=\"succeeded\"}"), succeeded);
	assert_sample(text, jseries(s, sizeof s, "jobq_jobs_finished_total", queue, type,
				    ",state=\"failed\"}"), failed);
	assert_sample(text, jseries(s, sizeof s, "jobq_jobs_finished_total", queue, type,
				    ",state=\"canceled\"}"), canceled);
	assert_sample(text, jseries(s, sizeof s, "jobq_job_duration_seconds_count", queue, type, "}"), ran);
	assert_sample(text, jseries(s, sizeof s, "jobq_job_duration_seconds_bucket", queue, type,
				    ",le=\"+Inf\"}"), ran);
	assert_sample(text, jseries(s, sizeof s, "jobq_job_queue_wait_seconds_count", queue, type, "}"), waited);
	assert_sample(text, jseries(s, sizeof s, "jobq_job_queue_wait_seconds_bucket", queue, type,
				    ",le=\"+Inf\"}"), waited);
}

/* Writes text to dir/name and runs `promtool check metrics` on it; returns
 * its exit status (-1 if it could not run) with its output in out. */
static int promtool_check(const char *dir, const char *name, const char *text, char *out, size_t n)
{
	char path[HARNESS_PATH_MAX + 64], cmd[2 * HARNESS_PATH_MAX];
	FILE *f, *p;
	size_t len = 0;
	int status;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", path);
	p = popen(cmd, "r");
	ck_assert_msg(p != NULL, "cannot run promtool");
	out[0] = '\0';
	while (len + 1 < n && fgets(out + len, (int)(n - len), p))
		len += strlen(out + len);
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A copy of text with every from replaced by to (no longer than from). */
static char *replace_all(const char *text, const char *from, const char *to)
{
	char *copy = strdup(text), *w = copy;
	const char *at;

	ck_assert_ptr_nonnull(copy);
	ck_assert(strlen(to) <= strlen(from));
	while ((at = strstr(text, from)) != NULL) {
		memcpy(w, text, (size_t)(at - text));
		w += at - text;
		memcpy(w, to, strlen(to));
		w += strlen(to);
		text = at + strlen(from);
	}
	memmove(w, text, strlen(text) + 1);
	return copy;
}

/* ---- tests ---- */

START_TEST(metrics_are_prometheus_text_that_promtool_accepts)
{
	static const char *const families[] = {
		"jobq_queue_depth gauge", "jobq_queue_oldest_age_seconds gauge",
		"jobq_process_resident_memory_bytes gauge", "jobq_process_start_time_seconds gauge",
		"jobq_http_connections gauge", "jobq_waiters gauge", "jobq_build_info gauge",
		"jobq_jobs_submitted_total counter", "jobq_jobs_started_total counter",
		"jobq_jobs_retried_total counter", "jobq_jobs_finished_total counter",
		"jobq_job_duration_seconds histogram", "jobq_job_queue_wait_seconds histogram",
		"jobq_http_requests_total counter", "jobq_http_request_duration_seconds histogram",
		"jobq_metrics_overflow_total counter",
	};
	struct jobqd d;
	struct resp r;
	char out[4096], line[128];
	char *text;
	int rc;

	harness_start(&d, NULL);
	expect_end(&d, harness_submit(&d, "{\"type\":\"echo\",\"payload\":1}"), "succeeded");
	expect_end(&d, harness_submit(&d, "{\"type\":\"fail\",\"max_attempts\":2,\"backoff_s\":0.01}"), "failed");
	harness_request(&d, "GET", "/no/such/thing", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 404);
	harness_resp_free(&r);
	text = scrape(&d);
	for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
		snprintf(line, sizeof line, "# TYPE %s\n", families[i]);
		ck_assert_msg(strstr(text, line) != NULL, "no %s", line);
		snprintf(line, sizeof line, "# HELP %.*s ", (int)strcspn(families[i], " "), families[i]);
		ck_assert_msg(strstr(text, line) != NULL, "no %s", line);
	}
	rc = promtool_check(d.dir, "metrics.txt", text, out, sizeof out);
	ck_assert_msg(rc == 0 && out[0] == '\0', "promtool exit %d: %s", rc, out);
	free(text);
	harness_stop(&d);
}
END_TEST

START_TEST(metrics_count_known_jobs_of_each_queue_and_type_exactly)
{
	struct jobqd d;
	struct resp r;
	char *ids[8], *text, path[128];
	int n = 0;

	harness_start(&d, NULL);
	for (int i = 0; i < 3; i++)
		ids[n++] = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"mq\",\"payload\":1}");
	for (int i = 0; i < 2; i++)
		ids[n++] = harness_submit(&d, "{\"type\":\"fail\",\"queue\":\"mq\",\"max_attempts\":2,\"backoff_s\":0.01}");
	for (int i = 0; i < n; i++)
		expect_end(&d, ids[i], i < 3 ? "succeeded" : "failed");

	/* Canceled while waiting: never started, never ran. */
	ids[0] = harness_submit(&d, "{\"type\":\"sleep\",\"queue\":\"mq\",\"delay_s\":600,\"payload\":{\"seconds\":1}}");
	job_action(&d, ids[0], "cancel", &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	free(ids[0]);
	/* Canceled while running: started, and its run is timed. */
	ids[0] = harness_submit(&d, "{\"type\":\"sleep\",\"queue\":\"mq2\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(harness_wait_state(&d, ids[0], "running", NULL));
	job_action(&d, ids[0], "cancel", &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	free(ids[0]);
	/* A batch counts each of its jobs. */
	harness_request(&d, "POST", "/v1/batches", "application/json",
			"{\"jobs\":[{\"type\":\"echo\",\"queue\":\"bq\"},{\"type\":\"echo\",\"queue\":\"bq\"}]}",
			NULL, &r);
	ck_assert_int_eq(r.status, 201);
	snprintf(path, sizeof path, "/v1/batches/%s?wait=30", jstr(r.json, "id"));
	harness_resp_free(&r);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200 && cJSON_IsTrue(jget(r.json, "done")), "batch: %s", r.body);
	harness_resp_free(&r);

	text = scrape(&d);
	/*                        queue  type  sub sta ret suc fai can ran waited */
	assert_job_series(text, "mq", "echo", 3, 3, 0, 3, 0, 0, 3, 3);
	assert_job_series(text, "mq", "fail", 2, 4, 2, 0, 2, 0, 4, 4);
	assert_job_series(text, "mq", "sleep", 1, 0, 0, 0, 0, 1, 0, 0);
	assert_job_series(text, "mq2", "sleep", 1, 1, 0, 0, 0, 1, 1, 1);
	assert_job_series(text, "bq", "echo", 2, 2, 0, 2, 0, 0, 2, 2);
	ck_assert_ptr_null(strstr(text, "type=\"fail\",state=\"succeeded\"} 1"));
	assert_sample(text, "jobq_metrics_overflow_total{table=\"jobs\"}", 0);
	free(text);
	harness_stop(&d);
}
END_TEST

START_TEST(metrics_count_requests_under_their_route_pattern)
{
	struct jobqd d;
	struct resp r;
	char *text;

	harness_start(&d, NULL);
	for (int i = 0; i < 2; i++) {
		harness_request(&d, "GET", "/v1/jobs/" UNKNOWN_ID, NULL, NULL, NULL, &r);
		assert_problem(&r, 404, "job_not_found", NULL);
		harness_resp_free(&r);
	}
	harness_request(&d, "GET", "/v1/jobs/not-even-a-uuid", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 404);
	harness_resp_free(&r);
	harness_request(&d, "GET", "/v1/no/such/path", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 404);
	harness_resp_free(&r);
	harness_request(&d, "BREW", "/v1/coffee/" UNKNOWN_ID, NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 404);
	harness_resp_free(&r);
	harness_request(&d, "PUT", "/v1/jobs", "application/json", "{}", NULL, &r);
	ck_assert_int_eq(r.status, 405);
	harness_resp_free(&r);

	/* A request is counted once it is answered, which may be just after the
	 * client read it: scrape until the first scrape shows (bounded). */
	free(scrape(&d));
	text = scrape(&d);
	for (int i = 0; i < 100 && sample_or(text, "jobq_http_requests_total{method=\"GET\",route=\"/metrics\",code=\"200\"}") < 1; i++) {
		free(text);
		text = scrape(&d);
	}
	assert_sample(text, "jobq_http_requests_total{method=\"GET\",route=\"/v1/jobs/{id}\",code=\"404\"}", 3);
	assert_sample(text, "jobq_http_requests_total{method=\"GET\",route=\"unmatched\",code=\"404\"}", 1);
	assert_sample(text, "jobq_http_requests_total{method=\"other\",route=\"unmatched\",code=\"404\"}", 1);
	assert_sample(text, "jobq_http_requests_total{method=\"PUT\",route=\"unmatched\",code=\"405\"}", 1);
	ck_assert_msg(sample_or(text, "jobq_http_requests_total{method=\"GET\",route=\"/metrics\",code=\"200\"}") >= 1,
		      "the first scrape was never counted");
	assert_sample(text, "jobq_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/jobs/{id}\"}", 3);
	assert_sample(text, "jobq_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/jobs/{id}\",le=\"+Inf\"}", 3);
	/* Raw paths never become labels. */
	ck_assert_ptr_null(strstr(text, UNKNOWN_ID));
	ck_assert_ptr_null(strstr(text, "not-even-a-uuid"));
	ck_assert_ptr_null(strstr(text, "/v1/no/such/path"));
	ck_assert_ptr_null(strstr(text, "BREW"));
	free(text);
	harness_stop(&d);
}
END_TEST

START_TEST(metrics_queue_gauges_show_depth_and_oldest_age)
{
	struct jobqd d;
	struct resp r;
	char *text, *ids[2];
	double now = (double)time(NULL), age;

	harness_start(&d, NULL);
	harness_request(&d, "POST", "/v1/queues/pq/pause", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	ids[0] = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"pq\"}");
	ids[1] = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"pq\"}");
	expect_end(&d, harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"free\"}"), "succeeded");
	text = scrape(&d);
	assert_sample(text, "jobq_queue_depth{queue=\"pq\"}", 2);
	assert_sample(text, "jobq_queue_depth{queue=\"free\"}", 0);
	assert_sample(text, "jobq_queue_oldest_age_seconds{queue=\"free\"}", 0);
	age = sample_or(text, "jobq_queue_oldest_age_seconds{queue=\"pq\"}");
	ck_assert_msg(age >= 0 && age <= (double)time(NULL) - now + 1, "oldest age %g", age);
	free(text);

	harness_request(&d, "POST", "/v1/queues/pq/resume", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	expect_end(&d, ids[0], "succeeded");
	expect_end(&d, ids[1], "succeeded");
	text = scrape(&d);
	assert_sample(text, "jobq_queue_depth{queue=\"pq\"}", 0);
	assert_sample(text, "jobq_queue_oldest_age_seconds{queue=\"pq\"}", 0);
	free(text);
	harness_stop(&d);
}
END_TEST

/* jobq_jobs counts every state over the queues, blocked jobs (waiting
 * for a dependency) included, and follows a cancel's cascade. */
START_TEST(metrics_jobs_gauge_counts_each_state_with_blocked)
{
	struct jobqd d;
	struct resp r;
	char body[256], path[128], *text, *parent, *child;

	harness_start(&d, NULL);
	harness_request(&d, "POST", "/v1/queues/held/pause", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	parent = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"held\"}");
	snprintf(body, sizeof body, "{\"type\":\"echo\",\"depends_on\":[\"%s\"]}", parent);
	child = harness_submit(&d, body);
	free(harness_submit(&d, "{\"type\":\"echo\",\"delay_s\":3600}"));
	expect_end(&d, harness_submit(&d, "{\"type\":\"echo\"}"), "succeeded");
	text = scrape(&d);
	assert_sample(text, "jobq_jobs{state=\"queued\"}", 1);
	assert_sample(text, "jobq_jobs{state=\"blocked\"}", 1);
	assert_sample(text, "jobq_jobs{state=\"scheduled\"}", 1);
	assert_sample(text, "jobq_jobs{state=\"succeeded\"}", 1);
	assert_sample(text, "jobq_jobs{state=\"running\"}", 0);
	assert_sample(text, "jobq_jobs{state=\"canceled\"}", 0);
	free(text);

	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", parent);
	harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	expect_end(&d, child, "canceled");
	text = scrape(&d);
	assert_sample(text, "jobq_jobs{state=\"queued\"}", 0);
	assert_sample(text, "jobq_jobs{state=\"blocked\"}", 0);
	assert_sample(text, "jobq_jobs{state=\"canceled\"}", 2);
	free(text);
	free(parent);
	harness_stop(&d);
}
END_TEST

/* The lines of text that start with prefix. */
static int count_lines(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	int count = 0;

	for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (strncmp(line, prefix, n) == 0)
			count++;
	return count;
}

/* POSTs a batch of n jobs on queues prefix0000, prefix0001, ... (delay_s
 * > 0: scheduled, not queued) and then extra jobs on queue `deep`. */
static void batch_on_queues(const struct jobqd *d, const char *prefix, int n, double delay_s,
			    const char *deep, int extra)
{
	size_t cap = (size_t)(n + extra + 1) * 80, len = 0;
	char *body = malloc(cap);
	struct resp r;

	ck_assert_ptr_nonnull(body);
	len += (size_t)snprintf(body + len, cap - len, "{\"jobs\":[");
	for (int i = 0; i < n + extra; i++) {
		len += (size_t)snprintf(body + len, cap - len, "%s{\"type\":\"echo\",\"queue\":\"", i ? "," : "");
		if (i < n)
			len += (size_t)snprintf(body + len, cap - len, "%s%04d\",\"delay_s\":%g}", prefix, i, delay_s);
		else
			len += (size_t)snprintf(body + len, cap - len, "%s\"}", deep);
	}
	snprintf(body + len, cap - len, "]}");
	harness_request(d, "POST", "/v1/batches", "application/json", body, NULL, &r);
	ck_assert_msg(r.status == 201, "batch: %ld %.300s", r.status, r.body);
	harness_resp_free(&r);
	free(body);
}

/* Past the cap, the deepest queues keep their gauges, idle ones fill up by
 * name, and the rest add up in "other". One worker is kept busy, so every
 * job below that is ready stays queued. */
START_TEST(metrics_queue_gauges_are_bounded_to_the_deepest_queues)
{
	enum { MANY = METRICS_QUEUE_SERIES + 88, SHOWN = METRICS_QUEUE_SERIES - 1 };
	struct jobqd d;
	struct resp r;
	char out[4096], series[128], *blocker, *text;
	double age;

	harness_start(&d, ARGS("--workers", "1"));
	blocker = harness_submit(&d, "{\"type\":\"sleep\",\"queue\":\"blocker\",\"payload\":{\"seconds\":30}}");
	cJSON_Delete(harness_wait_state(&d, blocker, "running", NULL));

	/* idle0000.. with a scheduled job each, and 3 queued on zz-a, whose
	 * name sorts last: zz-a, then blocker and the first idle ones */
	batch_on_queues(&d, "idle", MANY, 600, "zz-a", 3);
	text = scrape(&d);
	ck_assert_int_eq(count_lines(text, "jobq_queue_depth{"), METRICS_QUEUE_SERIES);
	ck_assert_int_eq(count_lines(text, "jobq_queue_oldest_age_seconds{"), METRICS_QUEUE_SERIES);
	assert_sample(text, "jobq_queue_depth{queue=\"zz-a\"}", 3);
	assert_sample(text, "jobq_queue_depth{queue=\"blocker\"}", 0);
	assert_sample(text, "jobq_queue_depth{queue=\"idle0000\"}", 0);
	snprintf(series, sizeof series, "jobq_queue_depth{queue=\"idle%04d\"}", SHOWN - 3);
	assert_sample(text, series, 0);
	snprintf(series, sizeof series, "jobq_queue_depth{queue=\"idle%04d\"}", SHOWN - 2);
	assert_sample(text, series, -1);
	assert_sample(text, "jobq_queue_depth{queue=\"other\"}", 0);
	assert_sample(text, "jobq_queue_oldest_age_seconds{queue=\"other\"}", 0);
	free(text);

	/* s0000.. with a queued job each, and 5 on zz-b: the queued ones
	 * take every series, ties by name; the idle ones have none left */
	batch_on_queues(&d, "s", MANY, 0, "zz-b", 5);
	text = scrape(&d);
	ck_assert_int_eq(count_lines(text, "jobq_queue_depth{"), METRICS_QUEUE_SERIES);
	ck_assert_int_eq(count_lines(text, "jobq_queue_oldest_age_seconds{"), METRICS_QUEUE_SERIES);
	assert_sample(text, "jobq_queue_depth{queue=\"zz-b\"}", 5);
	assert_sample(text, "jobq_queue_depth{queue=\"zz-a\"}", 3);
	assert_sample(text, "jobq_queue_depth{queue=\"s0000\"}", 1);
	snprintf(series, sizeof series, "jobq_queue_depth{queue=\"s%04d\"}", SHOWN - 3);
	assert_sample(text, series, 1);
	snprintf(series, sizeof series, "jobq_queue_depth{queue=\"s%04d\"}", SHOWN - 2);
	assert_sample(text, series, -1);
	assert_sample(text, "jobq_queue_depth{queue=\"blocker\"}", -1);
	assert_sample(text, "jobq_queue_depth{queue=\"idle0000\"}", -1);
	assert_sample(text, "jobq_queue_depth{queue=\"other\"}", MANY - (SHOWN - 2));
	age = sample_or(text, "jobq_queue_oldest_age_seconds{queue=\"other\"}");
	ck_assert_msg(age >= 0 && age < TEST_TIMEOUT_S, "other's oldest age %g", age);
	ck_assert_msg(promtool_check(d.dir, "bounded.txt", text, out, sizeof out) == 0 && out[0] == '\0',
		      "promtool: %s", out);
	free(text);

	job_action(&d, blocker, "cancel", &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	free(blocker);
	harness_stop(&d);
}
END_TEST

struct long_poll {
	const struct jobqd *d;
	char path[128];
	long status;
};

static void *long_poll_main(void *arg)
{
	struct long_poll *lp = arg;
	struct resp r;

	harness_request(lp->d, "GET", lp->path, NULL, NULL, NULL, &r);
	lp->status = r.status;
	harness_resp_free(&r);
	return NULL;
}

/* Scrapes until jobq_waiters is want (bounded, 10 s); returns the last text. */
static char *scrape_until_waiters(const struct jobqd *d, double want)
{
	double end = mono_ms() + 10000.0;
	char *text;

	for (;;) {
		text = scrape(d);
		if (sample_or(text, "jobq_waiters") == want)
			return text;
		ck_assert_msg(mono_ms() < end, "jobq_waiters stays %g, want %g",
			      sample_or(text, "jobq_waiters"), want);
		free(text);
		nap_ms(10);
	}
}

START_TEST(metrics_gauge_waiters_and_connections_of_a_long_poll)
{
	struct jobqd d;
	struct long_poll lp = {.d = &d};
	struct resp r;
	pthread_t th;
	char *id, *text;

	harness_start(&d, NULL);
	id = harness_submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	snprintf(lp.path, sizeof lp.path, "/v1/jobs/%s?wait=30", id);
	text = scrape(&d);
	assert_sample(text, "jobq_waiters", 0);
	free(text);
	ck_assert_int_eq(pthread_create(&th, NULL, long_poll_main, &lp), 0);
	text = scrape_until_waiters(&d, 1);
	/* The long-poll's connection and this scrape's. */
	ck_assert_msg(sample_or(text, "jobq_http_connections") >= 2, "connections %g",
		      sample_or(text, "jobq_http_connections"));
	free(text);
	job_action(&d, id, "cancel", &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	pthread_join(th, NULL);
	ck_assert_int_eq(lp.status, 200);
	free(scrape_until_waiters(&d, 0));
	free(id);
	harness_stop(&d);
}
END_TEST

START_TEST(metrics_process_gauges_and_build_info)
{
	struct jobqd d;
	char *text;
	double before = (double)time(NULL), start, rss;

	harness_start(&d, NULL);
	text = scrape(&d);
	rss = sample_or(text, "jobq_process_resident_memory_bytes");
	ck_assert_msg(rss > 1e6 && rss < 1e10, "resident memory %g", rss);
	start = sample_or(text, "jobq_process_start_time_seconds");
	ck_assert_msg(start >= before - 1 && start <= (double)time(NULL) + 1, "start time %f, test began %f",
		      start, before);
	assert_sample(text, "jobq_build_info{version=\"0.1.0\"}", 1);
	ck_assert_msg(sample_or(text, "jobq_http_connections") >= 1, "connections %g",
		      sample_or(text, "jobq_http_connections"));
	free(text);
	harness_stop(&d);
}
END_TEST

START_TEST(metrics_label_values_are_escaped_and_promtool_accepts_them)
{
	static const char hostile[] = "we\"ird\\queue";
	struct jobqd d;
	struct resp r;
	struct metrics *m;
	struct metrics_text t = {0};
	char body[256], out[4096], *raw;
	int rc;

	/* jobqd refuses such a name at the door... */
	harness_start(&d, NULL);
	snprintf(body, sizeof body, "{\"type\":\"echo\",\"queue\":\"we\\\"ird\\\\queue\"}");
	harness_request(&d, "POST", "/v1/jobs", "application/json", body, NULL, &r);
	assert_problem(&r, 400, "invalid_field", "queue");
	harness_resp_free(&r);

	/* ...and the renderer jobqd uses escapes it all the same. */
	m = metrics_new();
	ck_assert_ptr_nonnull(m);
	metrics_job(m, hostile, "echo", METRICS_JOB_SUBMITTED, -1);
	metrics_job(m, hostile, "echo", METRICS_JOB_SUCCEEDED, 0.02);
	metrics_render(m, &t);
	ck_assert(!t.failed);
	assert_sample(t.buf, "jobq_jobs_submitted_total{queue=\"we\\\"ird\\\\queue\",type=\"echo\"}", 1);
	assert_sample(t.buf, "jobq_job_duration_seconds_bucket{queue=\"we\\\"ird\\\\queue\",type=\"echo\",le=\"0.025\"}", 1);
	rc = promtool_check(d.dir, "escaped.txt", t.buf, out, sizeof out);
	ck_assert_msg(rc == 0 && out[0] == '\0', "promtool exit %d: %s", rc, out);

	/* The control: the same text unescaped is refused, so the check can fail. */
	raw = replace_all(t.buf, "we\\\"ird\\\\queue", hostile);
	ck_assert_ptr_nonnull(strstr(raw, "queue=\"we\"ird\\queue\""));
	rc = promtool_check(d.dir, "unescaped.txt", raw, out, sizeof out);
	ck_assert_msg(rc != 0, "promtool accepted unescaped labels");
	free(raw);
	free(t.buf);
	metrics_free(m);
	harness_stop(&d);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("api_metrics");
	TCase *tc = tcase(s, "metrics");

	tcase_add_test(tc, metrics_are_prometheus_text_that_promtool_accepts);
	tcase_add_test(tc, metrics_count_known_jobs_of_each_queue_and_type_exactly);
	tcase_add_test(tc, metrics_count_requests_under_their_route_pattern);
	tcase_add_test(tc, metrics_queue_gauges_show_depth_and_oldest_age);
	tcase_add_test(tc, metrics_jobs_gauge_counts_each_state_with_blocked);
	tcase_add_test(tc, metrics_queue_gauges_are_bounded_to_the_deepest_queues);
	tcase_add_test(tc, metrics_gauge_waiters_and_connections_of_a_long_poll);
	tcase_add_test(tc, metrics_process_gauges_and_build_info);
	tcase_add_test(tc, metrics_label_values_are_escaped_and_promtool_accepts_them);
	return s;
}

int main(void)
{
	return harness_run(metrics_suite());
}
