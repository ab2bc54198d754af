/* The store contract: what every backend must do, through store.h, run
 * against the backend named by store_contract_suite's caller
 * (JOBQ_TEST_BACKEND, default sqlite). Each test gets a fresh temp dir; the
 * tcase's unchecked fixture (in the runner process) owns one root dir and
 * removes it whole, so a test that fails half-way through (Check ends its
 * child at once) still leaves nothing behind. SQLite-only tests (plans,
 * migrations, the lock file) are in unit_store_sqlite.c. */
#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/digest.h"
#include "core/job.h"
#include "core/log.h"
#include "core/uuid.h"
#include "store/fault.h"
#include "store/store.h"
#include "tests/store_test.h"

Suite *store_contract_suite(const char *backend);
void store_rate_cases(Suite *s); /* tests/unit_store_rate.c */
void store_deps_tcase(Suite *s); /* tests/unit_store_deps.c */

/* ---- open -------------------------------------------------------------- */

START_TEST(store_reopen_keeps_jobs)
{
	struct store *st = open_store(NULL);
	struct job *a = submit(st, "echo", "default", 0, "{\"n\":1}");
	struct job *b = submit(st, "sleep", "slow", 3, "{\"seconds\":1}");
	store_close(st);

	st = open_store(NULL);
	struct job *ga = get_job(st, a->id), *gb = get_job(st, b->id);
	ck_assert_int_eq(ga->seq, a->seq);
	ck_assert_str_eq(ga->payload, "{\"n\":1}");
	ck_assert_int_eq(gb->seq, b->seq);
	ck_assert_str_eq(gb->type, "sleep");
	ck_assert_str_eq(gb->queue, "slow");
	ck_assert_int_eq(gb->priority, 3);
	ck_assert_int_eq(gb->state, JOB_QUEUED);
	/* New jobs continue the sequence. */
	struct job *c = submit(st, "echo", "default", 0, NULL);
	ck_assert_int_gt(c->seq, b->seq);
	job_free(ga);
	job_free(gb);
	job_free(a);
	job_free(b);
	job_free(c);
	store_close(st);
}
END_TEST

START_TEST(store_open_in_missing_directory_fails)
{
	char path[sizeof test_dir + 32];
	snprintf(path, sizeof path, "%s/no/such/dir/jobq.db", test_dir);
	struct store_options opts = {.path = path, .durability = STORE_DURABLE_POWER_LOSS};
	struct store *st = NULL;
	char err[512] = "";
	ck_assert_int_eq(store_open(&opts, NULL, &st, err, sizeof err), -1);
	ck_assert_ptr_null(st);
	ck_assert_msg(strstr(err, path) != NULL, "err does not name the path: %s", err);
}
END_TEST

START_TEST(store_open_unknown_backend_fails)
{
	struct store_options opts = {.backend = "no-such-backend", .path = db_path};
	char err[512] = "";
	struct store *st = NULL;
	ck_assert_int_eq(store_open(&opts, NULL, &st, err, sizeof err), -1);
	ck_assert_ptr_null(st);
	ck_assert_str_eq(err, "unknown store backend no-such-backend");
}
END_TEST

START_TEST(store_ping_writes)
{
	struct store *st = open_store(NULL);
	struct store_op op = {.kind = STORE_OP_PING};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	store_close(st);
}
END_TEST

/* ---- submit and get ---------------------------------------------------- */

START_TEST(store_get_job_returns_every_field)
{
	struct store *st = open_store(NULL);
	struct job *job = make_job("echo", "q1", 7, "{\"a\":[1,2]}");
	job->created_at = 1700000000123;
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = job};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_gt(job->seq, 0);

	struct job *got = get_job(st, job->id);
	ck_assert_int_eq(got->seq, job->seq);
	ck_assert_str_eq(got->id, job->id);
	ck_assert_str_eq(got->type, "echo");
	ck_assert_str_eq(got->queue, "q1");
	ck_assert_int_eq(got->priority, 7);
	ck_assert_int_eq(got->state, JOB_QUEUED);
	ck_assert_str_eq(got->payload, "{\"a\":[1,2]}");
	ck_assert_ptr_null(got->result);
	ck_assert_ptr_null(got->error);
	ck_assert(!got->has_progress);
	ck_assert_str_eq(got->progress_message, "");
	ck_assert_int_eq(got->attempts, 0);
	ck_assert_int_eq(got->created_at, 1700000000123);
	ck_assert_int_eq(got->started_at, 0);
	ck_assert_int_eq(got->finished_at, 0);
	job_free(got);

	/* A job without payload reads back NULL, not "null" or "". */
	struct job *bare = submit(st, "fail", "default", -3, NULL);
	got = get_job(st, bare->id);
	ck_assert_ptr_null(got->payload);
	ck_assert_int_eq(got->priority, -3);
	ck_assert_int_gt(got->seq, job->seq);
	job_free(got);
	job_free(bare);
	job_free(job);
	store_close(st);
}
END_TEST

START_TEST(store_get_job_unknown_id_is_not_found)
{
	struct store *st = open_store(NULL);
	struct job *known = submit(st, "echo", "default", 0, NULL);
	char id[UUID_LEN + 1];
	uuid_v7(id);
	struct job *job = NULL;
	ck_assert_int_eq(store_get_job(st, id, &job), STORE_NOT_FOUND);
	ck_assert_int_eq(store_get_job(st, "not-a-uuid", &job), STORE_NOT_FOUND);
	job_free(known);
	store_close(st);
}
END_TEST

START_TEST(store_submitted_hook_runs_after_commit)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *job = make_job("echo", "default", 0, NULL);
	memcpy(rec.watch_id, job->id, sizeof rec.watch_id);
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = job};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_msg(wait_for_count(&rec.submitted, 1), "submitted called %d times",
	              atomic_load(&rec.submitted));
	ck_assert_msg(atomic_load(&rec.watch_seen) == 1,
	              "submitted() ran before the job was visible to readers");
	ck_assert_int_eq(atomic_load(&rec.finished), 0);
	job_free(job);
	store_close(st);
}
END_TEST

/* ---- claim ------------------------------------------------------------- */

START_TEST(store_claim_takes_highest_priority_first)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	/* Submission order a..f in one queue; expected run order f, b, d, a, c, e. */
	struct job *a = submit(st, "echo", "default", 0, NULL);
	struct job *b = submit(st, "echo", "default", 5, NULL);
	struct job *c = submit(st, "echo", "default", 0, NULL);
	struct job *d = submit(st, "echo", "default", 5, NULL);
	struct job *e = submit(st, "echo", "default", -1, NULL);
	struct job *f = submit(st, "echo", "default", 10, NULL);
	const struct job *want[] = {f, b, d, a, c, e};

	struct claimed got = {.n = 0};
	int64_t before = clock_now_ms();
	ck_assert_int_eq(claim(st, 3, &got), 3);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(claim(st, 10, &got), 3);
	ck_assert_int_eq(got.n, 6);
	for (int i = 0; i < 6; i++) {
		struct job *j = got.jobs[i];
		ck_assert_msg(strcmp(j->id, want[i]->id) == 0, "claim %d: got seq %lld prio %d, want seq %lld prio %d",
		              i, (long long)j->seq, j->priority, (long long)want[i]->seq, want[i]->priority);
		ck_assert_int_eq(j->seq, want[i]->seq);
		ck_assert_int_eq(j->state, JOB_RUNNING);
		ck_assert_int_eq(j->attempts, 1);
		ck_assert_int_gt(j->started_at, 0);
		ck_assert_int_eq(j->finished_at, 0);
		ck_assert_str_eq(j->queue, want[i]->queue);
		ck_assert_int_eq(j->priority, want[i]->priority);
		if (i < 3) {
			ck_assert_int_ge(j->started_at, before);
			ck_assert_int_le(j->started_at, after);
		}
		struct job *stored = get_job(st, j->id);
		ck_assert_int_eq(stored->state, JOB_RUNNING);
		ck_assert_int_eq(stored->attempts, 1);
		ck_assert_int_eq(stored->started_at, j->started_at);
		job_free(stored);
	}
	ck_assert_int_eq(claim(st, 10, &got), 0);
	ck_assert_int_eq(atomic_load(&rec.finished), 0);
	claimed_free(&got);
	job_free(a);
	job_free(b);
	job_free(c);
	job_free(d);
	job_free(e);
	job_free(f);
	store_close(st);
}
END_TEST

START_TEST(store_claim_respects_claim_max)
{
	struct store *st = open_store(NULL);
	struct job *jobs[5];
	for (int i = 0; i < 5; i++)
		jobs[i] = submit(st, "echo", "default", 0, NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 2, &got), 2);
	ck_assert_str_eq(got.jobs[0]->id, jobs[0]->id);
	ck_assert_str_eq(got.jobs[1]->id, jobs[1]->id);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(state_of(st, jobs[i]->id), i < 2 ? JOB_RUNNING : JOB_QUEUED);
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[2]->id, jobs[2]->id);
	ck_assert_int_eq(state_of(st, jobs[3]->id), JOB_QUEUED);
	claimed_free(&got);
	for (int i = 0; i < 5; i++)
		job_free(jobs[i]);
	store_close(st);
}
END_TEST

START_TEST(store_claim_with_nothing_queued_gives_zero)
{
	struct store *st = open_store(NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 4, &got), 0);
	/* Jobs that are not queued are not claimable either. */
	struct job *j = submit(st, "echo", "default", 0, NULL);
	ck_assert_int_eq(claim(st, 4, &got), 1);
	ck_assert_int_eq(claim(st, 4, &got), 0);
	ck_assert_int_eq(got.n, 1);
	claimed_free(&got);
	job_free(j);
	store_close(st);
}
END_TEST

/* ---- finish ------------------------------------------------------------ */

START_TEST(store_finish_succeeded_stores_result_and_notifies)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "echo", "default", 0, "{\"x\":1}");
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	struct job *job = got.jobs[0];
	int64_t started = job->started_at;

	job->state = JOB_SUCCEEDED;
	job->result = strdup("{\"x\":1}");
	job->has_progress = true;
	job->progress_percent = 100;
	snprintf(job->progress_message, sizeof job->progress_message, "done");
	int64_t before = clock_now_ms();
	ck_assert_int_eq(finish(st, job), STORE_OK);
	int64_t after = clock_now_ms();

	/* hooks.finished runs before done(): it has been called by now. */
	ck_assert_int_eq(atomic_load(&rec.finished), 1);
	ck_assert_str_eq(rec.finished_ids[0], sub->id);

	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_SUCCEEDED);
	ck_assert_str_eq(stored->result, "{\"x\":1}");
	ck_assert_ptr_null(stored->error);
	ck_assert_int_eq(stored->attempts, 1);
	ck_assert_int_eq(stored->started_at, started);
	ck_assert_int_ge(stored->finished_at, before);
	ck_assert_int_le(stored->finished_at, after);
	ck_assert(stored->has_progress);
	ck_assert_double_eq(stored->progress_percent, 100);
	ck_assert_str_eq(stored->progress_message, "done");
	ck_assert_str_eq(stored->payload, "{\"x\":1}");
	job_free(stored);

	/* Finishing it again changes nothing and notifies no one. */
	job->state = JOB_FAILED;
	ck_assert_int_eq(finish(st, job), STORE_OK);
	ck_assert_int_eq(state_of(st, sub->id), JOB_SUCCEEDED);
	ck_assert_int_eq(atomic_load(&rec.finished), 1);

	claimed_free(&got);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_finish_failed_stores_error_and_finished_at)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "fail", "default", 0, NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	struct job *job = got.jobs[0];
	job->state = JOB_FAILED;
	job->error = strdup("boom");
	int64_t finished_at = clock_now_ms() - 1000;
	job->finished_at = finished_at;
	ck_assert_int_eq(finish(st, job), STORE_OK);
	ck_assert_int_eq(atomic_load(&rec.finished), 1);
	ck_assert_str_eq(rec.finished_ids[0], sub->id);

	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_FAILED);
	ck_assert_str_eq(stored->error, "boom");
	ck_assert_ptr_null(stored->result);
	ck_assert(!stored->has_progress);
	ck_assert_int_eq(stored->finished_at, finished_at);
	ck_assert_int_eq(stored->attempts, 1);
	job_free(stored);
	claimed_free(&got);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_finish_with_wrong_attempts_changes_nothing)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "echo", "default", 0, NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	struct job *job = got.jobs[0];
	ck_assert_int_eq(job->attempts, 1);
	int64_t started = job->started_at;

	static const int stale[] = {0, 2, -1};
	for (size_t i = 0; i < sizeof stale / sizeof stale[0]; i++) {
		job->attempts = stale[i];
		job->state = JOB_SUCCEEDED;
		free(job->result);
		job->result = strdup("\"late\"");
		ck_assert_int_eq(finish(st, job), STORE_OK);
		/* A requeue is fenced the same way. */
		job->state = JOB_QUEUED;
		ck_assert_int_eq(finish(st, job), STORE_OK);

		struct job *stored = get_job(st, sub->id);
		ck_assert_msg(stored->state == JOB_RUNNING, "attempts %d: state %s", stale[i],
		              job_state_name(stored->state));
		ck_assert_int_eq(stored->attempts, 1);
		ck_assert_ptr_null(stored->result);
		ck_assert_int_eq(stored->started_at, started);
		ck_assert_int_eq(stored->finished_at, 0);
		job_free(stored);
	}
	ck_assert_int_eq(atomic_load(&rec.finished), 0);

	/* The right attempt still lands. */
	job->attempts = 1;
	job->state = JOB_SUCCEEDED;
	ck_assert_int_eq(finish(st, job), STORE_OK);
	ck_assert_int_eq(state_of(st, sub->id), JOB_SUCCEEDED);
	ck_assert_int_eq(atomic_load(&rec.finished), 1);
	claimed_free(&got);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_finish_of_queued_job_changes_nothing)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "echo", "default", 0, NULL);
	sub->state = JOB_SUCCEEDED;
	sub->attempts = 0;
	ck_assert_int_eq(finish(st, sub), STORE_OK);
	ck_assert_int_eq(state_of(st, sub->id), JOB_QUEUED);
	ck_assert_int_eq(atomic_load(&rec.finished), 0);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_finish_queued_requeues_with_attempts_decremented)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "sleep", "default", 0, "{\"seconds\":5}");
	ck_assert(wait_for_count(&rec.submitted, 1));
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	struct job *job = got.jobs[0];
	job->state = JOB_QUEUED;
	ck_assert_int_eq(finish(st, job), STORE_OK);

	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_QUEUED);
	ck_assert_int_eq(stored->attempts, 0);
	ck_assert_int_eq(stored->started_at, 0);
	ck_assert_int_eq(stored->finished_at, 0);
	ck_assert_ptr_null(stored->result);
	ck_assert_ptr_null(stored->error);
	job_free(stored);
	ck_assert_int_eq(atomic_load(&rec.finished), 0);
	/* A requeued job is runnable again: the dispatcher is told. */
	ck_assert_msg(wait_for_count(&rec.submitted, 2), "submitted called %d times",
	              atomic_load(&rec.submitted));

	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[1]->id, sub->id);
	ck_assert_int_eq(got.jobs[1]->attempts, 1);
	claimed_free(&got);
	job_free(sub);
	store_close(st);
}
END_TEST

/* ---- cancel ------------------------------------------------------------ */

START_TEST(store_cancel_queued_job_cancels_it)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "echo", "default", 0, NULL);
	int64_t before = clock_now_ms();
	struct target_reply op = cancel(st, sub->id);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_QUEUED);
	ck_assert_int_eq(atomic_load(&rec.finished), 1);
	ck_assert_str_eq(rec.finished_ids[0], sub->id);

	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_CANCELED);
	ck_assert_str_eq(stored->error, "canceled");
	ck_assert_int_ge(stored->finished_at, before);
	ck_assert_int_le(stored->finished_at, after);
	ck_assert_int_eq(stored->attempts, 0);
	job_free(stored);

	/* Canceled jobs are not claimed; a second cancel finds it canceled. */
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 5, &got), 0);
	op = cancel(st, sub->id);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_CANCELED);
	ck_assert_int_eq(atomic_load(&rec.finished), 1);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_cancel_running_job_leaves_it_running)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "sleep", "default", 0, "{\"seconds\":5}");
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	struct target_reply op = cancel(st, sub->id);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_RUNNING);
	ck_assert_int_eq(atomic_load(&rec.finished), 0);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_RUNNING);
	ck_assert_ptr_null(stored->error);
	ck_assert_int_eq(stored->finished_at, 0);
	job_free(stored);
	claimed_free(&got);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_cancel_finished_job_reports_its_state)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	static const enum job_state ends[] = {JOB_SUCCEEDED, JOB_FAILED};
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		struct job *sub = submit(st, "echo", "default", 0, NULL);
		struct claimed got = {.n = 0};
		ck_assert_int_eq(claim(st, 1, &got), 1);
		got.jobs[0]->state = ends[i];
		ck_assert_int_eq(finish(st, got.jobs[0]), STORE_OK);
		int finished = atomic_load(&rec.finished);
		struct target_reply op = cancel(st, sub->id);
		ck_assert_int_eq(op.rc, STORE_OK);
		ck_assert_int_eq(op.found, ends[i]);
		ck_assert_int_eq(state_of(st, sub->id), ends[i]);
		ck_assert_int_eq(atomic_load(&rec.finished), finished);
		claimed_free(&got);
		job_free(sub);
	}
	store_close(st);
}
END_TEST

START_TEST(store_cancel_unknown_id_is_not_found)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = submit(st, "echo", "default", 0, NULL);
	char id[UUID_LEN + 1];
	uuid_v7(id);
	struct target_reply op = cancel(st, id);
	ck_assert_int_eq(op.rc, STORE_NOT_FOUND);
	ck_assert_int_eq(atomic_load(&rec.finished), 0);
	ck_assert_int_eq(state_of(st, sub->id), JOB_QUEUED);
	job_free(sub);
	store_close(st);
}
END_TEST

/* ---- recovery ---------------------------------------------------------- */

START_TEST(store_recovery_requeues_jobs_left_running)
{
	struct store *st = open_store(NULL);
	struct job *a = submit(st, "sleep", "default", 1, "{\"seconds\":5}");
	struct job *b = submit(st, "echo", "default", 0, NULL);
	struct job *done = submit(st, "echo", "default", 0, NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 3, &got), 3);
	ck_assert_str_eq(got.jobs[0]->id, a->id);
	/* b stays running; done finishes; then a second attempt of a. */
	got.jobs[2]->state = JOB_SUCCEEDED;
	ck_assert_int_eq(finish(st, got.jobs[2]), STORE_OK);
	got.jobs[0]->state = JOB_QUEUED;
	ck_assert_int_eq(finish(st, got.jobs[0]), STORE_OK);
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[3]->id, a->id);
	ck_assert_int_eq(got.jobs[3]->attempts, 1);
	store_close(st); /* as if jobqd died with a and b running */

	st = open_store(NULL);
	struct job *ra = get_job(st, a->id), *rb = get_job(st, b->id);
	ck_assert_int_eq(ra->state, JOB_QUEUED);
	ck_assert_int_eq(ra->attempts, 1);
	ck_assert_int_eq(ra->started_at, 0);
	ck_assert_int_eq(rb->state, JOB_QUEUED);
	ck_assert_int_eq(rb->attempts, 1);
	ck_assert_int_eq(rb->started_at, 0);
	ck_assert_int_eq(state_of(st, done->id), JOB_SUCCEEDED);
	job_free(ra);
	job_free(rb);

	/* They run again in their old order, and the attempt is counted. */
	struct claimed again = {.n = 0};
	ck_assert_int_eq(claim(st, 5, &again), 2);
	ck_assert_str_eq(again.jobs[0]->id, a->id);
	ck_assert_str_eq(again.jobs[1]->id, b->id);
	ck_assert_int_eq(again.jobs[0]->attempts, 2);
	ck_assert_int_eq(again.jobs[1]->attempts, 2);
	claimed_free(&again);
	claimed_free(&got);
	job_free(a);
	job_free(b);
	job_free(done);
	store_close(st);
}
END_TEST

START_TEST(store_recovery_records_interrupted_attempts)
{
	struct store *st = open_store(NULL);
	struct job *left = make_job("sleep", "default", 1, "{\"seconds\":5}");
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = left};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct job *last = make_job("sleep", "default", 0, "{\"seconds\":5}");
	last->max_attempts = 1;
	op = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = last};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 2, &got), 2);
	ck_assert_str_eq(got.jobs[0]->id, left->id);
	int64_t started_left = got.jobs[0]->started_at, started_last = got.jobs[1]->started_at;
	store_close(st); /* as if jobqd died with both running */

	int64_t before = clock_now_ms();
	st = open_store(NULL);
	int64_t after = clock_now_ms();

	/* Attempts left: queued at once, the attempt counted and recorded. */
	struct job *a = get_job(st, left->id);
	ck_assert_int_eq(a->state, JOB_QUEUED);
	ck_assert_int_eq(a->attempts, 1);
	ck_assert_int_eq(a->started_at, 0);
	ck_assert_int_eq(a->finished_at, 0);
	ck_assert_ptr_null(a->error);
	ck_assert(a->has_history);
	ck_assert_int_eq(a->nhistory, 1);
	ck_assert_int_eq(a->history[0].attempt, 1);
	ck_assert_int_eq(a->history[0].outcome, ATTEMPT_INTERRUPTED);
	ck_assert_int_eq(a->history[0].started_at, started_left);
	ck_assert_int_ge(a->history[0].finished_at, before);
	ck_assert_int_le(a->history[0].finished_at, after);
	ck_assert_ptr_nonnull(a->history[0].error);

	/* No attempts left: failed with the interrupted error. */
	struct job *b = get_job(st, last->id);
	ck_assert_int_eq(b->state, JOB_FAILED);
	ck_assert_int_eq(b->attempts, 1);
	ck_assert_str_eq(b->error, "interrupted: jobqd stopped while the job ran and no attempts are left");
	ck_assert_int_ge(b->finished_at, before);
	ck_assert_int_le(b->finished_at, after);
	ck_assert_int_eq(b->nhistory, 1);
	ck_assert_int_eq(b->history[0].attempt, 1);
	ck_assert_int_eq(b->history[0].outcome, ATTEMPT_INTERRUPTED);
	ck_assert_int_eq(b->history[0].started_at, started_last);

	assert_counts(st, "default", 1, 0, 0, 1, 0, 0);
	/* Only the one with attempts left runs again. */
	struct claimed again = {.n = 0};
	ck_assert_int_eq(claim(st, 5, &again), 1);
	ck_assert_str_eq(again.jobs[0]->id, left->id);
	ck_assert_int_eq(again.jobs[0]->attempts, 2);
	claimed_free(&again);
	claimed_free(&got);
	job_free(a);
	job_free(b);
	job_free(left);
	job_free(last);
	store_close(st);
}
END_TEST

START_TEST(store_recovery_of_a_job_at_its_last_attempt_fails_it)
{
	/* Three attempts, each ended by a crash: failed after the third. */
	struct store *st = open_store(NULL);
	struct job *pill = submit(st, "sleep", "default", 0, "{\"seconds\":5}");
	for (int attempt = 1; attempt <= 3; attempt++) {
		struct claimed got = {.n = 0};
		ck_assert_int_eq(claim(st, 1, &got), 1);
		ck_assert_int_eq(got.jobs[0]->attempts, attempt);
		claimed_free(&got);
		store_close(st);
		st = open_store(NULL);
		ck_assert_int_eq(state_of(st, pill->id), attempt < 3 ? JOB_QUEUED : JOB_FAILED);
	}
	struct job *j = get_job(st, pill->id);
	ck_assert_int_eq(j->attempts, 3);
	ck_assert_int_eq(j->nhistory, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(j->history[i].attempt, i + 1);
		ck_assert_int_eq(j->history[i].outcome, ATTEMPT_INTERRUPTED);
	}
	struct claimed none = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &none), 0);
	job_free(j);
	job_free(pill);
	store_close(st);
}
END_TEST

/* ---- scheduled jobs ---------------------------------------------------- */

START_TEST(store_scheduled_job_is_claimed_only_when_due)
{
	struct store *st = open_store(NULL);
	struct job *soon = make_job("echo", "default", 0, NULL);
	soon->state = JOB_SCHEDULED;
	soon->run_at = soon->created_at + 300;
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = soon};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct job *later = make_job("echo", "default", 0, NULL);
	later->state = JOB_SCHEDULED;
	later->run_at = later->created_at + 3600000;
	op = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = later};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);

	struct job *stored = get_job(st, soon->id);
	ck_assert_int_eq(stored->state, JOB_SCHEDULED);
	ck_assert_int_eq(stored->run_at, soon->run_at);
	job_free(stored);
	assert_counts(st, "default", 0, 0, 0, 0, 0, 2);
	ck_assert_int_eq(queue_of(st, "default").oldest_queued_run_at, 0);

	struct room_claim rc = {.got = {.n = 0}};
	op = claim_op(st, 4, &rc);
	ck_assert_msg(clock_now_ms() < soon->run_at, "the claim took 300 ms: cannot tell");
	ck_assert_int_eq(op.claim.nclaimed, 0);
	ck_assert_int_eq(op.claim.next_due, soon->run_at);
	ck_assert(!op.claim.limited);
	ck_assert_int_eq(state_of(st, soon->id), JOB_SCHEDULED);

	sleep_past(soon->run_at);
	op = claim_op(st, 4, &rc);
	ck_assert_int_eq(op.claim.nclaimed, 1);
	ck_assert_str_eq(rc.got.jobs[0]->id, soon->id);
	ck_assert_int_eq(rc.got.jobs[0]->state, JOB_RUNNING);
	ck_assert_int_eq(rc.got.jobs[0]->attempts, 1);
	ck_assert_int_eq(rc.got.jobs[0]->run_at, soon->run_at);
	/* The other one is still waiting, and now the next due. */
	ck_assert_int_eq(op.claim.next_due, later->run_at);
	ck_assert_int_eq(state_of(st, later->id), JOB_SCHEDULED);
	assert_counts(st, "default", 0, 1, 0, 0, 0, 1);

	/* Canceling a scheduled job cancels it at once. */
	struct target_reply c = cancel(st, later->id);
	ck_assert_int_eq(c.rc, STORE_OK);
	ck_assert_int_eq(c.found, JOB_SCHEDULED);
	ck_assert_int_eq(state_of(st, later->id), JOB_CANCELED);
	op = claim_op(st, 4, &rc);
	ck_assert_int_eq(op.claim.nclaimed, 0);
	ck_assert_int_eq(op.claim.next_due, 0);
	assert_counts(st, "default", 0, 1, 0, 0, 1, 0);

	claimed_free(&rc.got);
	job_free(soon);
	job_free(later);
	store_close(st);
}
END_TEST

/* ---- queues ------------------------------------------------------------ */

START_TEST(store_claim_shares_among_queues)
{
	struct store *st = open_store(NULL);
	static const char *const names[] = {"a", "b", "c"};
	for (int i = 0; i < 3; i++)
		for (int q = 0; q < 3; q++)
			job_free(submit(st, "echo", names[q], 0, NULL));

	struct room_claim rc = {.got = {.n = 0}};
	struct store_op op = claim_op(st, 3, &rc);
	ck_assert_int_eq(op.claim.nclaimed, 3);
	ck_assert(!op.claim.limited);
	int per[3] = {0, 0, 0};
	for (int i = 0; i < rc.got.n; i++)
		for (int q = 0; q < 3; q++)
			per[q] += strcmp(rc.got.jobs[i]->queue, names[q]) == 0;
	ck_assert_msg(per[0] == 1 && per[1] == 1 && per[2] == 1, "claimed a:%d b:%d c:%d", per[0], per[1], per[2]);
	claimed_free(&rc.got);

	/* a has no room, b room for one: nothing from a, one from b, the
	 * rest from c. */
	rc = (struct room_claim){.got = {.n = 0}, .queue = {"a", "b"}, .room = {0, 1}, .nroom = 2};
	op = claim_op(st, 10, &rc);
	ck_assert(op.claim.limited);
	memset(per, 0, sizeof per);
	for (int i = 0; i < rc.got.n; i++)
		for (int q = 0; q < 3; q++)
			per[q] += strcmp(rc.got.jobs[i]->queue, names[q]) == 0;
	ck_assert_msg(per[0] == 0 && per[1] == 1 && per[2] == 2, "claimed a:%d b:%d c:%d", per[0], per[1], per[2]);
	ck_assert_int_eq(op.claim.nclaimed, 3);
	assert_counts(st, "a", 2, 1, 0, 0, 0, 0);
	assert_counts(st, "b", 1, 2, 0, 0, 0, 0);
	assert_counts(st, "c", 0, 3, 0, 0, 0, 0);
	claimed_free(&rc.got);

	/* Jobs wait in a and b, but neither has room: nothing, and limited. */
	rc = (struct room_claim){.got = {.n = 0}, .queue = {"a", "b"}, .room = {0, 0}, .nroom = 2};
	op = claim_op(st, 10, &rc);
	ck_assert_int_eq(op.claim.nclaimed, 0);
	ck_assert(op.claim.limited);
	store_close(st);
}
END_TEST

START_TEST(store_claim_room_limits_a_queue_among_many_jobs)
{
	struct store *st = open_store(NULL);
	for (int i = 0; i < 6; i++)
		job_free(submit(st, "echo", "b", 0, NULL));
	struct room_claim rc = {.got = {.n = 0}, .queue = {"b"}, .room = {2}, .nroom = 1};
	struct store_op op = claim_op(st, 5, &rc);
	ck_assert_int_eq(op.claim.nclaimed, 2);
	ck_assert(op.claim.limited);
	assert_counts(st, "b", 4, 2, 0, 0, 0, 0);
	claimed_free(&rc.got);
	store_close(st);
}
END_TEST

START_TEST(store_claim_serves_every_queue_in_turn)
{
	/* Round-robin among all queues with runnable jobs: claims of one job
	 * at a time reach every queue before any queue gets a second. */
	enum { NQ = 300 };
	struct store *st = open_store(NULL);
	static struct store_op ops[NQ * 2];
	static struct job *jobs[NQ * 2];
	atomic_int done;
	atomic_init(&done, 0);
	for (int i = 0; i < NQ * 2; i++) {
		char q[16];
		snprintf(q, sizeof q, "q%03d", i % NQ);
		jobs[i] = make_job("echo", q, 0, NULL);
		ops[i] = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = jobs[i], .done = count_done_store, .arg = &done};
		store_post(st, &ops[i]);
	}
	ck_assert_msg(wait_for_count(&done, NQ * 2), "%d of %d submits done", atomic_load(&done), NQ * 2);
	static bool served[NQ];
	memset(served, 0, sizeof served);
	struct claimed got = {.n = 0};
	for (int i = 0; i < NQ; i++) {
		ck_assert_int_eq(claim(st, 1, &got), 1);
		int q = atoi(got.jobs[0]->queue + 1);
		ck_assert_msg(!served[q], "claim %d: queue %s served twice before every queue once", i, got.jobs[0]->queue);
		served[q] = true;
		claimed_free(&got);
	}
	for (int i = 0; i < NQ * 2; i++)
		job_free(jobs[i]);
	store_close(st);
}
END_TEST

/* Nothing can run a job submitted to a paused queue, so its commit must
 * not wake the dispatcher into a claim that finds nothing; a scheduled
 * job still does (the claim promotes it and reports its due time). Hooks
 * fire in commit order, so once the last submit's hook ran, the count is
 * final. */
START_TEST(store_submit_to_paused_queue_wakes_no_claim)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	pause_queue(st, "p", true);
	int before = atomic_load(&rec.submitted);
	struct job *paused = submit(st, "echo", "p", 0, NULL);
	struct job *batch[2] = {make_job("echo", "p", 0, NULL), make_job("echo", "p", 0, NULL)};
	struct store_op op = {.kind = STORE_OP_BATCH, .batch = {.jobs = batch, .njobs = 2}};
	uuid_v7(op.batch.id);
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct job *runnable = submit(st, "echo", "other", 0, NULL);
	ck_assert(wait_for_count(&rec.submitted, before + 1));
	ck_assert_int_eq(atomic_load(&rec.submitted), before + 1);

	struct job *later = make_job("echo", "p", 0, NULL);
	later->state = JOB_SCHEDULED;
	later->run_at = clock_now_ms() + 60000;
	struct store_op sop = {.kind = STORE_OP_SUBMIT, .submit.job = later};
	ck_assert_int_eq(store_run(st, &sop), STORE_OK);
	ck_assert(wait_for_count(&rec.submitted, before + 2));
	ck_assert_int_eq(queue_of(st, "p").counts[JOB_QUEUED], 3);
	job_free(paused);
	job_free(batch[0]);
	job_free(batch[1]);
	job_free(runnable);
	job_free(later);
	store_close(st);
}
END_TEST

START_TEST(store_paused_queue_is_not_claimed_from)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	pause_queue(st, "p", true);
	pause_queue(st, "p", true); /* idempotent */
	struct job *j = submit(st, "echo", "p", 0, NULL);
	struct job *other = submit(st, "echo", "other", 0, NULL);
	struct queue_info q = queue_of(st, "p");
	ck_assert(q.paused);
	ck_assert_int_eq(q.counts[JOB_QUEUED], 1);
	ck_assert(!queue_of(st, "other").paused);

	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 5, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, other->id);
	ck_assert_int_eq(claim(st, 5, &got), 0);
	ck_assert_int_eq(state_of(st, j->id), JOB_QUEUED);
	got.jobs[0]->state = JOB_SUCCEEDED;
	got.jobs[0]->outcome = ATTEMPT_SUCCEEDED;
	ck_assert_int_eq(finish(st, got.jobs[0]), STORE_OK);

	/* Paused survives a restart. */
	store_close(st);
	recorder_init(&rec);
	st = open_store(&rec);
	ck_assert(queue_of(st, "p").paused);
	ck_assert_int_eq(claim(st, 5, &got), 0);

	int before = atomic_load(&rec.submitted);
	pause_queue(st, "p", false);
	ck_assert(!queue_of(st, "p").paused);
	/* Resuming wakes the dispatcher. */
	ck_assert_msg(wait_for_count(&rec.submitted, before + 1), "submitted called %d times after resume",
	              atomic_load(&rec.submitted));
	ck_assert_int_eq(claim(st, 5, &got), 1);
	ck_assert_str_eq(got.jobs[1]->id, j->id);
	pause_queue(st, "p", false); /* idempotent */
	ck_assert(!queue_of(st, "p").paused);
	claimed_free(&got);
	job_free(j);
	job_free(other);
	store_close(st);
}
END_TEST

START_TEST(store_deepest_queues_ranks_by_depth_and_sums_the_rest)
{
	struct store *st = open_store(NULL);
	struct queue_info top[2], rest;
	int n = 99;
	ck_assert_int_eq(store_deepest_queues(st, top, 2, &n, &rest), STORE_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(rest.counts[JOB_QUEUED], 0);
	ck_assert_int_eq(rest.oldest_queued_run_at, 0);

	/* depths: c 1 (submitted first), b 2, a 2, d 3; e has none queued */
	const char *queues[] = {"c", "b", "a", "d", "b", "a", "d", "d"};
	struct job *first = NULL;
	for (size_t i = 0; i < sizeof queues / sizeof queues[0]; i++) {
		struct job *j = submit(st, "echo", queues[i], 0, NULL);
		if (i == 0)
			first = j;
		else
			job_free(j);
	}
	pause_queue(st, "e", true);
	ck_assert_int_eq(store_deepest_queues(st, top, 2, &n, &rest), STORE_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(top[0].name, "d");
	ck_assert_int_eq(top[0].counts[JOB_QUEUED], 3);
	ck_assert_int_gt(top[0].oldest_queued_run_at, 0);
	ck_assert_str_eq(top[1].name, "a");    /* a and b tie: by name */
	ck_assert_int_eq(top[1].counts[JOB_QUEUED], 2);
	ck_assert_str_eq(rest.name, "");
	ck_assert_int_eq(rest.counts[JOB_QUEUED], 3); /* b 2 + c 1 */
	ck_assert_int_eq(rest.oldest_queued_run_at, first->run_at); /* c's job came first */
	ck_assert_int_eq(rest.counts[JOB_SUCCEEDED], 0);
	job_free(first);
	store_close(st);
}
END_TEST

START_TEST(store_list_queue_names_has_job_and_paused_queues)
{
	struct store *st = open_store(NULL);
	char (*names)[JOB_NAME_MAX + 1] = NULL;
	size_t n = 99;
	ck_assert_int_eq(store_list_queue_names(st, NULL, 100, &names, &n), STORE_OK);
	ck_assert_uint_eq(n, 0);
	free(names);

	job_free(submit(st, "echo", "zeta", 0, NULL));
	job_free(submit(st, "echo", "alpha", 0, NULL));
	job_free(submit(st, "echo", "alpha", 0, NULL));
	pause_queue(st, "empty", true);
	pause_queue(st, "alpha", true);
	ck_assert_int_eq(store_list_queue_names(st, NULL, 100, &names, &n), STORE_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(names[0], "alpha");
	ck_assert_str_eq(names[1], "empty");
	ck_assert_str_eq(names[2], "zeta");
	free(names);

	struct queue_info q = queue_of(st, "empty");
	ck_assert(q.paused);
	for (int s = 0; s < JOB_STATE_COUNT; s++)
		ck_assert_int_eq(q.counts[s], 0);
	ck_assert_int_eq(q.oldest_queued_run_at, 0);

	/* Pages: after a name, at most max. */
	ck_assert_int_eq(store_list_queue_names(st, "alpha", 1, &names, &n), STORE_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], "empty");
	free(names);
	ck_assert_int_eq(store_list_queue_names(st, "empty", 5, &names, &n), STORE_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], "zeta");
	free(names);
	ck_assert_int_eq(store_list_queue_names(st, "zeta", 5, &names, &n), STORE_OK);
	ck_assert_uint_eq(n, 0);
	free(names);

	/* Resumed and without jobs: no longer listed. */
	pause_queue(st, "empty", false);
	ck_assert_int_eq(store_list_queue_names(st, NULL, 100, &names, &n), STORE_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "alpha");
	ck_assert_str_eq(names[1], "zeta");
	free(names);

	/* A queue nobody used reads as zeros. */
	q = queue_of(st, "never");
	ck_assert(!q.paused);
	for (int s = 0; s < JOB_STATE_COUNT; s++)
		ck_assert_int_eq(q.counts[s], 0);
	ck_assert_int_eq(q.oldest_queued_run_at, 0);
	store_close(st);
}
END_TEST

START_TEST(store_queue_counts_follow_every_change)
{
	struct store *st = open_store(NULL);
	/* Three jobs in q, their run_at out of submission order. */
	static const int64_t run_ats[] = {1700000005000, 1700000003000, 1700000004000};
	struct job *j[3];
	for (int i = 0; i < 3; i++) {
		j[i] = make_job("echo", "q", 0, NULL);
		j[i]->created_at = j[i]->run_at = run_ats[i];
		struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = j[i]};
		ck_assert_int_eq(store_run(st, &op), STORE_OK);
	}
	struct job *noise = submit(st, "echo", "other", 0, NULL);
	assert_counts(st, "q", 3, 0, 0, 0, 0, 0);
	ck_assert_int_eq(queue_of(st, "q").oldest_queued_run_at, 1700000003000);

	/* Queue other has no room, so claims take from q only. */
	struct room_claim only_q = {.got = {.n = 0}, .queue = {"other"}, .room = {0}, .nroom = 1};
	claim_op(st, 1, &only_q);
	ck_assert_int_eq(only_q.got.n, 1);
	ck_assert_str_eq(only_q.got.jobs[0]->id, j[0]->id);
	assert_counts(st, "q", 2, 1, 0, 0, 0, 0);
	ck_assert_int_eq(queue_of(st, "q").oldest_queued_run_at, 1700000003000);
	claim_op(st, 1, &only_q);
	ck_assert_str_eq(only_q.got.jobs[1]->id, j[1]->id);
	assert_counts(st, "q", 1, 2, 0, 0, 0, 0);
	ck_assert_int_eq(queue_of(st, "q").oldest_queued_run_at, 1700000004000);

	only_q.got.jobs[0]->state = JOB_SUCCEEDED;
	ck_assert_int_eq(finish(st, only_q.got.jobs[0]), STORE_OK);
	assert_counts(st, "q", 1, 1, 1, 0, 0, 0);
	only_q.got.jobs[1]->state = JOB_FAILED;
	only_q.got.jobs[1]->outcome = ATTEMPT_FAILED;
	ck_assert_int_eq(finish(st, only_q.got.jobs[1]), STORE_OK);
	assert_counts(st, "q", 1, 0, 1, 1, 0, 0);
	ck_assert_int_eq(cancel(st, j[2]->id).found, JOB_QUEUED);
	assert_counts(st, "q", 0, 0, 1, 1, 1, 0);
	ck_assert_int_eq(queue_of(st, "q").oldest_queued_run_at, 0);

	struct job *sch = make_job("echo", "q", 0, NULL);
	sch->state = JOB_SCHEDULED;
	sch->run_at = sch->created_at + 3600000;
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = sch};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	assert_counts(st, "q", 0, 0, 1, 1, 1, 1);
	ck_assert_int_eq(queue_of(st, "q").oldest_queued_run_at, 0);

	ck_assert_int_eq(id_op(st, STORE_OP_DELETE, j[0]->id).rc, STORE_OK);
	assert_counts(st, "q", 0, 0, 0, 1, 1, 1);
	int64_t before = clock_now_ms();
	ck_assert_int_eq(id_op(st, STORE_OP_RETRY, j[1]->id).rc, STORE_OK);
	int64_t after = clock_now_ms();
	assert_counts(st, "q", 1, 0, 0, 0, 1, 1);
	int64_t oldest = queue_of(st, "q").oldest_queued_run_at;
	ck_assert_int_ge(oldest, before);
	ck_assert_int_le(oldest, after);
	ck_assert_int_eq(id_op(st, STORE_OP_RETRY, j[2]->id).rc, STORE_OK);
	assert_counts(st, "q", 2, 0, 0, 0, 0, 1);
	ck_assert_int_eq(id_op(st, STORE_OP_CANCEL, sch->id).rc, STORE_OK);
	ck_assert_int_eq(id_op(st, STORE_OP_DELETE, sch->id).rc, STORE_OK);
	assert_counts(st, "q", 2, 0, 0, 0, 0, 0);

	/* The other queue never moved. */
	assert_counts(st, "other", 1, 0, 0, 0, 0, 0);
	ck_assert_int_eq(queue_of(st, "other").oldest_queued_run_at, noise->run_at);

	claimed_free(&only_q.got);
	for (int i = 0; i < 3; i++)
		job_free(j[i]);
	job_free(sch);
	job_free(noise);
	store_close(st);
}
END_TEST

/* ---- retries and history ----------------------------------------------- */

/* Submits a job with max_attempts and claims it; returns the claimed copy
 * (caller frees) and sets *sub to the submitted one. */
static struct job *submit_and_claim(struct store *st, int max_attempts, struct job **sub)
{
	struct job *job = make_job("fail", "default", 0, NULL);
	job->max_attempts = max_attempts;
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = job};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, job->id);
	*sub = job;
	return got.jobs[0];
}

/* A claimed job names the node that runs it. On PostgreSQL a second store
 * on the same schema is a second node: its outcome for the first node's
 * attempt is dropped (the job stays running, nothing recorded), and the
 * owner's applies. */
START_TEST(store_outcome_applies_only_from_the_node_running_it)
{
	struct store *a = open_store(NULL);
	char node_a[UUID_LEN + 1];
	store_node_id(a, node_a);
	ck_assert_uint_eq(strlen(node_a), UUID_LEN);
	struct job *sub = NULL;
	struct job *job = submit_and_claim(a, 3, &sub);
	struct job *running = get_job(a, job->id);
	ck_assert_int_eq(running->state, JOB_RUNNING);
	ck_assert_str_eq(running->node, node_a);
	job_free(running);
	if (test_schema) {
		struct store *b = open_store(NULL);
		char node_b[UUID_LEN + 1];
		store_node_id(b, node_b);
		ck_assert_str_ne(node_a, node_b);
		struct job *late = get_job(b, job->id);
		late->state = JOB_SUCCEEDED;
		late->outcome = ATTEMPT_SUCCEEDED;
		late->finished_at = clock_now_ms();
		ck_assert_int_eq(finish(b, late), STORE_OK);
		struct job *stored = get_job(b, job->id);
		ck_assert_int_eq(stored->state, JOB_RUNNING);
		ck_assert_str_eq(stored->node, node_a);
		ck_assert_int_eq(stored->nhistory, 0);
		job_free(stored);
		job_free(late);
		store_close(b);
	}
	job->state = JOB_SUCCEEDED;
	job->outcome = ATTEMPT_SUCCEEDED;
	job->finished_at = clock_now_ms();
	ck_assert_int_eq(finish(a, job), STORE_OK);
	struct job *done = get_job(a, job->id);
	ck_assert_int_eq(done->state, JOB_SUCCEEDED);
	ck_assert_str_eq(done->node, "");
	ck_assert_int_eq(done->nhistory, 1);
	job_free(done);
	job_free(job);
	job_free(sub);
	store_close(a);
}
END_TEST

static bool runs_nothing(void *arg, const char *id)
{
	(void)arg;
	(void)id;
	return false;
}

/* On PostgreSQL a job this node owns but does not run (its outcome's
 * commit met an outage) is recorded interrupted and queued again by the
 * node itself, within seconds, not at its next start. */
START_TEST(store_job_owned_here_but_not_run_is_rescued)
{
	if (!test_schema)
		return; /* SQLite: one process, recovered at its next start */
	struct store_options opts = {.backend = test_backend, .path = db_path, .schema = test_schema,
	                             .durability = STORE_DURABLE_POWER_LOSS, .node_timeout_s = 3};
	struct store_hooks hooks = {.runs_here = runs_nothing};
	char err[512] = "";
	struct store *st = NULL;
	ck_assert_msg(store_open(&opts, &hooks, &st, err, sizeof err) == 0, "%s", err);
	struct job *sub = NULL;
	struct job *job = submit_and_claim(st, 3, &sub);
	char sql[200];
	snprintf(sql, sizeof sql, "UPDATE jobs SET started_at = started_at - 60000 WHERE id = '%s'", job->id);
	db_exec(sql);
	struct job *now = NULL;
	for (int i = 0; i < POLL_LIMIT_MS / 50; i++) {
		job_free(now);
		now = get_job(st, job->id);
		if (now->state != JOB_RUNNING)
			break;
		sleep_ms(50);
	}
	ck_assert_int_eq(now->state, JOB_QUEUED);
	ck_assert_int_eq(now->attempts, 1);
	ck_assert_int_eq(now->nhistory, 1);
	ck_assert_int_eq(now->history[0].outcome, ATTEMPT_INTERRUPTED);
	job_free(now);
	job_free(job);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_finish_scheduled_waits_for_retry_and_records_attempt)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = NULL;
	struct job *job = submit_and_claim(st, 3, &sub);
	int64_t started = job->started_at;
	job->state = JOB_SCHEDULED;
	job->outcome = ATTEMPT_FAILED;
	job->error = strdup("boom");
	job->run_at = clock_now_ms() + 3600000;
	int64_t before = clock_now_ms();
	ck_assert_int_eq(finish(st, job), STORE_OK);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(atomic_load(&rec.finished), 0);

	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_SCHEDULED);
	ck_assert_int_eq(stored->run_at, job->run_at);
	ck_assert_int_eq(stored->attempts, 1);
	ck_assert_str_eq(stored->error, "boom");
	ck_assert_int_eq(stored->finished_at, 0);
	ck_assert_int_eq(stored->nhistory, 1);
	ck_assert_int_eq(stored->history[0].attempt, 1);
	ck_assert_int_eq(stored->history[0].outcome, ATTEMPT_FAILED);
	ck_assert_str_eq(stored->history[0].error, "boom");
	ck_assert_int_eq(stored->history[0].started_at, started);
	ck_assert_int_ge(stored->history[0].finished_at, before);
	ck_assert_int_le(stored->history[0].finished_at, after);
	job_free(stored);
	assert_counts(st, "default", 0, 0, 0, 0, 0, 1);

	struct room_claim rc = {.got = {.n = 0}};
	struct store_op op = claim_op(st, 1, &rc);
	ck_assert_int_eq(op.claim.nclaimed, 0);
	ck_assert_int_eq(op.claim.next_due, job->run_at);
	claimed_free(&rc.got);
	job_free(job);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_retry_cycle_keeps_history_in_order)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *sub = NULL;
	struct job *job = submit_and_claim(st, 2, &sub);
	/* Due at once: the next claim promotes and runs it. */
	job->state = JOB_SCHEDULED;
	job->outcome = ATTEMPT_TIMEOUT;
	job->error = strdup("timeout: ran longer than 0.05 s");
	job->run_at = clock_now_ms() - 1;
	ck_assert_int_eq(finish(st, job), STORE_OK);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	struct job *second = got.jobs[0];
	ck_assert_str_eq(second->id, sub->id);
	ck_assert_int_eq(second->attempts, 2);
	second->state = JOB_FAILED;
	second->outcome = ATTEMPT_FAILED;
	free(second->error);
	second->error = strdup("boom 2");
	second->finished_at = clock_now_ms();
	ck_assert_int_eq(finish(st, second), STORE_OK);
	ck_assert_int_eq(atomic_load(&rec.finished), 1);

	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_FAILED);
	ck_assert_str_eq(stored->error, "boom 2");
	ck_assert_int_eq(stored->attempts, 2);
	ck_assert_int_eq(stored->finished_at, second->finished_at);
	ck_assert_int_eq(stored->nhistory, 2);
	ck_assert_int_eq(stored->history[0].attempt, 1);
	ck_assert_int_eq(stored->history[0].outcome, ATTEMPT_TIMEOUT);
	ck_assert_str_eq(stored->history[0].error, "timeout: ran longer than 0.05 s");
	ck_assert_int_eq(stored->history[1].attempt, 2);
	ck_assert_int_eq(stored->history[1].outcome, ATTEMPT_FAILED);
	ck_assert_str_eq(stored->history[1].error, "boom 2");
	ck_assert_int_eq(stored->history[1].started_at, second->started_at);
	ck_assert_int_eq(stored->history[1].finished_at, second->finished_at);
	job_free(stored);
	claimed_free(&got);
	job_free(job);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_finish_records_each_outcome)
{
	struct store *st = open_store(NULL);
	static const struct { enum job_state state; enum attempt_outcome outcome; const char *error; } ends[] = {
		{JOB_SUCCEEDED, ATTEMPT_SUCCEEDED, NULL},
		{JOB_FAILED, ATTEMPT_FAILED, "boom"},
		{JOB_FAILED, ATTEMPT_TIMEOUT, "timeout: ran longer than 1 s"},
		{JOB_CANCELED, ATTEMPT_CANCELED, "canceled"},
	};
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		struct job *sub = NULL;
		struct job *job = submit_and_claim(st, 3, &sub);
		job->state = ends[i].state;
		job->outcome = ends[i].outcome;
		if (ends[i].error)
			job->error = strdup(ends[i].error);
		job->finished_at = clock_now_ms();
		ck_assert_int_eq(finish(st, job), STORE_OK);
		struct job *stored = get_job(st, sub->id);
		ck_assert_int_eq(stored->state, ends[i].state);
		ck_assert_int_eq(stored->nhistory, 1);
		ck_assert_int_eq(stored->history[0].attempt, 1);
		ck_assert_msg(stored->history[0].outcome == ends[i].outcome, "case %zu: outcome %s", i,
		              attempt_outcome_name(stored->history[0].outcome));
		if (ends[i].error)
			ck_assert_str_eq(stored->history[0].error, ends[i].error);
		else
			ck_assert_ptr_null(stored->history[0].error);
		ck_assert_int_eq(stored->history[0].started_at, job->started_at);
		ck_assert_int_eq(stored->history[0].finished_at, job->finished_at);
		job_free(stored);
		job_free(job);
		job_free(sub);
	}
	store_close(st);
}
END_TEST

START_TEST(store_requeue_records_no_history)
{
	struct store *st = open_store(NULL);
	struct job *sub = NULL;
	struct job *job = submit_and_claim(st, 3, &sub);
	job->state = JOB_QUEUED;
	job->outcome = ATTEMPT_CANCELED;
	ck_assert_int_eq(finish(st, job), STORE_OK);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_QUEUED);
	ck_assert_int_eq(stored->attempts, 0);
	ck_assert(stored->has_history);
	ck_assert_int_eq(stored->nhistory, 0);
	job_free(stored);
	ck_assert_int_eq(history_rows(sub->seq), 0);
	job_free(job);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_retry_requeues_a_failed_job)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	/* Out of attempts: one more is granted. */
	struct job *sub = NULL;
	struct job *job = submit_and_claim(st, 1, &sub);
	job->state = JOB_FAILED;
	job->outcome = ATTEMPT_FAILED;
	job->error = strdup("boom");
	job->result = strdup("{\"partial\":true}");
	job->has_progress = true;
	job->progress_percent = 50;
	snprintf(job->progress_message, sizeof job->progress_message, "half");
	ck_assert_int_eq(finish(st, job), STORE_OK);
	int submitted = atomic_load(&rec.submitted);

	int64_t before = clock_now_ms();
	struct target_reply op = id_op(st, STORE_OP_RETRY, sub->id);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_FAILED);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_QUEUED);
	ck_assert_int_eq(stored->attempts, 1);
	ck_assert_int_eq(stored->max_attempts, 2);
	ck_assert_ptr_null(stored->error);
	ck_assert_ptr_null(stored->result);
	ck_assert(!stored->has_progress);
	ck_assert_int_eq(stored->finished_at, 0);
	ck_assert_int_ge(stored->run_at, before);
	ck_assert_int_le(stored->run_at, after);
	ck_assert_int_eq(stored->nhistory, 1);
	ck_assert_int_eq(stored->history[0].outcome, ATTEMPT_FAILED);
	ck_assert_str_eq(stored->history[0].error, "boom");
	job_free(stored);
	ck_assert_msg(wait_for_count(&rec.submitted, submitted + 1), "submitted not called after a retry");

	/* It runs again as attempt 2. */
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, sub->id);
	ck_assert_int_eq(got.jobs[0]->attempts, 2);
	claimed_free(&got);
	job_free(job);
	job_free(sub);

	/* Attempts left: max_attempts stays. */
	job = submit_and_claim(st, 3, &sub);
	job->state = JOB_FAILED;
	job->outcome = ATTEMPT_FAILED;
	job->error = strdup("not retryable");
	ck_assert_int_eq(finish(st, job), STORE_OK);
	ck_assert_int_eq(id_op(st, STORE_OP_RETRY, sub->id).found, JOB_FAILED);
	stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_QUEUED);
	ck_assert_int_eq(stored->max_attempts, 3);
	ck_assert_int_eq(stored->attempts, 1);
	job_free(stored);
	job_free(job);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_retry_requeues_a_canceled_job)
{
	struct store *st = open_store(NULL);
	struct job *sub = submit(st, "echo", "default", 0, NULL);
	ck_assert_int_eq(cancel(st, sub->id).found, JOB_QUEUED);
	struct target_reply op = id_op(st, STORE_OP_RETRY, sub->id);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_CANCELED);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_QUEUED);
	ck_assert_ptr_null(stored->error);
	ck_assert_int_eq(stored->finished_at, 0);
	ck_assert_int_eq(stored->attempts, 0);
	ck_assert_int_eq(stored->max_attempts, 3);
	job_free(stored);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_retry_of_other_states_changes_nothing)
{
	struct store *st = open_store(NULL);
	/* succeeded */
	struct job *sub = NULL;
	struct job *job = submit_and_claim(st, 1, &sub);
	job->state = JOB_SUCCEEDED;
	job->outcome = ATTEMPT_SUCCEEDED;
	job->result = strdup("[42]");
	job->finished_at = clock_now_ms() - 5;
	ck_assert_int_eq(finish(st, job), STORE_OK);
	struct target_reply op = id_op(st, STORE_OP_RETRY, sub->id);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_SUCCEEDED);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_SUCCEEDED);
	ck_assert_str_eq(stored->result, "[42]");
	ck_assert_int_eq(stored->finished_at, job->finished_at);
	ck_assert_int_eq(stored->attempts, 1);
	ck_assert_int_eq(stored->max_attempts, 1);
	ck_assert_int_eq(stored->run_at, sub->run_at);
	job_free(stored);
	job_free(job);
	job_free(sub);

	/* running, queued, scheduled */
	job = submit_and_claim(st, 3, &sub);
	op = id_op(st, STORE_OP_RETRY, sub->id);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_RUNNING);
	ck_assert_int_eq(state_of(st, sub->id), JOB_RUNNING);
	job_free(job);
	job_free(sub);
	struct job *queued = submit(st, "echo", "default", 0, NULL);
	op = id_op(st, STORE_OP_RETRY, queued->id);
	ck_assert_int_eq(op.found, JOB_QUEUED);
	ck_assert_int_eq(state_of(st, queued->id), JOB_QUEUED);
	struct job *sch = make_job("echo", "default", 0, NULL);
	sch->state = JOB_SCHEDULED;
	sch->run_at = sch->created_at + 3600000;
	struct store_op sop = {.kind = STORE_OP_SUBMIT, .submit.job = sch};
	ck_assert_int_eq(store_run(st, &sop), STORE_OK);
	op = id_op(st, STORE_OP_RETRY, sch->id);
	ck_assert_int_eq(op.found, JOB_SCHEDULED);
	stored = get_job(st, sch->id);
	ck_assert_int_eq(stored->state, JOB_SCHEDULED);
	ck_assert_int_eq(stored->run_at, sch->run_at);
	job_free(stored);

	/* unknown */
	char id[UUID_LEN + 1];
	uuid_v7(id);
	ck_assert_int_eq(id_op(st, STORE_OP_RETRY, id).rc, STORE_NOT_FOUND);
	job_free(queued);
	job_free(sch);
	store_close(st);
}
END_TEST

START_TEST(store_delete_removes_finished_job_and_history)
{
	struct store *st = open_store(NULL);
	struct job *keep = NULL;
	struct job *kept = submit_and_claim(st, 3, &keep);
	kept->state = JOB_FAILED;
	kept->outcome = ATTEMPT_FAILED;
	ck_assert_int_eq(finish(st, kept), STORE_OK);

	static const enum job_state ends[] = {JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED};
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		struct job *sub = NULL;
		struct job *job = submit_and_claim(st, 3, &sub);
		job->state = ends[i];
		job->outcome = ends[i] == JOB_SUCCEEDED ? ATTEMPT_SUCCEEDED : ATTEMPT_FAILED;
		ck_assert_int_eq(finish(st, job), STORE_OK);
		ck_assert_int_eq(history_rows(sub->seq), 1);
		struct target_reply op = id_op(st, STORE_OP_DELETE, sub->id);
		ck_assert_int_eq(op.rc, STORE_OK);
		ck_assert_int_eq(op.found, ends[i]);
		struct job *gone = NULL;
		ck_assert_int_eq(store_get_job(st, sub->id, &gone), STORE_NOT_FOUND);
		ck_assert_int_eq(history_rows(sub->seq), 0);
		/* Deleting again: not found. */
		ck_assert_int_eq(id_op(st, STORE_OP_DELETE, sub->id).rc, STORE_NOT_FOUND);
		job_free(job);
		job_free(sub);
	}
	/* The other job and its history are untouched. */
	struct job *stored = get_job(st, keep->id);
	ck_assert_int_eq(stored->state, JOB_FAILED);
	ck_assert_int_eq(stored->nhistory, 1);
	job_free(stored);
	assert_counts(st, "default", 0, 0, 0, 1, 0, 0);
	job_free(kept);
	job_free(keep);
	store_close(st);
}
END_TEST

START_TEST(store_delete_of_unfinished_job_changes_nothing)
{
	struct store *st = open_store(NULL);
	struct job *sub = NULL;
	struct job *job = submit_and_claim(st, 3, &sub);
	struct target_reply op = id_op(st, STORE_OP_DELETE, sub->id);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert_int_eq(op.found, JOB_RUNNING);
	ck_assert_int_eq(state_of(st, sub->id), JOB_RUNNING);
	/* Its attempt can still finish. */
	job->state = JOB_SUCCEEDED;
	job->outcome = ATTEMPT_SUCCEEDED;
	ck_assert_int_eq(finish(st, job), STORE_OK);
	ck_assert_int_eq(state_of(st, sub->id), JOB_SUCCEEDED);

	struct job *queued = submit(st, "echo", "default", 0, NULL);
	ck_assert_int_eq(id_op(st, STORE_OP_DELETE, queued->id).found, JOB_QUEUED);
	ck_assert_int_eq(state_of(st, queued->id), JOB_QUEUED);
	struct job *sch = make_job("echo", "default", 0, NULL);
	sch->state = JOB_SCHEDULED;
	sch->run_at = sch->created_at + 3600000;
	struct store_op sop = {.kind = STORE_OP_SUBMIT, .submit.job = sch};
	ck_assert_int_eq(store_run(st, &sop), STORE_OK);
	ck_assert_int_eq(id_op(st, STORE_OP_DELETE, sch->id).found, JOB_SCHEDULED);
	ck_assert_int_eq(state_of(st, sch->id), JOB_SCHEDULED);

	char id[UUID_LEN + 1];
	uuid_v7(id);
	ck_assert_int_eq(id_op(st, STORE_OP_DELETE, id).rc, STORE_NOT_FOUND);
	assert_counts(st, "default", 1, 0, 1, 0, 0, 1);
	job_free(job);
	job_free(sub);
	job_free(queued);
	job_free(sch);
	store_close(st);
}
END_TEST

/* ---- retention --------------------------------------------------------- */

/* Polls until id is gone; returns whether it went within POLL_LIMIT_MS. */
static bool wait_until_gone(struct store *st, const char *id)
{
	int64_t end = clock_mono_ms() + POLL_LIMIT_MS;
	for (;;) {
		struct job *job = NULL;
		enum store_rc rc = store_get_job(st, id, &job);
		job_free(job);
		if (rc == STORE_NOT_FOUND)
			return true;
		ck_assert_int_eq(rc, STORE_OK);
		if (clock_mono_ms() > end)
			return false;
		sleep_ms(10);
	}
}

START_TEST(store_retention_sweep_deletes_expired_jobs)
{
	struct store *st = open_store(NULL);
	struct job *keep = make_job("echo", "default", 0, NULL);
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = keep};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct job *brief = make_job("echo", "default", 0, NULL);
	brief->retention_s = 0.2;
	op = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = brief};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 2, &got), 2);
	for (int i = 0; i < 2; i++) {
		got.jobs[i]->state = JOB_SUCCEEDED;
		got.jobs[i]->outcome = ATTEMPT_SUCCEEDED;
		ck_assert_int_eq(finish(st, got.jobs[i]), STORE_OK);
	}
	ck_assert_int_eq(history_rows(brief->seq), 1);
	assert_counts(st, "default", 0, 0, 2, 0, 0, 0);

	ck_assert_msg(wait_until_gone(st, brief->id), "job with retention_s 0.2 still there after %d ms",
	              POLL_LIMIT_MS);
	ck_assert_int_eq(history_rows(brief->seq), 0);
	struct job *stored = get_job(st, keep->id);
	ck_assert_int_eq(stored->state, JOB_SUCCEEDED);
	ck_assert_int_eq(stored->nhistory, 1);
	job_free(stored);
	assert_counts(st, "default", 0, 0, 1, 0, 0, 0);
	claimed_free(&got);
	job_free(keep);
	job_free(brief);
	store_close(st);
}
END_TEST

START_TEST(store_retention_applies_to_canceled_and_not_to_retried_jobs)
{
	struct store *st = open_store(NULL);
	/* Canceled while queued, retention 0: swept. */
	struct job *gone = make_job("echo", "default", 0, NULL);
	gone->retention_s = 0;
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = gone};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	/* Failed, then retried before it expired: kept. */
	struct job *retried = make_job("fail", "default", 0, NULL);
	retried->retention_s = 0.1;
	op = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = retried};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, gone->id);
	got.jobs[0]->state = JOB_QUEUED; /* put back */
	ck_assert_int_eq(finish(st, got.jobs[0]), STORE_OK);
	ck_assert_int_eq(claim(st, 2, &got), 2);
	struct job *r = strcmp(got.jobs[1]->id, retried->id) == 0 ? got.jobs[1] : got.jobs[2];
	ck_assert_str_eq(r->id, retried->id);
	r->state = JOB_FAILED;
	r->outcome = ATTEMPT_FAILED;
	ck_assert_int_eq(finish(st, r), STORE_OK);
	ck_assert_int_eq(id_op(st, STORE_OP_RETRY, retried->id).found, JOB_FAILED);

	/* A sentinel that expires after the retried job would have. */
	struct job *sentinel = make_job("echo", "default", 0, NULL);
	sentinel->retention_s = 0.2;
	op = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = sentinel};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_eq(cancel(st, sentinel->id).found, JOB_QUEUED);
	struct job *g = strcmp(got.jobs[1]->id, gone->id) == 0 ? got.jobs[1] : got.jobs[2];
	ck_assert_str_eq(g->id, gone->id);
	g->state = JOB_SUCCEEDED;
	g->outcome = ATTEMPT_SUCCEEDED;
	ck_assert_int_eq(finish(st, g), STORE_OK);

	ck_assert_msg(wait_until_gone(st, gone->id), "retention_s 0 job still there");
	ck_assert_msg(wait_until_gone(st, sentinel->id), "canceled job with retention_s 0.2 still there");
	ck_assert_int_eq(state_of(st, retried->id), JOB_QUEUED);
	claimed_free(&got);
	job_free(gone);
	job_free(retried);
	job_free(sentinel);
	store_close(st);
}
END_TEST

/* ---- list -------------------------------------------------------------- */

START_TEST(store_list_jobs_newest_first)
{
	struct store *st = open_store(NULL);
	enum { N = 6 };
	struct job *jobs[N];
	for (int i = 0; i < N; i++)
		jobs[i] = submit(st, "echo", "default", i % 3 - 1, NULL);
	struct store_filter f = {.limit = 100};
	struct job **out;
	size_t n;
	int64_t next;
	list(st, &f, &out, &n, &next);
	ck_assert_uint_eq(n, N);
	ck_assert_int_eq(next, 0);
	for (int i = 0; i < N; i++) {
		ck_assert_str_eq(out[i]->id, jobs[N - 1 - i]->id);
		ck_assert_int_eq(out[i]->seq, jobs[N - 1 - i]->seq);
		ck_assert_int_eq(out[i]->priority, jobs[N - 1 - i]->priority);
	}
	jobs_free(out, n);
	for (int i = 0; i < N; i++)
		job_free(jobs[i]);
	store_close(st);
}
END_TEST

START_TEST(store_list_jobs_on_empty_store)
{
	struct store *st = open_store(NULL);
	struct store_filter f = {.limit = 10};
	struct job **out;
	size_t n;
	int64_t next;
	list(st, &f, &out, &n, &next);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(next, 0);
	jobs_free(out, n);
	store_close(st);
}
END_TEST

START_TEST(store_list_jobs_filters_by_state_queue_and_type)
{
	struct store *st = open_store(NULL);
	struct job *j[5];
	j[0] = submit(st, "echo", "q1", 0, NULL);
	j[1] = submit(st, "sleep", "q1", 9, "{\"seconds\":1}");
	j[2] = submit(st, "echo", "q2", 0, NULL);
	j[3] = submit(st, "fail", "q2", 0, NULL);
	j[4] = submit(st, "echo", "q1", 0, NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, j[1]->id);

	struct store_filter f = {.limit = 50, .has_state = true, .state = JOB_RUNNING};
	struct job **out;
	size_t n;
	int64_t next;
	list(st, &f, &out, &n, &next);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0]->id, j[1]->id);
	jobs_free(out, n);

	f = (struct store_filter){.limit = 50, .has_state = true, .state = JOB_QUEUED};
	list(st, &f, &out, &n, &next);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(out[0]->id, j[4]->id);
	ck_assert_str_eq(out[1]->id, j[3]->id);
	ck_assert_str_eq(out[2]->id, j[2]->id);
	ck_assert_str_eq(out[3]->id, j[0]->id);
	jobs_free(out, n);

	f = (struct store_filter){.limit = 50, .queue = "q1"};
	list(st, &f, &out, &n, &next);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(out[0]->id, j[4]->id);
	ck_assert_str_eq(out[1]->id, j[1]->id);
	ck_assert_str_eq(out[2]->id, j[0]->id);
	jobs_free(out, n);

	f = (struct store_filter){.limit = 50, .type = "echo"};
	list(st, &f, &out, &n, &next);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(out[0]->id, j[4]->id);
	ck_assert_str_eq(out[1]->id, j[2]->id);
	ck_assert_str_eq(out[2]->id, j[0]->id);
	jobs_free(out, n);

	f = (struct store_filter){.limit = 50, .queue = "q1", .type = "echo"};
	ck_assert_uint_eq(count_listed(st, &f), 2);
	f = (struct store_filter){.limit = 50, .has_state = true, .state = JOB_QUEUED, .queue = "q2", .type = "fail"};
	list(st, &f, &out, &n, &next);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0]->id, j[3]->id);
	jobs_free(out, n);
	f = (struct store_filter){.limit = 50, .has_state = true, .state = JOB_RUNNING, .queue = "q2"};
	ck_assert_uint_eq(count_listed(st, &f), 0);
	f = (struct store_filter){.limit = 50, .queue = "nope"};
	ck_assert_uint_eq(count_listed(st, &f), 0);
	f = (struct store_filter){.limit = 50, .has_state = true, .state = JOB_CANCELED};
	ck_assert_uint_eq(count_listed(st, &f), 0);

	claimed_free(&got);
	for (int i = 0; i < 5; i++)
		job_free(j[i]);
	store_close(st);
}
END_TEST

static const struct { int total, limit; bool filtered; } pagings[] = {
	{23, 5, false}, {20, 5, false}, {1, 1, false}, {2, 1, false}, {0, 3, false},
	{7, 100, false}, {7, 7, false}, {8, 7, false}, {30, 4, true},
};

START_TEST(store_list_jobs_pages_visit_every_job_once)
{
	int total = pagings[_i].total, limit = pagings[_i].limit;
	bool filtered = pagings[_i].filtered;
	struct store *st = open_store(NULL);
	/* Filtered runs interleave a second queue that must never show up. */
	int nwant = 0;
	int64_t want[64];
	for (int i = 0; i < total; i++) {
		struct job *j = submit(st, "echo", "main", 0, NULL);
		want[nwant++] = j->seq;
		job_free(j);
		if (filtered)
			job_free(submit(st, "echo", "noise", 0, NULL));
	}
	bool seen[64] = {false};
	int nseen = 0, pages = 0;
	int64_t before = 0, last_seq = INT64_MAX;
	for (;;) {
		struct store_filter f = {.limit = limit, .before_seq = before, .queue = filtered ? "main" : NULL};
		struct job **out;
		size_t n;
		int64_t next;
		list(st, &f, &out, &n, &next);
		pages++;
		ck_assert_int_le((int)n, limit);
		for (size_t k = 0; k < n; k++) {
			ck_assert_int_lt(out[k]->seq, last_seq);
			last_seq = out[k]->seq;
			ck_assert_str_eq(out[k]->queue, "main");
			int idx = -1;
			for (int w = 0; w < nwant; w++)
				if (want[w] == out[k]->seq)
					idx = w;
			ck_assert_msg(idx >= 0, "unexpected seq %lld", (long long)out[k]->seq);
			ck_assert_msg(!seen[idx], "seq %lld listed twice", (long long)out[k]->seq);
			seen[idx] = true;
			nseen++;
		}
		if (next == 0) {
			jobs_free(out, n);
			break;
		}
		ck_assert_uint_eq(n, (size_t)limit);
		ck_assert_int_eq(next, out[n - 1]->seq);
		before = next;
		jobs_free(out, n);
		ck_assert_int_le(pages, total + 1);
	}
	ck_assert_int_eq(nseen, total);
	int want_pages = total == 0 ? 1 : (total + limit - 1) / limit;
	ck_assert_int_eq(pages, want_pages);
	store_close(st);
}
END_TEST

/* ---- group commit ------------------------------------------------------ */

enum { GC_THREADS = 8, GC_PER_THREAD = 25, GC_OPS = GC_THREADS * GC_PER_THREAD };

struct group_test {
	struct store *st;
	struct store_op ops[GC_OPS];
	struct job *jobs[GC_OPS];
	atomic_int done;
	atomic_int ok;
};

struct poster {
	struct group_test *g;
	int first;
};

static void group_done(struct store_op *op)
{
	struct group_test *g = op->arg;
	if (op->rc == STORE_OK)
		atomic_fetch_add(&g->ok, 1);
	atomic_fetch_add(&g->done, 1);
}

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	for (int i = p->first; i < p->first + GC_PER_THREAD; i++)
		store_post(p->g->st, &p->g->ops[i]);
	return NULL;
}

START_TEST(store_group_commit_completes_concurrent_posts)
{
	struct recorder rec;
	recorder_init(&rec);
	static struct group_test g;
	memset(&g, 0, sizeof g);
	atomic_init(&g.done, 0);
	atomic_init(&g.ok, 0);
	g.st = open_store(&rec);
	for (int i = 0; i < GC_OPS; i++) {
		char payload[32];
		snprintf(payload, sizeof payload, "{\"i\":%d}", i);
		g.jobs[i] = make_job("echo", i % 2 ? "odd" : "even", i % 7, payload);
		g.ops[i] = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = g.jobs[i],
		                             .done = group_done, .arg = &g};
	}
	pthread_t th[GC_THREADS];
	struct poster posters[GC_THREADS];
	for (int t = 0; t < GC_THREADS; t++) {
		posters[t] = (struct poster){.g = &g, .first = t * GC_PER_THREAD};
		ck_assert_int_eq(pthread_create(&th[t], NULL, poster_main, &posters[t]), 0);
	}
	for (int t = 0; t < GC_THREADS; t++)
		pthread_join(th[t], NULL);
	ck_assert_msg(wait_for_count(&g.done, GC_OPS), "%d of %d ops done", atomic_load(&g.done), GC_OPS);
	ck_assert_int_eq(atomic_load(&g.ok), GC_OPS);

	for (int i = 0; i < GC_OPS; i++) {
		ck_assert_int_eq(g.ops[i].rc, STORE_OK);
		ck_assert_int_gt(g.jobs[i]->seq, 0);
		struct job *stored = get_job(g.st, g.jobs[i]->id);
		ck_assert_int_eq(stored->seq, g.jobs[i]->seq);
		ck_assert_str_eq(stored->payload, g.jobs[i]->payload);
		job_free(stored);
	}
	struct store_filter f = {.limit = 1000};
	ck_assert_uint_eq(count_listed(g.st, &f), GC_OPS);
	f = (struct store_filter){.limit = 1000, .queue = "odd"};
	ck_assert_uint_eq(count_listed(g.st, &f), GC_OPS / 2);
	/* One call per committed group that held a submit; the last one may
	 * come just after the last done(). */
	int64_t end = clock_mono_ms() + POLL_LIMIT_MS;
	while (atomic_load(&rec.submitted) == 0 && clock_mono_ms() < end)
		sleep_ms(1);
	ck_assert_int_ge(atomic_load(&rec.submitted), 1);
	ck_assert_int_le(atomic_load(&rec.submitted), GC_OPS);
	store_close(g.st);
	for (int i = 0; i < GC_OPS; i++)
		job_free(g.jobs[i]);
}
END_TEST

/* The writer is held inside the first op's done() while 200 submits are
 * posted; they must all land in the next single transaction. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool entered, open;
};

static void gate_done(struct store_op *op)
{
	struct gate *g = op->arg;
	pthread_mutex_lock(&g->mu);
	g->entered = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void count_done(struct store_op *op)
{
	atomic_fetch_add((atomic_int *)op->arg, 1);
}

START_TEST(store_group_commit_puts_queued_submits_in_one_transaction)
{
	enum { N = 200 };
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct gate g = {.entered = false, .open = false};
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	struct store_op first = {.kind = STORE_OP_PING, .done = gate_done, .arg = &g};
	store_post(st, &first);
	pthread_mutex_lock(&g.mu);
	while (!g.entered)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);

	struct store_stats before;
	store_get_stats(st, &before);
	static struct store_op ops[N];
	static struct job *jobs[N];
	atomic_int done;
	atomic_init(&done, 0);
	for (int i = 0; i < N; i++) {
		jobs[i] = make_job("echo", "default", 0, "{}");
		ops[i] = (struct store_op){.kind = STORE_OP_SUBMIT, .submit.job = jobs[i], .done = count_done, .arg = &done};
		store_post(st, &ops[i]);
	}
	pthread_mutex_lock(&g.mu);
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	ck_assert_msg(wait_for_count(&done, N), "%d of %d submits done", atomic_load(&done), N);

	struct store_stats after;
	store_get_stats(st, &after);
	ck_assert_uint_eq(before.commits, 1);
	ck_assert_uint_eq(before.ops, 1);
	ck_assert_uint_eq(after.commits - before.commits, 1);
	ck_assert_uint_eq(after.ops - before.ops, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(ops[i].rc, STORE_OK);
	store_close(st);
	for (int i = 0; i < N; i++)
		job_free(jobs[i]);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
}
END_TEST

/* The group's last op is a submit whose id the first one took: it fails
 * alone, and the first submit holds and is told so (on PostgreSQL the last
 * op's statement carries the COMMIT, so its failure comes after it). */
START_TEST(store_group_last_submit_with_a_taken_id_fails_alone)
{
	struct store *st = open_store(NULL);
	struct gate g = {.entered = false, .open = false};
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	struct store_op first = {.kind = STORE_OP_PING, .done = gate_done, .arg = &g};
	store_post(st, &first);
	pthread_mutex_lock(&g.mu);
	while (!g.entered)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	struct store_stats before, after;
	store_get_stats(st, &before);

	atomic_int done;
	atomic_init(&done, 0);
	struct job *x = make_job("echo", "default", 0, "{}"), *y = make_job("echo", "default", 0, "{}");
	memcpy(y->id, x->id, sizeof y->id);
	struct store_op sx = {.kind = STORE_OP_SUBMIT, .submit.job = x, .done = count_done, .arg = &done};
	struct store_op sy = {.kind = STORE_OP_SUBMIT, .submit.job = y, .done = count_done, .arg = &done};
	store_post(st, &sx);
	store_post(st, &sy);
	pthread_mutex_lock(&g.mu);
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	ck_assert_msg(wait_for_count(&done, 2), "%d of 2 submits done", atomic_load(&done));
	store_get_stats(st, &after);

	ck_assert_int_eq(sx.rc, STORE_OK);
	ck_assert_int_eq(sy.rc, STORE_UNAVAILABLE);
	ck_assert_int_eq(state_of(st, x->id), JOB_QUEUED);
	ck_assert_uint_eq(after.commits - before.commits, 1);
	store_close(st);
	job_free(x);
	job_free(y);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
}
END_TEST

START_TEST(store_list_jobs_treats_limit_below_one_as_one)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	for (int i = 0; i < 3; i++) {
		struct job *job = make_job("echo", "default", 0, "{}");
		struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = job};
		ck_assert_int_eq(store_run(st, &op), STORE_OK);
		job_free(job);
	}
	struct store_filter f = {.limit = 0};
	struct job **jobs = NULL;
	size_t n = 0;
	int64_t next = -1;
	ck_assert_int_eq(store_list_jobs(st, &f, &jobs, &n, &next), STORE_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_gt(next, 0);
	job_free(jobs[0]);
	free(jobs);
	store_close(st);
}
END_TEST

/* ---- idempotency keys -------------------------------------------------- */

/* A job submitted with Idempotency-Key key for a request body. */
static struct job *make_keyed_job(const char *key, const char *body)
{
	struct job *job = make_job("echo", "default", 0, body);
	job->idem_key = strdup(key);
	ck_assert_ptr_nonnull(job->idem_key);
	digest_sha256_hex(body, strlen(body), job->idem_hash);
	return job;
}

static struct store_op submit_op(struct store *st, struct job *job)
{
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = job};
	store_run(st, &op);
	return op;
}

static int64_t rows_with_key(const char *key)
{
	char sql[256];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE idem_key = '%s'", key);
	return db_int(sql);
}

START_TEST(store_submit_with_idempotency_key_inserts_once)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *first = make_keyed_job("key-1", "{\"type\":\"echo\"}");
	struct store_op op = submit_op(st, first);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert(!op.submit.replayed);
	ck_assert_int_gt(first->seq, 0);
	ck_assert_int_eq(rows_with_key("key-1"), 1);

	/* The same key and body: the first job, nothing inserted. */
	struct job *again = make_keyed_job("key-1", "{\"type\":\"echo\"}");
	char fresh_id[UUID_LEN + 1];
	memcpy(fresh_id, again->id, sizeof fresh_id);
	ck_assert_str_ne(fresh_id, first->id);
	op = submit_op(st, again);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert(op.submit.replayed);
	ck_assert_str_eq(again->id, first->id);
	struct job *gone = NULL;
	ck_assert_int_eq(store_get_job(st, fresh_id, &gone), STORE_NOT_FOUND);
	ck_assert_int_eq(rows_with_key("key-1"), 1);
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs"), 1);

	/* The same key with another body: a conflict, nothing inserted. */
	struct job *other = make_keyed_job("key-1", "{\"type\":\"echo\",\"priority\":1}");
	char other_id[UUID_LEN + 1];
	memcpy(other_id, other->id, sizeof other_id);
	op = submit_op(st, other);
	ck_assert_int_eq(op.rc, STORE_CONFLICT);
	ck_assert(!op.submit.replayed);
	ck_assert_str_eq(other->id, other_id);
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs"), 1);
	assert_counts(st, "default", 1, 0, 0, 0, 0, 0);

	/* The stored job is the first one as submitted. */
	struct job *stored = get_job(st, first->id);
	ck_assert_int_eq(stored->seq, first->seq);
	ck_assert_str_eq(stored->payload, "{\"type\":\"echo\"}");
	job_free(stored);
	job_free(first);
	job_free(again);
	job_free(other);
	store_close(st);
}
END_TEST

START_TEST(store_idempotency_key_is_free_again_after_delete)
{
	struct store *st = open_store(NULL);
	struct job *first = make_keyed_job("key-d", "{\"a\":1}");
	ck_assert_int_eq(submit_op(st, first).rc, STORE_OK);
	ck_assert_int_eq(cancel(st, first->id).found, JOB_QUEUED);
	struct target_reply del = id_op(st, STORE_OP_DELETE, first->id);
	ck_assert_int_eq(del.rc, STORE_OK);
	ck_assert_int_eq(del.found, JOB_CANCELED);
	ck_assert_int_eq(rows_with_key("key-d"), 0);

	/* Even another body: the key is new again. */
	struct job *second = make_keyed_job("key-d", "{\"a\":2}");
	struct store_op op = submit_op(st, second);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert(!op.submit.replayed);
	ck_assert_str_ne(second->id, first->id);
	ck_assert_int_gt(second->seq, 0);
	ck_assert_int_eq(state_of(st, second->id), JOB_QUEUED);
	ck_assert_int_eq(rows_with_key("key-d"), 1);
	job_free(first);
	job_free(second);
	store_close(st);
}
END_TEST

START_TEST(store_idempotency_keys_are_independent)
{
	struct store *st = open_store(NULL);
	/* The same body under two keys, and without a key twice: four jobs. */
	struct job *a = make_keyed_job("key-a", "{}");
	struct job *b = make_keyed_job("key-b", "{}");
	struct job *c = make_job("echo", "default", 0, "{}");
	struct job *d = make_job("echo", "default", 0, "{}");
	struct job *jobs[] = {a, b, c, d};
	for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++) {
		struct store_op op = submit_op(st, jobs[i]);
		ck_assert_int_eq(op.rc, STORE_OK);
		ck_assert(!op.submit.replayed);
		ck_assert_int_gt(jobs[i]->seq, 0);
	}
	ck_assert_str_ne(a->id, b->id);
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs"), 4);
	/* Replaying one key answers with its own job only. */
	struct job *again = make_keyed_job("key-b", "{}");
	struct store_op op = submit_op(st, again);
	ck_assert_int_eq(op.rc, STORE_OK);
	ck_assert(op.submit.replayed);
	ck_assert_str_eq(again->id, b->id);
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs"), 4);
	for (size_t i = 0; i < sizeof jobs / sizeof jobs[0]; i++)
		job_free(jobs[i]);
	job_free(again);
	store_close(st);
}
END_TEST

/* ---- batches ------------------------------------------------------------ */

/* Runs a BATCH op over jobs[n] with a fresh batch id (in op.batch.id). */
static struct store_op batch_op(struct store *st, struct job **jobs, int n, const char *url)
{
	struct store_op op = {.kind = STORE_OP_BATCH, .batch.jobs = jobs, .batch.njobs = n, .batch.url = url};
	uuid_v7(op.batch.id);
	store_run(st, &op);
	return op;
}

static struct batch_info get_batch(struct store *st, const char *id)
{
	struct batch_info b;
	memset(&b, 0x5a, sizeof b);
	ck_assert_int_eq(store_get_batch(st, id, &b), STORE_OK);
	ck_assert_str_eq(b.id, id);
	return b;
}

/* Fails unless the batch's counts are exactly these, in enum job_state
 * order: queued, running, succeeded, failed, canceled, scheduled. */
static void assert_batch_counts(const struct batch_info *b, int64_t queued, int64_t running,
                                int64_t succeeded, int64_t failed, int64_t canceled, int64_t scheduled)
{
	const int64_t want[JOB_STATE_COUNT] = {queued, running, succeeded, failed, canceled, scheduled};
	for (int s = 0; s < JOB_STATE_COUNT; s++)
		ck_assert_msg(b->counts[s] == want[s], "batch %s: %s count %lld, want %lld", b->id,
		              job_state_name((enum job_state)s), (long long)b->counts[s], (long long)want[s]);
}

START_TEST(store_batch_inserts_every_job_with_its_batch_id)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *jobs[3] = {
		make_job("echo", "bq", 0, "{\"i\":0}"),
		make_keyed_job("ignored-in-batches", "{}"),
		make_job("echo", "bq", 0, NULL),
	};
	jobs[2]->state = JOB_SCHEDULED;
	jobs[2]->run_at = jobs[2]->created_at + 3600000;
	int64_t before = clock_now_ms();
	struct store_op op = batch_op(st, jobs, 3, NULL);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(op.rc, STORE_OK);
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(jobs[i]->batch_id, op.batch.id);
		ck_assert_int_gt(jobs[i]->seq, 0);
		struct job *stored = get_job(st, jobs[i]->id);
		ck_assert_str_eq(stored->batch_id, op.batch.id);
		ck_assert_ptr_null(stored->callback.url);
		job_free(stored);
	}
	ck_assert_int_lt(jobs[0]->seq, jobs[1]->seq);
	ck_assert_int_lt(jobs[1]->seq, jobs[2]->seq);
	/* Keys belong to single submissions. */
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs WHERE idem_key IS NOT NULL"), 0);

	struct batch_info b = get_batch(st, op.batch.id);
	ck_assert_int_eq(b.total, 3);
	assert_batch_counts(&b, 2, 0, 0, 0, 0, 1);
	ck_assert_int_ge(b.created_at, before);
	ck_assert_int_le(b.created_at, after);
	ck_assert_int_eq(b.finished_at, 0);
	ck_assert_ptr_null(b.callback.url);
	ck_assert_int_eq(b.callback.state, DELIVERY_NONE);
	delivery_clear(&b.callback);
	ck_assert_msg(wait_for_count(&rec.submitted, 1), "submitted not called after a batch");

	/* A batch with a callback keeps its URL; it waits until done. */
	struct job *more[1] = {make_job("echo", "bq", 0, NULL)};
	struct store_op op2 = batch_op(st, more, 1, "https://example.com/batch");
	ck_assert_int_eq(op2.rc, STORE_OK);
	b = get_batch(st, op2.batch.id);
	ck_assert_int_eq(b.total, 1);
	ck_assert_str_eq(b.callback.url, "https://example.com/batch");
	ck_assert_int_eq(b.callback.state, DELIVERY_NONE);
	ck_assert_int_eq(b.callback.attempts, 0);
	delivery_clear(&b.callback);
	assert_counts(st, "bq", 2, 0, 0, 0, 0, 1);
	assert_counts(st, "default", 1, 0, 0, 0, 0, 0);

	char unknown[UUID_LEN + 1];
	uuid_v7(unknown);
	struct batch_info none;
	ck_assert_int_eq(store_get_batch(st, unknown, &none), STORE_NOT_FOUND);
	for (int i = 0; i < 3; i++)
		job_free(jobs[i]);
	job_free(more[0]);
	store_close(st);
}
END_TEST

START_TEST(store_batch_with_a_failing_job_leaves_nothing_and_spares_the_group)
{
	struct store *st = open_store(NULL);
	/* Hold the writer in a first op's done() so the three ops below are
	 * applied in one group transaction. */
	struct gate g = {.entered = false, .open = false};
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	struct store_op first = {.kind = STORE_OP_PING, .done = gate_done, .arg = &g};
	store_post(st, &first);
	pthread_mutex_lock(&g.mu);
	while (!g.entered)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	struct store_stats before;
	store_get_stats(st, &before);

	atomic_int done;
	atomic_init(&done, 0);
	struct job *x = make_job("echo", "default", 0, NULL);
	struct job *y = make_job("echo", "default", 0, NULL);
	/* The second job repeats the first one's id: UNIQUE(id) fails it (the
	 * writer logs that constraint error). */
	struct job *jobs[3] = {make_job("echo", "bad", 0, NULL), make_job("echo", "bad", 0, NULL),
	                       make_job("echo", "bad", 0, NULL)};
	memcpy(jobs[1]->id, jobs[0]->id, sizeof jobs[1]->id);
	struct store_op ops[3] = {
		{.kind = STORE_OP_SUBMIT, .submit.job = x, .done = count_done, .arg = &done},
		{.kind = STORE_OP_BATCH, .batch.jobs = jobs, .batch.njobs = 3, .batch.url = "http://example.com/b",
		 .done = count_done, .arg = &done},
		{.kind = STORE_OP_SUBMIT, .submit.job = y, .done = count_done, .arg = &done},
	};
	uuid_v7(ops[1].batch.id);
	for (int i = 0; i < 3; i++)
		store_post(st, &ops[i]);
	pthread_mutex_lock(&g.mu);
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	ck_assert_msg(wait_for_count(&done, 3), "%d of 3 ops done", atomic_load(&done));
	struct store_stats after;
	store_get_stats(st, &after);
	ck_assert_uint_eq(after.commits - before.commits, 1);

	ck_assert_int_ne(ops[1].rc, STORE_OK);
	struct batch_info b;
	ck_assert_int_eq(store_get_batch(st, ops[1].batch.id, &b), STORE_NOT_FOUND);
	for (int i = 0; i < 3; i++) {
		struct job *gone = NULL;
		ck_assert_msg(store_get_job(st, jobs[i]->id, &gone) == STORE_NOT_FOUND, "batch job %d was kept", i);
	}
	ck_assert_int_eq(db_int("SELECT count(*) FROM batches"), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM batch_counts WHERE n <> 0"), 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs WHERE batch_id IS NOT NULL"), 0);
	assert_counts(st, "bad", 0, 0, 0, 0, 0, 0);

	/* The rest of the group committed. */
	ck_assert_int_eq(ops[0].rc, STORE_OK);
	ck_assert_int_eq(ops[2].rc, STORE_OK);
	ck_assert_int_eq(state_of(st, x->id), JOB_QUEUED);
	ck_assert_int_eq(state_of(st, y->id), JOB_QUEUED);
	assert_counts(st, "default", 2, 0, 0, 0, 0, 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs"), 2);
	store_close(st);
	job_free(x);
	job_free(y);
	for (int i = 0; i < 3; i++)
		job_free(jobs[i]);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
}
END_TEST

/* Submits a batch of n plain jobs in queue "bq"; returns the op (batch id
 * in op.batch.id). The jobs go to out[n] (caller frees). */
static struct store_op submit_batch(struct store *st, int n, const char *url, struct job **out)
{
	for (int i = 0; i < n; i++)
		out[i] = make_job("echo", "bq", 0, NULL);
	struct store_op op = batch_op(st, out, n, url);
	ck_assert_int_eq(op.rc, STORE_OK);
	return op;
}

/* Ends a claimed job with state (succeeded, failed or canceled). */
static void end_job(struct store *st, struct job *job, enum job_state state)
{
	job->state = state;
	job->outcome = state == JOB_SUCCEEDED ? ATTEMPT_SUCCEEDED
	               : state == JOB_CANCELED ? ATTEMPT_CANCELED : ATTEMPT_FAILED;
	job->finished_at = clock_now_ms();
	ck_assert_int_eq(finish(st, job), STORE_OK);
}

START_TEST(store_batch_done_when_its_last_job_ends)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *jobs[3];
	struct store_op bop = submit_batch(st, 3, NULL, jobs);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 2, &got), 2);
	ck_assert_str_eq(got.jobs[0]->batch_id, bop.batch.id);

	end_job(st, got.jobs[0], JOB_SUCCEEDED);
	struct batch_info b = get_batch(st, bop.batch.id);
	assert_batch_counts(&b, 1, 1, 1, 0, 0, 0);
	ck_assert_int_eq(b.finished_at, 0);
	delivery_clear(&b.callback);
	/* A retry's wait does not end the batch. */
	got.jobs[1]->state = JOB_SCHEDULED;
	got.jobs[1]->outcome = ATTEMPT_FAILED;
	got.jobs[1]->run_at = clock_now_ms() - 1;
	ck_assert_int_eq(finish(st, got.jobs[1]), STORE_OK);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 0);
	struct claimed again = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &again), 1);
	ck_assert_str_eq(again.jobs[0]->id, got.jobs[1]->id);
	end_job(st, again.jobs[0], JOB_FAILED);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 0);
	b = get_batch(st, bop.batch.id);
	ck_assert_int_eq(b.finished_at, 0);
	delivery_clear(&b.callback);

	/* Canceling the last queued job ends the batch: the hook runs once,
	 * before done(), with the batch id. */
	int64_t before = clock_now_ms();
	struct target_reply cop = cancel(st, jobs[2]->id);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(cop.rc, STORE_OK);
	ck_assert_int_eq(cop.found, JOB_QUEUED);
	ck_assert_str_eq(cop.batch_id, bop.batch.id);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 1);
	ck_assert_str_eq(rec.batch_done_ids[0], bop.batch.id);
	b = get_batch(st, bop.batch.id);
	assert_batch_counts(&b, 0, 0, 1, 1, 1, 0);
	ck_assert_int_ge(b.finished_at, before);
	ck_assert_int_le(b.finished_at, after);
	delivery_clear(&b.callback);

	/* Nothing more calls it. */
	struct store_op ping = {.kind = STORE_OP_PING};
	ck_assert_int_eq(store_run(st, &ping), STORE_OK);
	ck_assert_int_eq(cancel(st, jobs[2]->id).found, JOB_CANCELED);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 1);
	claimed_free(&got);
	claimed_free(&again);
	for (int i = 0; i < 3; i++)
		job_free(jobs[i]);
	store_close(st);
}
END_TEST

START_TEST(store_batch_done_by_finishing_its_last_job)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	/* A job outside any batch finishing calls nothing. */
	struct job *plain = NULL;
	struct job *pj = submit_and_claim(st, 1, &plain);
	end_job(st, pj, JOB_SUCCEEDED);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 0);
	struct job *jobs[1];
	struct store_op bop = submit_batch(st, 1, NULL, jobs);

	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, jobs[0]->id);
	int64_t before = clock_now_ms();
	end_job(st, got.jobs[0], JOB_SUCCEEDED);
	int64_t after = clock_now_ms();
	ck_assert_int_eq(atomic_load(&rec.batch_done), 1);
	ck_assert_str_eq(rec.batch_done_ids[0], bop.batch.id);
	struct batch_info b = get_batch(st, bop.batch.id);
	assert_batch_counts(&b, 0, 0, 1, 0, 0, 0);
	ck_assert_int_ge(b.finished_at, before);
	ck_assert_int_le(b.finished_at, after);
	delivery_clear(&b.callback);
	claimed_free(&got);
	job_free(jobs[0]);
	job_free(pj);
	job_free(plain);
	store_close(st);
}
END_TEST

START_TEST(store_retry_in_a_done_batch_makes_it_not_done)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *jobs[2];
	struct store_op bop = submit_batch(st, 2, NULL, jobs);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 2, &got), 2);
	end_job(st, got.jobs[0], JOB_SUCCEEDED);
	end_job(st, got.jobs[1], JOB_FAILED);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 1);
	struct batch_info b = get_batch(st, bop.batch.id);
	ck_assert_int_gt(b.finished_at, 0);
	delivery_clear(&b.callback);

	struct target_reply rop = id_op(st, STORE_OP_RETRY, got.jobs[1]->id);
	ck_assert_int_eq(rop.rc, STORE_OK);
	ck_assert_int_eq(rop.found, JOB_FAILED);
	b = get_batch(st, bop.batch.id);
	ck_assert_int_eq(b.finished_at, 0);
	assert_batch_counts(&b, 1, 0, 1, 0, 0, 0);
	delivery_clear(&b.callback);
	cJSON *o = batch_to_json(&b);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "done")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "finished_at")));
	cJSON_Delete(o);

	/* It ends again, and says so again. */
	struct claimed again = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &again), 1);
	end_job(st, again.jobs[0], JOB_SUCCEEDED);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 2);
	ck_assert_str_eq(rec.batch_done_ids[1], bop.batch.id);
	b = get_batch(st, bop.batch.id);
	ck_assert_int_gt(b.finished_at, 0);
	assert_batch_counts(&b, 0, 0, 2, 0, 0, 0);
	delivery_clear(&b.callback);
	claimed_free(&got);
	claimed_free(&again);
	for (int i = 0; i < 2; i++)
		job_free(jobs[i]);
	store_close(st);
}
END_TEST

/* ---- callbacks ---------------------------------------------------------- */

#define DUE_MAX 8

struct due_list {
	struct due_callback items[DUE_MAX];
	int n;
	int64_t next;
};

static struct due_list due_at(struct store *st, int64_t now)
{
	struct due_list d;
	memset(&d, 0x5a, sizeof d);
	ck_assert_int_eq(store_due_callbacks(st, now, d.items, DUE_MAX, &d.n, &d.next), STORE_OK);
	ck_assert_int_ge(d.n, 0);
	ck_assert_int_le(d.n, DUE_MAX);
	return d;
}

/* The job with a callback to url, submitted. */
static struct job *submit_with_callback(struct store *st, const char *url)
{
	struct job *job = make_job("echo", "default", 0, NULL);
	if (url) {
		job->callback.url = strdup(url);
		ck_assert_ptr_nonnull(job->callback.url);
	}
	ck_assert_int_eq(submit_op(st, job).rc, STORE_OK);
	return job;
}

/* Claims the one queued job, which must be want, and ends it. */
static void run_to_end(struct store *st, const char *want, enum job_state state)
{
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, want);
	end_job(st, got.jobs[0], state);
	claimed_free(&got);
}

static struct store_op record_callback(struct store *st, const char *id, bool is_batch,
                                       enum delivery_state state, int status, const char *error,
                                       int64_t next_at)
{
	struct store_op op = {.kind = STORE_OP_CALLBACK, .callback = {.is_batch = is_batch, .delivery = state,
	                      .status = status, .error = error, .next_at = next_at}};
	snprintf(op.callback.id, sizeof op.callback.id, "%s", id);
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	return op;
}

static struct delivery callback_of(struct store *st, const char *id)
{
	struct job *job = get_job(st, id);
	struct delivery d = job->callback;
	memset(&job->callback, 0, sizeof job->callback);
	job_free(job);
	return d;
}

START_TEST(store_finished_job_with_callback_becomes_due)
{
	struct store *st = open_store(NULL);
	struct job *job = submit_with_callback(st, "http://example.com/cb");
	struct delivery d = callback_of(st, job->id);
	ck_assert_str_eq(d.url, "http://example.com/cb");
	ck_assert_int_eq(d.state, DELIVERY_NONE);
	delivery_clear(&d);
	struct due_list due = due_at(st, clock_now_ms() + 3600000);
	ck_assert_int_eq(due.n, 0);
	ck_assert_int_eq(due.next, 0);

	run_to_end(st, job->id, JOB_SUCCEEDED);
	struct job *stored = get_job(st, job->id);
	ck_assert_int_eq(stored->callback.state, DELIVERY_PENDING);
	ck_assert_int_eq(stored->callback.attempts, 0);
	ck_assert_int_eq(stored->callback.last_status, 0);
	ck_assert_ptr_null(stored->callback.last_error);
	int64_t finished_at = stored->finished_at;
	job_free(stored);
	due = due_at(st, clock_now_ms());
	ck_assert_int_eq(due.n, 1);
	ck_assert_str_eq(due.items[0].id, job->id);
	ck_assert(!due.items[0].is_batch);
	/* Due from the moment it finished. */
	ck_assert_int_eq(due_at(st, finished_at - 1).n, 0);
	ck_assert_int_eq(due_at(st, finished_at).n, 1);
	job_free(job);
	store_close(st);
}
END_TEST

START_TEST(store_job_without_callback_never_becomes_due)
{
	struct store *st = open_store(NULL);
	static const enum job_state ends[] = {JOB_SUCCEEDED, JOB_FAILED};
	for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
		struct job *job = submit_with_callback(st, NULL);
		run_to_end(st, job->id, ends[i]);
		job_free(job);
	}
	struct job *c = submit_with_callback(st, NULL);
	ck_assert_int_eq(cancel(st, c->id).found, JOB_QUEUED);
	struct delivery d = callback_of(st, c->id);
	ck_assert_ptr_null(d.url);
	ck_assert_int_eq(d.state, DELIVERY_NONE);
	delivery_clear(&d);
	struct due_list due = due_at(st, clock_now_ms() + 86400000);
	ck_assert_int_eq(due.n, 0);
	ck_assert_int_eq(due.next, 0);
	ck_assert_int_eq(db_int("SELECT count(*) FROM jobs WHERE callback_state IS NOT NULL"), 0);
	job_free(c);
	store_close(st);
}
END_TEST

START_TEST(store_canceled_job_with_callback_becomes_due)
{
	struct store *st = open_store(NULL);
	struct job *job = submit_with_callback(st, "https://example.com/cb");
	ck_assert_int_eq(cancel(st, job->id).found, JOB_QUEUED);
	struct due_list due = due_at(st, clock_now_ms());
	ck_assert_int_eq(due.n, 1);
	ck_assert_str_eq(due.items[0].id, job->id);
	ck_assert(!due.items[0].is_batch);
	job_free(job);
	store_close(st);
}
END_TEST

START_TEST(store_callback_pending_waits_until_next_at)
{
	struct store *st = open_store(NULL);
	struct job *job = submit_with_callback(st, "http://example.com/cb");
	run_to_end(st, job->id, JOB_FAILED);
	int64_t now = clock_now_ms();
	ck_assert_int_eq(due_at(st, now).n, 1);

	int64_t next_at = now + 3600000;
	record_callback(st, job->id, false, DELIVERY_PENDING, 503, "HTTP 503", next_at);
	struct due_list due = due_at(st, clock_now_ms());
	ck_assert_int_eq(due.n, 0);
	ck_assert_int_eq(due.next, next_at);
	struct delivery d = callback_of(st, job->id);
	ck_assert_int_eq(d.state, DELIVERY_PENDING);
	ck_assert_int_eq(d.attempts, 1);
	ck_assert_int_eq(d.last_status, 503);
	ck_assert_str_eq(d.last_error, "HTTP 503");
	delivery_clear(&d);

	/* At next_at it is due again. */
	due = due_at(st, next_at);
	ck_assert_int_eq(due.n, 1);
	ck_assert_str_eq(due.items[0].id, job->id);

	/* A network error has no status. */
	record_callback(st, job->id, false, DELIVERY_PENDING, 0, "connection refused", next_at + 1000);
	d = callback_of(st, job->id);
	ck_assert_int_eq(d.attempts, 2);
	ck_assert_int_eq(d.last_status, 0);
	ck_assert_str_eq(d.last_error, "connection refused");
	delivery_clear(&d);
	ck_assert_int_eq(due_at(st, clock_now_ms()).next, next_at + 1000);

	/* Giving up: failed, never due again. */
	record_callback(st, job->id, false, DELIVERY_FAILED, 500, "HTTP 500", 0);
	d = callback_of(st, job->id);
	ck_assert_int_eq(d.state, DELIVERY_FAILED);
	ck_assert_int_eq(d.attempts, 3);
	ck_assert_int_eq(d.last_status, 500);
	ck_assert_str_eq(d.last_error, "HTTP 500");
	delivery_clear(&d);
	due = due_at(st, next_at + 86400000);
	ck_assert_int_eq(due.n, 0);
	ck_assert_int_eq(due.next, 0);
	job_free(job);
	store_close(st);
}
END_TEST

START_TEST(store_callback_delivered_records_attempt_and_status)
{
	struct store *st = open_store(NULL);
	struct job *job = submit_with_callback(st, "http://example.com/cb");
	run_to_end(st, job->id, JOB_SUCCEEDED);
	record_callback(st, job->id, false, DELIVERY_DELIVERED, 200, NULL, 0);
	struct delivery d = callback_of(st, job->id);
	ck_assert_str_eq(d.url, "http://example.com/cb");
	ck_assert_int_eq(d.state, DELIVERY_DELIVERED);
	ck_assert_int_eq(d.attempts, 1);
	ck_assert_int_eq(d.last_status, 200);
	ck_assert_ptr_null(d.last_error);
	delivery_clear(&d);
	struct due_list due = due_at(st, clock_now_ms() + 86400000);
	ck_assert_int_eq(due.n, 0);
	ck_assert_int_eq(due.next, 0);

	/* A late second outcome for a delivered callback changes nothing. */
	record_callback(st, job->id, false, DELIVERY_FAILED, 500, "late", 0);
	d = callback_of(st, job->id);
	ck_assert_int_eq(d.state, DELIVERY_DELIVERED);
	ck_assert_int_eq(d.attempts, 1);
	ck_assert_int_eq(d.last_status, 200);
	delivery_clear(&d);
	job_free(job);
	store_close(st);
}
END_TEST

START_TEST(store_due_callbacks_respects_max)
{
	struct store *st = open_store(NULL);
	struct job *jobs[3];
	for (int i = 0; i < 3; i++) {
		jobs[i] = submit_with_callback(st, "http://example.com/cb");
		run_to_end(st, jobs[i]->id, JOB_SUCCEEDED);
		sleep_past(clock_now_ms()); /* distinct due times */
	}
	struct due_callback due[2];
	int n = -1;
	int64_t next = -1;
	ck_assert_int_eq(store_due_callbacks(st, clock_now_ms(), due, 2, &n, &next), STORE_OK);
	ck_assert_int_eq(n, 2);
	/* Oldest due first. */
	ck_assert_str_eq(due[0].id, jobs[0]->id);
	ck_assert_str_eq(due[1].id, jobs[1]->id);
	ck_assert_int_eq(due_at(st, clock_now_ms()).n, 3);
	for (int i = 0; i < 3; i++)
		job_free(jobs[i]);
	store_close(st);
}
END_TEST

START_TEST(store_done_batch_with_callback_becomes_due)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	/* Its jobs have no callback of their own. */
	struct job *jobs[1];
	struct store_op bop = submit_batch(st, 1, "https://example.com/batch", jobs);
	ck_assert_int_eq(due_at(st, clock_now_ms() + 3600000).n, 0);
	run_to_end(st, jobs[0]->id, JOB_SUCCEEDED);
	ck_assert_int_eq(atomic_load(&rec.batch_done), 1);

	struct batch_info b = get_batch(st, bop.batch.id);
	ck_assert_int_eq(b.callback.state, DELIVERY_PENDING);
	ck_assert_int_eq(b.callback.attempts, 0);
	delivery_clear(&b.callback);
	struct due_list due = due_at(st, clock_now_ms());
	ck_assert_int_eq(due.n, 1);
	ck_assert_str_eq(due.items[0].id, bop.batch.id);
	ck_assert(due.items[0].is_batch);

	record_callback(st, bop.batch.id, true, DELIVERY_DELIVERED, 204, NULL, 0);
	b = get_batch(st, bop.batch.id);
	ck_assert_int_eq(b.callback.state, DELIVERY_DELIVERED);
	ck_assert_int_eq(b.callback.attempts, 1);
	ck_assert_int_eq(b.callback.last_status, 204);
	ck_assert_ptr_null(b.callback.last_error);
	delivery_clear(&b.callback);
	ck_assert_int_eq(due_at(st, clock_now_ms() + 86400000).n, 0);
	job_free(jobs[0]);
	store_close(st);
}
END_TEST

START_TEST(store_due_callbacks_lists_jobs_and_batches)
{
	struct store *st = open_store(NULL);
	struct job *jobs[1];
	struct store_op bop = submit_batch(st, 1, "https://example.com/batch", jobs);
	run_to_end(st, jobs[0]->id, JOB_CANCELED);
	struct job *job = submit_with_callback(st, "http://example.com/cb");
	run_to_end(st, job->id, JOB_SUCCEEDED);
	struct due_list due = due_at(st, clock_now_ms());
	ck_assert_int_eq(due.n, 2);
	bool saw_job = false, saw_batch = false;
	for (int i = 0; i < due.n; i++) {
		if (strcmp(due.items[i].id, job->id) == 0) {
			ck_assert(!due.items[i].is_batch);
			saw_job = true;
		} else {
			ck_assert_str_eq(due.items[i].id, bop.batch.id);
			ck_assert(due.items[i].is_batch);
			saw_batch = true;
		}
	}
	ck_assert(saw_job && saw_batch);
	/* The earliest of a job's and a batch's retry times. */
	int64_t now = clock_now_ms();
	record_callback(st, job->id, false, DELIVERY_PENDING, 502, "HTTP 502", now + 5000);
	record_callback(st, bop.batch.id, true, DELIVERY_PENDING, 502, "HTTP 502", now + 3000);
	ck_assert_int_eq(due_at(st, now).next, now + 3000);
	record_callback(st, bop.batch.id, true, DELIVERY_DELIVERED, 200, NULL, 0);
	ck_assert_int_eq(due_at(st, now).next, now + 5000);
	job_free(job);
	job_free(jobs[0]);
	store_close(st);
}
END_TEST

/* Spec: "waiting = the job has not finished yet". A failed attempt that
 * will be retried does not finish the job. */
START_TEST(store_callback_waits_while_a_retry_is_scheduled)
{
	struct store *st = open_store(NULL);
	struct job *job = submit_with_callback(st, "http://example.com/cb");
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	got.jobs[0]->state = JOB_SCHEDULED;
	got.jobs[0]->outcome = ATTEMPT_FAILED;
	got.jobs[0]->run_at = clock_now_ms() + 3600000;
	ck_assert_int_eq(finish(st, got.jobs[0]), STORE_OK);
	ck_assert_int_eq(state_of(st, job->id), JOB_SCHEDULED);
	struct delivery d = callback_of(st, job->id);
	enum delivery_state state = d.state;
	delivery_clear(&d);
	ck_assert_msg(state == DELIVERY_NONE, "callback of a job waiting for its retry is %d, not waiting",
	              (int)state);
	ck_assert_int_eq(due_at(st, clock_now_ms() + 86400000).n, 0);
	claimed_free(&got);
	job_free(job);
	store_close(st);
}
END_TEST

/* A batch that is not done any more is not due for its batch.finished
 * callback (spec: it POSTs "when it becomes done"). */
START_TEST(store_retry_in_a_done_batch_withdraws_its_pending_callback)
{
	struct store *st = open_store(NULL);
	struct job *jobs[1];
	struct store_op bop = submit_batch(st, 1, "https://example.com/batch", jobs);
	run_to_end(st, jobs[0]->id, JOB_FAILED);
	struct due_list due = due_at(st, clock_now_ms());
	ck_assert_int_eq(due.n, 1);
	ck_assert(due.items[0].is_batch);

	ck_assert_int_eq(id_op(st, STORE_OP_RETRY, jobs[0]->id).found, JOB_FAILED);
	struct batch_info b = get_batch(st, bop.batch.id);
	enum delivery_state state = b.callback.state;
	delivery_clear(&b.callback);
	ck_assert_int_eq(b.finished_at, 0);
	ck_assert_msg(state == DELIVERY_NONE, "callback of a batch that is not done is %d, not waiting",
	              (int)state);
	due = due_at(st, clock_now_ms() + 86400000);
	ck_assert_msg(due.n == 0, "a batch that is not done is due for its callback");
	job_free(jobs[0]);
	store_close(st);
}
END_TEST

/* ---- each op all or nothing --------------------------------------------- */

/* Appends to out everything the store API shows of the store but queue
 * "sentinel": every job with its history, every queue's counts and pause,
 * every batch of those jobs. */
static void snapshot(struct store *st, char *out, size_t len)
{
	FILE *f = fmemopen(out, len, "w");
	ck_assert_ptr_nonnull(f);
	struct store_filter all = {.limit = 1000};
	struct job **jobs;
	size_t n;
	int64_t next;
	list(st, &all, &jobs, &n, &next);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(jobs[i]->queue, "sentinel") == 0)
			continue;
		struct job *j = get_job(st, jobs[i]->id);
		fprintf(f, "job %s %s %s a%d/%d s%lld f%lld r%lld e[%s] res[%s] b[%s] cb%d/%d\n", j->id, j->queue,
		        job_state_name(j->state), j->attempts, j->max_attempts, (long long)j->started_at,
		        (long long)j->finished_at, (long long)j->run_at, j->error ? j->error : "",
		        j->result ? j->result : "", j->batch_id, (int)j->callback.state, j->callback.attempts);
		for (int h = 0; h < j->nhistory; h++)
			fprintf(f, "  attempt %d %s\n", j->history[h].attempt, attempt_outcome_name(j->history[h].outcome));
		if (j->batch_id[0]) {
			struct batch_info b;
			ck_assert_int_eq(store_get_batch(st, j->batch_id, &b), STORE_OK);
			fprintf(f, "  batch total %lld finished %lld cb%d/%d", (long long)b.total,
			        (long long)b.finished_at, (int)b.callback.state, b.callback.attempts);
			for (int s = 0; s < JOB_STATE_COUNT; s++)
				fprintf(f, " %lld", (long long)b.counts[s]);
			fprintf(f, "\n");
			delivery_clear(&b.callback);
		}
		job_free(j);
	}
	jobs_free(jobs, n);
	char (*names)[JOB_NAME_MAX + 1] = NULL;
	ck_assert_int_eq(store_list_queue_names(st, NULL, 1000, &names, &n), STORE_OK);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(names[i], "sentinel") == 0)
			continue;
		struct queue_info q = queue_of(st, names[i]);
		fprintf(f, "queue %s paused %d", q.name, q.paused);
		for (int s = 0; s < JOB_STATE_COUNT; s++)
			fprintf(f, " %lld", (long long)q.counts[s]);
		fprintf(f, "\n");
	}
	free(names);
	ck_assert_int_eq(fclose(f), 0);
}

/* One op kind failing halfway: the state it starts from, the op, and the
 * step the fault seam fails. */
struct halfway {
	struct claimed got;       /* first: on_claimed takes op->arg as this */
	struct store_op op;
	struct job *own[4];       /* freed at the end */
	int step;
	atomic_int *done;
};

static void halfway_done(struct store_op *op)
{
	atomic_fetch_add(((struct halfway *)op->arg)->done, 1);
}

/* Claims the one runnable job and ends it with state; returns it (caller
 * frees). */
static struct job *finished_job(struct store *st, enum job_state end)
{
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	end_job(st, got.jobs[0], end);
	return got.jobs[0];
}

static void halfway_setup(struct store *st, int kind, struct halfway *h)
{
	struct store_op *op = &h->op;
	memset(h, 0, sizeof *h);
	op->kind = (enum store_op_kind)kind;
	switch (kind) {
	case STORE_OP_SUBMIT:
		h->own[0] = make_job("echo", "q", 0, NULL);
		op->submit.job = h->own[0];
		h->step = 1;                      /* after the INSERT */
		break;
	case STORE_OP_BATCH:
		for (int i = 0; i < 3; i++)
			h->own[i] = make_job("echo", "q", 0, NULL);
		op->batch.jobs = h->own;
		op->batch.njobs = 3;
		op->batch.url = "http://example.com/b";
		uuid_v7(op->batch.id);
		h->step = 3;                      /* the batch and two jobs are in */
		break;
	case STORE_OP_CALLBACK: {
		struct job *j = make_job("echo", "q", 0, NULL);
		j->callback.url = strdup("http://example.com/cb");
		struct store_op sub = {.kind = STORE_OP_SUBMIT, .submit.job = j};
		ck_assert_int_eq(store_run(st, &sub), STORE_OK);
		job_free(j);
		h->own[0] = finished_job(st, JOB_SUCCEEDED);
		memcpy(op->callback.id, h->own[0]->id, sizeof op->callback.id);
		op->callback.delivery = DELIVERY_DELIVERED;
		op->callback.status = 200;
		h->step = 1;                      /* after the UPDATE */
		break;
	}
	case STORE_OP_CLAIM: {
		struct job *due = make_job("echo", "q", 0, NULL);
		due->state = JOB_SCHEDULED;
		due->run_at = clock_now_ms() - 1;
		struct store_op sub = {.kind = STORE_OP_SUBMIT, .submit.job = due};
		ck_assert_int_eq(store_run(st, &sub), STORE_OK);
		job_free(due);
		for (int i = 0; i < 3; i++)
			job_free(submit(st, "echo", i == 2 ? "q2" : "q", 0, NULL));
		op->claim.max = 4;
		op->claim.claimed = on_claimed;
		h->step = 3;                      /* promoted, one row read, the next fails */
		break;
	}
	case STORE_OP_FINISH: {
		struct job *jobs[2];
		submit_batch(st, 2, "http://example.com/b", jobs);
		struct claimed got = {.n = 0};
		ck_assert_int_eq(claim(st, 2, &got), 2);
		end_job(st, got.jobs[1], JOB_SUCCEEDED);
		h->own[0] = got.jobs[0];            /* the batch's last job */
		h->own[1] = got.jobs[1];
		h->own[2] = jobs[0];
		h->own[3] = jobs[1];
		h->own[0]->state = JOB_SUCCEEDED;
		h->own[0]->outcome = ATTEMPT_SUCCEEDED;
		h->own[0]->finished_at = clock_now_ms();
		op->finish.job = h->own[0];
		h->step = 2;                      /* finished and recorded; the batch fails */
		break;
	}
	case STORE_OP_CANCEL:
		submit_batch(st, 1, "http://example.com/b", h->own);
		memcpy(op->cancel.id, h->own[0]->id, sizeof op->cancel.id);
		h->step = 1;                      /* canceled; the batch fails */
		break;
	case STORE_OP_RETRY: {
		struct job *jobs[1];
		submit_batch(st, 1, "http://example.com/b", jobs);
		h->own[1] = jobs[0];
		h->own[0] = finished_job(st, JOB_FAILED);
		memcpy(op->retry.id, h->own[0]->id, sizeof op->retry.id);
		h->step = 2;                      /* requeued and read back; the batch fails */
		break;
	}
	case STORE_OP_DELETE:
		job_free(submit(st, "echo", "q", 0, NULL));
		h->own[0] = finished_job(st, JOB_SUCCEEDED);
		memcpy(op->del.id, h->own[0]->id, sizeof op->del.id);
		h->step = 1;                      /* history deleted; the job fails */
		break;
	case STORE_OP_PAUSE:
		job_free(submit(st, "echo", "q", 0, NULL));
		snprintf(op->pause.queue, sizeof op->pause.queue, "q");
		op->pause.paused = true;
		h->step = 1;
		break;
	case STORE_OP_PING:
	case STORE_OP_PROBE:
		h->step = 1;                      /* after the write */
		break;
	case STORE_OP_LEASE: {
		static const char queues[1][JOB_NAME_MAX + 1] = {"q"};
		job_free(submit(st, "my.fn", "q", 0, NULL));
		op->lease.queues = queues;
		op->lease.nqueues = 1;
		op->lease.max = 1;
		op->lease.lease_ms = 60000;
		h->step = 2;                      /* claimed and read; marking the lease fails */
		break;
	}
	case STORE_OP_HEARTBEAT: {
		static const char queues[1][JOB_NAME_MAX + 1] = {"q"};
		h->own[0] = submit(st, "my.fn", "q", 0, NULL);
		struct store_op l = {.kind = STORE_OP_LEASE,
		                     .lease = {.queues = queues, .nqueues = 1, .max = 1, .lease_ms = 60000}};
		ck_assert_int_eq(store_run(st, &l), STORE_OK);
		ck_assert_int_eq(l.lease.nleased, 1);
		memcpy(op->heartbeat.id, h->own[0]->id, sizeof op->heartbeat.id);
		memcpy(op->heartbeat.lease_id, l.lease.leased[0].lease_id, sizeof op->heartbeat.lease_id);
		op->heartbeat.lease_ms = 120000;
		job_free(l.lease.leased[0].job);
		free(l.lease.leased);
		h->step = 1;                      /* extended; the op fails */
		break;
	}
	case STORE_OP_RATE:
		snprintf(op->rate.rate.queue, sizeof op->rate.rate.queue, "q");
		op->rate.rate.bucket = (struct bucket){.limit = 5, .period_ms = 1000, .burst = 5};
		h->step = 1;                      /* writing the limit fails */
		break;
	case STORE_OP_SCHEDULE:
		h->own[1] = submit(st, "echo", "q", 0, NULL); /* something to snapshot */
		op->schedule.action = STORE_SCHEDULE_CREATE;
		snprintf(op->schedule.name, sizeof op->schedule.name, "nightly");
		op->schedule.spec = "{}";
		op->schedule.next_fire_at = 1000;
		op->schedule.now = 1;
		h->step = 1;                      /* inserted; the op fails */
		break;
	case STORE_OP_FIRE: {
		struct store_op c = {.kind = STORE_OP_SCHEDULE,
		                     .schedule = {.action = STORE_SCHEDULE_CREATE, .name = "nightly", .spec = "{}",
		                                  .next_fire_at = 1000, .now = 1}};
		ck_assert_int_eq(store_run(st, &c), STORE_OK);
		h->own[1] = submit(st, "echo", "q", 0, NULL); /* something to snapshot */
		h->own[0] = make_job("echo", "q", 0, NULL);
		snprintf(h->own[0]->schedule_name, sizeof h->own[0]->schedule_name, "nightly");
		h->own[0]->schedule_fire_at = 1000;
		snprintf(op->fire.name, sizeof op->fire.name, "nightly");
		op->fire.due = 1000;
		op->fire.next = 2000;
		op->fire.jobs = &h->own[0];
		op->fire.njobs = 1;
		h->step = 2;                      /* moved on, the job in; the op fails */
		break;
	}
	}
}

/* Hold the writer, post the op (failing at its step) and two submits, so
 * all three share one group. The op fails and leaves
 * the store as it was; the submits around it commit. */
START_TEST(store_op_failing_halfway_leaves_nothing_and_spares_the_group)
{
	struct store *st = open_store(NULL);
	struct halfway h;
	halfway_setup(st, _i, &h);
	char before[16384], after[16384];
	snapshot(st, before, sizeof before);

	struct gate g = {.entered = false, .open = false};
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	struct store_op first = {.kind = STORE_OP_PING, .done = gate_done, .arg = &g};
	store_post(st, &first);
	pthread_mutex_lock(&g.mu);
	while (!g.entered)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
	struct store_stats stats_before, stats_after;
	store_get_stats(st, &stats_before);

	atomic_int done;
	atomic_init(&done, 0);
	struct job *x = make_job("echo", "sentinel", 0, NULL), *y = make_job("echo", "sentinel", 0, NULL);
	struct store_op sx = {.kind = STORE_OP_SUBMIT, .submit.job = x, .done = count_done, .arg = &done};
	struct store_op sy = {.kind = STORE_OP_SUBMIT, .submit.job = y, .done = count_done, .arg = &done};
	h.done = &done;
	h.op.done = halfway_done;
	h.op.arg = &h;
	store_fault_arm((enum store_op_kind)_i, h.step);
	/* The op goes first: the armed fault is for the first op of its kind. */
	store_post(st, &h.op);
	store_post(st, &sx);
	store_post(st, &sy);
	pthread_mutex_lock(&g.mu);
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	ck_assert_msg(wait_for_count(&done, 3), "%d of 3 ops done", atomic_load(&done));
	ck_assert_msg(store_fault_disarm(), "the %d op never reached step %d", _i, h.step);
	store_get_stats(st, &stats_after);

	ck_assert_int_eq(h.op.rc, STORE_UNAVAILABLE);
	snapshot(st, after, sizeof after);
	ck_assert_msg(strcmp(before, after) == 0, "op %d left a trace:\nbefore:\n%s\nafter:\n%s", _i, before, after);
	if (_i == STORE_OP_CLAIM) {
		ck_assert_int_eq(h.op.claim.nclaimed, 0);
		ck_assert_int_eq(h.got.n, 0);
	}
	if (_i == STORE_OP_RETRY)
		ck_assert_ptr_null(h.op.retry.job);
	if (_i == STORE_OP_LEASE)
		ck_assert_int_eq(h.op.lease.nleased, 0);
	if (_i == STORE_OP_SUBMIT || _i == STORE_OP_BATCH) {
		struct job *gone = NULL;
		ck_assert_int_eq(store_get_job(st, h.own[0]->id, &gone), STORE_NOT_FOUND);
	}
	/* The rest of the group committed, in one transaction. */
	ck_assert_int_eq(sx.rc, STORE_OK);
	ck_assert_int_eq(sy.rc, STORE_OK);
	ck_assert_int_eq(state_of(st, x->id), JOB_QUEUED);
	ck_assert_int_eq(state_of(st, y->id), JOB_QUEUED);
	/* A probe commits in a group of its own, after the rest. */
	ck_assert_uint_eq(stats_after.commits - stats_before.commits, _i == STORE_OP_PROBE ? 2 : 1);
	store_close(st);
	job_free(x);
	job_free(y);
	for (int i = 0; i < 4; i++)
		job_free(h.own[i]);
	claimed_free(&h.got);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
}
END_TEST

/* ---- small fixes ---------------------------------------------------------- */

/* Opens the store with stderr going to a file; returns what was logged
 * (caller frees). */
static char *open_logged(struct store **st)
{
	char path[sizeof test_dir + 16];
	snprintf(path, sizeof path, "%s/stderr", test_dir);
	fflush(stderr);
	int saved = dup(2);
	FILE *f = fopen(path, "w+");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(dup2(fileno(f), 2), 0);
	*st = open_store(NULL);
	fflush(stderr);
	ck_assert_int_ge(dup2(saved, 2), 0);
	close(saved);
	long n = ftell(f);
	char *text = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(text);
	rewind(f);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

/* The count triggers write rows too; the log counts jobs. */
START_TEST(store_recovery_logs_the_number_of_jobs_recovered)
{
	struct store *st = open_store(NULL);
	struct job *jobs[3];
	for (int i = 0; i < 3; i++)
		jobs[i] = submit(st, "echo", "default", 0, NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 3, &got), 3);
	got.jobs[2]->attempts = got.jobs[2]->max_attempts; /* this one fails */
	store_close(st);
	char sql[160];
	snprintf(sql, sizeof sql, "UPDATE jobs SET attempts = max_attempts WHERE id = '%s'", got.jobs[2]->id);
	db_exec(sql);

	log_threshold = LOG_WARN; /* this child only */
	char *log = open_logged(&st);
	ck_assert_msg(strstr(log, "recovered 3 job(s) left running") != NULL, "logged: %s", log);
	free(log);
	ck_assert_int_eq(state_of(st, got.jobs[2]->id), JOB_FAILED);
	store_close(st);
	claimed_free(&got);
	for (int i = 0; i < 3; i++)
		job_free(jobs[i]);
}
END_TEST

#define READ_THREADS 100

struct reads {
	struct store *st;
	const char *id;
	pthread_barrier_t *start;
	atomic_int *failed;
};

static void *read_many(void *arg)
{
	struct reads *r = arg;
	pthread_barrier_wait(r->start);
	for (int i = 0; i < 20; i++) {
		struct job *job = NULL;
		if (store_get_job(r->st, r->id, &job) != STORE_OK)
			atomic_fetch_add(r->failed, 1);
		job_free(job);
	}
	return NULL;
}

/* More threads read at once than the pool has connections (a host with
 * many cores): they wait for one, and none fails. */
START_TEST(store_readers_beyond_the_pool_wait_instead_of_failing)
{
	struct store_options opts = {.backend = test_backend, .path = db_path, .schema = test_schema, .readers = 4};
	char err[512] = "";
	struct store *st = NULL;
	ck_assert_msg(store_open(&opts, NULL, &st, err, sizeof err) == 0, "store_open: %s", err);
	struct job *job = submit(st, "echo", "default", 0, NULL);
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, READ_THREADS);
	atomic_int failed;
	atomic_init(&failed, 0);
	pthread_t threads[READ_THREADS];
	struct reads r = {.st = st, .id = job->id, .start = &start, .failed = &failed};
	for (int i = 0; i < READ_THREADS; i++)
		ck_assert_int_eq(pthread_create(&threads[i], NULL, read_many, &r), 0);
	for (int i = 0; i < READ_THREADS; i++)
		pthread_join(threads[i], NULL);
	ck_assert_int_eq(atomic_load(&failed), 0);
	pthread_barrier_destroy(&start);
	job_free(job);
	store_close(st);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

/* ---- leases (external workers) ---------------------------------------- */

/* Queues starting with "x" are external. */
static bool x_external(void *arg, const char *queue)
{
	(void)arg;
	return queue[0] == 'x';
}

static struct store *open_external_store(struct recorder *rec)
{
	struct store_options opts = {.backend = test_backend, .path = db_path, .schema = test_schema,
	                             .durability = STORE_DURABLE_POWER_LOSS, .external = x_external};
	struct store_hooks hooks = {.arg = rec, .submitted = on_submitted, .finished = on_finished,
	                            .batch_done = on_batch_done};
	char err[512] = "";
	struct store *st = NULL;
	ck_assert_msg(store_open(&opts, rec ? &hooks : NULL, &st, err, sizeof err) == 0, "store_open: %s", err);
	if (rec)
		rec->st = st;
	return st;
}

static int lease_limit;

static int limit_of_queue(struct store_op *op, const char *queue)
{
	(void)op;
	(void)queue;
	return lease_limit;
}

/* Leases up to max jobs of queue for lease_ms; the caller frees with
 * leased_free. */
static struct store_op lease_of(struct store *st, const char *queue, int max, int64_t lease_ms)
{
	static char queues[1][JOB_NAME_MAX + 1];
	snprintf(queues[0], sizeof queues[0], "%s", queue);
	struct store_op op = {.kind = STORE_OP_LEASE,
	                      .lease = {.queues = (const char (*)[JOB_NAME_MAX + 1])queues, .nqueues = 1,
	                                .max = max, .lease_ms = lease_ms,
	                                .queue_limit = lease_limit ? limit_of_queue : NULL}};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	return op;
}

static void leased_free(struct store_op *op)
{
	for (int i = 0; i < op->lease.nleased; i++)
		job_free(op->lease.leased[i].job);
	free(op->lease.leased);
}

/* An answer to a lease: job's outcome fields as they stand. */
static enum store_rc answer_lease(struct store *st, struct job *job, const char *lease_id, bool release)
{
	struct store_op op = {.kind = STORE_OP_FINISH, .finish = {.job = job, .lease = {lease_id, release}}};
	return store_run(st, &op);
}

static struct store_op heartbeat_of(struct store *st, const char *id, const char *lease_id, int64_t lease_ms)
{
	struct store_op op = {.kind = STORE_OP_HEARTBEAT};
	snprintf(op.heartbeat.id, sizeof op.heartbeat.id, "%s", id);
	snprintf(op.heartbeat.lease_id, sizeof op.heartbeat.lease_id, "%s", lease_id);
	op.heartbeat.lease_ms = lease_ms;
	store_run(st, &op);
	return op;
}

/* A job queued on an external queue is for a lease, never a claim: its
 * commit must not wake the dispatcher (hooks fire in commit order, so the
 * count is final once the last submit's hook ran). */
START_TEST(store_submit_to_external_queue_wakes_no_claim)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_external_store(&rec);
	int before = atomic_load(&rec.submitted);
	struct job *ext = submit(st, "anything", "xq", 0, NULL);
	struct job *internal = submit(st, "echo", "q", 0, NULL);
	ck_assert(wait_for_count(&rec.submitted, before + 1));
	ck_assert_int_eq(atomic_load(&rec.submitted), before + 1);
	job_free(ext);
	job_free(internal);
	store_close(st);
}
END_TEST

START_TEST(store_lease_takes_external_queues_and_claims_never_do)
{
	lease_limit = 0;
	struct store *st = open_external_store(NULL);
	struct job *ext = submit(st, "my.fn", "xq", 0, NULL);
	struct job *low = submit(st, "my.fn", "xq", 0, NULL);
	struct job *high = submit(st, "my.fn", "xq", 5, NULL);
	struct job *own = submit(st, "echo", "default", 0, NULL);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 10, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, own->id);
	claimed_free(&got);

	int64_t before = clock_now_ms();
	struct store_op op = lease_of(st, "xq", 2, 60000);
	ck_assert_int_eq(op.lease.nleased, 2);
	ck_assert_str_eq(op.lease.leased[0].job->id, high->id); /* priority first */
	ck_assert_str_eq(op.lease.leased[1].job->id, ext->id);
	for (int i = 0; i < 2; i++) {
		const struct store_leased *l = &op.lease.leased[i];
		ck_assert_int_eq(l->job->state, JOB_RUNNING);
		ck_assert_int_eq(l->job->attempts, 1);
		ck_assert_uint_eq(strlen(l->lease_id), STORE_LEASE_ID_LEN);
		ck_assert_int_ge(l->expires_at, before + 60000);
		ck_assert_int_le(l->expires_at, clock_now_ms() + 60000);
	}
	ck_assert_str_ne(op.lease.leased[0].lease_id, op.lease.leased[1].lease_id);
	leased_free(&op);
	/* a lease names its queues: "default" is none of them */
	struct job *other = submit(st, "echo", "default", 0, NULL);
	op = lease_of(st, "xq", 5, 60000);
	ck_assert_int_eq(op.lease.nleased, 1);
	ck_assert_str_eq(op.lease.leased[0].job->id, low->id);
	leased_free(&op);
	job_free(ext);
	job_free(low);
	job_free(high);
	job_free(own);
	job_free(other);
	store_close(st);
}
END_TEST

/* store_list_leases: the jobs leased now, soonest to expire first, of one
 * queue or all, bounded by max; an answered lease leaves the list. */
START_TEST(store_list_leases_orders_by_expiry_and_filters_by_queue)
{
	lease_limit = 0;
	struct store *st = open_external_store(NULL);
	struct job *a = submit(st, "my.fn", "xa", 0, NULL);
	struct job *b = submit(st, "my.fn", "xb", 0, NULL);
	struct job *own = submit(st, "echo", "default", 0, NULL);
	struct store_lease_info out[4];
	int n = -1;
	ck_assert_int_eq(store_list_leases(st, NULL, 4, out, &n), STORE_OK);
	ck_assert_int_eq(n, 0);
	struct store_op la = lease_of(st, "xa", 1, 600000);
	struct store_op lb = lease_of(st, "xb", 1, 60000);
	ck_assert_int_eq(la.lease.nleased, 1);
	ck_assert_int_eq(lb.lease.nleased, 1);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 10, &got), 1); /* running in the pool: no lease */
	claimed_free(&got);

	ck_assert_int_eq(store_list_leases(st, NULL, 4, out, &n), STORE_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_str_eq(out[0].id, b->id); /* 60 s before 600 s */
	ck_assert_str_eq(out[0].queue, "xb");
	ck_assert_str_eq(out[0].type, "my.fn");
	ck_assert_int_eq(out[0].attempt, 1);
	ck_assert_int_eq(out[0].expires_at, lb.lease.leased[0].expires_at);
	ck_assert_int_gt(out[0].started_at, 0);
	ck_assert_str_eq(out[1].id, a->id);
	ck_assert_int_eq(store_list_leases(st, "xa", 4, out, &n), STORE_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(out[0].id, a->id);
	ck_assert_int_eq(store_list_leases(st, NULL, 1, out, &n), STORE_OK);
	ck_assert_int_eq(n, 1);

	lb.lease.leased[0].job->state = JOB_SUCCEEDED;
	lb.lease.leased[0].job->outcome = ATTEMPT_SUCCEEDED;
	ck_assert_int_eq(answer_lease(st, lb.lease.leased[0].job, lb.lease.leased[0].lease_id, false), STORE_OK);
	ck_assert_int_eq(store_list_leases(st, NULL, 4, out, &n), STORE_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(out[0].id, a->id);
	leased_free(&la);
	leased_free(&lb);
	job_free(a);
	job_free(b);
	job_free(own);
	store_close(st);
}
END_TEST

/* Only a commit that acknowledges something a client must not lose is
 * synced: a submit and a lease's answer are, a claim and a lease are not
 * (lost in a crash, they leave their jobs queued with the attempt unspent,
 * and the next synced commit carries them to disk anyway). */
START_TEST(store_claims_and_leases_commit_without_sync)
{
	lease_limit = 0;
	struct store *st = open_external_store(NULL);
	struct store_stats s0, s1, s2, s3, s4;
	store_get_stats(st, &s0);
	struct job *ext = submit(st, "my.fn", "xq", 0, NULL);
	struct job *internal = submit(st, "echo", "q", 0, NULL);
	store_get_stats(st, &s1);
	ck_assert_uint_eq(s1.commits - s0.commits, 2);
	ck_assert_uint_eq(s1.synced - s0.synced, 2);

	struct store_op op = lease_of(st, "xq", 1, 60000);
	ck_assert_int_eq(op.lease.nleased, 1);
	store_get_stats(st, &s2);
	ck_assert_uint_eq(s2.commits - s1.commits, 1);
	ck_assert_uint_eq(s2.synced - s1.synced, 0);

	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	store_get_stats(st, &s3);
	ck_assert_uint_eq(s3.commits - s2.commits, 1);
	ck_assert_uint_eq(s3.synced - s2.synced, 0);

	struct job *job = op.lease.leased[0].job;
	job->state = JOB_SUCCEEDED;
	job->outcome = ATTEMPT_SUCCEEDED;
	ck_assert_int_eq(answer_lease(st, job, op.lease.leased[0].lease_id, false), STORE_OK);
	store_get_stats(st, &s4);
	ck_assert_uint_eq(s4.commits - s3.commits, 1);
	ck_assert_uint_eq(s4.synced - s3.synced, 1);
	leased_free(&op);
	job_free(got.jobs[0]);
	job_free(ext);
	job_free(internal);
	store_close(st);
}
END_TEST

START_TEST(store_lease_answers_are_fenced_by_the_lease_id)
{
	lease_limit = 0;
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_external_store(&rec);
	struct job *sub = submit(st, "my.fn", "xq", 0, NULL);
	struct store_op op = lease_of(st, "xq", 1, 60000);
	ck_assert_int_eq(op.lease.nleased, 1);
	struct job *job = op.lease.leased[0].job;
	char lease_id[STORE_LEASE_ID_LEN + 1];
	memcpy(lease_id, op.lease.leased[0].lease_id, sizeof lease_id);

	job->state = JOB_SUCCEEDED;
	job->outcome = ATTEMPT_SUCCEEDED;
	job->result = strdup("1");
	ck_assert_int_eq(answer_lease(st, job, "0123456789abcdef0123456789abcdef", false), STORE_CONFLICT);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_RUNNING);
	ck_assert_int_eq(stored->attempts, 1);
	ck_assert_int_eq(stored->nhistory, 0);
	ck_assert_int_eq(atomic_load(&rec.finished), 0);
	job_free(stored);

	ck_assert_int_eq(answer_lease(st, job, lease_id, false), STORE_OK);
	ck_assert_int_eq(atomic_load(&rec.finished), 1);
	stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_SUCCEEDED);
	ck_assert_str_eq(stored->result, "1");
	ck_assert_int_eq(stored->nhistory, 1);
	ck_assert_int_eq(stored->history[0].outcome, ATTEMPT_SUCCEEDED);
	job_free(stored);
	/* the same answer again: the lease is over */
	job->state = JOB_FAILED;
	ck_assert_int_eq(answer_lease(st, job, lease_id, false), STORE_CONFLICT);
	ck_assert_int_eq(state_of(st, sub->id), JOB_SUCCEEDED);
	struct store_op hb = heartbeat_of(st, sub->id, lease_id, 0);
	ck_assert_int_eq(hb.rc, STORE_CONFLICT);
	leased_free(&op);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_lease_release_spends_no_attempt)
{
	lease_limit = 0;
	struct store *st = open_external_store(NULL);
	struct job *sub = submit(st, "my.fn", "xq", 0, NULL);
	struct store_op op = lease_of(st, "xq", 1, 60000);
	struct job *job = op.lease.leased[0].job;
	job->state = JOB_QUEUED;
	ck_assert_int_eq(answer_lease(st, job, op.lease.leased[0].lease_id, true), STORE_OK);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_QUEUED);
	ck_assert_int_eq(stored->attempts, 0);
	ck_assert_int_eq(stored->nhistory, 0);
	job_free(stored);
	leased_free(&op);

	op = lease_of(st, "xq", 1, 60000);
	ck_assert_int_eq(op.lease.nleased, 1);
	job = op.lease.leased[0].job;
	ck_assert_int_eq(job->attempts, 1);
	job->state = JOB_SCHEDULED;
	job->run_at = clock_now_ms() + 600000;
	ck_assert_int_eq(answer_lease(st, job, op.lease.leased[0].lease_id, true), STORE_OK);
	stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_SCHEDULED);
	ck_assert_int_eq(stored->attempts, 0);
	ck_assert_int_eq(stored->run_at, job->run_at);
	job_free(stored);
	leased_free(&op);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_heartbeat_extends_the_lease_and_reports_a_cancel)
{
	lease_limit = 0;
	struct store *st = open_external_store(NULL);
	struct job *sub = submit(st, "my.fn", "xq", 0, NULL);
	struct store_op op = lease_of(st, "xq", 1, 1000);
	const char *lease_id = op.lease.leased[0].lease_id;
	int64_t before = clock_now_ms();
	struct store_op hb = heartbeat_of(st, sub->id, lease_id, 30000);
	ck_assert_int_eq(hb.rc, STORE_OK);
	ck_assert(!hb.heartbeat.canceled);
	ck_assert_int_ge(hb.heartbeat.expires_at, before + 30000);
	hb = heartbeat_of(st, sub->id, lease_id, 0); /* the lease's own length, now 30 s */
	ck_assert_int_ge(hb.heartbeat.expires_at, before + 30000);

	struct target_reply c = cancel(st, sub->id);
	ck_assert_int_eq(c.rc, STORE_OK);
	ck_assert_int_eq(c.found, JOB_RUNNING);
	struct job *stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_CANCELED);
	ck_assert_int_eq(stored->nhistory, 1);
	ck_assert_int_eq(stored->history[0].outcome, ATTEMPT_CANCELED);
	job_free(stored);
	hb = heartbeat_of(st, sub->id, lease_id, 0);
	ck_assert_int_eq(hb.rc, STORE_OK);
	ck_assert(hb.heartbeat.canceled);
	hb = heartbeat_of(st, sub->id, lease_id, 0);
	ck_assert_int_eq(hb.rc, STORE_CONFLICT);
	hb = heartbeat_of(st, "01a236a1-93bb-7008-beca-a95e550fc34c", lease_id, 0);
	ck_assert_int_eq(hb.rc, STORE_NOT_FOUND);
	leased_free(&op);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_expired_lease_ends_the_attempt_interrupted_and_retries)
{
	lease_limit = 0;
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_external_store(&rec);
	struct job *sub = make_job("my.fn", "xq", 0, NULL);
	sub->max_attempts = 2;
	sub->backoff_s = 0.001;
	sub->max_backoff_s = 0.001;
	struct store_op s = {.kind = STORE_OP_SUBMIT, .submit.job = sub};
	ck_assert_int_eq(store_run(st, &s), STORE_OK);
	struct store_op op = lease_of(st, "xq", 1, 50);
	ck_assert_int_eq(op.lease.nleased, 1);
	char lease_id[STORE_LEASE_ID_LEN + 1];
	memcpy(lease_id, op.lease.leased[0].lease_id, sizeof lease_id);
	int64_t t0 = clock_now_ms();
	while (state_of(st, sub->id) == JOB_RUNNING) {
		ck_assert_msg(clock_now_ms() - t0 < POLL_LIMIT_MS, "the lease never expired");
		sleep_ms(5);
	}
	struct job *stored = get_job(st, sub->id);
	ck_assert(stored->state == JOB_SCHEDULED || stored->state == JOB_QUEUED);
	ck_assert_int_eq(stored->nhistory, 1);
	ck_assert_int_eq(stored->history[0].outcome, ATTEMPT_INTERRUPTED);
	job_free(stored);
	struct job *late = op.lease.leased[0].job;
	late->state = JOB_SUCCEEDED;
	ck_assert_int_eq(answer_lease(st, late, lease_id, false), STORE_CONFLICT);
	leased_free(&op);

	/* the second lease expires too: no attempts are left, it fails */
	t0 = clock_now_ms();
	do {
		op = lease_of(st, "xq", 1, 50);
		if (op.lease.nleased == 0) {
			ck_assert_msg(clock_now_ms() - t0 < POLL_LIMIT_MS, "never leased again");
			sleep_ms(5);
		}
	} while (op.lease.nleased == 0);
	ck_assert_int_eq(op.lease.leased[0].job->attempts, 2);
	leased_free(&op);
	ck_assert(wait_for_count(&rec.finished, 1));
	stored = get_job(st, sub->id);
	ck_assert_int_eq(stored->state, JOB_FAILED);
	ck_assert_int_eq(stored->nhistory, 2);
	ck_assert_int_eq(stored->history[1].outcome, ATTEMPT_INTERRUPTED);
	job_free(stored);
	job_free(sub);
	store_close(st);
}
END_TEST

START_TEST(store_lease_counts_running_jobs_against_the_queue_limit)
{
	lease_limit = 1;
	struct store *st = open_external_store(NULL);
	struct job *a = submit(st, "my.fn", "xq", 0, NULL);
	struct job *b = submit(st, "my.fn", "xq", 0, NULL);
	struct store_op op = lease_of(st, "xq", 5, 60000);
	ck_assert_int_eq(op.lease.nleased, 1);
	struct store_op again = lease_of(st, "xq", 5, 60000);
	ck_assert_int_eq(again.lease.nleased, 0);
	struct job *job = op.lease.leased[0].job;
	job->state = JOB_SUCCEEDED;
	ck_assert_int_eq(answer_lease(st, job, op.lease.leased[0].lease_id, false), STORE_OK);
	again = lease_of(st, "xq", 5, 60000);
	ck_assert_int_eq(again.lease.nleased, 1);
	leased_free(&again);
	leased_free(&op);
	lease_limit = 0;
	job_free(a);
	job_free(b);
	store_close(st);
}
END_TEST

/* ---- schedules ---------------------------------------------------------- */

static enum store_rc schedule_op(struct store *st, enum store_schedule_action action, const char *name,
                                 const char *spec, int64_t next)
{
	struct store_op op = {.kind = STORE_OP_SCHEDULE,
	                      .schedule = {.action = action, .spec = spec, .next_fire_at = next, .now = 5}};
	snprintf(op.schedule.name, sizeof op.schedule.name, "%s", name);
	return store_run(st, &op);
}

/* A fire of schedule name at due (0: run now) with one job per fire time. */
static enum store_rc fire(struct store *st, const char *name, int64_t due, int64_t next, const int64_t *at, int n,
                          int *fired)
{
	struct job *jobs[8];
	struct store_op op = {.kind = STORE_OP_FIRE, .fire = {.due = due, .next = next, .jobs = jobs, .njobs = n}};
	snprintf(op.fire.name, sizeof op.fire.name, "%s", name);
	for (int i = 0; i < n; i++) {
		jobs[i] = make_job("echo", "sched", 0, NULL);
		snprintf(jobs[i]->schedule_name, sizeof jobs[i]->schedule_name, "%s", name);
		jobs[i]->schedule_fire_at = at[i];
	}
	enum store_rc rc = store_run(st, &op);
	*fired = op.fire.fired;
	for (int i = 0; i < n; i++)
		job_free(jobs[i]);
	return rc;
}

START_TEST(store_schedule_crud_and_fire_compare_and_set)
{
	struct store *st = open_store(NULL);
	struct store_schedule row;
	int fired = -1;
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_CREATE, "s", "{\"a\":1}", 1000), STORE_OK);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_CREATE, "s", "{\"a\":2}", 1000), STORE_CONFLICT);
	ck_assert_int_eq(store_get_schedule(st, "s", &row), STORE_OK);
	ck_assert_str_eq(row.spec, "{\"a\":1}");
	ck_assert_int_eq(row.next_fire_at, 1000);
	ck_assert_int_eq(row.last_fire_at, 0);
	ck_assert(!row.paused);
	store_schedule_clear(&row);

	/* the fire moves next_fire_at from the due time, once */
	int64_t at[2] = {1000, 2000};
	ck_assert_int_eq(fire(st, "s", 1000, 3000, at, 2, &fired), STORE_OK);
	ck_assert_int_eq(fired, 2);
	ck_assert_int_eq(fire(st, "s", 1000, 3000, at, 2, &fired), STORE_CONFLICT);
	ck_assert_int_eq(store_get_schedule(st, "s", &row), STORE_OK);
	ck_assert_int_eq(row.next_fire_at, 3000);
	ck_assert_int_eq(row.last_fire_at, 2000);
	store_schedule_clear(&row);
	/* run now of a fire time that has a job: nothing more */
	ck_assert_int_eq(fire(st, "s", 0, 0, at, 1, &fired), STORE_OK);
	ck_assert_int_eq(fired, 0);
	int64_t now_at[1] = {2500};
	ck_assert_int_eq(fire(st, "s", 0, 0, now_at, 1, &fired), STORE_OK);
	ck_assert_int_eq(fired, 1);
	struct store_filter f = {.queue = "sched", .limit = 100};
	struct job **jobs;
	size_t n;
	int64_t next;
	list(st, &f, &jobs, &n, &next);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(jobs[i]->schedule_name, "s");
		ck_assert_int_eq(jobs[i]->schedule_fire_at, i == 0 ? 2500 : i == 1 ? 2000 : 1000);
	}
	jobs_free(jobs, n);
	ck_assert_int_eq(fire(st, "nope", 0, 0, now_at, 1, &fired), STORE_NOT_FOUND);

	/* paused: no due time, no fire; resumed: the given next */
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_PAUSE, "s", NULL, 0), STORE_OK);
	ck_assert_int_eq(store_get_schedule(st, "s", &row), STORE_OK);
	ck_assert(row.paused);
	ck_assert_int_eq(row.next_fire_at, 0);
	store_schedule_clear(&row);
	int64_t late[1] = {3000};
	ck_assert_int_eq(fire(st, "s", 3000, 4000, late, 1, &fired), STORE_CONFLICT);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_RESUME, "s", NULL, 9000), STORE_OK);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_RESUME, "s", NULL, 7777), STORE_OK); /* stays 9000 */
	ck_assert_int_eq(store_get_schedule(st, "s", &row), STORE_OK);
	ck_assert(!row.paused);
	ck_assert_int_eq(row.next_fire_at, 9000);
	store_schedule_clear(&row);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_REPLACE, "s", "{\"b\":2}", 8000), STORE_OK);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_REPLACE, "t", "{}", 8000), STORE_NOT_FOUND);

	/* reads: list in name order, counts, due */
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_CREATE, "a", "{}", 500), STORE_OK);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_CREATE, "z", "{}", 0), STORE_OK);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_PAUSE, "z", NULL, 0), STORE_OK);
	struct store_schedule *rows;
	ck_assert_int_eq(store_list_schedules(st, NULL, 10, &rows, &n), STORE_OK);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(rows[0].name, "a");
	ck_assert_str_eq(rows[1].name, "s");
	ck_assert_str_eq(rows[1].spec, "{\"b\":2}");
	ck_assert_str_eq(rows[2].name, "z");
	for (size_t i = 0; i < n; i++)
		store_schedule_clear(&rows[i]);
	free(rows);
	ck_assert_int_eq(store_list_schedules(st, "a", 1, &rows, &n), STORE_OK);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(rows[0].name, "s");
	store_schedule_clear(&rows[0]);
	free(rows);
	int64_t active, paused;
	ck_assert_int_eq(store_count_schedules(st, &active, &paused), STORE_OK);
	ck_assert_int_eq(active, 2);
	ck_assert_int_eq(paused, 1);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_DELETE, "a", NULL, 0), STORE_OK);
	ck_assert_int_eq(schedule_op(st, STORE_SCHEDULE_DELETE, "a", NULL, 0), STORE_NOT_FOUND);
	ck_assert_int_eq(store_get_schedule(st, "a", &row), STORE_NOT_FOUND);
	store_close(st);
}
END_TEST

Suite *store_contract_suite(const char *backend)
{
	test_backend = backend;
	Suite *s = suite_create("store contract");

	TCase *tc = store_tcase(s, "open");
	tcase_add_test(tc, store_reopen_keeps_jobs);
	tcase_add_test(tc, store_open_in_missing_directory_fails);
	tcase_add_test(tc, store_open_unknown_backend_fails);
	tcase_add_test(tc, store_ping_writes);
	tcase_add_test(tc, store_outcome_applies_only_from_the_node_running_it);
	tcase_add_test(tc, store_job_owned_here_but_not_run_is_rescued);
	tcase_add_test(tc, store_recovery_requeues_jobs_left_running);
	tcase_add_test(tc, store_recovery_records_interrupted_attempts);
	tcase_add_test(tc, store_recovery_of_a_job_at_its_last_attempt_fails_it);

	tc = store_tcase(s, "jobs");
	tcase_add_test(tc, store_get_job_returns_every_field);
	tcase_add_test(tc, store_get_job_unknown_id_is_not_found);
	tcase_add_test(tc, store_submitted_hook_runs_after_commit);
	tcase_add_test(tc, store_claim_takes_highest_priority_first);
	tcase_add_test(tc, store_claim_respects_claim_max);
	tcase_add_test(tc, store_claim_with_nothing_queued_gives_zero);
	tcase_add_test(tc, store_finish_succeeded_stores_result_and_notifies);
	tcase_add_test(tc, store_finish_failed_stores_error_and_finished_at);
	tcase_add_test(tc, store_finish_with_wrong_attempts_changes_nothing);
	tcase_add_test(tc, store_finish_of_queued_job_changes_nothing);
	tcase_add_test(tc, store_finish_queued_requeues_with_attempts_decremented);
	tcase_add_test(tc, store_cancel_queued_job_cancels_it);
	tcase_add_test(tc, store_cancel_running_job_leaves_it_running);
	tcase_add_test(tc, store_cancel_finished_job_reports_its_state);
	tcase_add_test(tc, store_cancel_unknown_id_is_not_found);
	tcase_add_test(tc, store_scheduled_job_is_claimed_only_when_due);
	tcase_add_test(tc, store_finish_scheduled_waits_for_retry_and_records_attempt);
	tcase_add_test(tc, store_retry_cycle_keeps_history_in_order);
	tcase_add_test(tc, store_finish_records_each_outcome);
	tcase_add_test(tc, store_requeue_records_no_history);
	tcase_add_test(tc, store_retry_requeues_a_failed_job);
	tcase_add_test(tc, store_retry_requeues_a_canceled_job);
	tcase_add_test(tc, store_retry_of_other_states_changes_nothing);
	tcase_add_test(tc, store_delete_removes_finished_job_and_history);
	tcase_add_test(tc, store_delete_of_unfinished_job_changes_nothing);

	tc = store_tcase(s, "queues");
	tcase_add_test(tc, store_claim_shares_among_queues);
	tcase_add_test(tc, store_claim_room_limits_a_queue_among_many_jobs);
	tcase_add_test(tc, store_claim_serves_every_queue_in_turn);
	tcase_add_test(tc, store_paused_queue_is_not_claimed_from);
	tcase_add_test(tc, store_submit_to_paused_queue_wakes_no_claim);
	tcase_add_test(tc, store_list_queue_names_has_job_and_paused_queues);
	tcase_add_test(tc, store_deepest_queues_ranks_by_depth_and_sums_the_rest);
	tcase_add_test(tc, store_queue_counts_follow_every_change);

	tc = store_tcase(s, "retention");
	tcase_add_test(tc, store_retention_sweep_deletes_expired_jobs);
	tcase_add_test(tc, store_retention_applies_to_canceled_and_not_to_retried_jobs);

	tc = store_tcase(s, "list");
	tcase_add_test(tc, store_list_jobs_newest_first);
	tcase_add_test(tc, store_list_jobs_on_empty_store);
	tcase_add_test(tc, store_list_jobs_treats_limit_below_one_as_one);
	tcase_add_test(tc, store_list_jobs_filters_by_state_queue_and_type);
	tcase_add_loop_test(tc, store_list_jobs_pages_visit_every_job_once, 0,
	                    (int)(sizeof pagings / sizeof pagings[0]));

	tc = store_tcase(s, "plans");
	tcase_add_test(tc, store_group_commit_puts_queued_submits_in_one_transaction);
	tcase_add_test(tc, store_group_last_submit_with_a_taken_id_fails_alone);

	tc = store_tcase(s, "idempotency");
	tcase_add_test(tc, store_submit_with_idempotency_key_inserts_once);
	tcase_add_test(tc, store_idempotency_key_is_free_again_after_delete);
	tcase_add_test(tc, store_idempotency_keys_are_independent);

	tc = store_tcase(s, "batches");
	tcase_add_test(tc, store_batch_inserts_every_job_with_its_batch_id);
	tcase_add_test(tc, store_batch_with_a_failing_job_leaves_nothing_and_spares_the_group);
	tcase_add_test(tc, store_batch_done_when_its_last_job_ends);
	tcase_add_test(tc, store_batch_done_by_finishing_its_last_job);
	tcase_add_test(tc, store_retry_in_a_done_batch_makes_it_not_done);

	tc = store_tcase(s, "callbacks");
	tcase_add_test(tc, store_finished_job_with_callback_becomes_due);
	tcase_add_test(tc, store_job_without_callback_never_becomes_due);
	tcase_add_test(tc, store_canceled_job_with_callback_becomes_due);
	tcase_add_test(tc, store_callback_pending_waits_until_next_at);
	tcase_add_test(tc, store_callback_delivered_records_attempt_and_status);
	tcase_add_test(tc, store_due_callbacks_respects_max);
	tcase_add_test(tc, store_done_batch_with_callback_becomes_due);
	tcase_add_test(tc, store_due_callbacks_lists_jobs_and_batches);
	tcase_add_test(tc, store_callback_waits_while_a_retry_is_scheduled);
	tcase_add_test(tc, store_retry_in_a_done_batch_withdraws_its_pending_callback);

	tc = store_tcase(s, "group_commit");
	tcase_add_test(tc, store_group_commit_completes_concurrent_posts);

	tc = store_tcase(s, "all_or_nothing");
	tcase_add_loop_test(tc, store_op_failing_halfway_leaves_nothing_and_spares_the_group, 0, STORE_OP_KINDS);

	tc = store_tcase(s, "fixes");
	tcase_add_test(tc, store_recovery_logs_the_number_of_jobs_recovered);
	tcase_add_test(tc, store_readers_beyond_the_pool_wait_instead_of_failing);

	tc = store_tcase(s, "leases");
	tcase_add_test(tc, store_lease_takes_external_queues_and_claims_never_do);
	tcase_add_test(tc, store_claims_and_leases_commit_without_sync);
	tcase_add_test(tc, store_submit_to_external_queue_wakes_no_claim);
	tcase_add_test(tc, store_lease_answers_are_fenced_by_the_lease_id);
	tcase_add_test(tc, store_lease_release_spends_no_attempt);
	tcase_add_test(tc, store_heartbeat_extends_the_lease_and_reports_a_cancel);
	tcase_add_test(tc, store_expired_lease_ends_the_attempt_interrupted_and_retries);
	tcase_add_test(tc, store_lease_counts_running_jobs_against_the_queue_limit);
	tcase_add_test(tc, store_list_leases_orders_by_expiry_and_filters_by_queue);

	store_rate_cases(s);
	store_deps_tcase(s);
	tc = store_tcase(s, "schedules");
	tcase_add_test(tc, store_schedule_crud_and_fire_compare_and_set);
	return s;
}
