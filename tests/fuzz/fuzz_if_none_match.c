/* If-None-Match against the ETags jobqd gives (a quoted hex digest). */
#include "server/http.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	http_etag_listed(s, "\"0123456789abcdef0123456789abcdef\"");
	http_etag_listed(s, "\"a\"");
	free(s);
	return 0;
}
