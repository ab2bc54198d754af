/* What every fuzz target shares: the input as a C string in a buffer of
 * its exact size (so AddressSanitizer sees a read past its end), split
 * into lines for targets that take several values; and for the targets
 * that check submissions, the job types and defaults jobqd runs with. */
#ifndef JOBQ_FUZZ_H
#define JOBQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "core/job.h"
#include "workers/builtin.h"
#include "workers/http.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Registers the built-in job types and starts the http type's engine, as
 * jobqd does; aborts when either cannot start. */
static inline void fuzz_register_kinds(void)
{
	char err[256];
	struct http_options ho = {0};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (builtin_register() != 0 || http_engine_start(&ho, err, sizeof err) != 0)
		abort();
}

/* jobqd's default job settings. */
static inline struct job_defaults fuzz_job_defaults(void)
{
	return (struct job_defaults){
		.max_attempts = 3, .backoff_s = 1, .max_backoff_s = 300, .timeout_s = 3600, .retention_s = 604800,
	};
}

/* data as a NUL-terminated string (it ends at the first NUL in data); the
 * caller frees it. Aborts when out of memory, as a fuzz run may. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Splits s in place at each '\n' into at most max lines; returns how many. */
static inline int fuzz_lines(char *s, char **lines, int max)
{
	int n = 0;
	while (n < max) {
		lines[n++] = s;
		char *nl = strchr(s, '\n');
		if (!nl)
			break;
		*nl = '\0';
		s = nl + 1;
	}
	return n;
}

#endif
