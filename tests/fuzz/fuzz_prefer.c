/* The Prefer header (RFC 7240) of a long-poll, read for its wait
 * preference. */
#include "handlers/handlers.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	double wait_s;
	bool prefer;
	handler_wait_parse(NULL, s, &wait_s, &prefer);
	if (wait_s < 0 || wait_s > HANDLER_WAIT_MAX_S)
		abort();
	free(s);
	return 0;
}
