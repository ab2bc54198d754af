/* Black-box API tests for command job types (issue 4, item 2): jobqd is
 * started with --command NAME=PATH flags pointing at the small scripts in
 * tests/commands/ (env TESTS_DIR, default "tests", relative to the repo
 * root), and each test checks results, errors, attempts, progress, fds,
 * cancel, timeout and shutdown through the HTTP API. Processes left behind
 * are looked for in /proc by a unique marker the scripts put in argv[0].
 * Every wait is a bounded poll; the only timing asserted is a lower bound
 * that holds by construction (SIGKILL never comes before the grace). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define MAX_OUTPUT 1048576
#define STDERR_TAIL 2000
#define GONE_BOUND_MS 10000.0   /* a stopped group must vanish within this */

/* Job type name -> script in tests/commands/. */
static const char *const commands[][2] = {
	{ "json", "json.sh" },     { "text", "text.sh" },
	{ "big", "big.sh" },       { "failing", "fail.sh" },
	{ "signal", "signal.sh" }, { "sleepy", "sleepy.sh" },
	{ "stubborn", "stubborn.sh" }, { "progress", "progress.sh" },
	{ "stdin", "stdin.sh" },   { "env", "env.sh" },
	{ "flaky", "flaky.sh" },   { "fds", "fds.sh" },
	{ "term", "term.sh" },     { "stdin_hex", "stdin_hex.sh" },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* "--command", "NAME=/abs/path" pairs, filled in main (absolute paths:
 * some jobqd runs have a temp dir as working directory). */
static char command_specs[NCOMMANDS][PATH_MAX + 80];
static char tests_dir[PATH_MAX];

/* ---- small helpers ---- */

static int starts_with(const char *s, const char *prefix)
{
	return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n, m;

	if (s == NULL)
		return 0;
	n = strlen(s);
	m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *dump(const cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);

	ck_assert(s != NULL);
	return s;
}

/* A marker no other test run shares, for the scripts' argv[0]. */
static void make_marker(char *out, size_t n)
{
	static int counter;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(out, n, "t%ld-%d-%ld", (long)getpid(), ++counter,
		 (long)(ts.tv_nsec % 1000000));
}

/* How many live processes have "jobq-marker-<marker>" in their argv
 * (zombies have no argv and do not count). */
static int count_marked(const char *marker)
{
	char needle[128], path[64], buf[4096];
	DIR *dir = opendir("/proc");
	struct dirent *e;
	int count = 0;

	ck_assert_msg(dir != NULL, "opendir /proc: %s", strerror(errno));
	snprintf(needle, sizeof needle, "jobq-marker-%s", marker);
	while ((e = readdir(dir)) != NULL) {
		FILE *f;
		size_t n, i;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%.32s/cmdline", e->d_name);
		f = fopen(path, "rb");
		if (f == NULL)
			continue;
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		for (i = 0; i < n; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[n] = '\0';
		if (strstr(buf, needle) != NULL)
			count++;
	}
	closedir(dir);
	return count;
}

/* Polls /proc until exactly want processes carry the marker, at most
 * bound_ms; fails the test otherwise. */
static void wait_marked(const char *marker, int want, double bound_ms,
			const char *what)
{
	double end = mono_ms() + bound_ms;
	int n;

	while ((n = count_marked(marker)) != want) {
		ck_assert_msg(mono_ms() < end,
			      "%s: %d process(es) marked %s after %.0f ms, want %d",
			      what, n, marker, bound_ms, want);
		nap_ms(10);
	}
}

/* ---- jobqd and the API ---- */

#define assert_status(r, st)                                                   \
	ck_assert_msg((r)->status == (long)(st),                               \
		      "status %ld, want %ld %s; body: %.800s", (r)->status,    \
		      (long)(st), (r)->error, (r)->body)

/* Starts jobqd with every test command registered, plus extra (NULL-
 * terminated, may be NULL); args must hold 2 * NCOMMANDS + 9 entries and
 * outlive the daemon (harness_restart reuses them). */
static void start_with(struct jobqd *d, const char **args,
		       const char *const *extra, const char *const *env)
{
	size_t n = 0, i;

	for (i = 0; i < NCOMMANDS; i++) {
		args[n++] = "--command";
		args[n++] = command_specs[i];
	}
	for (i = 0; extra != NULL && extra[i] != NULL; i++) {
		ck_assert(n < 2 * NCOMMANDS + 8);
		args[n++] = extra[i];
	}
	args[n] = NULL;
	harness_start_env(d, args, env);
}

static void assert_exit_0(const struct jobqd *d, int st, const char *what)
{
	char *log;

	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	log = harness_read_file(d->log);
	ck_abort_msg("%s: jobqd did not exit 0 (%s %d); log:\n%.3000s", what,
		     WIFEXITED(st) ? "exit" : "signal",
		     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), log);
}

static void stop_ok(struct jobqd *d)
{
	assert_exit_0(d, harness_stop_keep(d), "stop after SIGTERM");
	harness_cleanup(d);
}

#define wait_terminal(d, id) harness_wait_terminal((d), (id), NULL)
#define wait_running(d, id) cJSON_Delete(harness_wait_state((d), (id), "running", NULL))

/* Polls until the job's attempt_history has n entries, the last one
 * finished (the worker records a stopped attempt after the API already
 * answered the cancel); at most 15 s. Returns the job. */
static cJSON *wait_history(const struct jobqd *d, const char *id, int n)
{
	double end = mono_ms() + 15000.0;
	cJSON *j;

	for (;;) {
		j = harness_get_job(d, id, NULL);
		if (cJSON_GetArraySize(jget(j, "attempt_history")) == n &&
		    jstr(history_at(j, n - 1), "finished_at") != NULL)
			return j;
		if (mono_ms() > end) {
			char *s = dump(j);

			ck_abort_msg("job %s: no %d finished attempts after 15 s: %.1500s",
				     id, n, s);
		}
		cJSON_Delete(j);
		nap_ms(20);
	}
}

/* Asserts the job ended in state with attempts; returns nothing. */
static void assert_end(const cJSON *j, const char *state, long attempts)
{
	char *s = dump(j);

	ck_assert_msg(str_eq(jstr(j, "state"), state) &&
		      jlong(j, "attempts") == attempts,
		      "want state %s after %ld attempt(s), got %.2000s", state,
		      attempts, s);
	free(s);
}

/* Submits {"type": type, ...rest} and waits for it to end. */
static cJSON *run_job(const struct jobqd *d, const char *type,
		      const char *rest, char **id_out)
{
	char body[2048];
	char *id;
	cJSON *j;

	snprintf(body, sizeof body, "{\"type\":\"%s\"%s%s}", type,
		 rest ? "," : "", rest ? rest : "");
	id = harness_submit(d, body);
	j = wait_terminal(d, id);
	if (id_out != NULL)
		*id_out = id;
	else
		free(id);
	return j;
}

/* ---- results ---- */

START_TEST(command_json_stdout_is_the_result)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	cJSON *j, *want;

	start_with(&d, args, NULL, NULL);
	j = run_job(&d, "json", NULL, NULL);
	assert_end(j, "succeeded", 1);
	want = cJSON_Parse("{\"ok\": true, \"items\": [1, 2, 3], \"name\": \"caf\xc3\xa9\"}");
	ck_assert_msg(cJSON_Compare(jget(j, "result"), want, 1),
		      "result %s", dump(jget(j, "result")));
	ck_assert_msg(cJSON_IsNull(jget(j, "error")), "error set on success");
	cJSON_Delete(want);
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_text_stdout_is_a_string_result)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	cJSON *j;

	start_with(&d, args, NULL, NULL);
	j = run_job(&d, "text", NULL, NULL);
	assert_end(j, "succeeded", 1);
	ck_assert_msg(str_eq(jstr(j, "result"), "hello from a command\nsecond line\n"),
		      "result %s", dump(jget(j, "result")));
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_payload_arrives_on_stdin)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	const char *payload = "{\"a\":[1,2.5,\"x\\u00e9\\n\"],\"b\":{\"c\":null,\"d\":false}}";
	char rest[512];
	cJSON *j, *want;

	start_with(&d, args, NULL, NULL);
	snprintf(rest, sizeof rest, "\"payload\":%s", payload);
	j = run_job(&d, "stdin", rest, NULL);
	assert_end(j, "succeeded", 1);
	want = cJSON_Parse(payload);
	ck_assert_msg(cJSON_Compare(jget(j, "result"), want, 1),
		      "stdin echoed %s", dump(jget(j, "result")));
	cJSON_Delete(want);
	cJSON_Delete(j);

	/* no payload: the command reads "null" */
	j = run_job(&d, "stdin", NULL, NULL);
	assert_end(j, "succeeded", 1);
	ck_assert_msg(cJSON_IsNull(jget(j, "result")), "no payload echoed %s",
		      dump(jget(j, "result")));
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_stdin_gets_the_payload_exactly_as_sent)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	/* sent with white space; stdin gets it without, every value as sent */
	const char *rest = "\"payload\": {\"s\": \"a\\u0000b\", \"n\": 1e400, \"z\": -0,"
			   " \"big\": 12345678901234567890, \"e\": \"\\u00e9\"}";
	const char *want = "{\"s\":\"a\\u0000b\",\"n\":1e400,\"z\":-0,"
			   "\"big\":12345678901234567890,\"e\":\"\\u00e9\"}\n";
	char hex[512];
	size_t i;
	cJSON *j;

	for (i = 0; want[i] != '\0'; i++)
		snprintf(hex + 2 * i, sizeof hex - 2 * i, "%02x", (unsigned char)want[i]);
	start_with(&d, args, NULL, NULL);
	j = run_job(&d, "stdin_hex", rest, NULL);
	assert_end(j, "succeeded", 1);
	ck_assert_msg(str_eq(jstr(j, "result"), hex), "stdin was %s, want %s",
		      jstr_or(j, "result"), hex);
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_env_has_job_id_attempt_and_server_env)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char *id;
	cJSON *j;
	const cJSON *r;

	start_with(&d, args, NULL, ARGS("CMDTEST_INHERITED=from-jobqd"));
	j = run_job(&d, "env", NULL, &id);
	assert_end(j, "succeeded", 1);
	r = jget(j, "result");
	ck_assert_msg(str_eq(jstr(r, "job_id"), id) && str_eq(jstr(r, "attempt"), "1") &&
		      str_eq(jstr(r, "progress_fd"), "3") &&
		      str_eq(jstr(r, "inherited"), "from-jobqd"),
		      "env of job %s: %s", id, dump(r));
	free(id);
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_child_gets_fds_0_to_3_only)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	const char *text, *line, *next;
	int pipes[4] = { 0, 0, 0, 0 };
	cJSON *j;

	start_with(&d, args, NULL, NULL);
	j = run_job(&d, "fds", NULL, NULL);
	assert_end(j, "succeeded", 1);
	text = jstr(j, "result");
	ck_assert_msg(text != NULL, "fds result %s", dump(jget(j, "result")));
	/* lines like "l-wx------ 1 u g 64 Nov 21 14:13 3 -> pipe:[1234]" */
	for (line = text; line != NULL && *line; line = next) {
		const char *eol = strchr(line, '\n');
		const char *arrow = strstr(line, " -> ");
		const char *p;
		int fd;

		next = eol != NULL ? eol + 1 : NULL;
		if (arrow == NULL || (eol != NULL && arrow > eol))
			continue;
		for (p = arrow; p > line && p[-1] != ' '; p--)
			;
		fd = atoi(p);
		if (fd >= 0 && fd <= 3) {
			ck_assert_msg(starts_with(arrow + 4, "pipe:"),
				      "fd %d is not a pipe:\n%s", fd, text);
			pipes[fd] = 1;
		} else {
			ck_assert_msg(!starts_with(arrow + 4, "pipe:") &&
				      !starts_with(arrow + 4, "socket:") &&
				      !starts_with(arrow + 4, "anon_inode:") &&
				      (eol == NULL || memmem(arrow, (size_t)(eol - arrow), "jobq.db", 7) == NULL),
				      "fd %d leaked into the command:\n%s", fd, text);
		}
	}
	ck_assert_msg(pipes[0] && pipes[1] && pipes[2] && pipes[3],
		      "fds 0-3 not all pipes:\n%s", text);
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

/* ---- failures ---- */

START_TEST(command_output_over_cap_fails_without_retry)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char want[64];
	cJSON *j;

	start_with(&d, args, NULL, NULL);
	/* big.sh writes forever: only the cap can end it before the timeout */
	j = run_job(&d, "big", "\"max_attempts\":3,\"timeout_s\":60", NULL);
	assert_end(j, "failed", 1);
	snprintf(want, sizeof want, "output larger than %d bytes", MAX_OUTPUT);
	ck_assert_msg(str_eq(jstr(j, "error"), want), "error %s, want %s",
		      jstr_or(j, "error"), want);
	ck_assert_msg(str_eq(jstr(history_at(j, 0), "outcome"), "failed"),
		      "outcome %s", jstr_or(history_at(j, 0), "outcome"));
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_nonzero_exit_retries_with_stderr_tail)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	const char *err;
	cJSON *j;
	int i;

	start_with(&d, args, NULL, NULL);
	j = run_job(&d, "failing", "\"max_attempts\":2,\"backoff_s\":0.01", NULL);
	assert_end(j, "failed", 2);
	err = jstr(j, "error");
	ck_assert_msg(starts_with(err, "exit status 3: ") &&
		      ends_with(err, "the last line: disk on fire") &&
		      strlen(err) <= strlen("exit status 3: ") + STDERR_TAIL &&
		      strlen(err) >= strlen("exit status 3: ") + STDERR_TAIL - 100 &&
		      strstr(err, "filler line 0 ") == NULL,
		      "error (%zu bytes): %s", err ? strlen(err) : 0, jstr_or(j, "error"));
	for (i = 0; i < 2; i++) {
		const cJSON *h = history_at(j, i);

		ck_assert_msg(str_eq(jstr(h, "outcome"), "failed") &&
			      starts_with(jstr(h, "error"), "exit status 3: "),
			      "attempt %d: %s", i + 1, dump(h));
	}
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_killed_by_signal_names_it)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	cJSON *j;

	start_with(&d, args, NULL, NULL);
	j = run_job(&d, "signal", "\"max_attempts\":1", NULL);
	assert_end(j, "failed", 1);
	ck_assert_msg(str_eq(jstr(j, "error"),
			     "killed by signal 10 (SIGUSR1): about to die of a signal"),
		      "error %s", jstr_or(j, "error"));
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

START_TEST(command_failing_attempts_retry_until_success)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char want[64];
	cJSON *j;
	int i;

	start_with(&d, args, NULL, NULL);
	j = run_job(&d, "flaky", "\"max_attempts\":3,\"backoff_s\":0.01", NULL);
	assert_end(j, "succeeded", 3);
	ck_assert_msg(jlong(jget(j, "result"), "attempt") == 3, "result %s",
		      dump(jget(j, "result")));
	ck_assert_int_eq(cJSON_GetArraySize(jget(j, "attempt_history")), 3);
	for (i = 0; i < 2; i++) {
		snprintf(want, sizeof want, "exit status 1: attempt %d failed", i + 1);
		ck_assert_msg(str_eq(jstr(history_at(j, i), "error"), want),
			      "attempt %d: %s", i + 1, dump(history_at(j, i)));
	}
	ck_assert_str_eq(jstr_or(history_at(j, 2), "outcome"), "succeeded");
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

/* ---- progress ---- */

START_TEST(command_progress_lines_update_the_job)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char go[HARNESS_PATH_MAX + 8], body[HARNESS_PATH_MAX + 64];
	double end;
	char *id;
	cJSON *j;
	const cJSON *p;
	FILE *f;

	start_with(&d, args, NULL, NULL);
	snprintf(go, sizeof go, "%s/go", d.dir);
	snprintf(body, sizeof body, "{\"type\":\"progress\",\"payload\":{\"go\":\"%s\"}}", go);
	id = harness_submit(&d, body);
	/* The running job shows the last well-formed line; malformed ones
	 * (a percent of 77 among them) never show. */
	end = mono_ms() + 15000.0;
	for (;;) {
		j = harness_get_job(&d, id, NULL);
		p = jget(j, "progress");
		ck_assert_msg(str_eq(jstr(j, "state"), "running") ||
			      str_eq(jstr(j, "state"), "queued"),
			      "progress job ended early: %s", dump(j));
		if (cJSON_IsObject(p)) {
			long pct = jlong(p, "percent");

			ck_assert_msg((pct == 10 && str_eq(jstr(p, "message"), "starting")) ||
				      (pct == 42 && str_eq(jstr(p, "message"), "halfway there")),
				      "progress %s", dump(p));
			if (pct == 42)
				break;
		}
		ck_assert_msg(mono_ms() < end, "no progress 42 after 15 s: %s", dump(j));
		cJSON_Delete(j);
		nap_ms(20);
	}
	cJSON_Delete(j);
	f = fopen(go, "w");
	ck_assert(f != NULL);
	fclose(f);
	j = wait_terminal(&d, id);
	assert_end(j, "succeeded", 1);
	p = jget(j, "progress");
	ck_assert_msg(jlong(p, "percent") == 42 && str_eq(jstr(p, "message"), "halfway there"),
		      "final progress %s", dump(p));
	ck_assert_msg(cJSON_IsTrue(jget(jget(j, "result"), "done")), "result %s",
		      dump(jget(j, "result")));
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- stopping: timeout, SIGKILL after grace, cancel, shutdown ---- */

/* Submits type (sleepy or stubborn) with a fresh marker and rest, waits
 * until it runs and want processes carry the marker. Returns the id. */
static char *start_marked(const struct jobqd *d, const char *type,
			  const char *rest, char *marker, size_t n, int want)
{
	char body[512];
	char *id;

	make_marker(marker, n);
	snprintf(body, sizeof body, "{\"type\":\"%s\",\"payload\":{\"marker\":\"%s\"}%s%s}",
		 type, marker, rest ? "," : "", rest ? rest : "");
	id = harness_submit(d, body);
	wait_marked(marker, want, 10000.0, "command start");
	return id;
}

START_TEST(command_timeout_kills_group_and_leaves_no_process)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char marker[64];
	const cJSON *h;
	char *id;
	cJSON *j;

	start_with(&d, args, ARGS("--command-grace", "5"), NULL);
	/* leader and a grandchild that ignores SIGTERM, same group */
	id = start_marked(&d, "sleepy", "\"timeout_s\":2,\"max_attempts\":1", marker,
			  sizeof marker, 2);
	j = wait_terminal(&d, id);
	assert_end(j, "failed", 1);
	h = history_at(j, 0);
	ck_assert_msg(str_eq(jstr(h, "outcome"), "timeout") &&
		      starts_with(jstr(j, "error"), "timeout"),
		      "timed-out job: %s", dump(j));
	/* The group was killed before the attempt was recorded; only the
	 * kernel's exit of a SIGKILLed process may still be under way. */
	wait_marked(marker, 0, 2000.0, "after the timeout");
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(command_ignoring_sigterm_is_killed_after_grace)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char marker[64];
	const cJSON *h;
	long long ran;
	char *id;
	cJSON *j;

	start_with(&d, args, ARGS("--command-grace", "0.5"), NULL);
	id = start_marked(&d, "stubborn", "\"timeout_s\":2,\"max_attempts\":1", marker,
			  sizeof marker, 1);
	j = wait_terminal(&d, id);
	assert_end(j, "failed", 1);
	h = history_at(j, 0);
	ck_assert_msg(str_eq(jstr(h, "outcome"), "timeout"), "attempt %s", dump(h));
	/* SIGTERM was ignored: it ended by the SIGKILL, never before the
	 * timeout plus the grace (a lower bound, 10 ms for rounding) */
	ran = ts_ms_lax(jstr(h, "finished_at")) -
	      ts_ms_lax(jstr(h, "started_at"));
	ck_assert_msg(ran >= 2490, "stubborn command ended after %lld ms: %s", ran, dump(h));
	wait_marked(marker, 0, 2000.0, "after SIGKILL");
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(command_cancel_running_stops_group_in_bounded_time)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char marker[64], path[128];
	struct resp r;
	const cJSON *h;
	char *id;
	cJSON *j;

	start_with(&d, args, ARGS("--command-grace", "5"), NULL);
	id = start_marked(&d, "sleepy", "\"timeout_s\":60", marker, sizeof marker, 2);
	wait_running(&d, id);
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
	harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(str_eq(jstr(r.json, "state"), "canceled"), "cancel: %.800s", r.body);
	harness_resp_free(&r);
	/* the leader dies of SIGTERM; its TERM-proof grandchild of the
	 * SIGKILL that follows the leader's exit */
	wait_marked(marker, 0, GONE_BOUND_MS, "after cancel");
	j = wait_history(&d, id, 1);
	assert_end(j, "canceled", 1);
	h = history_at(j, 0);
	ck_assert_msg(str_eq(jstr(h, "outcome"), "canceled"), "attempt %s", dump(h));
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

/* Polls until the file holds text (a line), at most 10 s. */
static void wait_file(const char *path, const char *text)
{
	double end = mono_ms() + 10000.0;
	char *s;

	for (;;) {
		s = harness_read_file(path);
		if (strncmp(s, text, strlen(text)) == 0 && s[strlen(text)] == '\n')
			break;
		ck_assert_msg(mono_ms() < end, "%s holds \"%s\", want \"%s\"", path, s, text);
		free(s);
		nap_ms(10);
	}
	free(s);
}

START_TEST(command_cancel_sends_sigterm_to_the_command_first)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char file[HARNESS_PATH_MAX + 16], body[HARNESS_PATH_MAX + 64], path[128];
	struct resp r;
	char *id;
	cJSON *j;

	start_with(&d, args, ARGS("--command-grace", "30"), NULL);
	snprintf(file, sizeof file, "%s/term.out", d.dir);
	snprintf(body, sizeof body, "{\"type\":\"term\",\"payload\":{\"file\":\"%s\"}}", file);
	id = harness_submit(&d, body);
	wait_file(file, "started");
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
	harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	/* the trap ran: SIGTERM reached the script (a blocked or ignored
	 * SIGTERM would leave it to the SIGKILL 30 s later) */
	wait_file(file, "terminated");
	j = wait_history(&d, id, 1);
	assert_end(j, "canceled", 1);
	ck_assert_str_eq(jstr_or(history_at(j, 0), "outcome"), "canceled");
	cJSON_Delete(j);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(command_shutdown_stops_command_and_requeues_job)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char marker[64], path[128];
	struct resp r;
	char *id;
	cJSON *j;
	int st;

	start_with(&d, args, ARGS("--shutdown-grace", "0.2", "--command-grace", "5"), NULL);
	id = start_marked(&d, "sleepy", "\"timeout_s\":60,\"max_attempts\":1", marker,
			  sizeof marker, 2);
	wait_running(&d, id);
	st = harness_stop_keep(&d);
	assert_exit_0(&d, st, "stop with a running command");
	wait_marked(marker, 0, 2000.0, "after jobqd stopped");

	/* back in the queue without spending its only attempt: it runs again */
	harness_restart(&d, args);
	wait_marked(marker, 2, 10000.0, "the requeued job");
	j = harness_get_job(&d, id, NULL);
	ck_assert_msg(str_eq(jstr(j, "state"), "running") && jlong(j, "attempts") == 1,
		      "requeued job: %s", dump(j));
	cJSON_Delete(j);
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
	harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	wait_marked(marker, 0, GONE_BOUND_MS, "after cancel");
	free(id);
	stop_ok(&d);
}
END_TEST

/* Commands spawned at the same moment by different workers share no pipe:
 * else one's output would stay open while the other runs. */
START_TEST(command_concurrent_runs_share_no_pipes)
{
	struct jobqd d;
	const char *args[2 * NCOMMANDS + 9];
	char marker[64], path[128], *ids[24], *log;
	struct resp r;
	char *sleepy;
	cJSON *j;
	int i;

	start_with(&d, args, ARGS("--workers", "8"), NULL);
	sleepy = start_marked(&d, "sleepy", "\"timeout_s\":60", marker, sizeof marker, 2);
	for (i = 0; i < 24; i++)
		ids[i] = harness_submit(&d, i % 2 ? "{\"type\":\"json\"}" : "{\"type\":\"stdin\",\"payload\":[1]}");
	for (i = 0; i < 24; i++) {
		j = wait_terminal(&d, ids[i]);
		assert_end(j, "succeeded", 1);
		cJSON_Delete(j);
		free(ids[i]);
	}
	ck_assert_int_eq(count_marked(marker), 2);
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", sleepy);
	harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
	wait_marked(marker, 0, GONE_BOUND_MS, "after cancel");
	free(sleepy);
	log = harness_read_file(d.log);
	ck_assert_msg(strstr(log, "still holds its output") == NULL,
		      "a pipe outlived its command:\n%.3000s", log);
	free(log);
	stop_ok(&d);
}
END_TEST

/* ---- registration ---- */

START_TEST(command_unregistered_type_is_422)
{
	struct jobqd d;
	struct resp r;

	harness_start(&d, ARGS("--command", command_specs[0]));
	harness_request(&d, "POST", "/v1/jobs", "application/json",
			"{\"type\":\"text\"}", NULL, &r);
	assert_problem(&r, 422, "unknown_job_type", "type");
	harness_resp_free(&r);
	harness_request(&d, "POST", "/v1/jobs", "application/json",
			"{\"type\":\"json.sh\"}", NULL, &r);
	assert_problem(&r, 422, "unknown_job_type", "type");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(command_env_var_registers_commands)
{
	struct jobqd d;
	char env[2 * sizeof command_specs[0] + 16];
	cJSON *j;

	snprintf(env, sizeof env, "JOBQ_COMMAND=%s,%s", command_specs[0], command_specs[1]);
	harness_start_env(&d, NULL, ARGS(env));
	j = run_job(&d, "json", NULL, NULL);
	assert_end(j, "succeeded", 1);
	cJSON_Delete(j);
	j = run_job(&d, "text", NULL, NULL);
	assert_end(j, "succeeded", 1);
	cJSON_Delete(j);
	stop_ok(&d);
}
END_TEST

#define N_BAD_COMMANDS 6

/* jobqd refuses to start (exit 2, one line on stderr naming the problem). */
START_TEST(command_bad_path_or_name_exits_2_with_one_line)
{
	char a[PATH_MAX + 80], b[PATH_MAX + 80];
	const char *want = NULL;
	struct cli_result res;
	const char *nl;

	switch (_i) {
	case 0: /* missing */
		snprintf(a, sizeof a, "x=%s/commands/no-such-command.sh", tests_dir);
		want = "no-such-command.sh";
		break;
	case 1: /* a regular file without the x bit */
		snprintf(a, sizeof a, "x=%s/api_command_test.c", tests_dir);
		want = "api_command_test.c";
		break;
	case 2: /* a directory */
		snprintf(a, sizeof a, "x=%s/commands", tests_dir);
		want = "commands";
		break;
	case 3: /* a built-in type's name */
		snprintf(a, sizeof a, "echo=%s/commands/json.sh", tests_dir);
		want = "echo";
		break;
	case 4: /* the same name twice */
		snprintf(a, sizeof a, "twice=%s/commands/json.sh", tests_dir);
		want = "twice";
		break;
	default: /* a relative path that does not resolve from jobqd's cwd */
		snprintf(a, sizeof a, "x=./surely-not-here/json.sh");
		want = "surely-not-here";
		break;
	}
	snprintf(b, sizeof b, "twice=%s/commands/text.sh", tests_dir);
	if (_i == 4)
		harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", "jobq.db",
				     "--command", a, "--command", b), NULL, &res);
	else
		harness_run_cli(ARGS("--listen", "127.0.0.1:0", "--db", "jobq.db",
				     "--command", a), NULL, &res);
	ck_assert_msg(!res.timed_out && res.status == 2,
		      "case %d: exit %d (timed out %d), stderr: %s", _i, res.status,
		      res.timed_out, res.err);
	nl = strchr(res.err, '\n');
	ck_assert_msg(nl != NULL && nl[1] == '\0' && strstr(res.err, want) != NULL,
		      "case %d: want one line naming %s, got: %s", _i, want, res.err);
	harness_cli_result_free(&res);
}
END_TEST

/* ---- suite ---- */

static Suite *command_suite(void)
{
	Suite *s = suite_create("jobq_api_command");
	TCase *tc;

	tc = tcase(s, "results");
	tcase_add_test(tc, command_json_stdout_is_the_result);
	tcase_add_test(tc, command_text_stdout_is_a_string_result);
	tcase_add_test(tc, command_payload_arrives_on_stdin);
	tcase_add_test(tc, command_stdin_gets_the_payload_exactly_as_sent);
	tcase_add_test(tc, command_env_has_job_id_attempt_and_server_env);
	tcase_add_test(tc, command_child_gets_fds_0_to_3_only);

	tc = tcase(s, "failures");
	tcase_add_test(tc, command_output_over_cap_fails_without_retry);
	tcase_add_test(tc, command_nonzero_exit_retries_with_stderr_tail);
	tcase_add_test(tc, command_killed_by_signal_names_it);
	tcase_add_test(tc, command_failing_attempts_retry_until_success);

	tc = tcase(s, "progress");
	tcase_add_test(tc, command_progress_lines_update_the_job);

	tc = tcase(s, "stopping");
	tcase_add_test(tc, command_timeout_kills_group_and_leaves_no_process);
	tcase_add_test(tc, command_ignoring_sigterm_is_killed_after_grace);
	tcase_add_test(tc, command_cancel_running_stops_group_in_bounded_time);
	tcase_add_test(tc, command_cancel_sends_sigterm_to_the_command_first);
	tcase_add_test(tc, command_shutdown_stops_command_and_requeues_job);
	tcase_add_test(tc, command_concurrent_runs_share_no_pipes);

	tc = tcase(s, "registration");
	tcase_add_test(tc, command_unregistered_type_is_422);
	tcase_add_test(tc, command_env_var_registers_commands);
	tcase_add_loop_test(tc, command_bad_path_or_name_exits_2_with_one_line, 0,
			    N_BAD_COMMANDS);
	return s;
}

int main(void)
{
	const char *dir = getenv("TESTS_DIR");
	char path[PATH_MAX + 64];
	size_t i;

	if (realpath(dir != NULL && dir[0] != '\0' ? dir : "tests", tests_dir) == NULL) {
		fprintf(stderr, "api_command_test: tests dir: %s (run from the repo root "
			"or set TESTS_DIR)\n", strerror(errno));
		return EXIT_FAILURE;
	}
	for (i = 0; i < NCOMMANDS; i++) {
		snprintf(path, sizeof path, "%s/commands/%s", tests_dir, commands[i][1]);
		if (access(path, X_OK) != 0) {
			fprintf(stderr, "api_command_test: %s: %s\n", path, strerror(errno));
			return EXIT_FAILURE;
		}
		snprintf(command_specs[i], sizeof command_specs[i], "%s=%s",
			 commands[i][0], path);
	}
	return harness_run(command_suite());
}
