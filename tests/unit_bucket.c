/* Unit tests for the token bucket (core/bucket.c): a full burst at once,
 * the refill rate over many periods, the next token's time, no refill
 * backwards in time, and the pause a 429 asks for. */
#include <check.h>
#include <stdint.h>

#include "core/bucket.h"

Suite *bucket_suite(void);

#define T0 1800000000000LL /* an arbitrary unix ms */

START_TEST(bucket_starts_full_and_gives_its_burst_at_once)
{
	struct bucket b;
	bucket_init(&b, 10, 1000, 4, T0);
	bucket_refill(&b, T0);
	ck_assert_int_eq(bucket_whole(&b, T0), 4);
	ck_assert_int_eq(bucket_take(&b, T0, 10), 4);
	ck_assert_int_eq(bucket_whole(&b, T0), 0);
	ck_assert_int_eq(bucket_take(&b, T0, 1), 0);
}
END_TEST

START_TEST(bucket_refills_at_the_limit_per_period)
{
	/* 10 per second, burst 1: taking whenever a token is whole, every
	 * 100 ms, 100 starts over 10 s after the first. */
	struct bucket b;
	bucket_init(&b, 10, 1000, 1, T0);
	int starts = 0;
	for (int64_t now = T0; now <= T0 + 10000; now++) {
		bucket_refill(&b, now);
		starts += bucket_take(&b, now, 1);
	}
	ck_assert_int_eq(starts, 101);
}
END_TEST

START_TEST(bucket_refill_stops_at_the_burst)
{
	struct bucket b;
	bucket_init(&b, 5, 1000, 3, T0);
	ck_assert_int_eq(bucket_take(&b, T0, 3), 3);
	bucket_refill(&b, T0 + 3600000);
	ck_assert_int_eq(bucket_whole(&b, T0 + 3600000), 3);
}
END_TEST

START_TEST(bucket_next_at_names_the_ms_the_token_is_whole)
{
	struct bucket b;
	bucket_init(&b, 3, 1000, 1, T0); /* a token every 333.3 ms */
	ck_assert_int_eq(bucket_take(&b, T0, 1), 1);
	int64_t at = bucket_next_at(&b, T0);
	ck_assert_int_eq(at, T0 + 334);
	bucket_refill(&b, at - 1);
	ck_assert_int_eq(bucket_whole(&b, at - 1), 0);
	ck_assert_int_eq(bucket_next_at(&b, at - 1), at);
	bucket_refill(&b, at);
	ck_assert_int_eq(bucket_whole(&b, at), 1);
	ck_assert_int_eq(bucket_next_at(&b, at), at);
}
END_TEST

START_TEST(bucket_time_before_refilled_at_adds_nothing)
{
	struct bucket b;
	bucket_init(&b, 1, 1000, 1, T0);
	ck_assert_int_eq(bucket_take(&b, T0, 1), 1);
	bucket_refill(&b, T0 - 5000); /* a node whose clock is behind */
	ck_assert_int_eq(bucket_whole(&b, T0 - 5000), 0);
	ck_assert_int_eq(b.refilled_at, T0);
	ck_assert(bucket_next_at(&b, T0 - 5000) == T0 + 1000);
}
END_TEST

START_TEST(bucket_slow_rates_keep_their_precision)
{
	/* 1 per day: the token is whole at the day's last ms, not before. */
	struct bucket b;
	bucket_init(&b, 1, BUCKET_PERIOD_MAX_MS, 1, T0);
	ck_assert_int_eq(bucket_take(&b, T0, 1), 1);
	ck_assert(bucket_next_at(&b, T0) == T0 + BUCKET_PERIOD_MAX_MS);
	bucket_refill(&b, T0 + BUCKET_PERIOD_MAX_MS - 1);
	ck_assert_int_eq(bucket_whole(&b, T0 + BUCKET_PERIOD_MAX_MS - 1), 0);
	bucket_refill(&b, T0 + BUCKET_PERIOD_MAX_MS);
	ck_assert_int_eq(bucket_whole(&b, T0 + BUCKET_PERIOD_MAX_MS), 1);
}
END_TEST

START_TEST(bucket_pause_empties_until_then_with_one_token_at_its_end)
{
	struct bucket b;
	bucket_init(&b, 100, 1000, 50, T0);
	bucket_pause(&b, T0, T0 + 30000);
	bucket_refill(&b, T0 + 29999);
	ck_assert_int_eq(bucket_whole(&b, T0 + 29999), 0);
	ck_assert(bucket_next_at(&b, T0 + 10) == T0 + 30000);
	bucket_refill(&b, T0 + 30000);
	ck_assert_int_eq(bucket_whole(&b, T0 + 30000), 1);
	ck_assert(b.paused_until == 0);
	/* then the refill goes on at the rate: 10 ms per token */
	bucket_refill(&b, T0 + 30100);
	ck_assert_int_eq(bucket_whole(&b, T0 + 30100), 11);
}
END_TEST

START_TEST(bucket_pause_keeps_the_later_end)
{
	struct bucket b;
	bucket_init(&b, 1, 1000, 1, T0);
	bucket_pause(&b, T0, T0 + 5000);
	bucket_pause(&b, T0 + 1, T0 + 2000); /* earlier: ignored */
	ck_assert(b.paused_until == T0 + 5000);
	bucket_pause(&b, T0 + 2, T0 + 9000);
	ck_assert(b.paused_until == T0 + 9000);
	bucket_pause(&b, T0 + 3, T0 + 3); /* not in the future: ignored */
	ck_assert(b.paused_until == T0 + 9000);
}
END_TEST

Suite *bucket_suite(void)
{
	Suite *s = suite_create("bucket");
	TCase *tc = tcase_create("bucket");
	tcase_add_test(tc, bucket_starts_full_and_gives_its_burst_at_once);
	tcase_add_test(tc, bucket_refills_at_the_limit_per_period);
	tcase_add_test(tc, bucket_refill_stops_at_the_burst);
	tcase_add_test(tc, bucket_next_at_names_the_ms_the_token_is_whole);
	tcase_add_test(tc, bucket_time_before_refilled_at_adds_nothing);
	tcase_add_test(tc, bucket_slow_rates_keep_their_precision);
	tcase_add_test(tc, bucket_pause_empties_until_then_with_one_token_at_its_end);
	tcase_add_test(tc, bucket_pause_keeps_the_later_end);
	suite_add_tcase(s, tc);
	return s;
}
