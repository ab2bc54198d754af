/* Schedules, black box: create, read, list, replace, delete; every bad
 * input answered 4xx naming its field; pause, resume and run now; an
 * interval fires exactly once per fire time; the catch-up policies after
 * a stopped jobqd; kill -9 around a fire makes no duplicate and loses no
 * fire; cron in a time zone. Every wait is a bounded poll of an
 * observable (the jobs of a schedule, or the clock while jobqd is down). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/harness.h"

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void assert_exit_0(int st)
{
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "jobqd did not exit 0");
}

#define call(d, method, path, body, want) harness_call((d), (method), (path), (body), NULL, (want))

static void refused(const struct jobqd *d, const char *method, const char *path, const char *body, long status,
		    const char *code, const char *field)
{
	struct resp r;

	harness_request(d, method, path, body ? "application/json" : NULL, body, NULL, &r);
	assert_problem(&r, status, code, field);
	harness_resp_free(&r);
}

#define get_job harness_get_job

/* POST /v1/schedules with name and the rest of the body. */
static cJSON *create(const struct jobqd *d, const char *name, const char *rest)
{
	char body[2048];

	snprintf(body, sizeof body, "{\"name\":\"%s\",%s}", name, rest);
	return call(d, "POST", "/v1/schedules", body, 201);
}

static cJSON *get_schedule(const struct jobqd *d, const char *name)
{
	char path[256];

	snprintf(path, sizeof path, "/v1/schedules/%s", name);
	return call(d, "GET", path, NULL, 200);
}

static cJSON *action(const struct jobqd *d, const char *name, const char *what, long want)
{
	char path[256];

	snprintf(path, sizeof path, "/v1/schedules/%s/%s", name, what);
	return call(d, "POST", path, NULL, want);
}

/* The fire times (ms) of the jobs in queue, ascending, into out (at most
 * max); how many. Each job must carry schedule.name == name. */
static int fire_times(const struct jobqd *d, const char *queue, const char *name, long long *out, int max,
		      long long *created)
{
	char path[256];
	cJSON *j, *jobs;
	int n = 0;

	snprintf(path, sizeof path, "/v1/jobs?queue=%s&limit=1000", queue);
	j = call(d, "GET", path, NULL, 200);
	jobs = (cJSON *)jget(j, "jobs");
	ck_assert_ptr_nonnull(jobs);
	for (cJSON *job = jobs->child; job; job = job->next) {
		const cJSON *sc = jget(job, "schedule");
		ck_assert_msg(cJSON_IsObject(sc), "job %s has no schedule", jstr_or(job, "id"));
		ck_assert_msg(str_eq(jstr(sc, "name"), name), "job of schedule %s", jstr_or(sc, "name"));
		ck_assert_int_lt(n, max);
		out[n] = jts(sc, "fire_at");
		ck_assert_msg(out[n] > 0, "fire_at %s", jstr_or(sc, "fire_at"));
		if (created)
			created[n] = jts(job, "created_at");
		n++;
	}
	cJSON_Delete(j);
	/* newest first: reverse (and the created times with them) */
	for (int i = 0; i < n / 2; i++) {
		long long t = out[i];

		out[i] = out[n - 1 - i];
		out[n - 1 - i] = t;
		if (created) {
			t = created[i];
			created[i] = created[n - 1 - i];
			created[n - 1 - i] = t;
		}
	}
	return n;
}

/* Polls (bounded, 20 s) until queue holds at least want jobs; returns how
 * many it holds then. */
static int wait_jobs(const struct jobqd *d, const char *queue, const char *name, int want, long long *out,
		     int max)
{
	int n = 0;

	for (int i = 0; i < 2000; i++) {
		if ((n = fire_times(d, queue, name, out, max, NULL)) >= want)
			return n;
		nap_ms(10);
	}
	ck_abort_msg("queue %s holds %d jobs after 20 s, want %d", queue, n, want);
	return n;
}

static void assert_unique(const long long *t, int n)
{
	for (int i = 1; i < n; i++)
		ck_assert_msg(t[i] > t[i - 1], "fire time %lld twice (or out of order)", t[i]);
}

/* ---- the resource ---------------------------------------------------------- */

START_TEST(schedules_create_read_list_replace_delete)
{
	struct jobqd d;
	cJSON *s;

	harness_start(&d, NULL);
	long long before = wall_ms();
	s = create(&d, "nightly", "\"cron\":\"0 3 * * *\",\"job\":{\"type\":\"echo\",\"payload\":{\"n\":1},"
			      "\"queue\":\"night\",\"priority\":5}");
	ck_assert_str_eq(jstr(s, "name"), "nightly");
	ck_assert_str_eq(jstr(s, "cron"), "0 3 * * *");
	ck_assert(jnull(s, "every_s"));
	ck_assert_str_eq(jstr(s, "tz"), "UTC");
	ck_assert_str_eq(jstr(s, "catch_up"), "skip");
	ck_assert_int_eq(jlong(s, "catch_up_max"), 100);
	ck_assert_int_eq(jlong(s, "misfire_grace_s"), 60);
	ck_assert(cJSON_IsFalse(jget(s, "paused")));
	ck_assert(jnull(s, "last_fire_at"));
	ck_assert_str_eq(jstr(jget(s, "job"), "type"), "echo");
	ck_assert_int_eq(jlong(jget(s, "job"), "priority"), 5);
	ck_assert_int_eq(jlong(jget(jget(s, "job"), "payload"), "n"), 1);
	ck_assert(is_rfc3339_ms(jstr(s, "next_fire_at")));
	long long next = jts(s, "next_fire_at");
	ck_assert_msg(next > before && next <= before + 86400000LL, "next_fire_at %lld", next);
	ck_assert_int_eq(next % 3600000, 3 * 3600000 % 3600000);
	ck_assert_msg(strstr(jstr(s, "next_fire_at"), "T03:00:00.000Z"), "%s", jstr(s, "next_fire_at"));
	ck_assert(is_rfc3339_ms(jstr(s, "created_at")) && is_rfc3339_ms(jstr(s, "updated_at")));
	cJSON_Delete(s);

	/* taken */
	refused(&d, "POST", "/v1/schedules", "{\"name\":\"nightly\",\"every_s\":5,\"job\":{\"type\":\"echo\"}}", 409,
		"schedule_exists", "name");

	cJSON_Delete(create(&d, "a-every", "\"every_s\":300,\"job\":{\"type\":\"echo\"}"));
	cJSON_Delete(create(&d, "b-every", "\"every_s\":600,\"job\":{\"type\":\"echo\"}"));
	s = get_schedule(&d, "a-every");
	ck_assert_int_eq(jlong(s, "every_s"), 300);
	ck_assert(jnull(s, "cron"));
	long long a_next = jts(s, "next_fire_at");
	ck_assert_msg(a_next >= before + 300000 && a_next <= wall_ms() + 300000, "next %lld", a_next);
	cJSON_Delete(s);

	/* list, in name order, paged */
	s = call(&d, "GET", "/v1/schedules?limit=2", NULL, 200);
	const cJSON *arr = jget(s, "schedules");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(arr, 0), "name"), "a-every");
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(arr, 1), "name"), "b-every");
	ck_assert_str_eq(jstr(s, "next_cursor"), "b-every");
	cJSON_Delete(s);
	s = call(&d, "GET", "/v1/schedules?limit=2&cursor=b-every", NULL, 200);
	arr = jget(s, "schedules");
	ck_assert_int_eq(cJSON_GetArraySize(arr), 1);
	ck_assert_str_eq(jstr(cJSON_GetArrayItem(arr, 0), "name"), "nightly");
	ck_assert(jnull(s, "next_cursor"));
	cJSON_Delete(s);

	/* replace: the whole definition; created_at stays */
	s = call(&d, "PUT", "/v1/schedules/nightly",
		 "{\"every_s\":3600,\"tz\":\"Europe/Berlin\",\"catch_up\":\"all\",\"catch_up_max\":7,"
		 "\"misfire_grace_s\":5,\"job\":{\"type\":\"echo\"}}", 200);
	ck_assert_str_eq(jstr(s, "name"), "nightly");
	ck_assert(jnull(s, "cron"));
	ck_assert_int_eq(jlong(s, "every_s"), 3600);
	ck_assert_str_eq(jstr(s, "tz"), "Europe/Berlin");
	ck_assert_str_eq(jstr(s, "catch_up"), "all");
	ck_assert_int_eq(jlong(s, "catch_up_max"), 7);
	ck_assert_int_eq(jlong(s, "misfire_grace_s"), 5);
	ck_assert_ptr_null(jget(jget(s, "job"), "priority"));
	ck_assert(jts(s, "updated_at") >= jts(s, "created_at"));
	cJSON_Delete(s);
	/* a GET's body goes back with PUT as it is (read-only fields ignored) */
	s = get_schedule(&d, "a-every");
	char *text = cJSON_PrintUnformatted(s);
	cJSON_Delete(s);
	s = call(&d, "PUT", "/v1/schedules/a-every", text, 200);
	free(text);
	ck_assert_int_eq(jlong(s, "every_s"), 300);
	ck_assert(cJSON_IsFalse(jget(s, "paused")));
	cJSON_Delete(s);
	refused(&d, "PUT", "/v1/schedules/nope", "{\"every_s\":5,\"job\":{\"type\":\"echo\"}}", 404,
		"schedule_not_found", NULL);

	/* delete */
	cJSON_Delete(call(&d, "DELETE", "/v1/schedules/nightly", NULL, 204));
	refused(&d, "GET", "/v1/schedules/nightly", NULL, 404, "schedule_not_found", NULL);
	refused(&d, "DELETE", "/v1/schedules/nightly", NULL, 404, "schedule_not_found", NULL);
	s = call(&d, "GET", "/v1/schedules", NULL, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(s, "schedules")), 2);
	cJSON_Delete(s);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(bad_inputs_name_the_field)
{
	struct jobqd d;
	static const struct {
		const char *body;
		long status;
		const char *code, *field;
	} bad[] = {
		{"{\"every_s\":5,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "name"},
		{"{\"name\":\"a b\",\"every_s\":5,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "name"},
		{"{\"name\":7,\"every_s\":5,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "name"},
		{"{\"name\":\"s\",\"every_s\":5}", 400, "invalid_field", "job"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":[]}", 400, "invalid_field", "job"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{}}", 400, "invalid_field", "job.type"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"no.such\"}}", 422, "unknown_job_type", "job.type"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"echo\",\"priority\":\"x\"}}", 400, "invalid_field",
		 "job.priority"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"echo\",\"queue\":\"a b\"}}", 400, "invalid_field",
		 "job.queue"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"echo\",\"max_attempts\":0}}", 400, "invalid_field",
		 "job.max_attempts"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"echo\",\"run_at\":\"2030-01-01T00:00:00Z\"}}", 400,
		 "invalid_field", "job.run_at"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"echo\",\"depends_on\":[]}}", 400,
		 "invalid_field", "job.depends_on"},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"echo\",\"on_dependency_failure\":\"run\"}}", 400,
		 "invalid_field", "job.on_dependency_failure"},
		{"{\"name\":\"s\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "cron"},
		{"{\"name\":\"s\",\"cron\":\"* * * * *\",\"every_s\":5,\"job\":{\"type\":\"echo\"}}", 400,
		 "invalid_field", "cron"},
		{"{\"name\":\"s\",\"cron\":\"61 * * * *\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "cron"},
		{"{\"name\":\"s\",\"cron\":\"* * *\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "cron"},
		{"{\"name\":\"s\",\"cron\":\"@sometimes\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "cron"},
		{"{\"name\":\"s\",\"cron\":\"0 0 30 2 *\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "cron"},
		{"{\"name\":\"s\",\"cron\":5,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "cron"},
		{"{\"name\":\"s\",\"every_s\":0,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "every_s"},
		{"{\"name\":\"s\",\"every_s\":1.5,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "every_s"},
		{"{\"name\":\"s\",\"every_s\":\"5\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "every_s"},
		{"{\"name\":\"s\",\"every_s\":5,\"tz\":\"Mars/Olympus\",\"job\":{\"type\":\"echo\"}}", 422,
		 "unknown_time_zone", "tz"},
		{"{\"name\":\"s\",\"every_s\":5,\"tz\":\"Europe/\",\"job\":{\"type\":\"echo\"}}", 422,
		 "unknown_time_zone", "tz"},
		/* not the shape of a zone name: the request's fault (400) */
		{"{\"name\":\"s\",\"every_s\":5,\"tz\":\"../etc/passwd\",\"job\":{\"type\":\"echo\"}}", 400,
		 "invalid_field", "tz"},
		{"{\"name\":\"s\",\"every_s\":5,\"tz\":\"/etc/localtime\",\"job\":{\"type\":\"echo\"}}", 400,
		 "invalid_field", "tz"},
		{"{\"name\":\"s\",\"every_s\":5,\"tz\":\"\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "tz"},
		{"{\"name\":\"s\",\"every_s\":5,\"tz\":1,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "tz"},
		{"{\"name\":\"s\",\"every_s\":5,\"catch_up\":\"some\",\"job\":{\"type\":\"echo\"}}", 400, "invalid_field",
		 "catch_up"},
		{"{\"name\":\"s\",\"every_s\":5,\"catch_up_max\":0,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field",
		 "catch_up_max"},
		{"{\"name\":\"s\",\"every_s\":5,\"catch_up_max\":1001,\"job\":{\"type\":\"echo\"}}", 400,
		 "invalid_field", "catch_up_max"},
		{"{\"name\":\"s\",\"every_s\":5,\"misfire_grace_s\":-1,\"job\":{\"type\":\"echo\"}}", 400,
		 "invalid_field", "misfire_grace_s"},
		{"{\"name\":\"s\",\"every\":5,\"job\":{\"type\":\"echo\"}}", 400, "invalid_field", "every"},
		{"{\"name\":\"s\",", 400, "malformed_json", NULL},
	};

	harness_start(&d, NULL);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		refused(&d, "POST", "/v1/schedules", bad[i].body, bad[i].status, bad[i].code, bad[i].field);
	/* the same checks on a replace, and the name must be the path's */
	cJSON_Delete(create(&d, "s", "\"every_s\":60,\"job\":{\"type\":\"echo\"}"));
	refused(&d, "PUT", "/v1/schedules/s", "{\"name\":\"t\",\"every_s\":5,\"job\":{\"type\":\"echo\"}}", 400,
		"invalid_field", "name");
	refused(&d, "PUT", "/v1/schedules/s", "{\"every_s\":5,\"tz\":\"Nowhere/Land\",\"job\":{\"type\":\"echo\"}}",
		422, "unknown_time_zone", "tz");
	refused(&d, "PUT", "/v1/schedules/s", "{\"cron\":\"* 24 * * *\",\"job\":{\"type\":\"echo\"}}", 400,
		"invalid_field", "cron");
	refused(&d, "GET", "/v1/schedules?limit=0", NULL, 400, "invalid_query", "limit");
	refused(&d, "GET", "/v1/schedules?cursor=a%20b", NULL, 400, "invalid_query", "cursor");
	refused(&d, "GET", "/v1/schedules/a%20b", NULL, 404, "schedule_not_found", NULL);
	refused(&d, "POST", "/v1/schedules/nope/run", NULL, 404, "schedule_not_found", NULL);
	refused(&d, "POST", "/v1/schedules/nope/pause", NULL, 404, "schedule_not_found", NULL);
	refused(&d, "POST", "/v1/schedules/nope/resume", NULL, 404, "schedule_not_found", NULL);
	/* none of it changed the schedule, nothing else was stored */
	cJSON *s = get_schedule(&d, "s");
	ck_assert_int_eq(jlong(s, "every_s"), 60);
	ck_assert_str_eq(jstr(s, "tz"), "UTC");
	cJSON_Delete(s);
	s = call(&d, "GET", "/v1/schedules", NULL, 200);
	ck_assert_int_eq(cJSON_GetArraySize(jget(s, "schedules")), 1);
	cJSON_Delete(s);
	assert_exit_0(harness_stop(&d));
}
END_TEST

START_TEST(pause_resume_and_run_now)
{
	struct jobqd d;
	cJSON *s, *job;
	long long t[8];

	harness_start(&d, NULL);
	s = create(&d, "hourly", "\"every_s\":3600,\"job\":{\"type\":\"echo\",\"queue\":\"h\",\"payload\":{\"x\":2}}");
	long long next = jts(s, "next_fire_at");
	ck_assert_msg(next > 0, "created without next_fire_at");
	cJSON_Delete(s);

	s = action(&d, "hourly", "pause", 200);
	ck_assert(cJSON_IsTrue(jget(s, "paused")));
	ck_assert(jnull(s, "next_fire_at"));
	cJSON_Delete(s);
	s = action(&d, "hourly", "pause", 200); /* again: still paused */
	ck_assert(cJSON_IsTrue(jget(s, "paused")));
	cJSON_Delete(s);

	/* run now: one job, fire time now, paused or not */
	long long before = wall_ms();
	job = action(&d, "hourly", "run", 201);
	const cJSON *sc = jget(job, "schedule");
	ck_assert_str_eq(jstr(sc, "name"), "hourly");
	ck_assert_msg(jts(sc, "fire_at") >= before && jts(sc, "fire_at") <= wall_ms(), "fire_at %s",
		      jstr_or(sc, "fire_at"));
	ck_assert_str_eq(jstr(job, "queue"), "h");
	ck_assert_int_eq(jlong(jget(job, "payload"), "x"), 2);
	cJSON *done = harness_wait_terminal(&d, jstr(job, "id"), get_job);
	ck_assert_str_eq(jstr(done, "state"), "succeeded");
	ck_assert_str_eq(jstr(jget(done, "schedule"), "name"), "hourly");
	cJSON_Delete(done);
	s = get_schedule(&d, "hourly");
	ck_assert_str_eq(jstr(s, "last_fire_at"), jstr(sc, "fire_at"));
	cJSON_Delete(s);
	cJSON_Delete(job);

	s = action(&d, "hourly", "resume", 200);
	ck_assert(cJSON_IsFalse(jget(s, "paused")));
	ck_assert_msg(jts(s, "next_fire_at") >= before + 3600000, "resumed next %s", jstr_or(s, "next_fire_at"));
	next = jts(s, "next_fire_at");
	cJSON_Delete(s);
	s = action(&d, "hourly", "resume", 200); /* again: next_fire_at stays */
	ck_assert_int_eq(jts(s, "next_fire_at"), next);
	cJSON_Delete(s);

	/* run now while active leaves next_fire_at alone */
	job = action(&d, "hourly", "run", 201);
	cJSON_Delete(job);
	s = get_schedule(&d, "hourly");
	ck_assert_int_eq(jts(s, "next_fire_at"), next);
	cJSON_Delete(s);
	ck_assert_int_eq(fire_times(&d, "h", "hourly", t, 8, NULL), 2);

	/* other jobs show "schedule": null */
	job = call(&d, "POST", "/v1/jobs", "{\"type\":\"echo\"}", 201);
	ck_assert(jnull(job, "schedule"));
	cJSON_Delete(job);
	assert_exit_0(harness_stop(&d));
}
END_TEST

/* ---- firing ------------------------------------------------------------------ */

/* The value of the sample line that starts with line_start. */
static long long metric(const struct jobqd *d, const char *line_start)
{
	struct resp r;
	long long v = -1;
	char want[256];

	snprintf(want, sizeof want, "\n%s", line_start);
	harness_request(d, "GET", "/metrics", NULL, NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	const char *p = strstr(r.body, want);
	if (p)
		v = atoll(p + strlen(want));
	harness_resp_free(&r);
	return v;
}

START_TEST(interval_fires_exactly_once_per_fire_time)
{
	struct jobqd d;
	long long t[64];

	harness_start(&d, NULL);
	cJSON *s = create(&d, "tick", "\"every_s\":1,\"job\":{\"type\":\"echo\",\"queue\":\"tick\"}");
	long long first = jts(s, "next_fire_at");
	cJSON_Delete(s);
	cJSON_Delete(create(&d, "idle", "\"every_s\":3600,\"job\":{\"type\":\"echo\"}"));
	cJSON_Delete(action(&d, "idle", "pause", 200));
	int n = wait_jobs(&d, "tick", "tick", 4, t, 64);
	assert_unique(t, n);
	/* the first at the first next_fire_at, then one per second exactly */
	ck_assert_int_eq(t[0], first);
	for (int i = 1; i < n; i++)
		ck_assert_int_eq(t[i] - t[i - 1], 1000);
	s = get_schedule(&d, "tick");
	ck_assert_msg(jts(s, "last_fire_at") >= t[n - 1], "last_fire_at %s", jstr_or(s, "last_fire_at"));
	ck_assert_msg(jts(s, "next_fire_at") > jts(s, "last_fire_at"), "next %s", jstr_or(s, "next_fire_at"));
	cJSON_Delete(s);
	ck_assert_int_ge(metric(&d, "jobq_schedule_fires_total{schedule=\"tick\"} "), n);
	ck_assert_int_eq(metric(&d, "jobq_schedules{state=\"active\"} "), 1);
	ck_assert_int_eq(metric(&d, "jobq_schedules{state=\"paused\"} "), 1);
	ck_assert_int_eq(metric(&d, "jobq_schedule_skipped_total "), 0);

	/* paused: no more fires (the count stays while next_fire_at is null) */
	cJSON_Delete(action(&d, "tick", "pause", 200));
	int paused_n = fire_times(&d, "tick", "tick", t, 64, NULL);
	s = get_schedule(&d, "tick");
	ck_assert(jnull(s, "next_fire_at"));
	cJSON_Delete(s);
	/* a fresh schedule fires meanwhile: the writer's timer runs, tick does not */
	cJSON_Delete(create(&d, "probe", "\"every_s\":1,\"job\":{\"type\":\"echo\",\"queue\":\"probe\"}"));
	wait_jobs(&d, "probe", "probe", 2, t, 64);
	ck_assert_int_eq(fire_times(&d, "tick", "tick", t, 64, NULL), paused_n);
	assert_exit_0(harness_stop(&d));
}
END_TEST

/* A schedule's jobs after a restart: all its fire times and creation
 * times (ascending by fire time), n0 its first due time the stopped jobqd
 * did not fire (the newest fire created before restart_at, plus every),
 * and the catch-up: the fires at or after n0 that were due at the first
 * tick after the restart (fire_at <= the earliest creation among them). */
struct after_restart {
	long long fire[256], created[256];
	int n;
	long long n0, tick;
	int first, count;     /* the catch-up: fire[first .. first + count) */
};

static void after_restart(const struct jobqd *d, const char *queue, long long restart_at, long long every,
			  struct after_restart *a)
{
	long long last = 0;

	a->n = fire_times(d, queue, queue, a->fire, 256, a->created);
	assert_unique(a->fire, a->n);
	for (int i = 0; i < a->n; i++)
		if (a->created[i] < restart_at && a->fire[i] > last)
			last = a->fire[i];
	ck_assert_msg(last > 0, "%s fired nothing before the stop", queue);
	a->n0 = last + every;
	a->tick = 0;
	for (int i = 0; i < a->n; i++)
		if (a->fire[i] >= a->n0 && (!a->tick || a->created[i] < a->tick))
			a->tick = a->created[i];
	ck_assert_msg(a->tick > 0, "%s fired nothing after the restart", queue);
	a->first = -1;
	a->count = 0;
	for (int i = 0; i < a->n; i++)
		if (a->fire[i] >= a->n0 && a->fire[i] <= a->tick) {
			if (a->first < 0)
				a->first = i;
			a->count++;
		}
}

/* Waits (bounded) until queue has a job fired at or after t. */
static void wait_fire_after(const struct jobqd *d, const char *queue, long long t)
{
	long long f[256];

	for (int i = 0; i < 2000; i++) {
		int n = fire_times(d, queue, queue, f, 256, NULL);
		if (n > 0 && f[n - 1] >= t)
			return;
		nap_ms(10);
	}
	ck_abort_msg("%s: no fire at or after %lld within 20 s", queue, t);
}

/* jobqd is down: the only observable is the clock. */
static void wait_clock(long long until)
{
	for (int i = 0; i < 1000 && wall_ms() < until; i++)
		nap_ms(20);
	ck_assert(wall_ms() >= until);
}

START_TEST(catch_up_policies_after_a_stopped_jobqd)
{
	struct jobqd d;
	static const char *const names[] = {"cu-skip", "cu-latest", "cu-all", "cu-all2"};
	static const char *const rest[] = {
		"\"every_s\":2,\"misfire_grace_s\":1,\"job\":{\"type\":\"echo\",\"queue\":\"cu-skip\"}",
		"\"every_s\":2,\"misfire_grace_s\":1,\"catch_up\":\"latest\",\"job\":{\"type\":\"echo\",\"queue\":\"cu-latest\"}",
		"\"every_s\":2,\"misfire_grace_s\":1,\"catch_up\":\"all\",\"job\":{\"type\":\"echo\",\"queue\":\"cu-all\"}",
		"\"every_s\":2,\"misfire_grace_s\":1,\"catch_up\":\"all\",\"catch_up_max\":2,"
		"\"job\":{\"type\":\"echo\",\"queue\":\"cu-all2\"}",
	};
	const long long every = 2000, grace = 1000;
	long long t[256];
	struct after_restart a;

	harness_start(&d, NULL);
	for (int i = 0; i < 4; i++)
		cJSON_Delete(create(&d, names[i], rest[i]));
	for (int i = 0; i < 4; i++)
		wait_jobs(&d, names[i], names[i], 1, t, 256);
	long long stopped = wall_ms();
	assert_exit_0(harness_stop_keep(&d));
	wait_clock(stopped + 7 * every / 2);  /* at least three due times missed */
	long long restart_at = wall_ms();
	harness_restart(&d, NULL);
	for (int i = 0; i < 4; i++)
		wait_fire_after(&d, names[i], restart_at + every);

	/* skip: nothing late by more than the grace fired; what fired was on time */
	after_restart(&d, "cu-skip", restart_at, every, &a);
	ck_assert_msg(a.tick - a.n0 >= 2 * every, "only %lld ms missed", a.tick - a.n0);
	for (int i = 0; i < a.n; i++)
		if (a.fire[i] >= a.n0)
			ck_assert_msg(a.created[i] - a.fire[i] <= grace + 200, "skip fired %lld ms late",
				      a.created[i] - a.fire[i]);
	ck_assert_int_le(a.count, 1);

	/* latest: the newest due time once, none before it */
	after_restart(&d, "cu-latest", restart_at, every, &a);
	ck_assert_int_eq(a.count, 1);
	ck_assert_msg(a.tick - a.fire[a.first] < every, "latest fired %lld, not the newest due", a.fire[a.first]);
	ck_assert_msg(a.fire[a.first] >= a.n0 + 2 * every, "latest fired the first missed time");

	/* all: every due time from the first missed one, oldest first */
	after_restart(&d, "cu-all", restart_at, every, &a);
	ck_assert_int_ge(a.count, 3);
	ck_assert_int_eq(a.fire[a.first], a.n0);
	for (int i = a.first + 1; i < a.first + a.count; i++)
		ck_assert_int_eq(a.fire[i] - a.fire[i - 1], every);
	ck_assert_msg(a.tick - a.fire[a.first + a.count - 1] < every, "all stopped short of the newest due time");
	for (int i = a.first + 1; i < a.first + a.count; i++)
		ck_assert_msg(a.created[i] >= a.created[i - 1], "not submitted oldest first");

	/* all with catch_up_max 2: the newest two */
	after_restart(&d, "cu-all2", restart_at, every, &a);
	ck_assert_int_eq(a.count, 2);
	ck_assert_int_eq(a.fire[a.first + 1] - a.fire[a.first], every);
	ck_assert_msg(a.tick - a.fire[a.first + 1] < every, "all2 did not fire the newest due time");
	ck_assert_msg(a.fire[a.first] > a.n0, "all2 fired the oldest instead of the newest");

	ck_assert_int_gt(metric(&d, "jobq_schedule_skipped_total "), 0);
	assert_exit_0(harness_stop(&d));
}
END_TEST

/* kill -9 right when a fire is due, again and again: every fire time has
 * one job, and none in the window is missing (the downtime is within the
 * default grace, so skip fires what was due meanwhile). */
START_TEST(kill9_around_fires_makes_no_duplicate_and_loses_none)
{
	struct jobqd d;
	long long t[256];

	harness_start(&d, NULL);
	cJSON *s = create(&d, "beat", "\"every_s\":1,\"job\":{\"type\":\"echo\",\"queue\":\"beat\"}");
	long long first = jts(s, "next_fire_at");
	cJSON_Delete(s);
	for (int round = 0; round < 3; round++) {
		int n = wait_jobs(&d, "beat", "beat", 1, t, 256);
		s = get_schedule(&d, "beat");
		long long due = jts(s, "next_fire_at");
		cJSON_Delete(s);
		ck_assert_msg(due > t[n - 1], "next %lld after last %lld", due, t[n - 1]);
		wait_clock(due + round * 3);   /* at the fire, a few ms on each round */
		harness_kill9(&d);
		harness_restart(&d, NULL);
	}
	long long restarted = wall_ms();
	wait_fire_after(&d, "beat", restarted + 2000);
	int n = fire_times(&d, "beat", "beat", t, 256, NULL);
	assert_unique(t, n);
	ck_assert_int_eq(t[0], first);
	for (int i = 1; i < n; i++)
		ck_assert_msg(t[i] - t[i - 1] == 1000, "gap or duplicate between %lld and %lld", t[i - 1], t[i]);
	assert_exit_0(harness_stop(&d));
}
END_TEST

/* Daylight saving through the API: the next fire time of a local 02:30 in
 * Berlin is 01:30Z in winter and 00:30Z in summer (unit tests walk the
 * changes themselves); a cron in New York likewise. */
START_TEST(cron_in_a_time_zone_shows_the_local_time_as_utc)
{
	struct jobqd d;

	harness_start(&d, NULL);
	cJSON *s = create(&d, "berlin", "\"cron\":\"30 2 * * *\",\"tz\":\"Europe/Berlin\",\"job\":{\"type\":\"echo\"}");
	const char *next = jstr(s, "next_fire_at");
	ck_assert_msg(next && (strstr(next, "T01:30:00.000Z") || strstr(next, "T00:30:00.000Z")), "next %s",
		      next ? next : "(none)");
	ck_assert_msg(jts(s, "next_fire_at") - wall_ms() <= 86400000LL + 3600000, "next %s", next);
	cJSON_Delete(s);
	s = create(&d, "ny", "\"cron\":\"0 9 * * mon-fri\",\"tz\":\"America/New_York\",\"job\":{\"type\":\"echo\"}");
	next = jstr(s, "next_fire_at");
	ck_assert_msg(next && (strstr(next, "T14:00:00.000Z") || strstr(next, "T13:00:00.000Z")), "next %s",
		      next ? next : "(none)");
	cJSON_Delete(s);
	s = create(&d, "macro", "\"cron\":\"@hourly\",\"job\":{\"type\":\"echo\"}");
	ck_assert_msg(strstr(jstr_or(s, "next_fire_at"), ":00:00.000Z"), "next %s", jstr_or(s, "next_fire_at"));
	ck_assert_str_eq(jstr(s, "cron"), "@hourly");
	cJSON_Delete(s);
	assert_exit_0(harness_stop(&d));
}
END_TEST

static Suite *schedule_suite(void)
{
	Suite *s = suite_create("jobq_api_schedule");
	TCase *tc = harness_tcase(s, "schedule", 90);

	tcase_add_test(tc, schedules_create_read_list_replace_delete);
	tcase_add_test(tc, bad_inputs_name_the_field);
	tcase_add_test(tc, pause_resume_and_run_now);
	tcase_add_test(tc, interval_fires_exactly_once_per_fire_time);
	tcase_add_test(tc, catch_up_policies_after_a_stopped_jobqd);
	tcase_add_test(tc, kill9_around_fires_makes_no_duplicate_and_loses_none);
	tcase_add_test(tc, cron_in_a_time_zone_shows_the_local_time_as_utc);
	return s;
}

int main(void)
{
	return harness_run(schedule_suite());
}
