/* Built-in job kinds.
 *   echo  - the result is the payload, as it was sent.
 *   sleep - {"seconds": S}: sleeps S seconds, reporting progress every
 *           PROGRESS_STEP_MS, and stops at once when asked.
 *   fail  - {"message": M, "retryable": B}: fails with M ("failed" when
 *           absent); with retryable false the job is not retried. */
#include "workers/builtin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/kind.h"
#include "core/run.h"

#define SLEEP_MAX_S 86400.0
#define PROGRESS_STEP_MS 100

static enum run_outcome echo_run(const struct job_kind *kind, struct run *run, const cJSON *payload,
                                 cJSON **result, char **error)
{
	(void)kind;
	/* The payload's stored text, exactly as it was sent. */
	if (!run->job->payload)
		return RUN_SUCCEEDED;
	*result = cJSON_CreateRaw(run->job->payload);
	if (*result)
		return RUN_SUCCEEDED;
	(void)payload;
	*error = strdup("out of memory");
	return RUN_FAILED;
}

static int sleep_validate(const struct job_kind *kind, const cJSON *payload, struct problem *p)
{
	(void)kind;
	if (!cJSON_IsObject(payload))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload", "sleep needs a payload object like {\"seconds\": 2.5}");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(payload, "seconds");
	if (!s)
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.seconds", "payload.seconds is required");
	if (!cJSON_IsNumber(s) || !isfinite(s->valuedouble))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.seconds", "payload.seconds must be a number");
	if (s->valuedouble < 0 || s->valuedouble > SLEEP_MAX_S)
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.seconds", "payload.seconds must be between 0 and %.0f", SLEEP_MAX_S);
	return 0;
}

static enum run_outcome sleep_run(const struct job_kind *kind, struct run *run, const cJSON *payload,
                                  cJSON **result, char **error)
{
	(void)kind;
	(void)error;
	double seconds = cJSON_GetObjectItemCaseSensitive(payload, "seconds")->valuedouble;
	int64_t start = clock_mono_ms();
	int64_t end = start + (int64_t)llround(seconds * 1000);
	char msg[64];
	for (int64_t now = start; now < end; now = clock_mono_ms()) {
		double done = (double)(now - start) / 1000;
		snprintf(msg, sizeof msg, "slept %.1fs of %.1fs", done, seconds);
		run_progress(run, 100 * done / seconds, msg);
		int64_t step = now + PROGRESS_STEP_MS < end ? now + PROGRESS_STEP_MS : end;
		if (!run_sleep_until(run, step))
			return RUN_STOPPED;
	}
	snprintf(msg, sizeof msg, "slept %.1fs of %.1fs", seconds, seconds);
	run_progress(run, 100, msg);
	*result = cJSON_CreateObject();
	cJSON_AddNumberToObject(*result, "slept", seconds);
	return RUN_SUCCEEDED;
}

static int fail_validate(const struct job_kind *kind, const cJSON *payload, struct problem *p)
{
	(void)kind;
	if (!payload)
		return 0;
	if (!cJSON_IsObject(payload))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload", "fail takes an optional payload object like {\"message\": \"...\"}");
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(payload, "message");
	if (m && !cJSON_IsString(m))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.message", "payload.message must be a string");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(payload, "retryable");
	if (r && !cJSON_IsBool(r))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.retryable", "payload.retryable must be true or false");
	return 0;
}

static enum run_outcome fail_run(const struct job_kind *kind, struct run *run, const cJSON *payload,
                                 cJSON **result, char **error)
{
	(void)kind;
	(void)run;
	(void)result;
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(payload, "message");
	*error = strdup(cJSON_IsString(m) ? m->valuestring : "failed");
	return cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(payload, "retryable")) ? RUN_FAILED_FINAL : RUN_FAILED;
}

static const struct job_kind builtin_kinds[] = {
	{.name = "echo", .validate = NULL, .run = echo_run},
	{.name = "sleep", .validate = sleep_validate, .run = sleep_run},
	{.name = "fail", .validate = fail_validate, .run = fail_run},
};

int builtin_register(void)
{
	for (size_t i = 0; i < sizeof builtin_kinds / sizeof builtin_kinds[0]; i++)
		if (kind_register(&builtin_kinds[i]) != 0)
			return -1;
	return 0;
}
