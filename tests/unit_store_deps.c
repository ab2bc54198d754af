/* The store contract for dependencies, on the backend under test: a
 * parent's end reaches its children in the same commit, with hooks; an
 * unknown parent writes nothing. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_test.h"

void store_deps_tcase(Suite *s);

/* Submits an echo job depending on the given parents (policy cancel). */
static struct job *submit_child(struct store *st, const char *const *parents, int n, enum store_rc want)
{
	struct job *job = make_job("echo", "default", 0, NULL);
	job->deps.n = n;
	job->deps.ids = calloc((size_t)n, sizeof *job->deps.ids);
	ck_assert_ptr_nonnull(job->deps.ids);
	for (int i = 0; i < n; i++)
		snprintf(job->deps.ids[i], sizeof job->deps.ids[i], "%s", parents[i]);
	struct store_op op = {.kind = STORE_OP_SUBMIT, .submit.job = job};
	ck_assert_int_eq(store_run(st, &op), want);
	return job;
}

START_TEST(store_deps_cancel_cascades_with_hooks)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *p = submit(st, "echo", "default", 0, NULL);
	struct job *c = submit_child(st, (const char *const[]){p->id}, 1, STORE_OK);
	ck_assert_int_eq(c->state, JOB_BLOCKED);
	struct job *g = submit_child(st, (const char *const[]){c->id}, 1, STORE_OK);

	struct target_reply op = cancel(st, p->id);
	ck_assert_int_eq(op.rc, STORE_OK);
	/* One commit: the parent, its child and grandchild, each through the
	 * finished hook. */
	ck_assert_int_eq(atomic_load(&rec.finished), 3);
	ck_assert_str_eq(rec.finished_ids[0], p->id);
	ck_assert_str_eq(rec.finished_ids[1], c->id);
	ck_assert_str_eq(rec.finished_ids[2], g->id);
	struct job *got = get_job(st, g->id);
	ck_assert_int_eq(got->state, JOB_CANCELED);
	char why[96];
	snprintf(why, sizeof why, "dependency %s canceled", c->id);
	ck_assert_str_eq(got->error, why);
	ck_assert_int_eq(got->deps.n, 1);
	ck_assert_str_eq(got->deps.ids[0], c->id);
	job_free(got);
	assert_counts(st, "default", 0, 0, 0, 0, 3, 0);
	job_free(p);
	job_free(c);
	job_free(g);
	store_close(st);
}
END_TEST

START_TEST(store_deps_success_makes_the_child_claimable)
{
	struct recorder rec;
	recorder_init(&rec);
	struct store *st = open_store(&rec);
	struct job *p = submit(st, "echo", "default", 0, NULL);
	struct job *c = submit_child(st, (const char *const[]){p->id}, 1, STORE_OK);
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 5, &got), 1); /* the blocked child is never claimed */
	ck_assert_str_eq(got.jobs[0]->id, p->id);
	struct queue_info q = queue_of(st, "default");
	ck_assert_int_eq(q.counts[JOB_BLOCKED], 1);

	int before = atomic_load(&rec.submitted);
	got.jobs[0]->state = JOB_SUCCEEDED;
	got.jobs[0]->outcome = ATTEMPT_SUCCEEDED;
	ck_assert_int_eq(finish(st, got.jobs[0]), STORE_OK);
	/* runnable work: the pool is told (after the ops' done(), so wait) */
	ck_assert_msg(wait_for_count(&rec.submitted, before + 1), "submitted called %d times", atomic_load(&rec.submitted));
	ck_assert_int_eq(state_of(st, c->id), JOB_QUEUED);
	claimed_free(&got);
	ck_assert_int_eq(claim(st, 5, &got), 1);
	ck_assert_str_eq(got.jobs[0]->id, c->id);
	claimed_free(&got);
	job_free(p);
	job_free(c);
	store_close(st);
}
END_TEST

START_TEST(store_deps_unknown_parent_writes_nothing)
{
	struct store *st = open_store(NULL);
	struct job *p = submit(st, "echo", "default", 0, NULL);
	struct job *c = submit_child(st, (const char *const[]){p->id, "01890000-0000-7000-8000-000000000000"}, 2,
	                             STORE_NOT_FOUND);
	ck_assert_int_eq(c->deps.missing, 1);
	struct job *none = NULL;
	ck_assert_int_eq(store_get_job(st, c->id, &none), STORE_NOT_FOUND);
	assert_counts(st, "default", 1, 0, 0, 0, 0, 0);
	job_free(p);
	job_free(c);
	store_close(st);
}
END_TEST

void store_deps_tcase(Suite *s)
{
	TCase *tc = store_tcase(s, "dependencies");
	tcase_add_test(tc, store_deps_cancel_cascades_with_hooks);
	tcase_add_test(tc, store_deps_success_makes_the_child_claimable);
	tcase_add_test(tc, store_deps_unknown_parent_writes_nothing);
}
