/* Test-only job types.
 *   crash - aborts the whole process the moment it runs (a poison pill).
 *   tally - appends "<id> <attempt>" to the file named by JOBQ_TEST_TALLY
 *           and fsyncs it, so a test can count every run; then sleeps
 *           payload.seconds (stopping when asked) and succeeds with
 *           {"attempt": N}, or fails (retryable) when payload.fail is true.
 *   gate  - holds its worker until the file named by JOBQ_TEST_GATE exists
 *           (looking every 10 ms), then succeeds; stops when asked, and
 *           fails after 60 s. Jobs claimed behind it wait in the buffer. */
#include "workers/testkinds.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/kind.h"
#include "core/run.h"

static enum run_outcome crash_run(const struct job_kind *kind, struct run *run, const cJSON *payload, cJSON **result, char **error)
{
	(void)kind;
	(void)run;
	(void)payload;
	(void)result;
	(void)error;
	struct rlimit none = {0, 0};
	setrlimit(RLIMIT_CORE, &none); /* no core file per crash */
	abort();
}

static int tally_validate(const struct job_kind *kind, const cJSON *payload, struct problem *p)
{
	(void)kind;
	if (!payload)
		return 0;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(payload, "seconds");
	if (s && (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 60))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.seconds", "payload.seconds must be 0 to 60");
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(payload, "fail");
	if (f && !cJSON_IsBool(f))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.fail", "payload.fail must be true or false");
	return 0;
}

static enum run_outcome tally_run(const struct job_kind *kind, struct run *run, const cJSON *payload, cJSON **result, char **error)
{
	(void)kind;
	const char *path = getenv("JOBQ_TEST_TALLY");
	if (path) {
		char line[64];
		int n = snprintf(line, sizeof line, "%s %d\n", run->job->id, run->job->attempts);
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, line, (size_t)n) != n || fsync(fd) != 0) {
			if (fd >= 0)
				close(fd);
			*error = strdup("cannot write the tally file");
			return RUN_FAILED_FINAL;
		}
		close(fd);
	}
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(payload, "seconds");
	double seconds = cJSON_IsNumber(s) ? s->valuedouble : 0;
	if (!run_sleep_until(run, clock_mono_ms() + (int64_t)llround(seconds * 1000)))
		return RUN_STOPPED;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(payload, "fail"))) {
		*error = strdup("tally failed as asked");
		return RUN_FAILED;
	}
	*result = cJSON_CreateObject();
	cJSON_AddNumberToObject(*result, "attempt", run->job->attempts);
	return RUN_SUCCEEDED;
}

#define GATE_STEP_MS 10
#define GATE_MAX_MS 60000

static enum run_outcome gate_run(const struct job_kind *kind, struct run *run, const cJSON *payload, cJSON **result, char **error)
{
	(void)kind;
	(void)payload;
	(void)result;
	const char *path = getenv("JOBQ_TEST_GATE");
	struct stat sb;
	int64_t until = clock_mono_ms() + GATE_MAX_MS;
	while (!path || stat(path, &sb) != 0) {
		if (clock_mono_ms() >= until) {
			*error = strdup("the gate did not open in 60 s");
			return RUN_FAILED_FINAL;
		}
		if (!run_sleep_until(run, clock_mono_ms() + GATE_STEP_MS))
			return RUN_STOPPED;
	}
	return RUN_SUCCEEDED;
}

static const struct job_kind test_kinds[] = {
	{.name = "crash", .validate = NULL, .run = crash_run},
	{.name = "tally", .validate = tally_validate, .run = tally_run},
	{.name = "gate", .validate = NULL, .run = gate_run},
};

int testkinds_register(void)
{
	for (size_t i = 0; i < sizeof test_kinds / sizeof test_kinds[0]; i++)
		if (kind_register(&test_kinds[i]) != 0)
			return -1;
	return 0;
}
