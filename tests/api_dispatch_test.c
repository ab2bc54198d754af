/* jobqd's claimed-ahead buffer, black box: jobs the dispatcher claimed
 * beyond the free workers (shown `running`, not yet started by a worker)
 * on a graceful shutdown, a kill -9, a cancel, and against a queue limit.
 * Uses the test build (env JOBQD_TEST): its `gate` job holds the only
 * worker until a file appears, so the jobs claimed behind it stay buffered.
 * Every wait is bounded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "tests/harness.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define GATE_FILE "gate.open"
#define WARM_JOBS 20   /* short jobs first: the buffer's depth follows hold times */
#define BEHIND 8       /* echo jobs submitted behind the gate */

#define get_job(d, id) harness_get_job((d), (id), NULL)

static long queue_count(const struct jobqd *d, const char *queue, const char *state)
{
	char path[128];
	cJSON *q;
	long n;

	snprintf(path, sizeof path, "/v1/queues/%s", queue);
	q = harness_call(d, "GET", path, NULL, NULL, 200);
	n = jlong(jget(q, "counts"), state);
	cJSON_Delete(q);
	return n;
}

#define wait_terminal(d, id) harness_wait_terminal((d), (id), NULL)

static void open_gate(const struct jobqd *d)
{
	char path[HARNESS_PATH_MAX + 16];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", d->dir, GATE_FILE);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "cannot create the gate file");
	fclose(f);
}

/* The jobs of one scenario: the gate, the echo jobs behind it, and which
 * of those were buffered (running while the only worker holds the gate). */
struct scene {
	char *gate;
	char *behind[BEHIND];
	int buffered[BEHIND];
	int nbuffered;
};

static void scene_free(struct scene *sc)
{
	free(sc->gate);
	for (int i = 0; i < BEHIND; i++)
		free(sc->behind[i]);
}

/* Starts the test build with one worker (plus args), runs short jobs so
 * the dispatcher claims ahead, then holds the worker with a gate job on
 * queue q and puts BEHIND echo jobs after it; returns once the gate runs
 * and at least one echo job is buffered (`running` in the API). */
static void start_scene(struct jobqd *d, const char *const *args, struct scene *sc)
{
	const char *argv[16] = {"--workers", "1"};
	int n = 2;
	char *warm[WARM_JOBS];
	double end;
	cJSON *j;

	for (int i = 0; args && args[i] && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	memset(sc, 0, sizeof *sc);
	harness_start_bin(d, "JOBQD_TEST", "build/jobqd-test", argv, ARGS("JOBQ_TEST_GATE=" GATE_FILE));
	for (int i = 0; i < WARM_JOBS; i++)
		warm[i] = harness_submit(d, "{\"type\":\"echo\",\"queue\":\"warm\",\"payload\":{}}");
	for (int i = 0; i < WARM_JOBS; i++) {
		j = wait_terminal(d, warm[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		cJSON_Delete(j);
		free(warm[i]);
	}
	/* paused while they are submitted: one claim takes the gate and what
	 * fits behind it */
	cJSON_Delete(harness_queue_action(d, "q", "pause"));
	sc->gate = harness_submit(d, "{\"type\":\"gate\",\"queue\":\"q\"}");
	for (int i = 0; i < BEHIND; i++)
		sc->behind[i] = harness_submit(d, "{\"type\":\"echo\",\"queue\":\"q\",\"payload\":{\"i\":1}}");
	cJSON_Delete(harness_queue_action(d, "q", "resume"));
	end = mono_ms() + 10000.0;
	while (queue_count(d, "q", "running") < 2) {
		ck_assert_msg(mono_ms() < end, "no job was claimed ahead behind the gate in 10 s "
			      "(running %ld, queued %ld)", queue_count(d, "q", "running"),
			      queue_count(d, "q", "queued"));
		nap_ms(10);
	}
	j = get_job(d, sc->gate);
	ck_assert_msg(str_eq(jstr(j, "state"), "running"), "gate job is %s", jstr_or(j, "state"));
	cJSON_Delete(j);
	for (int i = 0; i < BEHIND; i++) {
		j = get_job(d, sc->behind[i]);
		if (str_eq(jstr(j, "state"), "running"))
			sc->buffered[sc->nbuffered++] = i;
		else
			ck_assert_msg(str_eq(jstr(j, "state"), "queued"), "job %d behind the gate is %s",
				      i, jstr_or(j, "state"));
		cJSON_Delete(j);
	}
	ck_assert_msg(sc->nbuffered >= 1, "no buffered job");
}

static void assert_exit_0(int st, const char *what)
{
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: jobqd did not exit 0", what);
}

START_TEST(shutdown_puts_buffered_jobs_back_without_an_attempt)
{
	struct jobqd d;
	struct scene sc;
	cJSON *j;
	char *s;

	start_scene(&d, ARGS("--shutdown-grace", "0.2"), &sc);
	cJSON_Delete(harness_queue_action(&d, "q", "pause")); /* nothing of q runs after the restart */
	assert_exit_0(harness_stop_keep(&d), "SIGTERM");
	harness_restart(&d, NULL);
	for (int k = 0; k < sc.nbuffered; k++) {
		j = get_job(&d, sc.behind[sc.buffered[k]]);
		s = cJSON_PrintUnformatted(j);
		ck_assert_msg(str_eq(jstr(j, "state"), "queued") && jlong(j, "attempts") == 0 &&
			      cJSON_GetArraySize(jget(j, "attempt_history")) == 0 && jnull(j, "started_at"),
			      "buffered job after a graceful stop: %s", s);
		free(s);
		cJSON_Delete(j);
	}
	/* the gate was running: past the grace it goes back uncounted too */
	j = get_job(&d, sc.gate);
	ck_assert_msg(str_eq(jstr(j, "state"), "queued") && jlong(j, "attempts") == 0,
		      "gate after a graceful stop: %s", jstr_or(j, "state"));
	cJSON_Delete(j);
	scene_free(&sc);
	assert_exit_0(harness_stop(&d), "stop");
}
END_TEST

/* docs/decisions.md: a buffered job's attempt was counted at the claim, so
 * a kill -9 leaves it interrupted like the job that was really running. */
START_TEST(kill9_recovers_buffered_jobs_as_interrupted_attempts)
{
	struct jobqd d;
	struct scene sc;
	cJSON *j;
	char *s;

	start_scene(&d, NULL, &sc);
	cJSON_Delete(harness_queue_action(&d, "q", "pause"));
	harness_kill9(&d);
	harness_restart(&d, NULL);
	for (int k = 0; k < sc.nbuffered; k++) {
		j = get_job(&d, sc.behind[sc.buffered[k]]);
		s = cJSON_PrintUnformatted(j);
		ck_assert_msg(str_eq(jstr(j, "state"), "queued") && jlong(j, "attempts") == 1 &&
			      cJSON_GetArraySize(jget(j, "attempt_history")) == 1 &&
			      str_eq(jstr(history_at(j, 0), "outcome"), "interrupted"),
			      "buffered job after kill -9: %s", s);
		free(s);
		cJSON_Delete(j);
	}
	/* and they run when their queue resumes */
	open_gate(&d);
	cJSON_Delete(harness_queue_action(&d, "q", "resume"));
	for (int i = 0; i < BEHIND; i++) {
		j = wait_terminal(&d, sc.behind[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		cJSON_Delete(j);
	}
	scene_free(&sc);
	assert_exit_0(harness_stop(&d), "stop");
}
END_TEST

START_TEST(cancel_of_buffered_job_ends_it_at_once)
{
	struct jobqd d;
	struct scene sc;
	cJSON *j;
	char path[128], *s;
	const char *victim;
	long long gate_done;

	start_scene(&d, NULL, &sc);
	victim = sc.behind[sc.buffered[0]];
	/* the only worker still holds the gate: the cancel must not wait for it */
	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", victim);
	j = harness_call(&d, "POST", path, NULL, NULL, 200);
	s = cJSON_PrintUnformatted(j);
	ck_assert_msg(str_eq(jstr(j, "state"), "canceled"), "cancel answered: %s", s);
	free(s);
	cJSON_Delete(j);
	j = get_job(&d, sc.gate);
	ck_assert_msg(str_eq(jstr(j, "state"), "running"), "gate is %s", jstr_or(j, "state"));
	cJSON_Delete(j);

	open_gate(&d);
	j = wait_terminal(&d, sc.gate);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	gate_done = jts(j, "finished_at");
	cJSON_Delete(j);
	for (int i = 0; i < BEHIND; i++) {
		j = wait_terminal(&d, sc.behind[i]);
		s = cJSON_PrintUnformatted(j);
		if (sc.behind[i] == victim) {
			ck_assert_msg(str_eq(jstr(j, "state"), "canceled"), "canceled job: %s", s);
		} else {
			ck_assert_msg(str_eq(jstr(j, "state"), "succeeded"), "job %d: %s", i, s);
			/* started_at is the real start, not the claim's */
			ck_assert_msg(jts(j, "started_at") >= gate_done &&
				      jts(history_at(j, 0), "started_at") >= gate_done,
				      "job %d started before the gate ended (%lld): %s", i, gate_done, s);
		}
		free(s);
		cJSON_Delete(j);
	}
	scene_free(&sc);
	assert_exit_0(harness_stop(&d), "stop");
}
END_TEST

START_TEST(queue_limit_counts_buffered_jobs)
{
	struct jobqd d;
	struct scene sc;
	cJSON *j;

	/* q=2: the gate and one buffered job, however deep the buffer */
	start_scene(&d, ARGS("--queue", "q=2"), &sc);
	ck_assert_int_eq(sc.nbuffered, 1);
	ck_assert_int_eq(queue_count(&d, "q", "running"), 2);
	ck_assert_int_eq(queue_count(&d, "q", "queued"), BEHIND - 1);
	open_gate(&d);
	for (int i = 0; i < BEHIND; i++) {
		j = wait_terminal(&d, sc.behind[i]);
		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		cJSON_Delete(j);
		ck_assert_msg(queue_count(&d, "q", "running") <= 2, "more than 2 of q=2 running");
	}
	scene_free(&sc);
	assert_exit_0(harness_stop(&d), "stop");
}
END_TEST

static Suite *dispatch_suite(void)
{
	Suite *s = suite_create("jobq_api_dispatch");
	TCase *tc = harness_tcase(s, "buffer", 60);

	tcase_add_test(tc, shutdown_puts_buffered_jobs_back_without_an_attempt);
	tcase_add_test(tc, kill9_recovers_buffered_jobs_as_interrupted_attempts);
	tcase_add_test(tc, cancel_of_buffered_job_ends_it_at_once);
	tcase_add_test(tc, queue_limit_counts_buffered_jobs);
	return s;
}

int main(void)
{
	return harness_run(dispatch_suite());
}
