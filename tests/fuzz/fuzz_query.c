/* Query parameters of GET /v1/jobs and of the long-polls: the input's
 * lines are the values of ?state, ?limit, ?cursor and ?wait (a missing
 * line is an absent parameter). */
#include "handlers/handlers.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	char *v[4] = {NULL, NULL, NULL, NULL};
	fuzz_lines(s, v, 4);
	struct store_filter f;
	struct problem p;
	double wait_s;
	bool prefer;
	if (jobs_parse_list_query(v[0], v[1], v[2], &f, &p) == 0 && (f.limit < 1 || f.limit > 1000 || f.before_seq < 0))
		abort();
	if (handler_wait_parse(v[3], NULL, &wait_s, &prefer) == 0 && (wait_s < 0 || wait_s > HANDLER_WAIT_MAX_S))
		abort();
	free(s);
	return 0;
}
