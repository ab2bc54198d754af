/* The unit test runner: the core, cron, server and store suites in one SRunner. The
 * built-in job kinds are registered once here, before Check forks a child
 * per test, so every test sees the same kind table jobqd starts with. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kind.h"
#include "core/log.h"
#include "workers/builtin.h"

Suite *core_suite(void);
Suite *cron_suite(void);
Suite *schedule_suite(void);
Suite *server_suite(void);
Suite *store_contract_suite(const char *backend);
Suite *store_sqlite_suite(void);
Suite *bucket_suite(void);
Suite *deps_suite(void);
Suite *egress_suite(void);
Suite *text_suite(void);

int main(void)
{
	/* The store logs expected warnings (fenced finishes, recovery). */
	log_threshold = LOG_ERROR;
	kind_reset();
	if (builtin_register() != 0) {
		fprintf(stderr, "unit: builtin_register failed\n");
		return EXIT_FAILURE;
	}
	SRunner *sr = srunner_create(core_suite());
	srunner_add_suite(sr, cron_suite());
	srunner_add_suite(sr, schedule_suite());
	srunner_add_suite(sr, server_suite());
	srunner_add_suite(sr, bucket_suite());
	srunner_add_suite(sr, deps_suite());
	srunner_add_suite(sr, egress_suite());
	srunner_add_suite(sr, text_suite());
	/* The store contract runs against the backend named in
	 * JOBQ_TEST_BACKEND (default sqlite). */
	const char *backend = getenv("JOBQ_TEST_BACKEND");
	backend = backend && *backend ? backend : "sqlite";
	srunner_add_suite(sr, store_contract_suite(backend));
	if (strcmp(backend, "sqlite") == 0) /* SQLite's own tests use the same helpers */
		srunner_add_suite(sr, store_sqlite_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
