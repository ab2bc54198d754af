/* POST /v1/batches: a request body as the server reads it
 * (job_parse_body), then the batch check (job_batch_from_submission) with the
 * built-in job types and the http type registered. */
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
	struct job_batch b = {0};
	cJSON *o = job_parse_body(body, size, &p);
	if (o && job_batch_from_submission(o, &d, &b, &p) == 0)
		job_batch_clear(&b);
	cJSON_Delete(o);
	free(body);
	return 0;
}
