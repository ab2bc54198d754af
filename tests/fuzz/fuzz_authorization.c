/* The Authorization header against a set of API keys, and a key list as
 * JOBQ_API_KEYS gives it (the input's first line). */
#include "server/auth.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct auth_keys keys, fuzzed;
	char why[256];
	if (keys.n == 0 && auth_load_list(&keys, "admin:k1,read:k2", "keys", why, sizeof why) != 0)
		abort();
	char *s = fuzz_str(data, size);
	auth_check(&keys, s);
	char *v[1];
	fuzz_lines(s, v, 1);
	fuzzed.n = 0;
	auth_load_list(&fuzzed, v[0], "JOBQ_API_KEYS", why, sizeof why);
	free(s);
	return 0;
}
