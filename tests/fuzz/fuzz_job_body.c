/* POST /v1/jobs: a request body as the server reads it (job_parse_body),
 * then the submission check (job_from_submission) with the built-in job
 * types and the http type registered, as jobqd runs them. */
#include "core/job.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_register_kinds();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct job_defaults d = fuzz_job_defaults();
	char *body = fuzz_str(data, size);
	struct problem p;
	struct job *job = NULL;
	cJSON *o = job_parse_body(body, size, &p);
	if (o && job_from_submission(o, &d, &job, &p) == 0) {
		/* what the API answers about an accepted job is a body it accepts */
		cJSON *shown = job_to_json(job);
		char *text = shown ? cJSON_PrintUnformatted(shown) : NULL;
		cJSON *back = text ? job_parse_body(text, strlen(text), &p) : NULL;
		if (!back)
			abort();
		cJSON_Delete(back);
		free(text);
		cJSON_Delete(shown);
		job_free(job);
	}
	cJSON_Delete(o);
	free(body);
	return 0;
}
