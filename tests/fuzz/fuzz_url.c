/* The URL of an http job (its payload.url, checked by the http type at
 * submit) and a callback_url of a job or batch. */
#include "core/job.h"
#include "core/kind.h"
#include "tests/fuzz/fuzz.h"

static const struct job_kind *http_kind;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_register_kinds();
	if (!(http_kind = kind_find("http")))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	cJSON *payload = cJSON_CreateObject();
	cJSON *body = cJSON_CreateObject();
	if (!payload || !body || !cJSON_AddStringToObject(payload, "url", s) ||
	    !cJSON_AddStringToObject(body, "callback_url", s))
		abort();
	struct problem p;
	const char *url;
	http_kind->validate(http_kind, payload, &p);
	job_parse_callback_url(body, &url, &p);
	cJSON_Delete(payload);
	cJSON_Delete(body);
	free(s);
	return 0;
}
