/* Flags and JOBQ_* environment values: each input line is a command-line
 * argument, or, as JOBQ_NAME=value, an environment variable. Flags that
 * read a file or print and exit are left out. */
#include <stdio.h>

#include "server/config.h"
#include "tests/fuzz/fuzz.h"

#define MAX_ARGS 64

static bool skipped(const char *arg)
{
	return strstr(arg, "api-key-file") || strstr(arg, "API_KEY_FILE") || strcmp(arg, "-h") == 0 ||
	       strncmp(arg, "--help", 6) == 0 || strncmp(arg, "--version", 9) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config cfg;
	char *s = fuzz_str(data, size);
	char *lines[MAX_ARGS];
	char *argv[MAX_ARGS + 2] = {(char *)"jobqd"};
	char *env[MAX_ARGS];
	int argc = 1, nenv = 0;
	int n = fuzz_lines(s, lines, MAX_ARGS);
	for (int i = 0; i < n; i++) {
		char *eq = strchr(lines[i], '=');
		if (skipped(lines[i]))
			continue;
		if (strncmp(lines[i], "JOBQ_", 5) == 0 && eq) {
			*eq = '\0';
			if (setenv(lines[i], eq + 1, 1) == 0)
				env[nenv++] = lines[i];
		} else {
			argv[argc++] = lines[i];
		}
	}
	argv[argc] = NULL;
	char err[512];
	if (config_load(&cfg, argc, argv, err, sizeof err) == CONFIG_OK)
		config_check_exposure(&cfg, err, sizeof err);
	for (int i = 0; i < nenv; i++)
		unsetenv(env[i]);
	free(s);
	return 0;
}
