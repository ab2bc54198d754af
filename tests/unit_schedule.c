/* core/schedule.c: definitions (checked, stored, read back), next fire
 * times with Europe/Berlin's 2026 daylight-saving changes, and the
 * catch-up maths of each policy, all with explicit now values. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/job.h"
#include "core/schedule.h"

Suite *schedule_suite(void);

static const struct job_defaults defaults = {
	.max_attempts = 3, .backoff_s = 1, .max_backoff_s = 300, .timeout_s = 3600, .retention_s = 604800,
};

/* A schedule from a request body; fails the test on a problem. */
static void make(const char *json, struct schedule *s)
{
	struct problem p;
	cJSON *body = job_parse_body(json, strlen(json), &p);
	ck_assert_msg(body != NULL, "%s: %s", json, p.detail);
	int rc = schedule_from_json(body, NULL, &defaults, s, &p);
	cJSON_Delete(body);
	ck_assert_msg(rc == 0, "%s: %s %s", json, p.field, p.detail);
}

static int64_t at(const char *rfc3339)
{
	int64_t ms = 0;
	ck_assert_int_eq(clock_parse_rfc3339(rfc3339, &ms), 0);
	return ms;
}

static void assert_at(int64_t ms, const char *want)
{
	char got[32];
	clock_rfc3339(ms, got);
	ck_assert_str_eq(got, want);
}

/* ---- definitions ---------------------------------------------------------- */

START_TEST(schedule_problems_name_the_field)
{
	static const struct {
		const char *body, *field;
		enum problem_kind kind;
	} bad[] = {
		{"{\"every_s\":5,\"job\":{\"type\":\"echo\"}}", "name", PROBLEM_INVALID_FIELD},
		{"{\"name\":\"s\",\"every_s\":5}", "job", PROBLEM_INVALID_FIELD},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"nope\"}}", "job.type", PROBLEM_UNKNOWN_JOB_TYPE},
		{"{\"name\":\"s\",\"every_s\":5,\"job\":{\"type\":\"echo\",\"timeout_s\":-1}}", "job.timeout_s",
		 PROBLEM_INVALID_FIELD},
		{"{\"name\":\"s\",\"cron\":\"* * * * * *\",\"job\":{\"type\":\"echo\"}}", "cron", PROBLEM_INVALID_FIELD},
		{"{\"name\":\"s\",\"cron\":\"0 0 31 2 *\",\"job\":{\"type\":\"echo\"}}", "cron", PROBLEM_INVALID_FIELD},
		{"{\"name\":\"s\",\"every_s\":31536001,\"job\":{\"type\":\"echo\"}}", "every_s", PROBLEM_INVALID_FIELD},
		{"{\"name\":\"s\",\"every_s\":5,\"tz\":\"Europe/Nowhere\",\"job\":{\"type\":\"echo\"}}", "tz",
		 PROBLEM_UNKNOWN_TIME_ZONE},
		{"{\"name\":\"s\",\"every_s\":5,\"misfire_grace_s\":86401,\"job\":{\"type\":\"echo\"}}",
		 "misfire_grace_s", PROBLEM_INVALID_FIELD},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct problem p;
		struct schedule s;
		cJSON *body = job_parse_body(bad[i].body, strlen(bad[i].body), &p);
		ck_assert_ptr_nonnull(body);
		ck_assert_int_eq(schedule_from_json(body, NULL, &defaults, &s, &p), -1);
		ck_assert_msg(strcmp(p.field, bad[i].field) == 0 && p.kind == bad[i].kind, "%s: field %s kind %d",
		              bad[i].body, p.field, (int)p.kind);
		cJSON_Delete(body);
	}
	/* the cron field's own words come through */
	struct problem p;
	struct schedule s;
	const char *text = "{\"name\":\"s\",\"cron\":\"0 24 * * *\",\"job\":{\"type\":\"echo\"}}";
	cJSON *body = job_parse_body(text, strlen(text), &p);
	ck_assert_int_eq(schedule_from_json(body, NULL, &defaults, &s, &p), -1);
	ck_assert_msg(strstr(p.detail, "hour") != NULL, "%s", p.detail);
	cJSON_Delete(body);
}
END_TEST

START_TEST(schedule_stored_form_reads_back_the_same)
{
	struct schedule s, back;
	char err[256];
	make("{\"name\":\"nightly\",\"cron\":\"@daily\",\"tz\":\"Europe/Berlin\",\"catch_up\":\"all\","
	     "\"catch_up_max\":5,\"misfire_grace_s\":7,\"job\":{\"type\":\"echo\",\"payload\":{\"a\":[1,2]}}}", &s);
	char *text = schedule_to_stored(&s);
	ck_assert_ptr_nonnull(text);
	ck_assert_int_eq(schedule_from_stored("nightly", text, &back, err, sizeof err), 0);
	ck_assert_str_eq(back.name, "nightly");
	ck_assert(back.has_cron);
	ck_assert_str_eq(back.cron_text, "@daily");
	ck_assert_str_eq(back.tz_name, "Europe/Berlin");
	ck_assert_int_eq(back.catch_up, SCHEDULE_ALL);
	ck_assert_int_eq(back.catch_up_max, 5);
	ck_assert_int_eq(back.misfire_grace_s, 7);
	char *again = schedule_to_stored(&back);
	ck_assert_str_eq(text, again);
	int64_t now = at("2026-06-01T12:00:00Z");
	ck_assert_int_eq(schedule_next(&s, now), schedule_next(&back, now));
	free(text);
	free(again);
	schedule_clear(&s);
	schedule_clear(&back);
	ck_assert_int_eq(schedule_from_stored("x", "not json", &back, err, sizeof err), -1);
}
END_TEST

START_TEST(schedule_job_carries_its_fire)
{
	struct schedule s;
	struct problem p;
	struct job *job = NULL;
	make("{\"name\":\"n\",\"every_s\":60,\"job\":{\"type\":\"echo\",\"queue\":\"q\",\"priority\":3}}", &s);
	ck_assert_int_eq(schedule_make_job(&s, &defaults, 123000, 124000, &job, &p), 0);
	ck_assert_str_eq(job->schedule_name, "n");
	ck_assert_int_eq(job->schedule_fire_at, 123000);
	ck_assert_str_eq(job->queue, "q");
	ck_assert_int_eq(job->priority, 3);
	ck_assert_int_eq(job->state, JOB_QUEUED);
	cJSON *o = job_to_json(job);
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "schedule");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(sc, "name")->valuestring, "n");
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(sc, "fire_at")->valuestring, "1970-01-01T00:02:03.000Z");
	cJSON_Delete(o);
	job_free(job);
	schedule_clear(&s);
}
END_TEST

/* ---- daylight saving ------------------------------------------------------ */

/* Berlin, 2026: clocks go 02:00 CET -> 03:00 CEST on 29 March, and 03:00
 * CEST -> 02:00 CET on 25 October. */
START_TEST(schedule_berlin_0230_across_the_2026_changes)
{
	struct schedule s;
	make("{\"name\":\"b\",\"cron\":\"30 2 * * *\",\"tz\":\"Europe/Berlin\",\"job\":{\"type\":\"echo\"}}", &s);
	/* winter: 02:30 CET is 01:30Z */
	assert_at(schedule_next(&s, at("2026-03-27T12:00:00Z")), "2026-03-28T01:30:00.000Z");
	/* 29 March has no 02:30: it fires at the first instant after the gap, 03:00 CEST */
	int64_t t = schedule_next(&s, at("2026-03-28T12:00:00Z"));
	assert_at(t, "2026-03-29T01:00:00.000Z");
	/* then summer: 02:30 CEST is 00:30Z */
	assert_at(schedule_next(&s, t), "2026-03-30T00:30:00.000Z");
	/* 25 October has 02:30 twice: it fires once, at the first (CEST) */
	t = schedule_next(&s, at("2026-10-24T12:00:00Z"));
	assert_at(t, "2026-10-25T00:30:00.000Z");
	t = schedule_next(&s, t);
	assert_at(t, "2026-10-26T01:30:00.000Z");
	schedule_clear(&s);
}
END_TEST

/* A catch-up across the spring change walks the same times. */
START_TEST(schedule_catch_up_all_across_the_spring_gap)
{
	struct schedule s;
	struct schedule_plan *plan = malloc(sizeof *plan);
	make("{\"name\":\"b\",\"cron\":\"30 2 * * *\",\"tz\":\"Europe/Berlin\",\"catch_up\":\"all\","
	     "\"job\":{\"type\":\"echo\"}}", &s);
	schedule_plan(&s, at("2026-03-28T01:30:00Z"), at("2026-03-30T12:00:00Z"), plan);
	ck_assert_int_eq(plan->n, 3);
	assert_at(plan->fire_at[0], "2026-03-28T01:30:00.000Z");
	assert_at(plan->fire_at[1], "2026-03-29T01:00:00.000Z");
	assert_at(plan->fire_at[2], "2026-03-30T00:30:00.000Z");
	assert_at(plan->next, "2026-03-31T00:30:00.000Z");
	ck_assert_int_eq(plan->skipped, 0);
	free(plan);
	schedule_clear(&s);
}
END_TEST

/* ---- catch-up maths --------------------------------------------------------- */

static void plan_every(const char *extra, int64_t due, int64_t now, struct schedule_plan *plan)
{
	char json[512];
	struct schedule s;
	snprintf(json, sizeof json, "{\"name\":\"e\",\"every_s\":10,%s\"job\":{\"type\":\"echo\"}}", extra);
	make(json, &s);
	schedule_plan(&s, due, now, plan);
	schedule_clear(&s);
}

START_TEST(schedule_interval_catch_up_policies)
{
	struct schedule_plan *p = malloc(sizeof *p);
	const int64_t due = 1000000, now = due + 35000; /* due, +10, +20, +30 s are due */

	/* on time (within the grace): every policy fires each */
	plan_every("", due, now, p);
	ck_assert_int_eq(p->n, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(p->fire_at[i], due + i * 10000);
	ck_assert_int_eq(p->next, due + 40000);
	ck_assert_int_eq(p->skipped, 0);

	/* skip with a 7 s grace: only +30 s (5 s late) */
	plan_every("\"misfire_grace_s\":7,", due, now, p);
	ck_assert_int_eq(p->n, 1);
	ck_assert_int_eq(p->fire_at[0], due + 30000);
	ck_assert_int_eq(p->skipped, 3);
	ck_assert_int_eq(p->next, due + 40000);

	/* skip with no grace: nothing */
	plan_every("\"misfire_grace_s\":0,", due, now, p);
	ck_assert_int_eq(p->n, 0);
	ck_assert_int_eq(p->skipped, 4);
	ck_assert_int_eq(p->next, due + 40000);

	/* latest: the newest due time once */
	plan_every("\"misfire_grace_s\":0,\"catch_up\":\"latest\",", due, now, p);
	ck_assert_int_eq(p->n, 1);
	ck_assert_int_eq(p->fire_at[0], due + 30000);
	ck_assert_int_eq(p->skipped, 3);

	/* all: each, oldest first; with a bound, the newest that many */
	plan_every("\"misfire_grace_s\":0,\"catch_up\":\"all\",", due, now, p);
	ck_assert_int_eq(p->n, 4);
	ck_assert_int_eq(p->fire_at[0], due);
	ck_assert_int_eq(p->fire_at[3], due + 30000);
	plan_every("\"misfire_grace_s\":0,\"catch_up\":\"all\",\"catch_up_max\":2,", due, now, p);
	ck_assert_int_eq(p->n, 2);
	ck_assert_int_eq(p->fire_at[0], due + 20000);
	ck_assert_int_eq(p->fire_at[1], due + 30000);
	ck_assert_int_eq(p->skipped, 2);

	/* exactly due: fires it, next is one interval on */
	plan_every("\"misfire_grace_s\":0,", due, due, p);
	ck_assert_int_eq(p->n, 1);
	ck_assert_int_eq(p->fire_at[0], due);
	ck_assert_int_eq(p->next, due + 10000);

	/* a year's backlog: bounded, and next is still the first after now */
	int64_t far = due + 365LL * 86400000;
	plan_every("\"catch_up\":\"all\",\"catch_up_max\":1000,", due, far, p);
	ck_assert_int_eq(p->n, SCHEDULE_FIRES_MAX);
	ck_assert_int_le(p->fire_at[SCHEDULE_FIRES_MAX - 1], far);
	ck_assert_int_gt(p->next, far);
	ck_assert_int_le(p->next, far + 10000);
	ck_assert_int_eq(p->skipped, 365LL * 8640 + 1 - SCHEDULE_FIRES_MAX);
	free(p);
}
END_TEST

START_TEST(schedule_cron_catch_up_policies)
{
	struct schedule_plan *p = malloc(sizeof *p);
	struct schedule s;
	int64_t due = at("2026-01-01T00:00:00Z"), now = at("2026-01-01T05:30:00Z");

	make("{\"name\":\"h\",\"cron\":\"0 * * * *\",\"job\":{\"type\":\"echo\"}}", &s);
	schedule_plan(&s, due, now, p);
	ck_assert_int_eq(p->n, 0);          /* 05:00 is 30 min late: past the 60 s grace */
	ck_assert_int_eq(p->skipped, 6);
	assert_at(p->next, "2026-01-01T06:00:00.000Z");
	s.catch_up = SCHEDULE_LATEST;
	schedule_plan(&s, due, now, p);
	ck_assert_int_eq(p->n, 1);
	assert_at(p->fire_at[0], "2026-01-01T05:00:00.000Z");
	s.catch_up = SCHEDULE_ALL;
	schedule_plan(&s, due, now, p);
	ck_assert_int_eq(p->n, 6);
	assert_at(p->fire_at[0], "2026-01-01T00:00:00.000Z");
	assert_at(p->fire_at[5], "2026-01-01T05:00:00.000Z");
	/* a leader hand-over: 3 s late is within the grace, skip fires it */
	s.catch_up = SCHEDULE_SKIP;
	schedule_plan(&s, at("2026-01-01T05:00:00Z"), at("2026-01-01T05:00:03Z"), p);
	ck_assert_int_eq(p->n, 1);
	assert_at(p->fire_at[0], "2026-01-01T05:00:00.000Z");
	schedule_clear(&s);
	free(p);
}
END_TEST

START_TEST(schedule_first_fire_times)
{
	struct schedule s;
	make("{\"name\":\"e\",\"every_s\":90,\"job\":{\"type\":\"echo\"}}", &s);
	ck_assert_int_eq(schedule_first(&s, 5000), 95000);
	schedule_clear(&s);
	make("{\"name\":\"c\",\"cron\":\"*/15 * * * *\",\"job\":{\"type\":\"echo\"}}", &s);
	assert_at(schedule_first(&s, at("2026-05-05T10:15:00Z")), "2026-05-05T10:30:00.000Z");
	assert_at(schedule_first(&s, at("2026-05-05T10:15:00.001Z")), "2026-05-05T10:30:00.000Z");
	assert_at(schedule_first(&s, at("2026-05-05T10:14:59.999Z")), "2026-05-05T10:15:00.000Z");
	schedule_clear(&s);
}
END_TEST

Suite *schedule_suite(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("schedule");
	tcase_add_test(tc, schedule_problems_name_the_field);
	tcase_add_test(tc, schedule_stored_form_reads_back_the_same);
	tcase_add_test(tc, schedule_job_carries_its_fire);
	tcase_add_test(tc, schedule_berlin_0230_across_the_2026_changes);
	tcase_add_test(tc, schedule_catch_up_all_across_the_spring_gap);
	tcase_add_test(tc, schedule_interval_catch_up_policies);
	tcase_add_test(tc, schedule_cron_catch_up_policies);
	tcase_add_test(tc, schedule_first_fire_times);
	suite_add_tcase(s, tc);
	return s;
}
