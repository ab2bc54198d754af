/* Black-box test harness for jobqd: spawns the real binary (env JOBQD,
 * default build/jobqd) on 127.0.0.1:0 with a fresh temp dir and DB, talks
 * to it over HTTP with libcurl, stops it with SIGTERM and fails the test if
 * its log shows a sanitizer report. Every wait here is bounded. With
 * JOBQ_TEST_DB_URL=postgresql://... set, the DB is a fresh schema on that
 * server instead of a file (see harness_db_url). */
#ifndef JOBQ_TESTS_HARNESS_H
#define JOBQ_TESTS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <check.h>
#include <cjson/cJSON.h>

#define HARNESS_PATH_MAX 512

/* One jobqd process and the temp dir that holds its DB and log.
 * pid is -1 when no process runs; dir is "" when no temp dir exists. */
struct jobqd {
	pid_t pid;
	int port;
	char dir[HARNESS_PATH_MAX / 2]; /* temp dir, removed by harness_stop/cleanup */
	char db[HARNESS_PATH_MAX];   /* <dir>/jobq.db (unused on PostgreSQL) */
	char schema[64];             /* on PostgreSQL: jobqd's --db-schema */
	char log[HARNESS_PATH_MAX];  /* <dir>/stderr.log, stdout and stderr */
	char base[64];               /* "http://127.0.0.1:PORT" */
	/* Set by harness_start_bin: the binary's real path and the extra
	 * environment, reused by harness_restart/harness_respawn. bin is ""
	 * for harness_start/harness_start_env (then $JOBQD is used). */
	char bin[HARNESS_PATH_MAX];
	char envbuf[1024];           /* "NAME=VALUE\0NAME=VALUE\0\0" */
};

/* One HTTP exchange. status is 0 when the transfer itself failed (then
 * error says why). headers holds the raw header block of the final response;
 * body is always NUL-terminated (empty when there was none); json is the
 * parsed body or NULL if it is not JSON. Free with harness_resp_free. */
struct resp {
	long status;
	char *headers;
	char *body;
	size_t body_len;
	cJSON *json;
	double ms;        /* wall time of the exchange in milliseconds */
	char error[512];  /* curl error text when status == 0 */
};

/* Result of running jobqd as a plain command (no daemon expected). status is
 * the exit code, or -1 if it was killed (timed_out says whether we killed it
 * after the bound). out/err hold its stdout/stderr, NUL-terminated. */
struct cli_result {
	int status;
	int timed_out;
	char *out;
	char *err;
};

/* Call once in main before running the suite: creates one root temp dir
 * under $TMPDIR (or /tmp) that holds every test's temp dir, so that
 * harness_suite_end, run in the parent process, removes what a failed test
 * (which check ends with _exit) left behind. Set HARNESS_KEEP=1 to keep it. */
void harness_suite_begin(void);
void harness_suite_end(void);

/* JOBQ_TEST_DB_URL, or NULL when jobqd runs on SQLite (unset or empty).
 * When set, jobqd gets --db URL --db-schema <a name unique to its temp dir>
 * instead of --db <dir>/jobq.db, and harness_suite_end drops the suite's
 * schemas. A test that looks into the SQLite file skips that on PostgreSQL. */
const char *harness_db_url(void);

/* The whole of an API suite's main: curl and the suite's temp dir set up,
 * the suite run (CK_FORK etc. from the environment), everything cleaned up.
 * Returns EXIT_SUCCESS when no test failed. */
int harness_run(Suite *s);

/* Makes a temp dir and starts jobqd with --listen 127.0.0.1:0 --db
 * <dir>/jobq.db --log-level info and extra_args (NULL-terminated, may be
 * NULL). env (NULL-terminated "NAME=VALUE", may be NULL) is added to the
 * child's environment, from which all JOBQ_* variables are first removed.
 * Returns once /healthz answers 200; fails the test otherwise. */
void harness_start(struct jobqd *d, const char *const *extra_args);
void harness_start_env(struct jobqd *d, const char *const *extra_args,
		       const char *const *env);

/* Starts jobqd again on the same temp dir and DB after harness_kill9 or
 * harness_stop_keep. The log is checked for sanitizer reports and then
 * truncated. A daemon from harness_start_bin gets the same binary and
 * environment again (harness_start_env's environment is not kept). */
void harness_restart(struct jobqd *d, const char *const *extra_args);

/* Like harness_start_env but runs the binary named by the environment
 * variable bin_var (default bin_default), e.g. "JOBQD_TEST",
 * "build/jobqd-test". The daemon's working directory is its temp dir and it
 * cannot dump core (a test job may abort it on purpose). The binary and env
 * are kept: harness_restart and harness_respawn reuse them. */
void harness_start_bin(struct jobqd *d, const char *bin_var,
		       const char *bin_default, const char *const *extra_args,
		       const char *const *env);

/* Like harness_start_bin, but on PostgreSQL the daemon runs on schema
 * (another jobqd's d->schema from this suite run) instead of a fresh one,
 * so that several jobqd share one database as a cluster; the schema is
 * dropped with the suite's others. schema NULL, or SQLite: as
 * harness_start_bin. */
void harness_start_bin_schema(struct jobqd *d, const char *schema,
			      const char *bin_var, const char *bin_default,
			      const char *const *extra_args,
			      const char *const *env);

/* Makes a fresh temp dir under the suite's root (removed with it at
 * harness_suite_end) and writes its path into out: for files that several
 * jobqd of one test share. Fails the test if it cannot. */
void harness_make_dir(char *out, size_t n);

/* Starts jobqd again on the same temp dir and DB (like harness_restart) but
 * returns right after the fork, without waiting for /healthz: for a daemon
 * that may die at once. Follow with harness_wait_exit, or harness_wait_ready. */
void harness_respawn(struct jobqd *d, const char *const *extra_args);

/* Waits (bounded, 10 s) until a respawned jobqd listens and /healthz
 * answers 200; fails the test otherwise. */
void harness_wait_ready(struct jobqd *d);

/* Sends SIGTERM and returns at once (the process keeps running until it
 * has shut down; reap it with harness_wait_exit). */
void harness_sigterm(const struct jobqd *d);

/* Waits at most bound_ms for jobqd to exit on its own. Returns 1 with the
 * raw wait status in *status once it has exited (then it is reaped, pid is
 * -1, the temp dir is kept and the log has been checked for sanitizer
 * reports); 0 if it still runs after the bound. */
int harness_wait_exit(struct jobqd *d, double bound_ms, int *status);

/* SIGTERM, bounded wait (SIGKILL after ~10 s), sanitizer check of the log.
 * Returns the raw wait status. harness_stop also removes the temp dir;
 * harness_stop_keep keeps it for harness_restart. */
int harness_stop(struct jobqd *d);
int harness_stop_keep(struct jobqd *d);

/* SIGKILL and reap; keeps the temp dir for harness_restart. */
void harness_kill9(struct jobqd *d);

/* Kills jobqd if it still runs and removes the temp dir. Safe to repeat. */
void harness_cleanup(struct jobqd *d);

/* Fails the test, printing the log, if it contains a sanitizer report. */
void harness_check_log(const struct jobqd *d);

/* Reads a whole file; returns a malloc'd NUL-terminated string ("" if the
 * file is missing). */
char *harness_read_file(const char *path);

/* Runs jobqd with exactly args (NULL-terminated, without argv[0]) in a fresh
 * temp dir as working directory, with env added as for harness_start_env.
 * Waits at most ~10 s. Fails the test on a sanitizer report. */
void harness_run_cli(const char *const *args, const char *const *env,
		     struct cli_result *res);
void harness_cli_result_free(struct cli_result *res);

/* HTTP exchange with jobqd. path may carry a query. content_type NULL means
 * no Content-Type header at all; body NULL means no body; extra_header is one
 * "Name: value" line or NULL. Never fails the test: check out->status. */
void harness_request(const struct jobqd *d, const char *method, const char *path,
		     const char *content_type, const char *body,
		     const char *extra_header, struct resp *out);

/* Same with raw bytes: headers is a NULL-terminated list of "Name: value"
 * lines (a "Name:" line removes a header curl would add); chunked sends the
 * body with Transfer-Encoding: chunked instead of Content-Length. */
void harness_request_raw(const struct jobqd *d, const char *method,
			 const char *path, const char *const *headers,
			 const void *body, size_t len, int chunked,
			 struct resp *out);

void harness_resp_free(struct resp *r);

/* Copies the trimmed value of the first response header called name (case
 * insensitive) into out. Returns 1 if found, 0 if not. */
int harness_header(const struct resp *r, const char *name, char *out, size_t n);

/* Checks that r is the problem+json reply of the contract: exact status,
 * Content-Type application/problem+json, body status/code/title present,
 * type "urn:jobq:problem:<code>", field equal (absent when field is NULL).
 * Returns 0 if so; else 1 with a description (and the body) in why. */
int harness_problem_mismatch(const struct resp *r, long status, const char *code,
			     const char *field, char *why, size_t n);

#define assert_problem(r, st, code, field)                                   \
	do {                                                                 \
		char why_[2048];                                             \
		ck_assert_msg(harness_problem_mismatch((r), (st), (code),    \
						       (field), why_,        \
						       sizeof why_) == 0,    \
			      "%s", why_);                                   \
	} while (0)

/* ---- small helpers shared by the suites ---- */

/* A test case named name in suite s, with a timeout in seconds. */
TCase *harness_tcase(Suite *s, const char *name, int timeout_s);

/* Reads a job (GET /v1/jobs/{id}[?query]) with a suite's own checks. */
typedef cJSON *(*harness_get_fn)(const struct jobqd *d, const char *id, const char *query);

/* Long-polls with get (NULL: harness_get_job) until the job is terminal;
 * fails the test after about 30 s. The caller frees the job. */
cJSON *harness_wait_terminal(const struct jobqd *d, const char *id, harness_get_fn get);

/* harness_wait_terminal with its own bound, for jobs held back on purpose
 * (a rate limit, a backoff). */
cJSON *harness_wait_terminal_for(const struct jobqd *d, const char *id, harness_get_fn get,
				 double bound_ms);

/* Polls with get (NULL: harness_get_job) every 10 ms until the job is in
 * state (not a terminal one); fails the test on a terminal state first or
 * after 10 s. */
cJSON *harness_wait_state(const struct jobqd *d, const char *id, const char *state,
			  harness_get_fn get);

/* Member k of object o (case sensitive), NULL if absent. */
const cJSON *jget(const cJSON *o, const char *k);

/* String member k of o, NULL if absent or not a string. */
const char *jstr(const cJSON *o, const char *k);

/* Like jstr but never NULL ("(not a string)"), for messages. */
const char *jstr_or(const cJSON *o, const char *k);

/* 1 if member k of o is JSON null. */
int jnull(const cJSON *o, const char *k);

/* 1 with the value in *out if member k of o is an integral number; else 0. */
int jint(const cJSON *o, const char *k, long *out);

/* The integer k of o, or -999999 when it is not an integer. */
long jlong(const cJSON *o, const char *k);

/* 1 if both strings are non-NULL and equal. */
int str_eq(const char *a, const char *b);

/* 1 if the n first characters of s are all ASCII digits. */
int is_digits(const char *s, size_t n);

/* 1 if s is "2026-11-21T13:05:11.123Z" exactly (RFC 3339, ms, UTC). */
int is_rfc3339_ms(const char *s);

/* Milliseconds since the epoch of an RFC 3339 ms timestamp, -1 if not one. */
long long ts_ms(const char *s);

/* Like ts_ms but without the strict format check first: whatever sscanf
 * reads as "YYYY-MM-DDTHH:MM:SS.mmmZ" at the start of s; -1 if NULL or it
 * does not parse. */
long long ts_ms_lax(const char *s);

/* ts_ms of the string member k of o. */
long long jts(const cJSON *o, const char *k);

/* 1 if s is a lowercase hyphenated UUID of version 7 (RFC 9562 variant). */
int is_uuidv7(const char *s);

/* 1 if s is one of the NULL-terminated set (0 for a NULL s). */
int in_list(const char *s, const char *const *set);

/* 1 if s is a terminal job state: succeeded, failed or canceled. */
int is_terminal(const char *s);

/* Sleeps ms milliseconds. */
void nap_ms(long ms);

/* CLOCK_MONOTONIC in milliseconds. */
double mono_ms(void);

/* Takes the parsed body out of r (the caller frees it with cJSON_Delete;
 * harness_resp_free then leaves it alone). */
cJSON *take_json(struct resp *r);

/* 1 if a is non-NULL and equals the JSON text (case-sensitive keys). */
int json_equal_text(const cJSON *a, const char *text);

/* POST /v1/jobs/<id>/<action> with no body into *r. */
void job_action(const struct jobqd *d, const char *id, const char *action,
		struct resp *r);

/* Copies path into out with its first "{id}" replaced by id. */
void expand_id(char *out, size_t n, const char *path, const char *id);

/* Entry i of the attempt_history array of a single-job GET, or NULL. */
const cJSON *history_at(const cJSON *j, int i);

/* ---- the API helpers every suite uses (issue 16: one set, not copies) ---- */

/* One exchange that must answer exactly want: method path with body (sent
 * as application/json; NULL: no body, no Content-Type) and extra_header
 * (one "Name: value" line or NULL). Fails the test, naming the request and
 * showing the body, on any other status, and when the body is not JSON
 * (unless want is 204). Returns the parsed body; the caller frees it. */
cJSON *harness_call(const struct jobqd *d, const char *method, const char *path,
		    const char *body, const char *extra_header, long want);

/* POST /v1/jobs with body (and extra_header, or NULL): asserts 201, a JSON
 * object with a string id and Location: /v1/jobs/<id>. Returns the job the
 * reply carries; the caller frees it. */
cJSON *harness_submit_json(const struct jobqd *d, const char *body,
			   const char *extra_header);

/* harness_submit_json without a header, keeping only the id (malloc'd). */
char *harness_submit(const struct jobqd *d, const char *body);

/* harness_submit that also asserts the job starts in state (e.g. "queued",
 * "scheduled"). */
char *harness_submit_state(const struct jobqd *d, const char *body, const char *state);

/* A suite's own check of every job the submit and get helpers read (its
 * shape): j is the job, text its JSON for messages, from_get 1 for a GET of
 * one job (which carries attempt_history), 0 for a submit's reply. Set it
 * once in main, before harness_run; NULL (the default) checks nothing more. */
typedef void (*harness_job_check_fn)(const cJSON *j, const char *text, int from_get);
void harness_set_job_check(harness_job_check_fn fn);

/* POST /v1/queues/<queue>/<action> (pause, resume): asserts 200 and
 * returns the queue; the caller frees it. */
cJSON *harness_queue_action(const struct jobqd *d, const char *queue, const char *action);

/* GET /v1/jobs/{id}[?query]: asserts 200 and a JSON object for that id.
 * A harness_get_fn; the caller frees the job. */
cJSON *harness_get_job(const struct jobqd *d, const char *id, const char *query);

/* cJSON_PrintUnformatted of j for a message, malloc'd; "(null)" for NULL. */
char *harness_json_text(const cJSON *j);

/* One bad request and the problem+json it must get. path may hold "{id}"
 * (replaced by the runner's id). ctype NULL: application/json when there is
 * a body, no Content-Type when not; HARNESS_NO_CTYPE: no Content-Type even
 * with a body; else that Content-Type. field NULL: the problem names no
 * field. allow, when set, is the exact Allow header (405). A HEAD reply has
 * no body: only its status and Allow are checked. */
struct harness_bad_case {
	const char *method;
	const char *path;
	const char *ctype;
	const char *body;
	long status;
	const char *code;
	const char *field;
	const char *allow;
};

#define HARNESS_NO_CTYPE ""

/* Runs one case; on a mismatch (or any 5xx, or no answer) appends a line
 * saying what differed to report (cap bytes) and returns 1; else 0. */
int harness_bad_case_run(const struct jobqd *d, const struct harness_bad_case *c,
			 const char *id, char *report, size_t cap);

/* Runs all n cases against one daemon and fails the test once, listing
 * every case that mismatched (a table is read whole, not up to the first
 * failure). */
void harness_bad_cases(const struct jobqd *d, const struct harness_bad_case *cases,
		       size_t n, const char *id);

/* The value of the sample named exactly by series in GET /metrics (which
 * must answer 200), or -1 when there is no such sample. */
double harness_metric(const struct jobqd *d, const char *series);

/* Polls GET /metrics (every 10 ms, at most bound_ms) until the sample named
 * exactly by series (e.g. "jobq_waiters" or "jobq_jobs{state=\"queued\"}")
 * reaches at least min; fails the test otherwise. Returns the value read. */
double harness_wait_metric(const struct jobqd *d, const char *series, double min,
			   double bound_ms);

#endif
