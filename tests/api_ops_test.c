/* Black-box API tests for what an operator puts in front of the API: API
 * keys and roles (401, 403, open probes, the loopback-only default, key
 * file errors), CORS preflights and headers, ETag and If-None-Match,
 * request and job log lines in logfmt and JSON, X-Request-Id, and the
 * client address behind --trust-proxy, and GET /v1/info (what a 201 means
 * under the running --sync). Each test starts its own jobqd via
 * tests/harness.c; every wait is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define LOG_BOUND_MS 5000.0

#define ADMIN_KEY "adm-4f1c9a0e77d2"
#define SUBMIT_KEY "sub-93b0e2c4a1f8"
#define READ_KEY "read-6d2e8b7c0a15"
#define KEYS_ENV "JOBQ_API_KEYS=admin:" ADMIN_KEY ",submit:" SUBMIT_KEY ",read:" READ_KEY
#define AS_ADMIN "Authorization: Bearer " ADMIN_KEY
#define AS_SUBMIT "Authorization: Bearer " SUBMIT_KEY
#define AS_READ "Authorization: Bearer " READ_KEY
#define JSON_CT "Content-Type: application/json"
#define ORIGIN "https://app.example"
#define ECHO_JOB "{\"type\":\"echo\",\"payload\":{\"x\":1}}"

/* ---- helpers ---- */

/* One exchange with up to four extra header lines (NULLs are skipped). */
static void call(const struct jobqd *d, const char *method, const char *path, const char *body,
		 const char *h1, const char *h2, const char *h3, const char *h4, struct resp *r)
{
	const char *given[] = { h1, h2, h3, h4 };
	const char *headers[6];
	size_t n = 0, i;

	if (body == NULL)
		headers[n++] = "Content-Type:";
	for (i = 0; i < 4; i++)
		if (given[i] != NULL)
			headers[n++] = given[i];
	headers[n] = NULL;
	harness_request_raw(d, method, path, headers, body, body != NULL ? strlen(body) : 0, 0, r);
}

static void assert_status(const struct resp *r, long status)
{
	ck_assert_msg(r->status == status, "status %ld (%s), want %ld; body: %.600s", r->status,
		      r->error, status, r->body);
}

static void assert_header(const struct resp *r, const char *name, const char *want)
{
	char got[512];

	ck_assert_msg(harness_header(r, name, got, sizeof got), "no %s header; headers:\n%s", name,
		      r->headers);
	ck_assert_msg(strcmp(got, want) == 0, "%s: '%s', want '%s'", name, got, want);
}

static void assert_no_header(const struct resp *r, const char *name)
{
	char got[512];

	ck_assert_msg(!harness_header(r, name, got, sizeof got), "unexpected %s: %s", name, got);
}

static void start_with_keys(struct jobqd *d, const char *const *extra)
{
	harness_start_env(d, extra, ARGS(KEYS_ENV));
}

static void stop_ok(struct jobqd *d)
{
	int st = harness_stop_keep(d);
	char *log;

	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		log = harness_read_file(d->log);
		ck_abort_msg("jobqd did not exit 0 after SIGTERM; log:\n%.3000s", log);
	}
	harness_cleanup(d);
}

/* Submits an echo job (with an admin key when keyed) and returns its id. */
static char *submit(const struct jobqd *d, const char *body, const char *auth)
{
	cJSON *j = harness_submit_json(d, body, auth);
	char *id = strdup(jstr(j, "id"));

	cJSON_Delete(j);
	return id;
}

/* ---- log lines ---- */

/* A logfmt line split into keys and values, in order. */
struct kv {
	int n;
	char key[24][32];
	char value[24][512];
};

static int logfmt_parse(const char *line, struct kv *kv)
{
	const char *p = line;

	kv->n = 0;
	while (*p && *p != '\n') {
		size_t k = strcspn(p, "= \n"), v = 0;
		char *out;

		if (p[k] != '=' || kv->n == 24 || k >= 32)
			return -1;
		snprintf(kv->key[kv->n], 32, "%.*s", (int)k, p);
		p += k + 1;
		out = kv->value[kv->n];
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				if (v < 511)
					out[v++] = *p;
			}
			if (*p != '"')
				return -1;
			p++;
		} else {
			while (*p && *p != ' ' && *p != '\n' && v < 511)
				out[v++] = *p++;
		}
		out[v] = '\0';
		kv->n++;
		if (*p == ' ')
			p++;
	}
	return 0;
}

static const char *kv_get(const struct kv *kv, const char *key)
{
	int i;

	for (i = 0; i < kv->n; i++)
		if (strcmp(kv->key[i], key) == 0)
			return kv->value[i];
	return NULL;
}

/* Polls jobqd's log until a line holding needle appears; returns a copy of
 * that line (free it). Fails the test after LOG_BOUND_MS. */
static char *wait_log_line(const struct jobqd *d, const char *needle)
{
	double end = mono_ms() + LOG_BOUND_MS;

	for (;;) {
		char *log = harness_read_file(d->log);
		char *hit = strstr(log, needle);

		if (hit != NULL) {
			char *start = hit, *eol = strchr(hit, '\n'), *line;

			while (start > log && start[-1] != '\n')
				start--;
			line = strndup(start, eol != NULL ? (size_t)(eol - start) : strlen(start));
			free(log);
			return line;
		}
		ck_assert_msg(mono_ms() < end, "no log line with '%s'; log:\n%.3000s", needle, log);
		free(log);
		nap_ms(10);
	}
}

static const char *const request_keys[] = {
	"ts", "level", "msg", "method", "route", "path", "status", "bytes", "duration_ms", "client",
	"request_id", NULL,
};

static const char *const job_keys[] = {
	"ts", "level", "msg", "id", "queue", "type", "state", "attempt", NULL,
};

static void assert_keys(const struct kv *kv, const char *const *keys, const char *line)
{
	int i;

	for (i = 0; keys[i] != NULL; i++)
		ck_assert_msg(i < kv->n && strcmp(kv->key[i], keys[i]) == 0,
			      "key %d is not %s in: %s", i, keys[i], line);
	ck_assert_msg(kv->n == i, "%d keys, want %d: %s", kv->n, i, line);
}

/* The request line of request id rid, parsed. */
static void request_line(const struct jobqd *d, const char *rid, struct kv *kv)
{
	char needle[200];
	char *line;

	snprintf(needle, sizeof needle, "request_id=%s", rid);
	line = wait_log_line(d, needle);
	ck_assert_msg(logfmt_parse(line, kv) == 0, "not logfmt: %s", line);
	assert_keys(kv, request_keys, line);
	free(line);
}

/* ---- authentication ---- */

START_TEST(auth_missing_key_is_401_with_a_bearer_challenge)
{
	struct jobqd d;
	struct resp r;

	start_with_keys(&d, NULL);
	call(&d, "GET", "/v1/jobs", NULL, NULL, NULL, NULL, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	assert_header(&r, "WWW-Authenticate", "Bearer realm=\"jobq\"");
	harness_resp_free(&r);
	/* a POST is refused before its body matters */
	call(&d, "POST", "/v1/jobs", ECHO_JOB, JSON_CT, NULL, NULL, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(auth_wrong_key_is_401)
{
	static const char *const wrong[] = {
		"Authorization: Bearer " READ_KEY "x",
		"Authorization: Bearer read-6d2e8b7c0a1",
		"Authorization: Basic " READ_KEY,
		"Authorization: " READ_KEY,
		"Authorization: Bearer",
	};
	struct jobqd d;
	struct resp r;
	size_t i;

	start_with_keys(&d, NULL);
	for (i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
		call(&d, "GET", "/v1/queues", NULL, wrong[i], NULL, NULL, NULL, &r);
		assert_problem(&r, 401, "unauthorized", "Authorization");
		assert_header(&r, "WWW-Authenticate", "Bearer realm=\"jobq\"");
		ck_assert_msg(strstr(r.body, READ_KEY) == NULL, "the key is echoed: %s", r.body);
		harness_resp_free(&r);
	}
	stop_ok(&d);
}
END_TEST

START_TEST(auth_read_key_reads_but_cannot_post)
{
	struct jobqd d;
	struct resp r;
	char *id;

	start_with_keys(&d, NULL);
	call(&d, "GET", "/v1/jobs", NULL, AS_READ, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	call(&d, "POST", "/v1/jobs", ECHO_JOB, JSON_CT, AS_READ, NULL, NULL, &r);
	assert_problem(&r, 403, "forbidden", "Authorization");
	assert_no_header(&r, "WWW-Authenticate");
	harness_resp_free(&r);
	call(&d, "POST", "/v1/batches", "{\"jobs\":[" ECHO_JOB "]}", JSON_CT, AS_READ, NULL, NULL, &r);
	assert_problem(&r, 403, "forbidden", "Authorization");
	harness_resp_free(&r);
	/* submit may submit, cancel and read, not delete */
	id = submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}", AS_SUBMIT);
	{
		char path[128];

		snprintf(path, sizeof path, "/v1/jobs/%s", id);
		call(&d, "GET", path, NULL, AS_READ, NULL, NULL, NULL, &r);
		assert_status(&r, 200);
		harness_resp_free(&r);
		snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
		call(&d, "POST", path, NULL, AS_READ, NULL, NULL, NULL, &r);
		assert_problem(&r, 403, "forbidden", "Authorization");
		harness_resp_free(&r);
		call(&d, "POST", path, NULL, AS_SUBMIT, NULL, NULL, NULL, &r);
		assert_status(&r, 200);
		harness_resp_free(&r);
		snprintf(path, sizeof path, "/v1/jobs/%s", id);
		call(&d, "DELETE", path, NULL, AS_SUBMIT, NULL, NULL, NULL, &r);
		assert_problem(&r, 403, "forbidden", "Authorization");
		harness_resp_free(&r);
		call(&d, "DELETE", path, NULL, AS_ADMIN, NULL, NULL, NULL, &r);
		assert_status(&r, 204);
		harness_resp_free(&r);
	}
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(auth_admin_can_pause_submit_cannot)
{
	struct jobqd d;
	struct resp r;

	start_with_keys(&d, NULL);
	call(&d, "POST", "/v1/queues/default/pause", NULL, AS_SUBMIT, NULL, NULL, NULL, &r);
	assert_problem(&r, 403, "forbidden", "Authorization");
	ck_assert_msg(strstr(jstr_or(r.json, "detail"), "admin") != NULL, "%s", r.body);
	harness_resp_free(&r);
	call(&d, "GET", "/v1/queues/default", NULL, AS_READ, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(cJSON_IsFalse(jget(r.json, "paused")), "%s", r.body);
	harness_resp_free(&r);
	call(&d, "POST", "/v1/queues/default/pause", NULL, AS_ADMIN, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(cJSON_IsTrue(jget(r.json, "paused")), "%s", r.body);
	harness_resp_free(&r);
	call(&d, "POST", "/v1/queues/default/resume", NULL, AS_READ, NULL, NULL, NULL, &r);
	assert_problem(&r, 403, "forbidden", "Authorization");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(auth_probes_and_description_stay_open)
{
	static const char *const open_paths[] = { "/healthz", "/readyz", "/openapi.yaml", "/", "/app.js", "/style.css" };
	struct jobqd d;
	struct resp r;
	size_t i;

	start_with_keys(&d, NULL);
	for (i = 0; i < sizeof open_paths / sizeof open_paths[0]; i++) {
		call(&d, "GET", open_paths[i], NULL, NULL, NULL, NULL, NULL, &r);
		assert_status(&r, 200);
		harness_resp_free(&r);
	}
	stop_ok(&d);
}
END_TEST

START_TEST(auth_metrics_need_a_key_unless_public)
{
	struct jobqd d;
	struct resp r;

	start_with_keys(&d, NULL);
	call(&d, "GET", "/metrics", NULL, NULL, NULL, NULL, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	harness_resp_free(&r);
	call(&d, "GET", "/metrics", NULL, AS_READ, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	stop_ok(&d);

	harness_start_env(&d, ARGS("--metrics-public"), ARGS(KEYS_ENV));
	call(&d, "GET", "/metrics", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	call(&d, "GET", "/v1/jobs", NULL, NULL, NULL, NULL, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(auth_key_file_gives_roles)
{
	struct jobqd d;
	struct resp r;
	char path[HARNESS_PATH_MAX + 16];
	FILE *f;

	/* the daemon's temp dir exists only once it runs: use a file of our own */
	snprintf(path, sizeof path, "/tmp/jobq-ops-keys-%d", (int)getpid());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("# operators\nadmin:" ADMIN_KEY "\n\nread:" READ_KEY "\n", f);
	fclose(f);
	harness_start(&d, ARGS("--api-key-file", path));
	unlink(path);
	call(&d, "POST", "/v1/jobs", ECHO_JOB, JSON_CT, AS_READ, NULL, NULL, &r);
	assert_problem(&r, 403, "forbidden", "Authorization");
	harness_resp_free(&r);
	call(&d, "POST", "/v1/jobs", ECHO_JOB, JSON_CT, AS_SUBMIT, NULL, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	harness_resp_free(&r);
	call(&d, "POST", "/v1/jobs", ECHO_JOB, JSON_CT, AS_ADMIN, NULL, NULL, &r);
	assert_status(&r, 201);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

static void assert_one_line(const struct cli_result *res, const char *what)
{
	const char *nl = strchr(res->err, '\n');

	ck_assert_msg(res->status == 2 && !res->timed_out, "%s: exit %d, stderr: %s", what,
		      res->status, res->err);
	ck_assert_msg(nl != NULL && nl[1] == '\0', "%s: not one line: [%s]", what, res->err);
}

static const struct {
	const char *text;
	const char *want;
} bad_key_files[] = {
	{ "admin:" ADMIN_KEY "\n" READ_KEY "\n", "line 2: expected ROLE:KEY" },
	{ "# c\n\nowner:" ADMIN_KEY "\n", "line 3: the role must be admin, submit or read" },
	{ "read:" READ_KEY " extra\n", "line 1: the key may hold only visible ASCII" },
	{ "read:" READ_KEY "\nadmin:" READ_KEY "\n", "line 2: the same key is listed twice" },
};

START_TEST(auth_bad_key_file_line_is_a_startup_error_without_the_key)
{
	struct cli_result res;
	char path[128];
	FILE *f;

	snprintf(path, sizeof path, "/tmp/jobq-ops-badkeys-%d", (int)getpid());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(bad_key_files[_i].text, f);
	fclose(f);
	harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", "jobq.db", "--api-key-file", path),
			NULL, &res);
	unlink(path);
	assert_one_line(&res, bad_key_files[_i].text);
	ck_assert_msg(strstr(res.err, bad_key_files[_i].want) != NULL, "want '%s' in: %s",
		      bad_key_files[_i].want, res.err);
	ck_assert_msg(strstr(res.err, ADMIN_KEY) == NULL && strstr(res.err, READ_KEY) == NULL,
		      "a key is shown: %s", res.err);
	harness_cli_result_free(&res);
}
END_TEST

START_TEST(auth_bad_key_env_item_is_a_startup_error)
{
	struct cli_result res;

	harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", "jobq.db"),
			ARGS("JOBQ_API_KEYS=read:" READ_KEY ",boss:" ADMIN_KEY), &res);
	assert_one_line(&res, "JOBQ_API_KEYS");
	ck_assert_msg(strstr(res.err, "JOBQ_API_KEYS item 2") != NULL, "%s", res.err);
	ck_assert_msg(strstr(res.err, ADMIN_KEY) == NULL, "the key is shown: %s", res.err);
	harness_cli_result_free(&res);
}
END_TEST

START_TEST(auth_no_key_refuses_a_non_loopback_listen)
{
	static const char *const hosts[] = { "0.0.0.0:0", "[::]:0", "192.0.2.1:0" };
	struct cli_result res;
	size_t i;

	for (i = 0; i < 3; i++) {
		harness_run_cli(ARGS("--listen", hosts[i], "--db", "jobq.db"), NULL, &res);
		assert_one_line(&res, hosts[i]);
		ck_assert_msg(strstr(res.err, "refusing to listen") != NULL &&
			      strstr(res.err, "--insecure-no-auth") != NULL, "%s", res.err);
		harness_cli_result_free(&res);
	}
}
END_TEST

/* Accepted: the run gets past the check and fails later, on purpose, at
 * the database (exit 3, before it would listen anywhere). */
START_TEST(auth_insecure_switch_or_a_key_allows_a_non_loopback_listen)
{
	struct cli_result res;

	harness_run_cli(ARGS("--listen", "0.0.0.0:0", "--db", "/nonexistent/dir/jobq.db",
			     "--insecure-no-auth"), NULL, &res);
	ck_assert_msg(res.status == 3 && strstr(res.err, "refusing") == NULL &&
		      strstr(res.err, "/nonexistent/dir/jobq.db") != NULL,
		      "exit %d, stderr: %s", res.status, res.err);
	harness_cli_result_free(&res);
	harness_run_cli(ARGS("--listen", "0.0.0.0:0", "--db", "/nonexistent/dir/jobq.db"),
			ARGS(KEYS_ENV), &res);
	ck_assert_msg(res.status == 3 && strstr(res.err, "refusing") == NULL,
		      "exit %d, stderr: %s", res.status, res.err);
	harness_cli_result_free(&res);
}
END_TEST

START_TEST(auth_off_without_keys_on_loopback)
{
	struct jobqd d;
	char *id;

	harness_start(&d, NULL);
	id = submit(&d, ECHO_JOB, NULL);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- GET /v1/info ---- */

#define ACK_FULL "a 201 is sent once the job's commit is fsynced: the job survives a crash " \
	"of jobqd or of the machine, and power loss"
#define ACK_NORMAL "a 201 is sent once the job's commit is in the write-ahead log, not yet " \
	"fsynced: the job survives a crash of jobqd, but the last commits before a crash of " \
	"the machine or power loss can be lost"

static const struct {
	const char *const *args;
	const char *sync;
	const char *ack;
} info_cases[] = {
	{ NULL, "full", ACK_FULL },
	{ ARGS("--sync", "full"), "full", ACK_FULL },
	{ ARGS("--sync", "normal"), "normal", ACK_NORMAL },
};

/* The reply has exactly the fields the API description names, and says
 * what the running --sync makes a 201 mean. */
START_TEST(info_reports_version_backend_and_durability)
{
	struct jobqd d;
	struct resp r;
	const cJSON *dur;

	harness_start(&d, info_cases[_i].args);
	call(&d, "GET", "/v1/info", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_header(&r, "Content-Type", "application/json");
	ck_assert_msg(cJSON_IsObject(r.json) && cJSON_GetArraySize(r.json) == 3, "%s", r.body);
	ck_assert_str_eq(jstr_or(r.json, "version"), "0.1.0");
	dur = jget(r.json, "durability");
	ck_assert_msg(cJSON_IsObject(dur) && cJSON_GetArraySize(dur) == 2, "%s", r.body);
	ck_assert_str_eq(jstr_or(dur, "sync"), info_cases[_i].sync);
	if (harness_db_url() == NULL) {
		ck_assert_str_eq(jstr_or(r.json, "backend"), "sqlite");
		ck_assert_str_eq(jstr_or(dur, "ack"), info_cases[_i].ack);
	} else {
		/* PostgreSQL: the 201 follows COMMIT; beyond that the
		 * server's synchronous_commit decides. */
		ck_assert_str_eq(jstr_or(r.json, "backend"), "pg");
		ck_assert_msg(strstr(jstr_or(dur, "ack"), "COMMIT") != NULL &&
			      strstr(jstr_or(dur, "ack"), "synchronous_commit") != NULL,
			      "ack does not name COMMIT and synchronous_commit: %s", r.body);
	}
	harness_resp_free(&r);
	call(&d, "POST", "/v1/info", "{}", JSON_CT, NULL, NULL, NULL, &r);
	assert_status(&r, 405);
	assert_header(&r, "Allow", "GET");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* One jobqd alone: GET /v1/cluster lists it, alive and leader; every
 * reply names it in Jobq-Node (errors too); a running job names it. */
START_TEST(cluster_lists_this_node_and_replies_name_it)
{
	struct jobqd d;
	struct resp r;
	char node[64], got[64], path[128];
	const cJSON *nodes, *n;
	cJSON *job;

	harness_start(&d, NULL);
	call(&d, "GET", "/v1/cluster", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_header(&r, "Content-Type", "application/json");
	snprintf(node, sizeof node, "%s", jstr_or(r.json, "node"));
	ck_assert_uint_eq(strlen(node), 36);
	ck_assert_str_eq(jstr_or(r.json, "leader"), node);
	ck_assert_str_eq(jstr_or(r.json, "backend"), harness_db_url() ? "pg" : "sqlite");
	nodes = jget(r.json, "nodes");
	ck_assert_msg(cJSON_IsArray(nodes) && cJSON_GetArraySize(nodes) == 1, "%s", r.body);
	n = cJSON_GetArrayItem(nodes, 0);
	ck_assert_str_eq(jstr_or(n, "id"), node);
	ck_assert(cJSON_IsTrue(jget(n, "alive")));
	ck_assert(cJSON_IsTrue(jget(n, "leader")));
	ck_assert_int_eq((int)cJSON_GetNumberValue(jget(n, "pid")), (int)d.pid);
	assert_header(&r, "Jobq-Node", node);
	harness_resp_free(&r);

	call(&d, "GET", "/v1/jobs/01a237ba-2a49-7004-939f-0c1cd5ba0f18", NULL, NULL, NULL, NULL, NULL, &r);
	assert_problem(&r, 404, "job_not_found", NULL);
	ck_assert(harness_header(&r, "Jobq-Node", got, sizeof got));
	ck_assert_str_eq(got, node);
	harness_resp_free(&r);

	call(&d, "POST", "/v1/jobs", "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}", JSON_CT, NULL,
	     NULL, NULL, &r);
	assert_status(&r, 201);
	ck_assert_ptr_null(jget(r.json, "node")); /* queued: no node */
	snprintf(got, sizeof got, "%s", jstr_or(r.json, "id"));
	harness_resp_free(&r);
	job = harness_wait_state(&d, got, "running", NULL);
	ck_assert_str_eq(jstr_or(job, "node"), node);
	cJSON_Delete(job);
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", got);
	call(&d, "POST", path, NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_str_eq(jstr_or(r.json, "state"), "canceled");
	ck_assert_ptr_null(jget(r.json, "node")); /* not running: no node */
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* Like every other read: a key with at least the read role. */
START_TEST(info_needs_a_read_key_when_keys_are_set)
{
	struct jobqd d;
	struct resp r;

	start_with_keys(&d, NULL);
	call(&d, "GET", "/v1/info", NULL, NULL, NULL, NULL, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	harness_resp_free(&r);
	call(&d, "GET", "/v1/info", NULL, AS_READ, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_str_eq(jstr_or(jget(r.json, "durability"), "sync"), "full");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- CORS ---- */

START_TEST(cors_preflight_from_an_allowed_origin)
{
	struct jobqd d;
	struct resp r;

	start_with_keys(&d, ARGS("--cors-origin", "https://other.example", "--cors-origin", ORIGIN));
	call(&d, "OPTIONS", "/v1/jobs", NULL, "Origin: " ORIGIN,
	     "Access-Control-Request-Method: POST",
	     "Access-Control-Request-Headers: authorization, content-type", NULL, &r);
	assert_status(&r, 204);
	ck_assert_uint_eq(r.body_len, 0);
	assert_header(&r, "Access-Control-Allow-Origin", ORIGIN);
	assert_header(&r, "Access-Control-Allow-Methods", "GET, POST");
	assert_header(&r, "Access-Control-Allow-Headers",
		      "Authorization, Content-Type, If-None-Match, Last-Event-ID, X-Request-Id");
	assert_header(&r, "Access-Control-Max-Age", "600");
	assert_header(&r, "Vary", "Origin");
	harness_resp_free(&r);
	call(&d, "OPTIONS", "/v1/queues/q1/pause", NULL, "Origin: " ORIGIN,
	     "Access-Control-Request-Method: POST", NULL, NULL, &r);
	assert_status(&r, 204);
	assert_header(&r, "Access-Control-Allow-Methods", "POST");
	harness_resp_free(&r);
	call(&d, "OPTIONS", "/v1/nothing-here", NULL, "Origin: " ORIGIN,
	     "Access-Control-Request-Method: GET", NULL, NULL, &r);
	assert_problem(&r, 404, "not_found", NULL);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(cors_preflight_from_another_origin_is_403)
{
	struct jobqd d;
	struct resp r;

	start_with_keys(&d, ARGS("--cors-origin", ORIGIN));
	call(&d, "OPTIONS", "/v1/jobs", NULL, "Origin: https://evil.example",
	     "Access-Control-Request-Method: POST", NULL, NULL, &r);
	assert_problem(&r, 403, "origin_not_allowed", "Origin");
	assert_no_header(&r, "Access-Control-Allow-Origin");
	assert_no_header(&r, "Access-Control-Allow-Methods");
	harness_resp_free(&r);
	/* exact match only: another scheme or port is another origin */
	call(&d, "OPTIONS", "/v1/jobs", NULL, "Origin: http://app.example",
	     "Access-Control-Request-Method: POST", NULL, NULL, &r);
	assert_problem(&r, 403, "origin_not_allowed", "Origin");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(cors_headers_on_normal_responses_only_for_allowed_origins)
{
	struct jobqd d;
	struct resp r;

	start_with_keys(&d, ARGS("--cors-origin", ORIGIN));
	call(&d, "GET", "/v1/jobs", NULL, "Origin: " ORIGIN, AS_READ, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_header(&r, "Access-Control-Allow-Origin", ORIGIN);
	assert_header(&r, "Access-Control-Expose-Headers", "ETag, Location, X-Request-Id, Retry-After, Jobq-Node");
	assert_header(&r, "Vary", "Origin");
	harness_resp_free(&r);
	/* an error carries them too, so the page can read it */
	call(&d, "GET", "/v1/jobs", NULL, "Origin: " ORIGIN, NULL, NULL, NULL, &r);
	assert_problem(&r, 401, "unauthorized", "Authorization");
	assert_header(&r, "Access-Control-Allow-Origin", ORIGIN);
	harness_resp_free(&r);
	call(&d, "GET", "/v1/jobs", NULL, "Origin: https://evil.example", AS_READ, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_no_header(&r, "Access-Control-Allow-Origin");
	assert_no_header(&r, "Access-Control-Expose-Headers");
	assert_header(&r, "Vary", "Origin");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(cors_off_without_origins)
{
	struct jobqd d;
	struct resp r;

	harness_start(&d, NULL);
	call(&d, "OPTIONS", "/v1/jobs", NULL, "Origin: " ORIGIN, "Access-Control-Request-Method: POST",
	     NULL, NULL, &r);
	assert_problem(&r, 403, "origin_not_allowed", "Origin");
	harness_resp_free(&r);
	call(&d, "GET", "/v1/jobs", NULL, "Origin: " ORIGIN, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	assert_no_header(&r, "Access-Control-Allow-Origin");
	assert_no_header(&r, "Vary");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- ETag ---- */

/* GETs path with If-None-Match inm (NULL: none); returns the ETag. */
static void get_etag(const struct jobqd *d, const char *path, const char *inm, long want,
		     char *etag, size_t n)
{
	struct resp r;
	char h[256];

	snprintf(h, sizeof h, "If-None-Match: %s", inm != NULL ? inm : "");
	call(d, "GET", path, NULL, inm != NULL ? h : NULL, NULL, NULL, NULL, &r);
	assert_status(&r, want);
	ck_assert_msg(harness_header(&r, "ETag", etag, n), "%s: no ETag; headers:\n%s", path, r.headers);
	ck_assert_msg(strlen(etag) == 34 && etag[0] == '"' && etag[33] == '"', "ETag %s", etag);
	if (want == 304) {
		ck_assert_uint_eq(r.body_len, 0);
		assert_no_header(&r, "Content-Type");
		ck_assert_msg(harness_header(&r, "X-Request-Id", h, sizeof h), "304 without X-Request-Id");
	}
	harness_resp_free(&r);
}

START_TEST(etag_then_if_none_match_is_304_until_the_job_changes)
{
	struct jobqd d;
	struct resp r;
	char path[128], e1[64], e2[64], e3[64], weak[80];
	char *id;

	harness_start(&d, NULL);
	call(&d, "POST", "/v1/queues/held/pause", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	id = submit(&d, "{\"type\":\"echo\",\"queue\":\"held\"}", NULL);
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	get_etag(&d, path, NULL, 200, e1, sizeof e1);
	get_etag(&d, path, e1, 304, e2, sizeof e2);
	ck_assert_str_eq(e1, e2);
	snprintf(weak, sizeof weak, "\"nope\", W/%s", e1);
	get_etag(&d, path, weak, 304, e2, sizeof e2);
	get_etag(&d, path, "*", 304, e2, sizeof e2);
	get_etag(&d, path, "\"0123456789abcdef0123456789abcdef\"", 200, e2, sizeof e2);
	ck_assert_str_eq(e1, e2);
	/* the job changes: the old tag no longer matches */
	job_action(&d, id, "cancel", &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	get_etag(&d, path, e1, 200, e3, sizeof e3);
	ck_assert_str_ne(e1, e3);
	get_etag(&d, path, e3, 304, e2, sizeof e2);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(etag_on_job_list_and_queues)
{
	struct jobqd d;
	struct resp r;
	char e1[64], e2[64], l1[64];
	char *id;

	harness_start(&d, NULL);
	/* queues without queued jobs: their age field does not move */
	call(&d, "POST", "/v1/queues/idle/pause", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	get_etag(&d, "/v1/queues", NULL, 200, e1, sizeof e1);
	get_etag(&d, "/v1/queues", e1, 304, e2, sizeof e2);
	get_etag(&d, "/v1/queues/idle", NULL, 200, e1, sizeof e1);
	get_etag(&d, "/v1/queues/idle", e1, 304, e2, sizeof e2);
	/* the job list of a paused queue */
	call(&d, "POST", "/v1/queues/held/pause", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	id = submit(&d, "{\"type\":\"echo\",\"queue\":\"held\"}", NULL);
	free(id);
	get_etag(&d, "/v1/jobs?queue=held", NULL, 200, l1, sizeof l1);
	get_etag(&d, "/v1/jobs?queue=held", l1, 304, e2, sizeof e2);
	/* a new job changes the list and its queue */
	id = submit(&d, "{\"type\":\"echo\",\"queue\":\"held\"}", NULL);
	free(id);
	get_etag(&d, "/v1/jobs?queue=held", l1, 200, e2, sizeof e2);
	ck_assert_str_ne(l1, e2);
	id = submit(&d, "{\"type\":\"echo\",\"queue\":\"idle\"}", NULL);
	free(id);
	get_etag(&d, "/v1/queues/idle", e1, 200, e2, sizeof e2);
	ck_assert_str_ne(e1, e2);
	/* no ETag where there is nothing to compare */
	call(&d, "POST", "/v1/jobs", ECHO_JOB, JSON_CT, NULL, NULL, NULL, &r);
	assert_status(&r, 201);
	assert_no_header(&r, "ETag");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- request ids and log lines ---- */

START_TEST(request_id_is_honoured_generated_or_replaced)
{
	struct jobqd d;
	struct resp r;
	char got[256], long_id[140], h[180];

	harness_start(&d, NULL);
	call(&d, "GET", "/v1/jobs", NULL, "X-Request-Id: trace-0042:abc/XYZ", NULL, NULL, NULL, &r);
	assert_header(&r, "X-Request-Id", "trace-0042:abc/XYZ");
	harness_resp_free(&r);
	/* also on errors */
	call(&d, "GET", "/v1/nowhere", NULL, "X-Request-Id: err-1", NULL, NULL, NULL, &r);
	assert_problem(&r, 404, "not_found", NULL);
	assert_header(&r, "X-Request-Id", "err-1");
	harness_resp_free(&r);
	call(&d, "GET", "/v1/jobs", NULL, NULL, NULL, NULL, NULL, &r);
	ck_assert(harness_header(&r, "X-Request-Id", got, sizeof got));
	ck_assert_msg(is_uuidv7(got), "generated id %s", got);
	harness_resp_free(&r);
	/* 128 characters are kept, 129 are not; blanks are not allowed */
	memset(long_id, 'a', 128);
	long_id[128] = '\0';
	snprintf(h, sizeof h, "X-Request-Id: %s", long_id);
	call(&d, "GET", "/healthz", NULL, h, NULL, NULL, NULL, &r);
	assert_header(&r, "X-Request-Id", long_id);
	harness_resp_free(&r);
	snprintf(h, sizeof h, "X-Request-Id: %sa", long_id);
	call(&d, "GET", "/healthz", NULL, h, NULL, NULL, NULL, &r);
	ck_assert(harness_header(&r, "X-Request-Id", got, sizeof got));
	ck_assert_msg(is_uuidv7(got), "129 characters kept: %s", got);
	harness_resp_free(&r);
	call(&d, "GET", "/healthz", NULL, "X-Request-Id: has blank", NULL, NULL, NULL, &r);
	ck_assert(harness_header(&r, "X-Request-Id", got, sizeof got));
	ck_assert_msg(is_uuidv7(got), "a blank kept: %s", got);
	harness_resp_free(&r);
	call(&d, "GET", "/healthz", NULL, "X-Request-Id: caf\xc3\xa9", NULL, NULL, NULL, &r);
	ck_assert(harness_header(&r, "X-Request-Id", got, sizeof got));
	ck_assert_msg(is_uuidv7(got), "non-ASCII kept: %s", got);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(log_has_one_request_line_and_job_lines_in_logfmt)
{
	struct jobqd d;
	struct resp r;
	struct kv kv;
	char path[128], bytes[32], needle[128];
	char *id, *line, *end;
	cJSON *j;

	harness_start(&d, NULL);
	id = submit(&d, ECHO_JOB, NULL);
	j = harness_wait_terminal(&d, id, NULL);
	cJSON_Delete(j);
	snprintf(path, sizeof path, "/v1/jobs/%s", id);
	call(&d, "GET", path, NULL, "X-Request-Id: log-check-1", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	snprintf(bytes, sizeof bytes, "%zu", r.body_len);
	harness_resp_free(&r);
	request_line(&d, "log-check-1", &kv);
	ck_assert_str_eq(kv_get(&kv, "level"), "info");
	ck_assert_str_eq(kv_get(&kv, "msg"), "request");
	ck_assert_str_eq(kv_get(&kv, "method"), "GET");
	ck_assert_str_eq(kv_get(&kv, "route"), "/v1/jobs/{id}");
	ck_assert_str_eq(kv_get(&kv, "path"), path);
	ck_assert_str_eq(kv_get(&kv, "status"), "200");
	ck_assert_str_eq(kv_get(&kv, "bytes"), bytes);
	ck_assert_str_eq(kv_get(&kv, "client"), "127.0.0.1");
	ck_assert(strtod(kv_get(&kv, "duration_ms"), &end) >= 0 && *end == '\0');
	ck_assert(ts_ms(kv_get(&kv, "ts")) > 0);
	/* an unmatched path */
	call(&d, "POST", "/v1/jobs/x/y/z", NULL, "X-Request-Id: log-check-2", NULL, NULL, NULL, &r);
	harness_resp_free(&r);
	request_line(&d, "log-check-2", &kv);
	ck_assert_str_eq(kv_get(&kv, "route"), "-");
	ck_assert_str_eq(kv_get(&kv, "status"), "404");
	/* the job's transitions: queued, running, succeeded */
	snprintf(needle, sizeof needle, "msg=job id=%s queue=default type=echo state=succeeded attempt=1", id);
	line = wait_log_line(&d, needle);
	ck_assert(logfmt_parse(line, &kv) == 0);
	assert_keys(&kv, job_keys, line);
	free(line);
	snprintf(needle, sizeof needle, "msg=job id=%s queue=default type=echo state=queued attempt=0", id);
	free(wait_log_line(&d, needle));
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(log_lines_are_json_objects_with_log_format_json)
{
	struct jobqd d;
	struct resp r;
	char *log, *line, *eol, *id;
	int requests = 0, jobs = 0;
	cJSON *j;

	harness_start(&d, ARGS("--log-format", "json"));
	id = submit(&d, ECHO_JOB, NULL);
	j = harness_wait_terminal(&d, id, NULL);
	cJSON_Delete(j);
	call(&d, "GET", "/v1/queues", NULL, "X-Request-Id: json-1", NULL, NULL, NULL, &r);
	harness_resp_free(&r);
	free(wait_log_line(&d, "\"request_id\":\"json-1\""));
	harness_stop_keep(&d);
	log = harness_read_file(d.log);
	for (line = log; *line; line = eol + 1) {
		cJSON *o, *k;
		int i;

		eol = strchr(line, '\n');
		ck_assert_ptr_nonnull(eol);
		*eol = '\0';
		if (strncmp(line, "jobqd: listening on ", 20) == 0)
			continue;
		o = cJSON_Parse(line);
		ck_assert_msg(cJSON_IsObject(o), "not a JSON object: %s", line);
		k = o->child;
		ck_assert_msg(k && strcmp(k->string, "ts") == 0 && k->next &&
			      strcmp(k->next->string, "level") == 0 && k->next->next &&
			      strcmp(k->next->next->string, "msg") == 0, "ts, level, msg first: %s", line);
		if (str_eq(jstr(o, "msg"), "request")) {
			for (i = 0, k = o->child; request_keys[i]; i++, k = k->next)
				ck_assert_msg(k && strcmp(k->string, request_keys[i]) == 0, "%s", line);
			ck_assert_msg(k == NULL, "extra keys: %s", line);
			ck_assert(cJSON_IsNumber(jget(o, "status")) && cJSON_IsNumber(jget(o, "bytes")) &&
				  cJSON_IsNumber(jget(o, "duration_ms")));
			requests++;
		} else if (str_eq(jstr(o, "msg"), "job")) {
			for (i = 0, k = o->child; job_keys[i]; i++, k = k->next)
				ck_assert_msg(k && strcmp(k->string, job_keys[i]) == 0, "%s", line);
			ck_assert(cJSON_IsNumber(jget(o, "attempt")));
			ck_assert_str_eq(jstr(o, "id"), id);
			jobs++;
		}
		cJSON_Delete(o);
	}
	ck_assert_int_ge(requests, 3);
	ck_assert_int_eq(jobs, 3);
	free(log);
	free(id);
	harness_cleanup(&d);
}
END_TEST

START_TEST(log_never_shows_a_key)
{
	struct jobqd d;
	struct resp r;
	char *log;

	start_with_keys(&d, NULL);
	call(&d, "GET", "/v1/jobs", NULL, AS_READ, "X-Request-Id: keyed-1", NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	call(&d, "GET", "/v1/jobs", NULL, "Authorization: Bearer wrong-" ADMIN_KEY,
	     "X-Request-Id: keyed-2", NULL, NULL, &r);
	assert_status(&r, 401);
	harness_resp_free(&r);
	free(wait_log_line(&d, "request_id=keyed-2"));
	log = harness_read_file(d.log);
	ck_assert_msg(strstr(log, READ_KEY) == NULL && strstr(log, ADMIN_KEY) == NULL,
		      "a key in the log:\n%s", log);
	free(log);
	stop_ok(&d);
}
END_TEST

/* ---- proxies ---- */

START_TEST(trust_proxy_takes_the_client_from_x_forwarded_for)
{
	struct jobqd d;
	struct resp r;
	struct kv kv;

	harness_start(&d, ARGS("--trust-proxy", "127.0.0.1/32"));
	call(&d, "GET", "/v1/jobs", NULL, "X-Forwarded-For: 127.0.0.3", "X-Request-Id: xff-1", NULL,
	     NULL, &r);
	harness_resp_free(&r);
	request_line(&d, "xff-1", &kv);
	ck_assert_str_eq(kv_get(&kv, "client"), "127.0.0.3");
	/* a client cannot pose as another by adding its own entries */
	call(&d, "GET", "/v1/jobs", NULL, "X-Forwarded-For: 10.9.9.9, 198.51.100.4",
	     "X-Request-Id: xff-2", NULL, NULL, &r);
	harness_resp_free(&r);
	request_line(&d, "xff-2", &kv);
	ck_assert_str_eq(kv_get(&kv, "client"), "198.51.100.4");
	/* several header lines count as one list */
	call(&d, "GET", "/v1/jobs", NULL, "X-Forwarded-For: 203.0.113.1", "X-Forwarded-For: 127.0.0.1",
	     "X-Request-Id: xff-3", NULL, &r);
	harness_resp_free(&r);
	request_line(&d, "xff-3", &kv);
	ck_assert_str_eq(kv_get(&kv, "client"), "203.0.113.1");
	stop_ok(&d);
}
END_TEST

START_TEST(trust_proxy_off_or_untrusted_peer_ignores_the_headers)
{
	struct jobqd d;
	struct resp r;
	struct kv kv;

	harness_start(&d, NULL);
	call(&d, "GET", "/v1/jobs", NULL, "X-Forwarded-For: 127.0.0.3", "X-Request-Id: noxff-1", NULL,
	     NULL, &r);
	harness_resp_free(&r);
	request_line(&d, "noxff-1", &kv);
	ck_assert_str_eq(kv_get(&kv, "client"), "127.0.0.1");
	stop_ok(&d);
	harness_start(&d, ARGS("--trust-proxy", "10.0.0.0/8"));
	call(&d, "GET", "/v1/jobs", NULL, "X-Forwarded-For: 127.0.0.3", "X-Request-Id: noxff-2", NULL,
	     NULL, &r);
	harness_resp_free(&r);
	request_line(&d, "noxff-2", &kv);
	ck_assert_str_eq(kv_get(&kv, "client"), "127.0.0.1");
	stop_ok(&d);
}
END_TEST

/* ---- suite ---- */

/* ---- queue list pages ---- */

#define MANY_QUEUES 250

/* Walks GET /v1/queues in pages of limit (0: the default) and appends
 * each name to names; asserts each page's exact size and cursor. */
static int walk_queues(const struct jobqd *d, int limit, int total, int want_page, char (*names)[72])
{
	char path[160], cursor[72] = "";
	int n = 0, pages = 0;
	struct resp r;
	const cJSON *it, *next;

	do {
		int want = total - n < want_page ? total - n : want_page, got = 0;

		if (limit)
			snprintf(path, sizeof path, "/v1/queues?limit=%d%s%s", limit,
				 cursor[0] ? "&cursor=" : "", cursor);
		else
			snprintf(path, sizeof path, "/v1/queues%s%s", cursor[0] ? "?cursor=" : "", cursor);
		call(d, "GET", path, NULL, NULL, NULL, NULL, NULL, &r);
		assert_status(&r, 200);
		cJSON_ArrayForEach(it, jget(r.json, "queues")) {
			ck_assert_int_lt(n, total);
			snprintf(names[n++], 72, "%s", jstr(it, "name"));
			got++;
		}
		ck_assert_msg(got == want, "page %d of %s: %d queues, want %d", pages, path, got, want);
		next = jget(r.json, "next_cursor");
		if (n < total) {
			ck_assert_msg(cJSON_IsString(next), "no next_cursor after %d of %d: %.200s", n, total, r.body);
			snprintf(cursor, sizeof cursor, "%s", next->valuestring);
		} else {
			ck_assert_msg(cJSON_IsNull(next), "next_cursor on the last page: %.200s", r.body);
			cursor[0] = '\0';
		}
		harness_resp_free(&r);
		pages++;
	} while (cursor[0]);
	return pages;
}

START_TEST(queue_list_pages_walk_every_queue_once)
{
	enum { TOTAL = MANY_QUEUES + 2 };
	static char names[TOTAL][72], want[TOTAL][72];
	struct jobqd d;
	struct resp r;
	size_t cap = MANY_QUEUES * 80 + 32, len = 0;
	char *body = malloc(cap);
	int k = 0;

	ck_assert_ptr_nonnull(body);
	/* q000..q249 with a job each (scheduled, so nothing runs), a paused
	 * queue with no jobs and a configured one without jobs between them */
	harness_start(&d, ARGS("--queue", "q100a=2"));
	len += (size_t)snprintf(body + len, cap - len, "{\"jobs\":[");
	for (int i = 0; i < MANY_QUEUES; i++)
		len += (size_t)snprintf(body + len, cap - len, "%s{\"type\":\"echo\",\"queue\":\"q%03d\",\"delay_s\":600}",
					i ? "," : "", i);
	snprintf(body + len, cap - len, "]}");
	call(&d, "POST", "/v1/batches", body, JSON_CT, NULL, NULL, NULL, &r);
	assert_status(&r, 201);
	harness_resp_free(&r);
	free(body);
	call(&d, "POST", "/v1/queues/q200p/pause", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	for (int i = 0; i < MANY_QUEUES; i++) {
		snprintf(want[k++], 72, "q%03d", i);
		if (i == 100)
			snprintf(want[k++], 72, "q100a");
		if (i == 200)
			snprintf(want[k++], 72, "q200p");
	}

	/* the default page is 50; pages of 100, 7 and the most allowed walk
	 * all of them in order, each exactly once */
	ck_assert_int_eq(walk_queues(&d, 0, TOTAL, 50, names), 6);
	for (int i = 0; i < TOTAL; i++)
		ck_assert_str_eq(names[i], want[i]);
	memset(names, 0, sizeof names);
	ck_assert_int_eq(walk_queues(&d, 100, TOTAL, 100, names), 3);
	for (int i = 0; i < TOTAL; i++)
		ck_assert_str_eq(names[i], want[i]);
	memset(names, 0, sizeof names);
	ck_assert_int_eq(walk_queues(&d, 7, TOTAL, 7, names), (TOTAL + 6) / 7);
	for (int i = 0; i < TOTAL; i++)
		ck_assert_str_eq(names[i], want[i]);
	ck_assert_int_eq(walk_queues(&d, 1000, TOTAL, 1000, names), 1);

	/* a page's counts are the queue's own */
	call(&d, "GET", "/v1/queues?limit=1&cursor=q099", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(r.json, "queues")), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(jget(r.json, "queues"), 0), "name"), "q100");
	ck_assert_int_eq(jget(jget(cJSON_GetArrayItem(jget(r.json, "queues"), 0), "counts"),
			      "scheduled")->valueint, 1);
	ck_assert_str_eq(jstr(r.json, "next_cursor"), "q100");
	harness_resp_free(&r);
	/* past the end: an empty last page */
	call(&d, "GET", "/v1/queues?cursor=zzz", NULL, NULL, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(r.json, "queues")), 0);
	ck_assert(cJSON_IsNull(jget(r.json, "next_cursor")));
	harness_resp_free(&r);
	harness_stop(&d);
}
END_TEST

static const struct {
	const char *query, *field;
} bad_queue_pages[] = {
	{ "limit=0", "limit" }, { "limit=1001", "limit" }, { "limit=ten", "limit" },
	{ "limit=", "limit" }, { "limit=5x", "limit" }, { "cursor=", "cursor" },
	{ "cursor=a%20b", "cursor" }, { "cursor=caf%C3%A9", "cursor" },
	{ "limit=10&cursor=%2F..", "cursor" },
};

START_TEST(queue_list_bad_limit_or_cursor_is_400)
{
	struct jobqd d;
	struct resp r;
	char path[128];

	harness_start(&d, NULL);
	snprintf(path, sizeof path, "/v1/queues?%s", bad_queue_pages[_i].query);
	call(&d, "GET", path, NULL, NULL, NULL, NULL, NULL, &r);
	assert_problem(&r, 400, "invalid_query", bad_queue_pages[_i].field);
	harness_resp_free(&r);
	harness_stop(&d);
}
END_TEST

static Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *tc;

	tc = tcase(s, "auth");
	tcase_add_test(tc, auth_missing_key_is_401_with_a_bearer_challenge);
	tcase_add_test(tc, auth_wrong_key_is_401);
	tcase_add_test(tc, auth_read_key_reads_but_cannot_post);
	tcase_add_test(tc, auth_admin_can_pause_submit_cannot);
	tcase_add_test(tc, auth_probes_and_description_stay_open);
	tcase_add_test(tc, auth_metrics_need_a_key_unless_public);
	tcase_add_test(tc, auth_key_file_gives_roles);
	tcase_add_loop_test(tc, auth_bad_key_file_line_is_a_startup_error_without_the_key, 0,
			    (int)(sizeof bad_key_files / sizeof bad_key_files[0]));
	tcase_add_test(tc, auth_bad_key_env_item_is_a_startup_error);
	tcase_add_test(tc, auth_no_key_refuses_a_non_loopback_listen);
	tcase_add_test(tc, auth_insecure_switch_or_a_key_allows_a_non_loopback_listen);
	tcase_add_test(tc, auth_off_without_keys_on_loopback);

	tc = tcase(s, "info");
	tcase_add_loop_test(tc, info_reports_version_backend_and_durability, 0,
			    (int)(sizeof info_cases / sizeof info_cases[0]));
	tcase_add_test(tc, info_needs_a_read_key_when_keys_are_set);
	tcase_add_test(tc, cluster_lists_this_node_and_replies_name_it);

	tc = tcase(s, "cors");
	tcase_add_test(tc, cors_preflight_from_an_allowed_origin);
	tcase_add_test(tc, cors_preflight_from_another_origin_is_403);
	tcase_add_test(tc, cors_headers_on_normal_responses_only_for_allowed_origins);
	tcase_add_test(tc, cors_off_without_origins);

	tc = tcase(s, "etag");
	tcase_add_test(tc, etag_then_if_none_match_is_304_until_the_job_changes);
	tcase_add_test(tc, etag_on_job_list_and_queues);

	tc = tcase(s, "queue_pages");
	tcase_add_test(tc, queue_list_pages_walk_every_queue_once);
	tcase_add_loop_test(tc, queue_list_bad_limit_or_cursor_is_400, 0,
			    (int)(sizeof bad_queue_pages / sizeof bad_queue_pages[0]));

	tc = tcase(s, "logs");
	tcase_add_test(tc, request_id_is_honoured_generated_or_replaced);
	tcase_add_test(tc, log_has_one_request_line_and_job_lines_in_logfmt);
	tcase_add_test(tc, log_lines_are_json_objects_with_log_format_json);
	tcase_add_test(tc, log_never_shows_a_key);

	tc = tcase(s, "proxy");
	tcase_add_test(tc, trust_proxy_takes_the_client_from_x_forwarded_for);
	tcase_add_test(tc, trust_proxy_off_or_untrusted_peer_ignores_the_headers);
	return s;
}

int main(void)
{
	return harness_run(ops_suite());
}
