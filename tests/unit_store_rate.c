/* Store contract cases for rate limits, on whichever backend the store
 * contract runs: the rate op sets, replaces (keeping tokens) and removes;
 * a claim starts at most the whole tokens and reports when the next one
 * is due, without counting the queue as limited; a 429 finish releases the
 * attempt only when the queue opts in. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "store/store.h"
#include "tests/store_test.h"

void store_rate_cases(Suite *s);

static enum store_rc set_rate(struct store *st, const char *queue, double limit, int64_t period_ms, double burst,
                              bool retry_after, bool remove, bool *found)
{
	struct store_op op = {.kind = STORE_OP_RATE};
	snprintf(op.rate.rate.queue, sizeof op.rate.rate.queue, "%s", queue);
	op.rate.rate.bucket = (struct bucket){.limit = limit, .period_ms = period_ms, .burst = burst};
	op.rate.rate.retry_after = retry_after;
	op.rate.remove = remove;
	enum store_rc rc = store_run(st, &op);
	if (found)
		*found = op.rate.found;
	return rc;
}

static struct store_rate read_rate(struct store *st, const char *queue, bool *found)
{
	struct store_rate r;
	memset(&r, 0, sizeof r);
	ck_assert_int_eq(store_get_rate(st, queue, &r, found), STORE_OK);
	return r;
}

START_TEST(store_rate_is_set_replaced_keeping_tokens_and_removed)
{
	struct store *st = open_store(NULL);
	bool found = true;
	ck_assert_int_eq(set_rate(st, "q", 10, 1000, 4, false, false, &found), STORE_OK);
	ck_assert(!found);
	struct store_rate r = read_rate(st, "q", &found);
	ck_assert(found);
	ck_assert_str_eq(r.queue, "q");
	ck_assert(r.bucket.limit == 10 && r.bucket.period_ms == 1000 && r.bucket.burst == 4);
	ck_assert(r.bucket.tokens == 4 && !r.retry_after && r.bucket.paused_until == 0);

	/* Two starts take two tokens ... */
	for (int i = 0; i < 2; i++)
		job_free(submit(st, "echo", "q", 0, NULL));
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 10, &got), 2);
	claimed_free(&got);
	/* ... and a replacement keeps what is left, up to its burst. */
	ck_assert_int_eq(set_rate(st, "q", 1, 3600000, 100, true, false, &found), STORE_OK);
	ck_assert(found);
	r = read_rate(st, "q", &found);
	ck_assert(r.bucket.limit == 1 && r.bucket.period_ms == 3600000 && r.bucket.burst == 100 && r.retry_after);
	ck_assert_msg(r.bucket.tokens >= 2 && r.bucket.tokens < 2.5, "tokens %f", r.bucket.tokens);

	struct store_rate *all = NULL;
	size_t n = 0;
	ck_assert_int_eq(set_rate(st, "another", 5, 1000, 5, false, false, NULL), STORE_OK);
	ck_assert_int_eq(store_list_rates(st, &all, &n), STORE_OK);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(all[0].queue, "another");
	ck_assert_str_eq(all[1].queue, "q");
	free(all);

	ck_assert_int_eq(set_rate(st, "q", 0, 0, 0, false, true, &found), STORE_OK);
	ck_assert(found);
	read_rate(st, "q", &found);
	ck_assert(!found);
	ck_assert_int_eq(set_rate(st, "q", 0, 0, 0, false, true, &found), STORE_OK);
	ck_assert(!found);
	store_close(st);
}
END_TEST

START_TEST(store_claim_starts_whole_tokens_and_says_when_the_next_is_due)
{
	struct store *st = open_store(NULL);
	/* one token per hour, a burst of 3: three start, the rest wait */
	ck_assert_int_eq(set_rate(st, "q", 1, 3600000, 3, false, false, NULL), STORE_OK);
	for (int i = 0; i < 5; i++)
		job_free(submit(st, "echo", "q", 0, NULL));
	job_free(submit(st, "echo", "free", 0, NULL));
	int64_t before = clock_now_ms();
	struct claimed got = {.n = 0};
	struct store_op op = {.kind = STORE_OP_CLAIM, .claim = {.max = 10, .claimed = on_claimed}, .arg = &got};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_eq(op.claim.nclaimed, 4); /* 3 of q, the one of free */
	int of_q = 0;
	for (int i = 0; i < got.n; i++)
		of_q += strcmp(got.jobs[i]->queue, "q") == 0;
	ck_assert_int_eq(of_q, 3);
	claimed_free(&got);
	/* The next token is an hour on: the claim says so and is not "limited"
	 * (which would make the pool claim again on every finished job). */
	ck_assert_msg(op.claim.next_due >= before + 3600000 - 10 && op.claim.next_due <= clock_now_ms() + 3600000,
	              "next_due %lld", (long long)(op.claim.next_due - before));
	ck_assert(!op.claim.limited);
	op = (struct store_op){.kind = STORE_OP_CLAIM, .claim = {.max = 10, .claimed = on_claimed}, .arg = &got};
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	ck_assert_int_eq(op.claim.nclaimed, 0);
	ck_assert(op.claim.next_due >= before + 3600000 - 10);
	ck_assert(!op.claim.limited);
	assert_counts(st, "q", 2, 3, 0, 0, 0, 0);
	struct job **jobs = NULL;
	size_t n = 0;
	int64_t next = 0;
	struct store_filter f = {.has_state = true, .state = JOB_QUEUED, .queue = "q", .limit = 10};
	list(st, &f, &jobs, &n, &next);
	ck_assert_uint_eq(n, 2);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(jobs[i]->attempts, 0);
	jobs_free(jobs, n);
	/* Removing the limit lets them start. */
	ck_assert_int_eq(set_rate(st, "q", 0, 0, 0, false, true, NULL), STORE_OK);
	ck_assert_int_eq(claim(st, 10, &got), 2);
	claimed_free(&got);
	store_close(st);
}
END_TEST

/* A running job of queue that failed with a 429 asking for 60 s. */
static struct store_op throttled_finish(struct store *st, const char *queue, struct job **job)
{
	job_free(submit(st, "echo", queue, 0, NULL));
	struct claimed got = {.n = 0};
	ck_assert_int_eq(claim(st, 1, &got), 1);
	*job = got.jobs[0];
	int64_t now = clock_now_ms();
	(*job)->finished_at = now;
	(*job)->outcome = ATTEMPT_FAILED;
	(*job)->error = strdup("HTTP 429 from there");
	store_attempt_failed(*job, true, now, 60000);
	return (struct store_op){.kind = STORE_OP_FINISH, .finish = {.job = *job, .throttled_until = now + 60000}};
}

START_TEST(store_429_releases_the_attempt_only_when_the_queue_opts_in)
{
	struct store *st = open_store(NULL);
	ck_assert_int_eq(set_rate(st, "in", 100, 1000, 100, true, false, NULL), STORE_OK);
	ck_assert_int_eq(set_rate(st, "out", 100, 1000, 100, false, false, NULL), STORE_OK);

	struct job *job = NULL;
	struct store_op op = throttled_finish(st, "in", &job);
	int64_t until = op.finish.throttled_until;
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	struct job *stored = get_job(st, job->id);
	ck_assert_int_eq(stored->state, JOB_SCHEDULED);
	ck_assert_int_eq(stored->attempts, 0);
	ck_assert_int_eq(stored->nhistory, 0);
	ck_assert(stored->run_at == until);
	job_free(stored);
	job_free(job);
	bool found = false;
	struct store_rate r = read_rate(st, "in", &found);
	ck_assert(found && r.bucket.paused_until == until && r.bucket.tokens == 0);
	/* While paused, nothing of the queue starts. */
	job_free(submit(st, "echo", "in", 0, NULL));
	struct claimed got = {.n = 0};
	struct store_op c = {.kind = STORE_OP_CLAIM, .claim = {.max = 10, .claimed = on_claimed}, .arg = &got};
	ck_assert_int_eq(store_run(st, &c), STORE_OK);
	ck_assert_int_eq(c.claim.nclaimed, 0);
	ck_assert(c.claim.next_due == until);

	op = throttled_finish(st, "out", &job);
	ck_assert_int_eq(store_run(st, &op), STORE_OK);
	stored = get_job(st, job->id);
	ck_assert_int_eq(stored->state, JOB_SCHEDULED);
	ck_assert_int_eq(stored->attempts, 1);
	ck_assert_int_eq(stored->nhistory, 1);
	job_free(stored);
	job_free(job);
	r = read_rate(st, "out", &found);
	ck_assert(found && r.bucket.paused_until == 0);
	store_close(st);
}
END_TEST

void store_rate_cases(Suite *s)
{
	TCase *tc = store_tcase(s, "rates");
	tcase_add_test(tc, store_rate_is_set_replaced_keeping_tokens_and_removed);
	tcase_add_test(tc, store_claim_starts_whole_tokens_and_says_when_the_next_is_due);
	tcase_add_test(tc, store_429_releases_the_attempt_only_when_the_queue_opts_in);
}
