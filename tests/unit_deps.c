/* Unit tests for core/deps.c: depends_on parsing, batch links and cycles,
 * the initial state of a job given its parents' states. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/deps.h"
#include "core/job.h"

Suite *deps_suite(void);

static const struct job_defaults defaults = {
	.max_attempts = 3, .backoff_s = 1, .max_backoff_s = 300, .timeout_s = 3600, .retention_s = 604800,
};

/* Validates a batch body; returns 0 or -1 with p. */
static int batch(const char *text, struct job_batch *b, struct problem *p)
{
	cJSON *body = job_parse_body(text, strlen(text), p);
	ck_assert_ptr_nonnull(body);
	int rc = job_batch_from_submission(body, &defaults, b, p);
	cJSON_Delete(body);
	return rc;
}

static int one(const char *text, struct job **out, struct problem *p)
{
	cJSON *body = job_parse_body(text, strlen(text), p);
	ck_assert_ptr_nonnull(body);
	int rc = job_from_submission(body, &defaults, out, p);
	cJSON_Delete(body);
	return rc;
}

START_TEST(parse_ids_policy_and_refs)
{
	struct problem p;
	struct job *job = NULL;
	ck_assert_int_eq(one("{\"type\":\"echo\",\"depends_on\":[\"01890000-0000-7000-8000-000000000001\",3],"
	                     "\"on_dependency_failure\":\"wait\"}", &job, &p), 0);
	ck_assert_int_eq(job->deps.n, 2);
	ck_assert_str_eq(job->deps.ids[0], "01890000-0000-7000-8000-000000000001");
	ck_assert_ptr_nonnull(job->deps.refs);
	ck_assert_int_eq(job->deps.refs[0], -1);
	ck_assert_int_eq(job->deps.refs[1], 3);
	ck_assert_int_eq(job->deps.policy, DEP_WAIT);
	ck_assert_int_eq(deps_refuse_refs(job, &p), -1);
	ck_assert_str_eq(p.field, "depends_on[1]");
	job_free(job);

	ck_assert_int_eq(one("{\"type\":\"echo\"}", &job, &p), 0);
	ck_assert_int_eq(job->deps.n, 0);
	ck_assert_int_eq(job->deps.policy, DEP_CANCEL);
	ck_assert_int_eq(job->deps.missing, -1);
	job_free(job);
}
END_TEST

START_TEST(parse_refusals_name_the_entry)
{
	static const struct {
		const char *body, *field;
		enum problem_kind kind;
	} cases[] = {
		{"{\"type\":\"echo\",\"depends_on\":{}}", "depends_on", PROBLEM_INVALID_FIELD},
		{"{\"type\":\"echo\",\"depends_on\":[1.5]}", "depends_on[0]", PROBLEM_INVALID_FIELD},
		{"{\"type\":\"echo\",\"depends_on\":[-1]}", "depends_on[0]", PROBLEM_INVALID_FIELD},
		{"{\"type\":\"echo\",\"depends_on\":[null]}", "depends_on[0]", PROBLEM_INVALID_FIELD},
		{"{\"type\":\"echo\",\"depends_on\":[\"x\"]}", "depends_on[0]", PROBLEM_INVALID_FIELD},
		{"{\"type\":\"echo\",\"depends_on\":[2,2]}", "depends_on[1]", PROBLEM_INVALID_FIELD},
		{"{\"type\":\"echo\",\"on_dependency_failure\":1}", "on_dependency_failure", PROBLEM_INVALID_FIELD},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct problem p;
		struct job *job = NULL;
		ck_assert_msg(one(cases[i].body, &job, &p) == -1, "%s accepted", cases[i].body);
		ck_assert_msg(strcmp(p.field, cases[i].field) == 0 && p.kind == cases[i].kind, "%s: field %s kind %d",
		              cases[i].body, p.field, (int)p.kind);
	}
}
END_TEST

START_TEST(too_many_entries)
{
	char body[8192] = "{\"type\":\"echo\",\"depends_on\":[";
	size_t n = strlen(body);
	for (int i = 0; i < JOB_DEPS_MAX + 1; i++)
		n += (size_t)snprintf(body + n, sizeof body - n, "%s\"01890000-0000-7000-8000-%012d\"", i ? "," : "", i);
	snprintf(body + n, sizeof body - n, "]}");
	struct problem p;
	struct job *job = NULL;
	ck_assert_int_eq(one(body, &job, &p), -1);
	ck_assert_str_eq(p.field, "depends_on");
	ck_assert_int_eq(p.kind, PROBLEM_INVALID_FIELD);
}
END_TEST

START_TEST(batch_links_indexes_and_orders_parents_first)
{
	struct job_batch b;
	struct problem p;
	ck_assert_int_eq(batch("{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[2,1]},{\"type\":\"echo\",\"depends_on\":[2]},"
	                       "{\"type\":\"echo\"}]}", &b, &p), 0);
	ck_assert_str_eq(b.jobs[0]->deps.ids[0], b.jobs[2]->id);
	ck_assert_str_eq(b.jobs[0]->deps.ids[1], b.jobs[1]->id);
	int order[3], pos[3];
	ck_assert_int_eq(deps_batch_order(b.jobs, 3, order), 0);
	for (int i = 0; i < 3; i++)
		pos[order[i]] = i;
	ck_assert_int_lt(pos[2], pos[1]);
	ck_assert_int_lt(pos[1], pos[0]);
	job_batch_clear(&b);
}
END_TEST

START_TEST(batch_cycles_are_named)
{
	struct job_batch b;
	struct problem p;
	ck_assert_int_eq(batch("{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[0]}]}", &b, &p), -1);
	ck_assert_str_eq(p.field, "jobs[0].depends_on[0]");
	ck_assert_int_eq(p.kind, PROBLEM_INVALID_DEPENDENCY);
	ck_assert_int_eq(batch("{\"jobs\":[{\"type\":\"echo\"},{\"type\":\"echo\",\"depends_on\":[0,2]},"
	                       "{\"type\":\"echo\",\"depends_on\":[3]},{\"type\":\"echo\",\"depends_on\":[1]}]}", &b, &p),
	                 -1);
	ck_assert_int_eq(p.kind, PROBLEM_INVALID_DEPENDENCY);
	ck_assert_msg(strstr(p.detail, "jobs[1] -> jobs[2] -> jobs[3] -> jobs[1]"), "detail: %s", p.detail);
	ck_assert_int_eq(batch("{\"jobs\":[{\"type\":\"echo\",\"depends_on\":[1]}]}", &b, &p), -1);
	ck_assert_str_eq(p.field, "jobs[0].depends_on[0]");
}
END_TEST

START_TEST(initial_state_by_policy)
{
	struct job job = {.state = JOB_QUEUED, .deps = {.n = 3, .policy = DEP_CANCEL}};
	bool resolved[3];
	enum job_state parents[3] = {JOB_SUCCEEDED, JOB_RUNNING, JOB_SUCCEEDED};
	ck_assert_int_eq(deps_initial(&job, parents, resolved), -1);
	ck_assert_int_eq(job.state, JOB_BLOCKED);
	ck_assert_int_eq(job.deps.pending, 1);

	job.state = JOB_SCHEDULED;
	parents[1] = JOB_SUCCEEDED;
	ck_assert_int_eq(deps_initial(&job, parents, resolved), -1);
	ck_assert_int_eq(job.state, JOB_SCHEDULED); /* all resolved: as submitted */

	parents[2] = JOB_FAILED;
	ck_assert_int_eq(deps_initial(&job, parents, resolved), 2);
	ck_assert_int_eq(job.state, JOB_BLOCKED);   /* to be canceled at once */

	job.state = JOB_QUEUED;
	job.deps.policy = DEP_RUN;
	ck_assert_int_eq(deps_initial(&job, parents, resolved), -1);
	ck_assert_int_eq(job.state, JOB_QUEUED);

	job.deps.policy = DEP_WAIT;
	ck_assert_int_eq(deps_initial(&job, parents, resolved), -1);
	ck_assert_int_eq(job.state, JOB_BLOCKED);
	ck_assert_int_eq(job.deps.pending, 1);
	ck_assert(!resolved[2]);
}
END_TEST

START_TEST(ids_text_round_trips)
{
	char ids[2][UUID_LEN + 1] = {"01890000-0000-7000-8000-000000000001", "01890000-0000-7000-8000-000000000002"};
	struct job_deps d = {.n = 2, .ids = ids};
	bool oom = true;
	char *text = deps_ids_text(&d, &oom);
	ck_assert(!oom);
	ck_assert_str_eq(text, "[\"01890000-0000-7000-8000-000000000001\",\"01890000-0000-7000-8000-000000000002\"]");
	struct job_deps back = {.n = 0};
	ck_assert_int_eq(deps_ids_from_text(text, &back), 0);
	ck_assert_int_eq(back.n, 2);
	ck_assert_str_eq(back.ids[1], ids[1]);
	free(back.ids);
	free(text);
}
END_TEST

Suite *deps_suite(void)
{
	Suite *s = suite_create("deps");
	TCase *tc = tcase_create("deps");
	tcase_add_test(tc, parse_ids_policy_and_refs);
	tcase_add_test(tc, parse_refusals_name_the_entry);
	tcase_add_test(tc, too_many_entries);
	tcase_add_test(tc, batch_links_indexes_and_orders_parents_first);
	tcase_add_test(tc, batch_cycles_are_named);
	tcase_add_test(tc, initial_state_by_policy);
	tcase_add_test(tc, ids_text_round_trips);
	suite_add_tcase(s, tc);
	return s;
}
