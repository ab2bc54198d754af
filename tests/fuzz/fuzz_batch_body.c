/* POST /v1/batches: a request body as the server reads it
 * (job_parse_body), then the batch check (job_batch_from_submission) with the
 * built-in job types and the http type registered. */
#include <curl/curl.h>

#include "core/job.h"
#include "tests/fuzz/fuzz.h"
#include "workers/builtin.h"
#include "workers/http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char err[256];
	struct http_options ho = {0};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (builtin_register() != 0 || http_engine_start(&ho, err, sizeof err) != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct job_defaults d = {
		.max_attempts = 3, .backoff_s = 1, .max_backoff_s = 300, .timeout_s = 3600, .retention_s = 604800,
	};
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
